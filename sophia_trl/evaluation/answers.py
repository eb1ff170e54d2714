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


# "the answer is D", "correct option: (D)", "I choose D": a letter stated as the answer.
_STATED_LETTER = re.compile(
    r"(?:(?i:\b(?:answer|option|choice)s?\b(?:\s+(?:is|would\s+be|should\s+be|must\s+be))?\s*[:：]?)"
    r"|(?i:\b(?:choose|pick|select)\b(?:\s+option)?))\s*[(\[]?\s*([A-Z])(?![A-Za-z])"
)
# A capital letter alone; "A" followed by a lower-case word ("A square") is the article, unless the word says the
# letter is the answer ("A is right").
_STANDALONE_LETTER = (
    r"(?<![A-Za-z])([A-Z])(?![A-Za-z])"
    r"(?<!A(?=\s+(?!(?:is|was|seems|looks|fits|matches|appears|must|should|would|because)\b)[a-z]))"
)


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
    """A short free-text answer: the tag content as is, otherwise the last non-empty line of the fallback text."""
    return answer.text if answer.source == "answer_tag" else last_line(answer.text)


def option_letters(num_options: int) -> list[str]:
    """`["A", "B", ...]` for `num_options` options."""
    return [chr(ord("A") + i) for i in range(num_options)]


def parse_choice(text: str, num_options: int, options: list[str] | None = None) -> str | None:
    """Reads a single option letter from an answer, tolerant of the ways models write a choice.

    The answer is first read as the training reward reads it (`parse_choices`: `"B"`, `"(b)"`, `"B."`, `"B. 40"`,
    `"B) 40"`, `"\\boxed{B}"`, `"The answer is (B)"`, or exactly one option's text, numbers compared by value). When
    that finds nothing, free text is read by these rules, first match wins:

    1. the last letter stated as the answer: `"the correct option is D, A square"`, `"I choose D"`, `"Answer: (D)"`;
    2. a letter followed by its own option text (`"so D, a square"`), when exactly one option is written that way;
    3. the last bracketed letter (`"... so (B) it is"`);
    4. the last standalone capital letter in range (`"so it must be B"`), where a capital "A" that starts a phrase
       (`"A square"`) is the English article, not a letter.

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
    chosen = parse_choices(text, options)
    if chosen is not None:
        return next(iter(chosen)) if len(chosen) == 1 and set(chosen) <= set(letters) else None
    stated = [letter for letter in _STATED_LETTER.findall(text) if letter in letters]
    if stated:
        return stated[-1]
    with_text = [
        letter
        for letter, option in zip(letters, options or [])
        if option.strip()
        and re.search(rf"(?<![A-Za-z]){letter}\s*[.):,\]-]?\s*(?i:{re.escape(option.strip())})", text)
    ]
    if len(with_text) == 1:
        return with_text[0]
    for pattern in (r"\(([A-Z])\)", _STANDALONE_LETTER):
        found = [letter for letter in re.findall(pattern, text) if letter in letters]
        if found:
            return found[-1]
    return None


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
