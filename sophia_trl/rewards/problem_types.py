"""
The problem types of the SophiaVL-R1 data (arXiv 2505.17018): one registry that everything else reads.

A row's `problem_type` selects two things: the answer-format instruction of its prompt (`sophia_trl.prompts`) and the
scorer of its outcome reward (`sophia_trl.rewards.outcome`). Both live, with the type's name and the other spellings
that converters accept for it, in one [`ProblemType`] entry of `PROBLEM_TYPE_REGISTRY`:

| name                | aliases                               | scorer                     |
|---------------------|---------------------------------------|----------------------------|
| `"multiple choice"` | `multiple_choice`, `multiple-choice`  | [`multiple_choice_reward`] |
| `"numerical"`       |                                       | [`numerical_reward`]       |
| `"OCR"`             |                                       | [`ocr_reward`]             |
| `"free-form"`       | `free form`, `free_form`              | [`free_form_reward`]       |
| `"text"`            |                                       | [`short_text_reward`]      |

Adding a problem type touches two places: write its scorer (in `sophia_trl/rewards/scorers.py`, or anywhere, as a
function of the [`Scorer`] form) and add one `ProblemType(name, aliases, instruction, scorer)` entry to
`_BUILT_IN_TYPES` below. The prompt builder, the converters (through [`normalize_problem_type`]), the outcome reward
and `PROBLEM_TYPES` pick it up from there. The scorer must give an empty answer its lowest score: a completion that
fails the format gate is scored as an empty answer. (The synthetic task, `sophia_trl.tiny.scenes`, only draws the types
it has questions for; a new type is not drawn there until it gets some.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .scorers import free_form_reward, multiple_choice_reward, numerical_reward, ocr_reward, short_text_reward


class Scorer(Protocol):
    """
    The scorer of a problem type: one extracted answer against one ground truth (already unwrapped from
    `<answer>...</answer>`, without `$`), every setting passed by keyword. A scorer reads the settings it needs and
    ignores the others (accept `**kwargs`).
    """

    def __call__(
        self,
        answer: str,
        solution: str,
        *,
        options: list[str] | None = None,
        ocr_mode: str = "exp",
        numerical_timeout: float = 1.0,
    ) -> float: ...


@dataclass(frozen=True)
class ProblemType:
    """
    One problem type: its name, the other spellings a converter maps to it, its prompt instruction and its scorer.

    Args:
        name (`str`):
            The canonical name, as written in converted datasets (`"multiple choice"`).
        aliases (`tuple[str, ...]`):
            Other spellings accepted by [`normalize_problem_type`] (matched ignoring case and surrounding whitespace).
        instruction (`str`):
            The answer-format sentence appended to the prompt (after the reasoning instruction).
        scorer ([`Scorer`]):
            Scores an extracted answer against the solution.
    """

    name: str
    aliases: tuple[str, ...]
    instruction: str
    scorer: Scorer


# Uniform-signature wrappers of the scorers, so that the outcome reward calls every type the same way.
def _score_multiple_choice(answer: str, solution: str, *, options: list[str] | None = None, **kwargs) -> float:
    return multiple_choice_reward(answer, solution, options=options)


def _score_numerical(answer: str, solution: str, *, numerical_timeout: float = 1.0, **kwargs) -> float:
    return numerical_reward(answer, solution, timeout=numerical_timeout)


def _score_ocr(answer: str, solution: str, *, ocr_mode: str = "exp", **kwargs) -> float:
    return ocr_reward(answer, solution, mode=ocr_mode)


def _score_free_form(answer: str, solution: str, **kwargs) -> float:
    return free_form_reward(answer, solution)


def _score_text(answer: str, solution: str, **kwargs) -> float:
    return short_text_reward(answer, solution)


# The structure of the instructions follows the released SophiaVL-R1 training prompt (see `sophia_trl.prompts`).
_BUILT_IN_TYPES = (
    ProblemType(
        name="multiple choice",
        aliases=("multiple_choice", "multiple-choice"),
        instruction=(
            "Inside the <answer> </answer> tags write only the letter of the correct option (for example A, B, C or "
            "D); if several options are correct, separate their letters with commas (for example A,C)."
        ),
        scorer=_score_multiple_choice,
    ),
    ProblemType(
        name="numerical",
        aliases=(),
        instruction="Inside the <answer> </answer> tags write only the number (for example 42 or 3.14).",
        scorer=_score_numerical,
    ),
    ProblemType(
        name="OCR",
        aliases=(),
        instruction=(
            "Read the text in the image exactly as written and put that text inside the <answer> </answer> tags."
        ),
        scorer=_score_ocr,
    ),
    ProblemType(
        name="free-form",
        aliases=("free form", "free_form"),
        instruction="Write your answer as text inside the <answer> </answer> tags.",
        scorer=_score_free_form,
    ),
    ProblemType(
        name="text",
        aliases=(),
        instruction="Write a short answer, a word or a few words, inside the <answer> </answer> tags.",
        scorer=_score_text,
    ),
)

# Name -> entry. Read at call time by the prompt builder, the normaliser and the outcome reward, so an entry added here
# (tests add one with `monkeypatch.setitem`) is used everywhere.
PROBLEM_TYPE_REGISTRY: dict[str, ProblemType] = {problem_type.name: problem_type for problem_type in _BUILT_IN_TYPES}
# The names of the built-in types, in registry order.
PROBLEM_TYPES: tuple[str, ...] = tuple(PROBLEM_TYPE_REGISTRY)


def _spellings(registry: Mapping[str, ProblemType]) -> dict[str, str]:
    """Lower-cased name or alias -> name."""
    spellings = {}
    for problem_type in registry.values():
        for spelling in (problem_type.name, *problem_type.aliases):
            spellings[spelling.strip().lower()] = problem_type.name
    return spellings


def normalize_problem_type(value: Any) -> str | None:
    """
    The canonical name of a problem type (`"multiple_choice"` -> `"multiple choice"`, `" OCR "` -> `"OCR"`), or `None`
    when the value is not a known type.

    A name or alias matches ignoring case and surrounding whitespace. This one normaliser serves the converters (which
    turn `None` into a bad-row error) and the outcome reward (which raises for `None`, see [`get_problem_type`]), so
    both accept the same spellings: the outcome reward scores a row spelled `"multiple_choice"` as `"multiple choice"`.

    Args:
        value (`Any`):
            The row's `problem_type`.

    Returns:
        `str` or `None`: A key of `PROBLEM_TYPE_REGISTRY`, or `None`.

    Example:

    ```python
    >>> normalize_problem_type("Multiple_Choice"), normalize_problem_type("ocr"), normalize_problem_type("essay")
    ('multiple choice', 'OCR', None)
    ```
    """
    if not isinstance(value, str):
        return None
    return _spellings(PROBLEM_TYPE_REGISTRY).get(value.strip().lower())


def get_problem_type(value: Any) -> ProblemType:
    """
    The registry entry of a problem type, read by [`normalize_problem_type`].

    Args:
        value (`Any`):
            The row's `problem_type`.

    Returns:
        [`ProblemType`]: The entry.

    Raises:
        `ValueError`: When the value is not a known type; the message lists the known names.
    """
    name = normalize_problem_type(value)
    if name is None:
        raise ValueError(f"Unknown problem_type {value!r}: expected one of {list(PROBLEM_TYPE_REGISTRY)}.")
    return PROBLEM_TYPE_REGISTRY[name]
