"""The judge's answer: the score's target text and its parser, and the expected-score readout of the score tokens."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


def format_score(score: float) -> str:
    """The judge's target text for a score, rounded to the prompt's 0.1 grid: `0.73 -> "<answer>0.7</answer>"`."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"A thinking score must be in [0, 1], got {score}.")
    return f"<answer>{round(score * 10) / 10:.1f}</answer>"


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# The last <answer> block; an unclosed one at the very end counts too (generation cut by max_new_tokens).
_ANSWER_RE = re.compile(r"<answer>\s*(" + _NUMBER + r")\s*(?:</answer>|$)", re.IGNORECASE)
_ANY_ANSWER_RE = re.compile(r"<answer>", re.IGNORECASE)
_BARE_RE = re.compile(r"\s*(" + _NUMBER + r")\s*\.?\s*")


def parse_score(text: str | None) -> float | None:
    """Reads the judge's score from its output.

    Accepted forms are `<answer>x</answer>` (the last such block wins; an unclosed `<answer>x` at the end of the text
    is accepted, as generation may stop before the closing tag) and a bare number making up the whole text. The value
    is clamped to [0, 1].

    Args:
        text (`str` or `None`):
            The judge's output.

    Returns:
        `float` or `None`: The score, or `None` when the text holds no score (empty text, words only, an `<answer>`
        block that is not a number).

    Example:

    ```python
    >>> parse_score("<answer>0.8</answer>")
    0.8
    >>> parse_score("1.3")
    1.0
    >>> parse_score("<answer>good</answer>") is None
    True
    ```
    """
    if not text:
        return None
    matches = _ANSWER_RE.findall(text)
    if matches:
        value = float(matches[-1])
    elif _ANY_ANSWER_RE.search(text):
        return None  # an <answer> block without a number is a malformed reply, not a bare number
    else:
        bare = _BARE_RE.fullmatch(text)
        if bare is None:
            return None
        value = float(bare.group(1))
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))


# The released SophiaVL-R1 reading of a judge reply (`extract_score` in verl/workers/reward/custom.py): extractors tried
# in this order, the first that finds a number wins, clamped to [0, 1]; 0 when none does.
_RELEASE_EXTRACTORS = (
    (re.compile(r"\\box(?:es)?\{([01](?:\.\d)?)\}"), float),  # \box{0.7} or \boxes{0.7} (not \boxed)
    (re.compile(r"<answer>\s*([01](?:\.\d)?)\s*</answer>"), float),
    (re.compile(r"\b([01](?:\.\d)?)\b"), float),  # the first standalone 0, 1, 0.d or 1.d anywhere
    (re.compile(r"</think>\s*<answer>\s*([\d.]+)\s*</answer>"), None),  # int or float, as written
    (re.compile(r"</think>\s*([\d.]+)"), None),
    (re.compile(r"Total Wrong Steps\*\*:\s*(\d+)"), int),
    (re.compile(r"\*\*(\d+)\s+wrong steps\*\*"), int),
    (re.compile(r"\*\*.*?\bWrong Steps\*\*:\s*(\d+)"), int),
)


def parse_score_sophiavl_r1(text: str | None) -> float:
    r"""Reads a judge reply as the released SophiaVL-R1 code does: its extractor chain, clamped to [0, 1], 0 when it
    finds nothing.

    The chain tries `\box{x}`/`\boxes{x}`, `<answer>x</answer>`, the first standalone `0`, `1`, `0.d` or `1.d` in
    the text, a number after `</think>` (in `<answer>` tags or bare), then counts of wrong steps (`**Total Wrong
    Steps**: n`, `**n wrong steps**`, `**... Wrong Steps**: n`). Only one decimal digit is read, so
    `<answer>0.75</answer>` reads as 0 (the leading `0` alone). A number after `</think>` that is not one (`"2.5."`)
    makes the released code fail on every retry and score 0; so it scores 0 here.

    Unlike [`parse_score`], a reply without a score is 0, not `None`: the release cannot tell it from bad reasoning,
    and neither can the failure budget when this parser is chosen.

    Example:

    ```python
    >>> parse_score_sophiavl_r1("<answer>0.8</answer>")
    0.8
    >>> parse_score_sophiavl_r1("<answer>0.75</answer>")
    0.0
    >>> parse_score_sophiavl_r1("no score here")
    0.0
    ```
    """
    for pattern, convert in _RELEASE_EXTRACTORS:
        match = pattern.search(text or "")
        if match is None:
            continue
        number = match.group(1)
        try:
            value = convert(number) if convert else (int(number) if number.isdigit() else float(number))
        except ValueError:
            return 0.0
        return float(min(1, max(0, value)))
    return 0.0


# How a judge's written reply is read, by the name a template's `score_parser` gives.
SCORE_PARSERS = {"sophia_trl": parse_score, "sophiavl-r1": parse_score_sophiavl_r1}


def parse_score_with(parser: str, text: str | None) -> float | None:
    """The score in `text` read by the parser named `parser` ([`SCORE_PARSERS`])."""
    return SCORE_PARSERS[parser](text)


# The expected-score readout: instead of the greedy text, the judge's probabilities over the scores of the 0.1 grid it
# was trained to write (as G-Eval weights its scores by their token probabilities). After `<answer>`, a score starts
# with "1" (1.0: `parse_score` clamps anything above) or "0", and "0" continues as "0." and one digit d (0.d). So one
# forward pass over the prompt + "<answer>0." reads both distributions: the first score token at the position of ">"
# and the digit at the position of ".".
SCORE_PREFIX = "<answer>"
# How a generative judge's score is read: the probability-weighted mean of the score tokens, or the written text.
JUDGE_READOUTS = ("expected", "greedy")
SCORE_TOKENS = ("0", "1", ".", *[str(d) for d in range(2, 10)])


def score_token_ids(tokenizer: Any) -> dict[str, int]:
    """The token id of each character the judge writes a score with (`"0"`-`"9"` and `"."`).

    Raises:
        `ValueError`: The tokenizer does not write `<answer>0.7` as `<answer>` followed by one token per character,
            which the expected-score readout needs; use the greedy readout with such a judge.
    """
    ids = {}
    for text in SCORE_TOKENS:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(
                f"The judge's tokenizer writes {text!r} as {len(tokens)} tokens; the expected-score readout needs one "
                "token per digit. Use readout='greedy' with this judge."
            )
        ids[text] = tokens[0]
    probe = tokenizer.encode(SCORE_PREFIX + "0.7", add_special_tokens=False)
    if probe[-3:] != [ids["0"], ids["."], ids["7"]]:
        raise ValueError(
            "The judge's tokenizer merges the score with `<answer>` (it does not write '<answer>0.7' as '<answer>', "
            "'0', '.', '7'), so the expected-score readout cannot read it. Use readout='greedy' with this judge."
        )
    return ids


def expected_score(first: Mapping[str, float], digit: Mapping[str, float] | None) -> float | None:
    """The probability-weighted mean of the scores 0.0, 0.1, ..., 1.0 the judge can write after `<answer>`.

    P(1.0) = P("1") and P(0.d) = P("0") * P(d | "0."), renormalised over these 11 scores (probability on any other
    token, e.g. a word, is left out).

    Args:
        first (`Mapping[str, float]`):
            Log-probabilities of the token after `<answer>`, by token text; `"0"` and `"1"` are read, missing ones
            count as probability 0.
        digit (`Mapping[str, float]` or `None`):
            Log-probabilities of the token after `<answer>0.`, by token text; `"0"`-`"9"` are read. `None` when unknown,
            allowed only when "0" has probability 0.

    Returns:
        `float` or `None`: The expected score in [0, 1], or `None` when the judge puts no probability on any score.

    Example:

    ```python
    >>> import math
    >>> round(expected_score({"0": math.log(0.5), "1": math.log(0.5)}, {"6": math.log(0.5), "8": math.log(0.5)}), 6)
    0.85
    ```
    """
    p_one = math.exp(first.get("1", -math.inf))
    p_zero = math.exp(first.get("0", -math.inf))
    if p_zero + p_one == 0.0 or not math.isfinite(p_zero + p_one):
        return None
    tenths = 0.0
    if p_zero > 0.0:
        probs = {d: math.exp(digit.get(str(d), -math.inf)) for d in range(10)} if digit is not None else {}
        total = sum(probs.values())
        if total == 0.0 or not math.isfinite(total):
            return None
        tenths = sum(d * p for d, p in probs.items()) / total  # E[d | "0."]
    return (p_one * 1.0 + p_zero * tenths / 10) / (p_zero + p_one)
