"""Judge data, the rows a thinking reward model trains on: their features, reading them, their score histogram."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from typing import Any

from datasets import Features, Value
from datasets import Image as ImageFeature
from PIL import Image as PILImage

from ..prompts import IMAGE_PLACEHOLDER, last_message_text, strip_instruction
from ..rewards.problem_types import normalize_problem_type
from .images import resolve_image

# The rows the thinking-reward (stage-1) trainers read.
JUDGE_DATA_FEATURES = Features(
    {
        "question": Value("string"),
        "image": ImageFeature(mode="RGB"),
        "response": Value("string"),
        "score": Value("float64"),
        "problem_type": Value("string"),
    }
)

# Judge data (question, response, score, image) comes with varied column names; each field is read from the first of
# these columns a row has, unless the caller names the column.
JUDGE_COLUMN_CANDIDATES = {
    "question": ("question", "problem", "prompt", "query", "instruction"),
    "response": ("response", "process", "output", "completion", "answer"),
    "score": ("score", "reward", "label", "rating"),
    "image": ("image", "images", "path", "image_path"),
    "problem_type": ("problem_type",),
}
_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def _looks_like_image(value: Any) -> bool:
    if isinstance(value, PILImage.Image):
        return True
    if isinstance(value, dict):
        return bool(value.get("bytes") or value.get("path"))
    if isinstance(value, str):
        return len(value) < 4096 and value.strip().lower().endswith(_IMAGE_SUFFIXES)
    if isinstance(value, list):
        return bool(value) and all(_looks_like_image(item) for item in value)
    return False


def image_like_columns(row: dict[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """
    The columns of `row`, other than `skip`, whose value looks like an image: a PIL image, a `datasets` image dict, a
    path ending in an image suffix, or a list of those. A row read without an image that has such a column most likely
    needs it named in the column mapping (`image=<column>`).

    Example:
        >>> image_like_columns({"query": "How many?", "img": "scenes/1.png"})
        ['img']
    """
    skipped = set(skip)
    return [name for name, value in row.items() if name not in skipped and _looks_like_image(value)]


def parse_column_mapping(spec: str | None) -> dict[str, str]:
    """
    Parse a column mapping such as `"question=query,score=grade"` (output field = input column).

    Args:
        spec (`str` or `None`):
            Comma-separated `field=column` pairs; fields are the keys of `JUDGE_COLUMN_CANDIDATES`.

    Returns:
        `dict[str, str]`: Field -> input column.
    """
    if not spec:
        return {}
    mapping = {}
    for item in spec.split(","):
        target, sep, source = (part.strip() for part in item.partition("="))
        if not sep or not target or not source:
            raise ValueError(f"columns: {item!r} is not of the form field=column (e.g. question=query).")
        if target not in JUDGE_COLUMN_CANDIDATES:
            raise ValueError(f"columns: unknown field {target!r}; expected one of {list(JUDGE_COLUMN_CANDIDATES)}.")
        mapping[target] = source
    return mapping


def to_score(value: Any, scale: float = 1.0) -> float:
    """
    A judge label as a float in [0, 1].

    Args:
        value (`Any`):
            A number, a numeric string, or a judge output holding `<answer>x</answer>`.
        scale (`float`, *optional*, defaults to `1.0`):
            The labels' maximum (10 for 0-10 labels): the value is divided by it.

    Returns:
        `float`: The score.

    Raises:
        `ValueError`: Not a number, NaN, or outside [0, 1] after scaling.
    """
    if isinstance(value, str):
        match = _ANSWER_TAG.search(value)
        text = (match.group(1) if match else value).strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"score {text!r} is not a number.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"score must be a number, got {type(value).__name__}.")
    score = float(value) / scale
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise ValueError(
            f"score {value!r} / {scale:g} = {score:g} is outside [0, 1]; set the score scale to the labels' maximum."
        )
    return score


def read_judge_row(
    row: dict[str, Any],
    columns: dict[str, str] | None = None,
    image_root: str | os.PathLike = ".",
    score_scale: float = 1.0,
    need_score: bool = True,
    max_image_pixels: int | None = None,
) -> dict[str, Any]:
    """
    Read the judge-data fields of one row, whatever its column names (see `JUDGE_COLUMN_CANDIDATES`).

    `question` and `response` may be strings or conversations (TRL's completion logs): the last user message gives the
    question (with the instruction added by `sophia_trl.prompts.build_prompt` removed) and the last assistant message
    the response.

    Args:
        row (`dict`):
            The input row.
        columns (`dict[str, str]` or `None`, *optional*, defaults to `None`):
            Field -> input column, overriding the candidates.
        image_root (`str` or `os.PathLike`, *optional*, defaults to `"."`):
            Folder that relative image paths start from.
        score_scale (`float`, *optional*, defaults to `1.0`):
            See [`to_score`].
        need_score (`bool`, *optional*, defaults to `True`):
            Whether a missing score is an error (`False` when the rows are still to be labelled).
        max_image_pixels (`int` or `None`, *optional*, defaults to `None`):
            Largest image accepted, see [`resolve_image`].

    Returns:
        `dict`: `question`, `image` (for the `Image()` feature, or `None`), `response`, `score` (or `None`),
        `problem_type` (or `None`) and `user_text` (the full user message, to match the row to its prompt).

    Raises:
        `ValueError`: A required field is missing or malformed; the message says which and how to name the column.
    """
    columns = columns or {}

    def pick(field: str) -> tuple[str | None, Any]:
        if field in columns:
            return columns[field], row.get(columns[field])
        for name in JUDGE_COLUMN_CANDIDATES[field]:
            if row.get(name) is not None:
                return name, row[name]
        return None, None

    fields = {}
    for field in ("question", "response") + (("score",) if need_score else ()):
        name, value = pick(field)
        if value is None:
            tried = [columns[field]] if field in columns else list(JUDGE_COLUMN_CANDIDATES[field])
            raise ValueError(
                f"no {field!r}: none of the columns {tried} is set (row keys: {sorted(row)}). Name the input column "
                f"with the column mapping ({field}=<column>)."
            )
        fields[field] = (name, value)

    user_text = last_message_text(fields["question"][1], role="user")
    response = last_message_text(fields["response"][1], role="assistant")
    if not user_text or not user_text.strip():
        raise ValueError(f"the question (column {fields['question'][0]!r}) is empty or not text.")
    if not response or not response.strip():
        raise ValueError(f"the response (column {fields['response'][0]!r}) is empty or not text.")
    score = to_score(fields["score"][1], score_scale) if need_score else None
    problem_type = pick("problem_type")[1]
    return {
        "question": strip_instruction(IMAGE_PLACEHOLDER.sub("", user_text)),
        "image": resolve_image(pick("image")[1], image_root, max_image_pixels),
        "response": response.strip(),
        "score": score,
        "problem_type": normalize_problem_type(problem_type) or (str(problem_type) if problem_type else None),
        "user_text": user_text,
    }


def score_bin(score: float) -> int:
    """
    The bin of a score among [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (1.0 is in the last bin).

    Args:
        score (`float`):
            A score in [0, 1].

    Returns:
        `int`: The bin index, 0 to 9.
    """
    # The epsilon keeps scores written in tenths in their own bin (0.3 * 10 is 2.9999999999999996 in floating point).
    return min(math.floor(score * 10 + 1e-9), 9)


def score_histogram(scores: Iterable[float]) -> list[int]:
    """
    Counts of scores in the ten bins of [`score_bin`].

    Args:
        scores (`Iterable[float]`):
            Scores in [0, 1].

    Returns:
        `list[int]`: Ten counts.
    """
    counts = [0] * 10
    for score in scores:
        counts[score_bin(score)] += 1
    return counts
