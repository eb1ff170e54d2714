"""Answer extraction from R1-style responses, shared by every benchmark.

The policy is trained to write `<think>...</think><answer>...</answer>`, so the answer is the content of the last
`<answer>` tag. When the tags are missing (a response cut off by the generation limit, or a model that ignores the
format), the fallback is, in order:

1. the text after the last `</think>` (tags removed), source `"after_think"`;
2. the whole response with the tags removed, source `"full_response"`; the benchmark's parser then takes what it
   needs from it: the last option letter, the last number, or the last non-empty line;
3. nothing, source `"empty"`, for an empty response.

Every record keeps its source, and every report counts the items that used a fallback and the items whose answer
could not be parsed at all (scored as wrong, never guessed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sophia_trl.rewards.numbers import join_spaced_thousands
from sophia_trl.rewards.scorers import parse_choices

ANSWER_SOURCES = ("answer_tag", "after_think", "full_response", "empty")

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANY_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)
# Signs models write for "minus" besides "-": U+2212 (the mathematical minus), U+FE63 and U+FF0D (small/full-width).
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
_PLAIN = r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?:\.\d+)?"
# One number as written, tried in this order at each position so that no expression is read as one of its digits:
# `a × 10^b` (also `\times`, `\cdot`, `*`, `x`) or `10^b`; `\frac{a}{b}`; `a/b`; `2.5e4`; a plain number (with an
# optional sign, thousands separators and decimals: "1,234.5", "-.5").
_NUMBER_EXPRESSION = re.compile(
    rf"(?P<sci>(?P<mantissa>{_PLAIN})\s*(?:\u00d7|\\times|\\cdot|\*|x)\s*10\s*\^\s*\{{?\s*(?P<exponent>[-+]?\d+)\s*\}}?)"
    rf"|(?P<power>(?<![\d.])10\s*\^\s*\{{?\s*(?P<power_exponent>[-+]?\d+)\s*\}}?)"
    r"|(?P<latex>(?P<latex_sign>-)?\s*\\d?frac\{\s*(?P<latex_num>-?[\d.]+)\s*\}\{\s*(?P<latex_den>-?[\d.]+)\s*\})"
    rf"|(?P<fraction>(?<![\d./])(?P<num>-?\d+(?:\.\d+)?)\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d./]))"
    r"|(?P<exp>(?<![\d.])-?\d+(?:\.\d+)?[eE][-+]?\d+)"
    rf"|(?P<plain>(?<![\d.]){_PLAIN}(?!\d))"
)


# A letter stated as the answer: "the answer is D", "Answer: (D)", "the correct option D", "I choose D", "D is correct".
# A mention ("option A gives 30°", "each option: A: 30, B: 40") states nothing.
_STATED_LETTER = re.compile(
    r"(?:(?i:\banswer\s*[:：]|\b(?:answer|option|choice)\s+(?:is|would\s+be|should\s+be|must\s+be)"
    r"|\b(?:correct|right|final|best)\s+(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|should\s+be|must\s+be))?"
    r"\s*[:：]?|\b(?:choose|pick|select)\b(?:\s+option)?)\s*[(\[]?\s*([A-Z])(?![A-Za-z]))"
    r"|(?<![A-Za-z])[(\[]?([A-Z])[)\]]?\s+(?i:is|must\s+be|should\s+be|would\s+be)\s+(?i:the\s+)?"
    r"(?i:correct|right|answer|best)\b"
)
_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
# After "A" or "I": a lower-case word makes it the article or the pronoun ("A square", "I think"), unless the word says
# the letter is the answer ("A is right").
_WORD_AFTER_ARTICLE = re.compile(
    r"\s+(?!(?:is|was|seems|looks|fits|matches|appears|must|should|would|because)\b)[a-z]"
)
# A letter the text rules out: "not A", "rather than (A)", "A is wrong", "option C is too large", "B does not fit".
_REJECTED_BEFORE = re.compile(
    r"(?i:\b(?:not|than|instead\s+of|except|excluding|rule\s+out|rules\s+out|ruling\s+out|eliminate|eliminates|"
    r"eliminating)\s+(?:option\s+|choice\s+)?)[(\[]?\s*$"
)
_REJECTED_AFTER = re.compile(
    r"[)\]]?\s+(?i:(?:is|was|would\s+be|seems|appears)\s+(?:not\b|wrong|incorrect|false|too\b|impossible|"
    r"invalid|unlikely|ruled\s+out|eliminated|excluded)|(?:is|was|does|do)n't|does\s+not|do\s+not|can't|cannot)"
)
_SHORT_ANSWER = 8  # words: an answer this short is read for an option's text whatever the options' length
# A line that is a bare answer: yes/no or one number (`25`, `-3.5`, `25%`, `$1,200`), optionally ending with a period.
_BARE_ANSWER_LINE = re.compile(r"(?i:yes|no)[.!]?|[-+]?\$?\d[\d,]*(?:\.\d+)?\s*%?\.?")
# The exponent of a unit ("cm^2", "m^{3}", "\\text{cm}^2", "m/s^2") is not a number the answer writes.
_UNIT_EXPONENT = re.compile(r"(?<=[A-Za-z}])\s*\^\s*\{?\s*[-+]?\d+\s*\}?")


@dataclass(frozen=True)
class ExtractedAnswer:
    """The answer part of a response and where it was found (one of `ANSWER_SOURCES`)."""

    text: str
    source: str

    @property
    def used_fallback(self) -> bool:
        return self.source != "answer_tag"


def answer_with_fallback(response: str | None) -> ExtractedAnswer:
    """Returns the content of the last `<answer>...</answer>` tag, or the documented fallback when there is none.

    Args:
        response (`str` or `None`):
            The model's raw output.

    Returns:
        `ExtractedAnswer`: the answer text (stripped) and its source: `"answer_tag"`, `"after_think"`,
        `"full_response"` or `"empty"`.

    Example:
    ```python
    >>> answer_with_fallback("<think>2 + 2 = 4</think> <answer> 4 </answer>")
    ExtractedAnswer(text='4', source='answer_tag')
    >>> answer_with_fallback("<think>2 + 2 = 4</think> So it is 4.")
    ExtractedAnswer(text='So it is 4.', source='after_think')
    ```
    """
    response = response or ""
    matches = _ANSWER_TAG.findall(response)
    if matches:
        return ExtractedAnswer(matches[-1].strip(), "answer_tag")
    if re.search(r"</think>", response, re.IGNORECASE):
        tail = _ANY_TAG.sub(" ", re.split(r"</think>", response, flags=re.IGNORECASE)[-1]).strip()
        if tail:
            return ExtractedAnswer(tail, "after_think")
    text = _ANY_TAG.sub(" ", response).strip()
    return ExtractedAnswer(text, "full_response" if text else "empty")


def last_line(text: str) -> str:
    """The last non-empty line of `text` (stripped), or `""`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def free_text_answer(answer: ExtractedAnswer) -> str:
    """A short free-text answer: the tag content as is; otherwise the first non-empty line of the fallback text when it
    is a bare answer followed by an explanation (`"Yes"`, `"25"`, `"25%"`), else the last non-empty line."""
    if answer.source == "answer_tag":
        return answer.text
    lines = [line.strip() for line in answer.text.splitlines() if line.strip()]
    if len(lines) > 1 and _BARE_ANSWER_LINE.fullmatch(lines[0]):
        return lines[0]
    return last_line(answer.text)


def option_letters(num_options: int) -> list[str]:
    """`["A", "B", ...]` for `num_options` options."""
    return [chr(ord("A") + i) for i in range(num_options)]


def parse_choice(text: str, num_options: int, options: list[str] | None = None) -> str | None:
    """Reads a single option letter from an answer, tolerant of the ways models write a choice.

    In this order, first match wins:

    1. a letter followed by its own option text, as the whole answer (`"A. I"`, `"(B) A"`), so that an option whose
       text is itself a letter or a Roman numeral is not read as a second letter;
    2. the answer read as the training reward reads it (`parse_choices`: `"B"`, `"(b)"`, `"B."`, `"B. 40"`,
       `"B) 40"`, `"\\boxed{B}"`, `"The answer is (B)"`, or exactly one option's text, numbers compared by value;
       `"I"` or `"IV"` outside the letters in range are the options written so);
    3. in free text, where the options' texts written in it are not letters (`"A square"`, `"Vitamin C"`): the last
       letter stated as the answer (`"the correct option is D, A square"`, `"I choose D"`, `"Answer: (D)"`, `"B is
       correct"`; a mention such as `"option A gives 30°"` states nothing), else the last letter written that the
       text does not rule out (`"not A"`, `"A is wrong"`); a capital "A" or "I" followed by a lower-case word is the
       article or the pronoun;
    4. with no letter at all, the option whose text the answer contains, when exactly one does (VLMEvalKit's
       `can_infer_text`: `"It is China."`; an option inside another one's text, "China" in "South China", does not
       count), for an answer of at most eight words or at most twice as long as the options' texts together (the
       bound of `can_infer_text`, which alone would leave `"I think it is 4"` to a model).

    Args:
        text (`str`):
            The extracted answer text.
        num_options (`int`):
            Number of options; letters beyond it are ignored.
        options (`list[str]`, *optional*):
            Option texts in letter order, to map an answer written as an option's text to its letter.

    Returns:
        `str` or `None`: the letter, or `None` when no single letter in range can be read (an answer naming several
        options of a single-answer question is `None` too).
    """
    letters = option_letters(num_options)
    texts = [(letter, option.strip()) for letter, option in zip(letters, options or []) if option.strip()]
    answer = text.strip()
    for letter, option in texts:
        if re.fullmatch(rf"[(\[]?\s*{letter}\s*(?:[)\].:,-]\s*|\s+)(?i:{re.escape(option)})\s*\.?", answer):
            return letter
    chosen = parse_choices(text, options)
    if chosen is not None:
        if len(chosen) == 1 and set(chosen) <= set(letters):
            return next(iter(chosen))
        same = [letter for letter, option in texts if option.lower() == answer.rstrip(".").strip().lower()]
        return same[0] if len(same) == 1 else None

    masked = answer
    for _, option in sorted(texts, key=lambda item: -len(item[1])):
        if not re.fullmatch(r"[A-Za-z]", option):
            masked = _option_pattern(option).sub(lambda m: " " * len(m.group(0)), masked)
    stated = [(m.start(), m.group(1) or m.group(2)) for m in _STATED_LETTER.finditer(masked)]
    stated = [letter for _, letter in sorted(stated) if letter in letters]
    if stated:
        return stated[-1]
    written = [
        m.group(1)
        for m in _LETTER.finditer(masked)
        if m.group(1) in letters
        and not (m.group(1) in "AI" and _WORD_AFTER_ARTICLE.match(masked, m.end()))
        and not _REJECTED_BEFORE.search(masked[max(0, m.start() - 40) : m.start()])
        and not _REJECTED_AFTER.match(masked, m.end())
    ]
    if written:
        return written[-1]
    if not texts or (
        len(answer) > 2 * sum(len(option) for _, option in texts) and len(answer.split()) > _SHORT_ANSWER
    ):
        return None
    spans = [
        (m.span(), letter)
        for letter, option in texts
        for m in _option_pattern(option).finditer(answer)
        if not (option in ("A", "I") and _WORD_AFTER_ARTICLE.match(answer, m.end()))  # "I think", not option "I"
    ]
    contained = {
        letter
        for (start, end), letter in spans
        if not any(s <= start and end <= e and e - s > end - start for (s, e), _ in spans)
    }
    return contained.pop() if len(contained) == 1 else None


def _option_pattern(option: str) -> re.Pattern:
    """An option's text as written in an answer: any case, not inside a longer word or number ("3" is not in "13")."""
    before = r"(?<![A-Za-z0-9])(?<!\d[.,])" if option[0].isascii() and option[0].isalnum() else ""
    after = r"(?![A-Za-z0-9])(?![.,]\d)" if option[-1].isascii() and option[-1].isalnum() else ""
    return re.compile(before + re.escape(option) + after, re.IGNORECASE)


def parse_number(text: str) -> float | None:
    """Reads a number from an answer: the whole answer when it is one, else the last number written in it.

    A number is read as the value it writes, never as one of its digits: `\\frac{a}{b}` and `a/b` are fractions,
    `2.5 × 10^4` (or `2.5 \\times 10^{4}`, `2.5e4`) is 25000, and a Unicode minus (`−0.5`) is a minus sign. `$`,
    `\\(`, `\\boxed{}`, thousands separators, units and a trailing `%` sign are tolerated. Returns `None` when there
    is no number (or a fraction divides by zero).

    Example:
    ```python
    >>> parse_number("1,234.5 cm")
    1234.5
    >>> parse_number("$\\frac{1}{4}$"), parse_number("x = 7/4"), parse_number("\u22122.5 \u00d7 10^4")
    (0.25, 1.75, -25000.0)
    ```
    """
    cleaned = text.translate(_MINUS_SIGNS).replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    cleaned = re.sub(r"\\boxed\{(.*)\}", r"\1", cleaned).strip()
    cleaned = join_spaced_thousands(cleaned)  # "10 000" is 10000, not 10 and 0
    cleaned = _UNIT_EXPONENT.sub(" ", cleaned)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        value = float(cleaned)
        return value if math.isfinite(value) else None
    except ValueError:
        pass
    matches = [m for m in _NUMBER_EXPRESSION.finditer(cleaned) if re.search(r"\d", m.group(0))]
    if not matches:
        return None
    value = _expression_value(matches[-1])
    return value if value is not None and math.isfinite(value) else None


def _expression_value(match: re.Match) -> float | None:
    """The value of one `_NUMBER_EXPRESSION` match."""
    try:
        if match.group("sci"):
            mantissa = match.group("mantissa").replace(",", "")
            return float(mantissa if mantissa not in ("", "-") else mantissa + "1") * 10.0 ** int(
                match.group("exponent")
            )
        if match.group("power"):
            return 10.0 ** int(match.group("power_exponent"))
        if match.group("latex"):
            sign = -1.0 if match.group("latex_sign") else 1.0
            return sign * float(match.group("latex_num")) / float(match.group("latex_den"))
        if match.group("fraction"):
            return float(match.group("num")) / float(match.group("den"))
        return float(match.group(0).replace(",", ""))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
