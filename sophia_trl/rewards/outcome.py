"""
Rule-based outcome rewards for the problem types of the SophiaVL-R1 data (arXiv 2505.17018).

[`outcome_reward`] is a TRL reward function: it reads the answer of each completion, checks the response format and
scores the answer against the row's `solution` with the scorer of the row's `problem_type`:

| `problem_type`      | scorer                     | rule                                                          |
|---------------------|----------------------------|---------------------------------------------------------------|
| `"numerical"`       | [`numerical_reward`]       | 1 if equal mathematically (math-verify), else 0               |
| `"multiple choice"` | [`multiple_choice_reward`] | 1 if the set of chosen option letters is the solution's       |
| `"OCR"`             | [`ocr_reward`]             | exp(-WER) (jiwer), or -WER                                    |
| `"free-form"`       | [`free_form_reward`]       | mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score) |
| `"text"`            | [`short_text_reward`]      | 1 on a normalised exact match, else 0.5 x token ROUGE-L F     |

Every score is 0 unless the response is `<think>...</think>` followed by `<answer>...</answer>` ([`format_reward`] is
that gate as a reward function of its own). Trust-GRPO counts a response as correct when its outcome reward is at
least 0.5, so every scorer keeps a wrong answer below 0.5 and a right one at or above it where it can.

This module imports nothing from the rest of the package: the math-verify worker process loads it by file path.
"""

import atexit
import functools
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable
from typing import Any

import jiwer
from math_verify import parse, verify

logger = logging.getLogger(__name__)

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "text")
OCR_MODES = ("exp", "neg")

# ---------------------------------------------------------------------------------------------------------------------
# Response format and answer extraction
# ---------------------------------------------------------------------------------------------------------------------

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_RESPONSE_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_SOLUTION_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _completion_text(completion: str | list[dict[str, Any]]) -> str:
    """
    The text of one completion, plain (`str`) or conversational (`[{"role": "assistant", "content": ...}]`, where the
    content is a string or a list of `{"type": "text", "text": ...}` blocks).
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list):
        raise TypeError(
            f"A completion must be a string or a list of messages, got {type(completion).__name__}: {completion!r:.80}"
        )
    parts = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content") or ""
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(block.get("text", "") for block in content if block.get("type") == "text")
    return "".join(parts)


def extract_answer(response: str) -> str | None:
    """
    The answer of an R1-style response, or `None` when the response does not have the required format.

    The format is `<think>...</think>` followed by `<answer>...</answer>`, with only whitespace before, between and
    after them, and each tag exactly once (a second `<answer>` block is a malformed response, not a second try).

    Args:
        response (`str`):
            The model's response.

    Returns:
        `str` or `None`: The text between the answer tags, stripped of surrounding whitespace.

    Example:
    ```python
    >>> extract_answer("<think>2 + 2 = 4</think>\\n<answer> 4 </answer>")
    '4'
    >>> extract_answer("The answer is 4.") is None
    True
    ```
    """
    # Counting first keeps the regex linear on long responses: with one of each tag there is nothing to backtrack over.
    if any(response.count(tag) != 1 for tag in _TAGS):
        return None
    match = _RESPONSE_RE.fullmatch(response)
    return match.group(2).strip() if match else None


def format_reward(completions: list[list[dict[str, Any]]] | list[str], **kwargs) -> list[float | None]:
    """
    Reward function that gives 1.0 to responses in the `<think>...</think><answer>...</answer>` format and 0.0 to others.

    This is the gate that [`outcome_reward`] applies, as a reward function of its own (the released SophiaVL-R1 code
    adds such a format reward to the accuracy reward). See [`extract_answer`] for the exact rule.

    Args:
        completions (`list[list[dict[str, str]]]` or `list[str]`):
            Completions, conversational or plain.
        **kwargs:
            Other columns and trainer arguments, unused.

    Returns:
        `list[float | None]`: One reward per completion, 1.0 or 0.0.

    Example:
    ```python
    >>> format_reward(["<think>...</think><answer>B</answer>", "B"])
    [1.0, 0.0]
    ```
    """
    return [0.0 if extract_answer(_completion_text(c)) is None else 1.0 for c in completions]


def _solution_text(solution: Any) -> str:
    """
    The ground truth of a dataset row as a string: the content of `<answer>...</answer>` when the solution is wrapped
    (as in the released data), with `$`/`$$` removed and whitespace stripped. A list of answers (several correct
    options) is joined with commas.

    Raises:
        `ValueError`: When the solution is missing or empty.
    """
    if isinstance(solution, (list, tuple)):
        solution = ", ".join(str(s) for s in solution)
    elif isinstance(solution, (int, float)) and not isinstance(solution, bool):
        solution = str(solution)
    if not isinstance(solution, str):
        raise ValueError(f"Missing solution: got {solution!r}; every row needs its answer as a string.")
    match = _SOLUTION_RE.search(solution)
    text = _strip_dollars(match.group(1) if match else solution)
    if not text:
        raise ValueError(f"Empty solution {solution!r}: every row needs its answer as a non-empty string.")
    return text


def _strip_dollars(text: str) -> str:
    return text.replace("$$", "").replace("$", "").strip()


# ---------------------------------------------------------------------------------------------------------------------
# "numerical": math-verify, in a worker process with a hard deadline
# ---------------------------------------------------------------------------------------------------------------------

# Short inputs can be arbitrarily slow to verify: "9^{9^{9}}" (9 characters) ran for minutes against "14". math-verify's
# own timeout uses signal.alarm, which only works in the main thread and cannot stop a long C-level operation, so
# anything but a plain decimal number is verified in a separate process that is killed when it misses its deadline.
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_LATEX_DELIMITERS_RE = re.compile(r"\\[()\[\]]")
_MATH_VERIFY_LOCK = threading.Lock()  # math-verify's parsers are not documented as thread-safe
_WORKER_STARTUP_TIMEOUT = 120.0  # seconds to import sympy and math-verify in the worker, on a loaded machine
_WORKER_MEMORY_LIMIT = 2 * 1024**3  # bytes of address space for the worker: a pathological answer fails, not the host


class _QuietTimeoutWarning(logging.Filter):
    # math-verify warns once that its timeout is disabled; here the deadline is enforced around it instead.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutWarning())


def _math_verify_match(solution: str, answer: str) -> tuple[bool, bool]:
    """(solution parsed, answer equals solution) by math-verify, without a time bound: callers bound it."""
    # Wrapping in $...$ makes math-verify read both as LaTeX, which also accepts "\dfrac12", "3*sqrt(2)" and "−3".
    gold = parse(f"${solution}$", parsing_timeout=None)
    if not gold:
        return False, False
    return True, bool(verify(gold, parse(f"${answer}$", parsing_timeout=None), timeout_seconds=None))


def _serve_math_verify() -> None:
    """Worker loop: one JSON request `{"solution", "answer"}` per stdin line, one JSON reply per stdout line."""
    logging.basicConfig(level=logging.ERROR)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_LIMIT, _WORKER_MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):  # not POSIX, or a lower hard limit is already set
        pass
    _math_verify_match("1", "1")  # the first parse loads the grammars: pay for it before reporting ready
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            parsed, match = _math_verify_match(request["solution"], request["answer"])
        except MemoryError:
            parsed, match = True, False
        print(json.dumps({"parsed": parsed, "match": match}), flush=True)


_WORKER_COMMAND = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_sophia_trl_outcome_worker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._serve_math_verify()
"""


def _pump_lines(stream, replies: queue.Queue) -> None:
    for line in stream:
        replies.put(line)
    replies.put(None)  # end of stream: the worker exited


class _MathVerifyWorker:
    """A math-verify process that answers one request at a time and is killed when a request misses its deadline."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue | None = None

    def _start(self) -> None:
        # Loading this file by path (not `import sophia_trl...`) keeps the worker free of the package's heavy imports.
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_COMMAND, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._replies = queue.Queue()
        threading.Thread(target=_pump_lines, args=(self._process.stdout, self._replies), daemon=True).start()
        try:
            ready = self._replies.get(timeout=_WORKER_STARTUP_TIMEOUT)
        except queue.Empty:
            ready = None
        if ready is None:
            self.close()
            raise RuntimeError(
                "The math-verify worker process did not start (see its error above, on stderr). It runs "
                f"`{sys.executable} -c ...` and imports math_verify: check that this interpreter can import it."
            )

    def close(self) -> None:
        """Stop the worker process, if one is running."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._process = None
        self._replies = None

    def match(self, solution: str, answer: str, timeout: float) -> tuple[bool, bool] | None:
        """(solution parsed, answer equals solution), or `None` when the worker did not answer within `timeout`."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.close()
                self._start()
            request = json.dumps({"solution": solution, "answer": answer}) + "\n"
            try:
                self._process.stdin.write(request)
                self._process.stdin.flush()
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                reply = None
            except OSError:  # the worker died between requests
                reply = None
            if reply is None:
                self.close()
                return None
            reply = json.loads(reply)
            return reply["parsed"], reply["match"]


_WORKER = _MathVerifyWorker()
atexit.register(lambda: _WORKER.close())


def _reset_worker_after_fork() -> None:
    # A forked child must not share the parent's pipes (or a lock another thread held at fork time).
    global _WORKER
    _WORKER = _MathVerifyWorker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_worker_after_fork)


def numerical_reward(answer: str, solution: str, timeout: float = 1.0, max_length: int = 256) -> float:
    """
    1.0 if the answer equals the solution mathematically, else 0.0.

    Both sides are read by math-verify as LaTeX after removing `$`, `$$`, `\\(`, `\\)`, `\\[` and `\\]`, so
    `14 = 14.0 = \\boxed{14} = 14\\text{ cm}`, `\\frac{1}{2} = 0.5 = 1/2` and `50\\% = 0.5`; numbers are compared to 6
    decimals (math-verify's `float_rounding`), so `4.242641 = 3\\sqrt{2}` but `0.33 != \\frac{1}{3}`.

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
    solution = _LATEX_DELIMITERS_RE.sub("", _strip_dollars(solution)).strip()
    answer = _LATEX_DELIMITERS_RE.sub("", _strip_dollars(answer)).strip()
    if not solution:
        raise ValueError("Empty numerical solution: every row needs its answer.")
    if not answer or len(answer) > max_length:
        return 0.0
    if _PLAIN_NUMBER_RE.fullmatch(answer) and _PLAIN_NUMBER_RE.fullmatch(solution):
        with _MATH_VERIFY_LOCK:
            parsed, match = _math_verify_match(solution, answer)
    else:
        result = _WORKER.match(solution, answer, timeout)
        if result is None:
            logger.warning("Verifying the answer %r did not finish within %.1f s: scored 0.", answer[:80], timeout)
            return 0.0
        parsed, match = result
    if not parsed:
        raise ValueError(f"math-verify cannot parse the numerical solution {solution!r}; fix or drop this row.")
    return 1.0 if match else 0.0


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
    r"(?:\(\s*([A-Z])\s*\)|\[\s*([A-Z])\s*\]|([A-Z])\s*[.:)\]]|([A-Z])\s+[-–—])\s*\S.*", re.DOTALL
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


def _option_texts(options: list[str]) -> dict[str, str]:
    """Option letter -> normalised option text, from `["A. 40", "B. 50"]` or from unlabelled `["40", "50"]`."""
    texts = {}
    for index, option in enumerate(options):
        match = _OPTION_LABEL_RE.match(option)
        if match:
            texts[match.group(1)] = _normalize_text(option[match.end() :])
        elif index < 26:
            texts[chr(ord("A") + index)] = _normalize_text(option)
    return texts


def parse_choices(text: str, options: list[str] | None = None) -> frozenset[str] | None:
    """
    The option letters chosen in a multiple-choice answer, or `None` when none can be read.

    Accepted: one letter written as `B`, `(B)`, `[B]`, `B.`, `b`, `\\boxed{B}`, `**B**`, or followed by its option text
    (`B. 40`, `(B) 40`, `B) 40`, `B: 40`); several letters separated by commas, semicolons, slashes, "and" or "or", or
    spaces (`A, C`, `A,C`, `(A) and (C)`, `A C`), or run together (`AC`); a leading "The answer is", "Answer:", "Option".
    When no letter can be read and `options` are given, an answer equal to exactly one option's text (ignoring case and
    punctuation) chooses that option.

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
        normalized = _normalize_text(text)
        matches = [letter for letter, option in _option_texts(options).items() if option and option == normalized]
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
    # Imported here: rouge-score loads nltk (1.5 s), which the math-verify worker process, loading this file, never needs.
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


# ---------------------------------------------------------------------------------------------------------------------
# The reward function
# ---------------------------------------------------------------------------------------------------------------------

_PROBLEM_TYPE_KEYS = {t.lower(): t for t in PROBLEM_TYPES}


def _canonical_problem_type(problem_type: Any) -> str:
    """
    The problem type as spelled in `PROBLEM_TYPES` (matching ignores case and surrounding whitespace).

    Raises:
        `ValueError`: When the value is not one of `PROBLEM_TYPES`.
    """
    key = problem_type.strip().lower() if isinstance(problem_type, str) else None
    if key not in _PROBLEM_TYPE_KEYS:
        raise ValueError(f"Unknown problem_type {problem_type!r}: expected one of {list(PROBLEM_TYPES)}.")
    return _PROBLEM_TYPE_KEYS[key]


def score_answer(
    answer: str,
    solution: str,
    problem_type: str,
    options: list[str] | None = None,
    ocr_mode: str = "exp",
    numerical_timeout: float = 1.0,
) -> float:
    """
    Score one extracted answer with the scorer of its problem type (no format gate: see [`outcome_reward`]).

    Args:
        answer (`str`):
            The model's answer.
        solution (`str`):
            The ground truth, plain or wrapped as `<answer>X</answer>`.
        problem_type (`str`):
            One of `PROBLEM_TYPES`.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            The options of a multiple-choice question.
        ocr_mode (`str`, *optional*, defaults to `"exp"`):
            `"exp"` or `"neg"`, see [`ocr_reward`].
        numerical_timeout (`float`, *optional*, defaults to `1.0`):
            Seconds allowed to verify one numerical answer, see [`numerical_reward`].

    Returns:
        `float`: The score.
    """
    problem_type = _canonical_problem_type(problem_type)
    solution = _solution_text(solution)
    answer = _strip_dollars(answer)
    if problem_type == "numerical":
        return numerical_reward(answer, solution, timeout=numerical_timeout)
    if problem_type == "multiple choice":
        return multiple_choice_reward(answer, solution, options=options)
    if problem_type == "OCR":
        return ocr_reward(answer, solution, mode=ocr_mode)
    if problem_type == "free-form":
        return free_form_reward(answer, solution)
    return short_text_reward(answer, solution)


def outcome_reward(
    completions: list[list[dict[str, Any]]] | list[str],
    solution: list[str] | None = None,
    problem_type: list[str] | None = None,
    options: list[list[str] | None] | None = None,
    ocr_mode: str = "exp",
    numerical_timeout: float = 1.0,
    log_extra: Callable[[str, list], None] | None = None,
    **kwargs,
) -> list[float | None]:
    """
    Reward function that scores each completion's answer against its row's solution, by the row's problem type.

    A completion scores 0 unless it is `<think>...</think>` followed by `<answer>...</answer>` (see
    [`extract_answer`]); with `ocr_mode="neg"`, an OCR completion that fails this gate scores -1 (an empty
    transcription) instead, since 0 is the best -WER. Otherwise the content of the answer tags is scored by
    [`numerical_reward`], [`multiple_choice_reward`], [`ocr_reward`], [`free_form_reward`] or [`short_text_reward`]
    for the problem types `"numerical"`, `"multiple choice"`, `"OCR"`, `"free-form"` and `"text"`. A malformed
    completion (no tags, empty, very long) scores 0 without raising; a bad row raises.

    Args:
        completions (`list[list[dict[str, str]]]` or `list[str]`):
            Completions, conversational (`[{"role": "assistant", "content": ...}]`) or plain.
        solution (`list[str]`):
            The dataset's `solution` column: the answer, plain or wrapped as `<answer>X</answer>`.
        problem_type (`list[str]`):
            The dataset's `problem_type` column, each one of `PROBLEM_TYPES`.
        options (`list[list[str] | None]` or `None`, *optional*, defaults to `None`):
            The dataset's `options` column, used for multiple-choice rows.
        ocr_mode (`str`, *optional*, defaults to `"exp"`):
            `"exp"` for exp(-WER) or `"neg"` for the paper's -WER. Set it with
            `functools.partial(outcome_reward, ocr_mode="neg")`; TRL still logs the reward as `outcome_reward`.
        numerical_timeout (`float`, *optional*, defaults to `1.0`):
            Seconds allowed to verify one numerical answer.
        log_extra (`Callable` or `None`, *optional*, defaults to `None`):
            Given by the trainer: the extracted answers are added to the completions table as `extracted_answer`.
        **kwargs:
            Other dataset columns and trainer arguments, unused.

    Returns:
        `list[float | None]`: One reward per completion (never `None`: a row that cannot be scored raises instead of
        being skipped silently).

    Raises:
        `ValueError`: For a missing `solution` or `problem_type` column, an unknown problem type or OCR mode, or a
        row whose solution is missing or cannot be read; the message names the row.

    Example:
    ```python
    >>> completions = [[{"role": "assistant", "content": "<think>7 + 7 = 14</think><answer>$14.0$</answer>"}],
    ...                [{"role": "assistant", "content": "<think>It is B.</think><answer>(B) 40</answer>"}],
    ...                [{"role": "assistant", "content": "14"}]]
    >>> outcome_reward(completions, solution=["<answer>14</answer>", "B", "14"],
    ...                problem_type=["numerical", "multiple choice", "numerical"])
    [1.0, 1.0, 0.0]
    ```
    """
    if solution is None or problem_type is None:
        missing = "solution" if solution is None else "problem_type"
        raise ValueError(
            f"outcome_reward needs a `{missing}` column in the dataset (got columns: {sorted(kwargs)}). For a "
            "dataset of one problem type, add it with `dataset.map(lambda row: {'problem_type': 'numerical'})`."
        )
    if ocr_mode not in OCR_MODES:
        raise ValueError(f"Unknown ocr_mode {ocr_mode!r}: expected one of {list(OCR_MODES)}.")
    if not (len(completions) == len(solution) == len(problem_type)):
        raise ValueError(
            f"outcome_reward got {len(completions)} completions, {len(solution)} solutions and {len(problem_type)} "
            "problem types: one of each per row is needed."
        )
    if options is None:
        options = [None] * len(completions)

    rewards: list[float | None] = []
    answers = []
    for index, (completion, gold, kind, row_options) in enumerate(
        zip(completions, solution, problem_type, options, strict=True)
    ):
        try:
            kind = _canonical_problem_type(kind)
            gold = _solution_text(gold)
            answer = extract_answer(_completion_text(completion))
            # A gated completion is scored as an empty answer too, so that a bad solution raises on every row.
            reward = score_answer(answer or "", gold, kind, row_options, ocr_mode, numerical_timeout)
            if answer is None:
                reward = -1.0 if kind == "OCR" and ocr_mode == "neg" else 0.0
        except ValueError as error:
            raise ValueError(f"outcome_reward, row {index} (problem_type={kind!r}): {error}") from error
        rewards.append(reward)
        answers.append(answer if answer is not None else "")

    if log_extra is not None:
        log_extra("extracted_answer", answers)
    return rewards
