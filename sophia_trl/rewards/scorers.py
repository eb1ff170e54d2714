"""
The per-type scorers of the outcome reward and their answer parsers (SophiaVL-R1, arXiv 2505.17018).

Each scorer compares one extracted answer with one ground truth and returns a float:

| scorer                     | rule                                                          |
|----------------------------|---------------------------------------------------------------|
| [`numerical_reward`]       | 1 if equal mathematically (math-verify), else 0               |
| [`multiple_choice_reward`] | 1 if the set of chosen option letters is the solution's       |
| [`ocr_reward`]             | exp(-WER) (jiwer), or -WER                                    |
| [`free_form_reward`]       | mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score) |
| [`short_text_reward`]      | 1 on a normalised exact match, else 0.5 x token ROUGE-L F     |

Which problem type uses which scorer is written in `sophia_trl.rewards.problem_types`; the format gate and the TRL
reward functions are in `sophia_trl.rewards.outcome`. Trust-GRPO counts a response as correct when its outcome reward
is at least 0.5, so every scorer keeps a wrong answer below 0.5 and a right one at or above it where it can.
"""

import functools
import logging
import math
import re
import unicodedata

import jiwer

from .math_verify_worker import math_verify_match, math_verify_match_in_worker
from .numbers import number_value, read_as_written, zero_next_to_word, zero_written_as_one

logger = logging.getLogger(__name__)

OCR_MODES = ("exp", "neg")


def _strip_dollars(text: str) -> str:
    return text.replace("$$", "").replace("$", "").strip()


# ---------------------------------------------------------------------------------------------------------------------
# "numerical": math-verify, with a hard deadline
# ---------------------------------------------------------------------------------------------------------------------

# A plain decimal number cannot be slow to verify: it is checked in this process, anything else in the worker process.
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_LATEX_DELIMITERS_RE = re.compile(r"\\[()\[\]]")


def numerical_reward(answer: str, solution: str, timeout: float = 1.0, max_length: int = 256) -> float:
    """
    1.0 if the answer equals the solution mathematically, else 0.0.

    Both sides are read by math-verify as LaTeX after removing `$`, `$$`, `\\(`, `\\)`, `\\[` and `\\]`, so
    `14 = 14.0 = \\boxed{14} = 14\\text{ cm}`, `\\frac{1}{2} = 0.5 = 1/2` and `50\\% = 0.5`; numbers are compared to 6
    decimals (math-verify's `float_rounding`), so `4.242641 = 3\\sqrt{2}` but `0.33 != \\frac{1}{3}`.

    Numbers are read as written (`sophia_trl.rewards.numbers`): digits grouped by threes with spaces are one number
    (`45 000 = 45000`, where math-verify alone reads 45 x 0), scientific notation is a number written out exactly
    (`1.2e3 = 1.20e3 = 1200`, not 1.2 x e x 3; `9.3 \\times 10^{2} = 930`, not 930.0000000000001), and a zero next to
    a word counts only as the whole answer: `0 cm` matches 0, but `it is 0` and `no 0`, which math-verify reads as
    products of letters and 0, do not.

    The time is bounded: a plain decimal number is checked in this process (it cannot be slow); anything else is
    checked in a worker process that is killed, and the answer scored 0, if it takes longer than `timeout` seconds
    ("9^{9^{9}}" would otherwise run for minutes). This holds in any thread and any process.

    Args:
        answer (`str`):
            The model's answer (the content of its `<answer>` tags).
        solution (`str`):
            The ground truth.
        timeout (`float`, *optional*, defaults to `1.0`):
            Seconds allowed for parsing and comparing one answer, not counting the worker's start (about a second,
            once per process).
        max_length (`int`, *optional*, defaults to `256`):
            Answers longer than this many characters score 0 without being parsed: a number is never that long.

    Returns:
        `float`: 1.0 or 0.0.

    Raises:
        `ValueError`: When math-verify cannot parse the solution.

    Example:
    ```python
    >>> numerical_reward("$14.0$", "14"), numerical_reward("\\\\frac{1}{2}", "0.5"), numerical_reward("15", "14")
    (1.0, 1.0, 0.0)
    ```
    """
    solution = read_as_written(_LATEX_DELIMITERS_RE.sub("", _strip_dollars(solution)).strip())
    answer = _LATEX_DELIMITERS_RE.sub("", _strip_dollars(answer)).strip()
    if not solution:
        raise ValueError("Empty numerical solution: every row needs its answer.")
    if not answer or len(answer) > max_length:
        return 0.0
    answer = read_as_written(answer)
    result = _bounded_match(solution, answer, timeout)
    if result is None:
        return 0.0
    parsed, match = result
    if not parsed:
        raise ValueError(f"math-verify cannot parse the numerical solution {solution!r}; fix or drop this row.")
    if match and zero_next_to_word(answer):
        # math-verify reads "it is 0" as i*t*i*s*0, which equals 0 whatever the words. A zero beside a word is the
        # answer only when it carries the answer's value on its own ("0 cm"): written as 1, the answer reads as 1.
        result = _bounded_match("1", zero_written_as_one(answer), timeout)
        match = result is not None and result[1]
    return 1.0 if match else 0.0


def _bounded_match(solution: str, answer: str, timeout: float) -> tuple[bool, bool] | None:
    """(solution parsed, answer equals solution) by math-verify within `timeout`, or `None` when it ran out of time."""
    if _PLAIN_NUMBER_RE.fullmatch(answer) and _PLAIN_NUMBER_RE.fullmatch(solution):
        return math_verify_match(solution, answer)
    result = math_verify_match_in_worker(solution, answer, timeout)
    if result is None:
        logger.warning("Verifying the answer %r did not finish within %.1f s: scored 0.", answer[:80], timeout)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# "multiple choice": option letters
# ---------------------------------------------------------------------------------------------------------------------

_LATEX_WRAPPER_RE = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf|fbox)\s*\{([^{}]*)\}")
_CHOICE_PREFIX_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+|best\s+)?(?:answer|option|choice)s?\b(?:\s+(?:is|are))?\s*[:：]?\s*",
    re.IGNORECASE,
)
# One option: "B", "(B)", "[B]", "b", alone.
_BARE_CHOICE_RE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:]?")
# One option with its text: "B. 40", "B) 40", "(B) 40", "B: 40", "B - 40".
_LABELLED_CHOICE_RE = re.compile(
    r"(?:\(\s*([A-Z])\s*\)|\[\s*([A-Z])\s*\]|([A-Z])\s*[.:),\]]|([A-Z])\s+[-–—])\s*\S.*", re.DOTALL
)
_CHOICE_SEPARATOR_RE = re.compile(r"\s*(?:,|;|/|&|\+|\band\b|\bor\b)\s*", re.IGNORECASE)
_OPTION_LABEL_RE = re.compile(r"^\s*[(\[]?\s*([A-Z])\s*[)\].:]\s*")


def _unwrap(text: str) -> str:
    """Remove `\\boxed{...}`-style LaTeX wrappers, Markdown emphasis and surrounding quotes."""
    for _ in range(3):  # nested wrappers such as \boxed{\text{B}}
        text = _LATEX_WRAPPER_RE.sub(r"\1", text)
    return text.strip().strip("*_`\"'").strip()


def _choice_of(part: str) -> str | None:
    match = _BARE_CHOICE_RE.fullmatch(part)
    if match:
        return match.group(1).upper()
    match = _LABELLED_CHOICE_RE.fullmatch(part)
    if match:
        return next(g for g in match.groups() if g)
    return None


# Signs models write for "minus" besides "-": U+2212 (the mathematical minus), U+FE63 and U+FF0D.
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})


def _option_key(text: str) -> float | str:
    """How an answer and an option text are compared: a number by its value as written, sign kept ("-3" is not "3",
    "4.0" is "4", "$7" is "7", "45 000" is "45000"); anything else as normalised words (case, punctuation and
    articles ignored)."""
    text = _strip_dollars(text)
    value = number_value(_unwrap(text).translate(_MINUS_SIGNS).strip().rstrip(".").strip())
    return value if value is not None else _normalize_text(text)


def _option_texts(options: list[str]) -> dict[str, float | str]:
    """Option letter -> option key (see `_option_key`), from `["A. 40", "B. 50"]` or from unlabelled `["40", "50"]`."""
    texts = {}
    for index, option in enumerate(options):
        match = _OPTION_LABEL_RE.match(option)
        if match:
            texts[match.group(1)] = _option_key(option[match.end() :])
        elif index < 26:
            texts[chr(ord("A") + index)] = _option_key(option)
    return texts


def parse_choices(text: str, options: list[str] | None = None) -> frozenset[str] | None:
    """
    The option letters chosen in a multiple-choice answer, or `None` when none can be read.

    Accepted: one letter written as `B`, `(B)`, `[B]`, `B.`, `b`, `\\boxed{B}`, `**B**`, or followed by its option text
    (`B. 40`, `(B) 40`, `B) 40`, `B: 40`); several letters separated by commas, semicolons, slashes, "and" or "or", or
    spaces (`A, C`, `A,C`, `(A) and (C)`, `A C`), or run together (`AC`); a leading "The answer is", "Answer:", "Option".
    When no letter can be read and `options` are given, an answer equal to exactly one option's text (ignoring case,
    punctuation and articles; numbers compared by value with their sign, so `-3` is the option `-3` and not `3`, `4.0`
    is the option `4`, and a Unicode minus is a minus) chooses that option. A letter followed by a comma and text
    (`D, a square`) is that letter.

    Args:
        text (`str`):
            The answer.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            The question's options, labelled (`"A. 40"`) or in order (`"40"` is option A).

    Returns:
        `frozenset[str]` or `None`: Upper-case option letters.

    Example:
    ```python
    >>> sorted(parse_choices("(A) and C")), parse_choices("B. 40"), parse_choices("50", ["A. 40", "B. 50"])
    (['A', 'C'], frozenset({'B'}), frozenset({'B'}))
    ```
    """
    text = _CHOICE_PREFIX_RE.sub("", _unwrap(_strip_dollars(text)), count=1).strip()
    text = text.rstrip(".").strip()
    if not text:
        return None
    # Several options ("A, C", "(A) and (C)", "A C"), then one ("B", "B. 1,000"), then letters run together ("AC").
    parts = [p for p in _CHOICE_SEPARATOR_RE.split(text) if p]
    if len(parts) > 1 and all(_choice_of(p) for p in parts):
        return frozenset(_choice_of(p) for p in parts)
    words = text.split()
    if len(words) > 1 and all(_BARE_CHOICE_RE.fullmatch(w) for w in words):
        return frozenset(_choice_of(w) for w in words)
    letter = _choice_of(text)
    if letter:
        return frozenset(letter)
    if re.fullmatch(r"[A-Z]{2,26}", text) and len(set(text)) == len(text):
        return frozenset(text)
    if options:
        key = _option_key(text)
        matches = [letter for letter, option in _option_texts(options).items() if option != "" and option == key]
        if len(matches) == 1:
            return frozenset(matches)
    return None


def multiple_choice_reward(answer: str, solution: str, options: list[str] | None = None) -> float:
    """
    1.0 if the answer chooses exactly the solution's option letters, else 0.0.

    Both sides are read with [`parse_choices`], so `"B"`, `"(B)"`, `"B."` and `"B. 40"` all match the solution `"B"`,
    and `"A, C"`, `"C,A"` and `"A and C"` match `"A,C"`. A multi-answer question needs the same set: `"A"` or
    `"A, B, C"` score 0 against `"A,C"`, and so does a hedge such as `"A or B"` against `"A"`.

    Args:
        answer (`str`):
            The model's answer.
        solution (`str`):
            The ground truth letter(s), or the correct option's text when `options` are given.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            The question's options (see [`parse_choices`]); lets an answer that writes the option text count.

    Returns:
        `float`: 1.0 or 0.0.

    Raises:
        `ValueError`: When no option letter can be read from the solution.

    Example:
    ```python
    >>> multiple_choice_reward("(B) 40", "B"), multiple_choice_reward("C, A", "A,C"), multiple_choice_reward("A", "A,C")
    (1.0, 1.0, 0.0)
    ```
    """
    gold = parse_choices(solution, options)
    if gold is None:
        raise ValueError(
            f"No option letter in the multiple-choice solution {solution!r}: write it as a letter such as 'B' or "
            "'A,C' (or give the row's `options` when the solution is an option's text)."
        )
    return 1.0 if parse_choices(answer, options) == gold else 0.0


# ---------------------------------------------------------------------------------------------------------------------
# "OCR": word error rate
# ---------------------------------------------------------------------------------------------------------------------


def ocr_reward(answer: str, solution: str, mode: str = "exp") -> float:
    """
    A transcription's score from its word error rate (WER, computed by jiwer) against the solution.

    `mode="exp"` gives exp(-WER), in (0, 1], as the released SophiaVL-R1 code does: a perfect transcription scores 1,
    one wrong word of two scores exp(-0.5) = 0.61, and the 0.5 correctness threshold of Trust-GRPO is reached up to a
    WER of ln 2 = 0.69. `mode="neg"` gives the paper's -WER, in (-inf, 0]. Words are compared as written (case and
    punctuation count). An empty answer scores 0 with `"exp"` and -1 (the WER of an empty transcription) with `"neg"`.

    Args:
        answer (`str`):
            The model's transcription.
        solution (`str`):
            The reference text.
        mode (`str`, *optional*, defaults to `"exp"`):
            `"exp"` for exp(-WER) or `"neg"` for -WER.

    Returns:
        `float`: The score.

    Example:
    ```python
    >>> round(ocr_reward("hello world", "hello world"), 3), round(ocr_reward("hello word", "hello world"), 3)
    (1.0, 0.607)
    >>> ocr_reward("hello word", "hello world", mode="neg")
    -0.5
    ```
    """
    if mode not in OCR_MODES:
        raise ValueError(f"Unknown OCR reward mode {mode!r}: expected one of {list(OCR_MODES)}.")
    if not solution.strip():
        raise ValueError("Empty OCR solution: every row needs its reference text.")
    if not answer.strip():
        return 0.0 if mode == "exp" else -1.0
    error_rate = jiwer.wer(solution.strip(), answer.strip())
    return math.exp(-error_rate) if mode == "exp" else -error_rate


# ---------------------------------------------------------------------------------------------------------------------
# "free-form" and "text": ROUGE and normalised exact match
# ---------------------------------------------------------------------------------------------------------------------

# One token per CJK ideograph or kana (those scripts do not separate words with spaces), else runs of letters/digits.
_WORD_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+")
_ARTICLES = frozenset({"a", "an", "the"})


def _normalize_text(text: str) -> str:
    """Lower-cased words without punctuation or articles: `"The Eiffel-Tower."` -> `"eiffel tower"`."""
    words = _WORD_RE.findall(unicodedata.normalize("NFKC", _unwrap(text)).lower())
    content = [w for w in words if w not in _ARTICLES]
    return " ".join(content or words)  # an answer that is only an article ("A") keeps it


class _WordTokenizer:
    """Tokenizer for rouge-score that keeps non-ASCII words (rouge-score's default drops all but [a-z0-9])."""

    def tokenize(self, text: str) -> list[str]:
        return _normalize_text(text).split()


@functools.cache
def _rouge(kind: str):
    # Imported here: rouge-score loads nltk (1.5 s), which only the free-form and text scorers need.
    from rouge_score import rouge_scorer

    if kind == "stemmed":
        return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    if kind == "words":
        return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_WordTokenizer())
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())


_ROUGE_TOKEN_RE = re.compile(r"[a-z0-9]")


def free_form_reward(answer: str, solution: str) -> float:
    """
    The mean of the ROUGE-1, ROUGE-2 and ROUGE-L F-measures of the answer against the solution (rouge-score, with its
    stemmer), as in the paper and the released code.

    rouge-score keeps only the ASCII letters and digits; when the solution has none (Chinese text, for example), words
    of any script are used instead, one token per CJK character, so such rows are scored rather than all given 0.
    A one-word answer cannot reach 1 (it has no bigram): use [`short_text_reward`] for short answers.

    Args:
        answer (`str`):
            The model's answer.
        solution (`str`):
            The reference answer.

    Returns:
        `float`: The score, in [0, 1].

    Example:
    ```python
    >>> free_form_reward("a red circle left of a blue square", "a red circle left of a blue square")
    1.0
    >>> round(free_form_reward("the cat sat", "the cat sat on the mat"), 3)  # R1 2/3, R2 4/7, RL 2/3
    0.635
    ```
    """
    if not _WORD_RE.search(solution):
        raise ValueError(f"The free-form solution {solution!r} has no words to compare with.")
    scorer = _rouge("stemmed" if _ROUGE_TOKEN_RE.search(solution.lower()) else "words")
    scores = scorer.score(solution, answer)
    return (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3


def short_text_reward(answer: str, solution: str, partial_credit: float = 0.5) -> float:
    """
    1.0 if the answer equals the solution after normalisation, else `partial_credit` times the ROUGE-L F-measure of
    their words.

    Normalisation lower-cases, applies Unicode NFKC, removes `\\boxed{}`/`\\text{}` wrappers, punctuation and the
    articles "a", "an" and "the": `"The Eiffel Tower."` matches `"eiffel tower"`. ROUGE-L is below 1 whenever the
    normalised words differ, so with the default `partial_credit=0.5` a partial answer stays below Trust-GRPO's 0.5
    correctness threshold: `"blue square"` against `"red square"` scores 0.5 x 0.5 = 0.25 rather than counting as
    right. (The released code scores these with the ROUGE mean of [`free_form_reward`], which caps a correct one-word
    answer at 2/3.)

    Args:
        answer (`str`):
            The model's answer.
        solution (`str`):
            The reference answer.
        partial_credit (`float`, *optional*, defaults to `0.5`):
            Weight of the ROUGE-L F-measure for an answer that is not an exact match; 0 gives exact match only.

    Returns:
        `float`: The score, in [0, 1].

    Example:
    ```python
    >>> short_text_reward("The Eiffel Tower.", "eiffel tower"), short_text_reward("blue square", "red square")
    (1.0, 0.25)
    ```
    """
    if not 0.0 <= partial_credit <= 1.0:
        raise ValueError(f"partial_credit={partial_credit} must be in [0, 1].")
    gold = _normalize_text(solution)
    if not gold:
        # Only punctuation or symbols (e.g. "?"): nothing to normalise, so compare as written.
        if not solution.strip():
            raise ValueError("Empty text solution: every row needs its answer.")
        return 1.0 if answer.strip() == solution.strip() else 0.0
    if _normalize_text(answer) == gold:
        return 1.0
    if partial_credit == 0.0:
        return 0.0
    return partial_credit * _rouge("words_l").score(solution, answer)["rougeL"].fmeasure
