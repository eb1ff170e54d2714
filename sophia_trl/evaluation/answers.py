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

from sophia_trl.rewards.scorers import parse_choices

ANSWER_SOURCES = ("answer_tag", "after_think", "full_response", "empty")

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANY_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)
# A number with optional sign, thousands separators and decimals; "1,234.5" and "-.5" included.
_NUMBER = re.compile(r"(?<![\d.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?:\.\d+)?(?!\d)")
_FRAC = re.compile(r"\\d?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}")


@dataclass(frozen=True)
class ExtractedAnswer:
    """The answer part of a response and where it was found (one of `ANSWER_SOURCES`)."""

    text: str
    source: str

    @property
    def used_fallback(self) -> bool:
        return self.source != "answer_tag"


def extract_answer(response: str | None) -> ExtractedAnswer:
    """Returns the content of the last `<answer>...</answer>` tag, or the documented fallback when there is none.

    Args:
        response (`str` or `None`):
            The model's raw output.

    Returns:
        `ExtractedAnswer`: the answer text (stripped) and its source: `"answer_tag"`, `"after_think"`,
        `"full_response"` or `"empty"`.

    Example:
    ```python
    >>> extract_answer("<think>2 + 2 = 4</think> <answer> 4 </answer>")
    ExtractedAnswer(text='4', source='answer_tag')
    >>> extract_answer("<think>2 + 2 = 4</think> So it is 4.")
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

    The answer is first read as the training reward reads it (`sophia_trl.rewards.scorers.parse_choices`: `"B"`,
    `"(b)"`, `"B."`, `"B. 40"`, `"B) 40"`, `"\\boxed{B}"`, `"The answer is (B)"`, or exactly one option's text). When
    that finds nothing, the fallback for free text is the last bracketed letter (`"... so (B) it is"`), then the last
    standalone capital letter in range (`"so the answer is B"`).

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
    for pattern in (r"\(([A-Z])\)", r"(?<![A-Za-z])([A-Z])(?![A-Za-z])"):
        found = [letter for letter in re.findall(pattern, text) if letter in letters]
        if found:
            return found[-1]
    return None


def parse_number(text: str) -> float | None:
    """Reads a number from an answer: the whole answer when it is one, else the last number in it.

    `$`, `\\(`, `\\boxed{}`, thousands separators, units and a trailing `%` sign are tolerated; `\\frac{a}{b}` with
    numeric parts is evaluated. Returns `None` when there is no number.

    Example:
    ```python
    >>> parse_number("1,234.5 cm")
    1234.5
    >>> parse_number("$\\frac{1}{4}$")
    0.25
    ```
    """
    cleaned = text.replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    cleaned = re.sub(r"\\boxed\{(.*)\}", r"\1", cleaned).strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        value = float(cleaned)
        return value if math.isfinite(value) else None
    except ValueError:
        pass
    fractions = _FRAC.findall(cleaned)
    if fractions:
        numerator, denominator = fractions[-1]
        try:
            return float(numerator) / float(denominator)
        except (ValueError, ZeroDivisionError):
            return None
    numbers = [match for match in _NUMBER.findall(cleaned) if re.search(r"\d", match)]
    if not numbers:
        return None
    return float(numbers[-1].replace(",", ""))
