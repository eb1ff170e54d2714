"""Rows -> TRL's conversational prompt format, and dataset loading for the recipes.

Every dataset this project trains on (the synthetic task, the converted SophiaVL-R1-130k release, user data) goes
through [`build_prompt`], so the policy always sees the same R1-style instruction for a given problem type: reason
inside `<think> </think>`, then answer inside `<answer> </answer>` in the form the outcome reward of that type checks.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "text")

# The structure follows the released SophiaVL-R1 training prompt (question, then a request for deliberate reasoning
# with self-checks in <think>, then the answer in <answer>, then a per-type format rule), so prompts built here match
# what the released checkpoints were trained on in content, not in exact wording.
REASONING_INSTRUCTION = (
    "Think the question through carefully, step by step, as a person would when working it out: talk yourself "
    "through it, double-check your steps and correct yourself when something does not add up. Write this reasoning "
    "between the <think> </think> tags, then give your final answer between the <answer> </answer> tags."
)

TYPE_INSTRUCTIONS = {
    "multiple choice": (
        "Inside the <answer> </answer> tags write only the letter of the correct option (for example A, B, C or D); "
        "if several options are correct, separate their letters with commas (for example A,C)."
    ),
    "numerical": "Inside the <answer> </answer> tags write only the number (for example 42 or 3.14).",
    "OCR": "Read the text in the image exactly as written and put that text inside the <answer> </answer> tags.",
    "free-form": "Write your answer as text inside the <answer> </answer> tags.",
    "text": "Write a short answer, a word or a few words, inside the <answer> </answer> tags.",
}


def format_question(problem: str, options: list[str] | None = None) -> str:
    """
    The question as the policy and the judge see it: the problem, then the options of a multiple-choice question one
    per line (each option already carries its letter, e.g. `"A. 3"`, as in the released data).

    Args:
        problem (`str`):
            Question text, without any answer-format instruction.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            Answer options; omitted when `None` or empty.

    Returns:
        `str`: The question text.
    """
    problem = problem.strip()
    if options:
        return problem + "\nOptions:\n" + "\n".join(str(option).strip() for option in options)
    return problem


def build_prompt(
    problem: str,
    problem_type: str,
    options: list[str] | None = None,
    system_prompt: str | None = None,
) -> list[dict[str, str]]:
    """
    Build the conversational prompt of one row in TRL's format, with plain-string content: TRL inserts the image
    block itself when the row has an `image` column.

    Args:
        problem (`str`):
            Question text, without any answer-format instruction.
        problem_type (`str`):
            One of `"multiple choice"`, `"numerical"`, `"OCR"`, `"free-form"`, `"text"`; selects the answer-format
            instruction.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            Options of a multiple-choice question, each with its letter (`"A. 3"`).
        system_prompt (`str` or `None`, *optional*, defaults to `None`):
            System message to put first; none when `None`.

    Returns:
        `list[dict[str, str]]`: `[{"role": "system", ...}?, {"role": "user", "content": ...}]`.

    Example:

    ```python
    >>> build_prompt("How many red shapes are there?", "numerical")[0]["role"]
    'user'
    ```
    """
    if problem_type not in TYPE_INSTRUCTIONS:
        raise ValueError(
            f"Unknown problem_type {problem_type!r}: expected one of {list(TYPE_INSTRUCTIONS)}. Map the row's type to "
            "one of these (the outcome reward is chosen by it)."
        )
    content = format_question(problem, options) + "\n" + REASONING_INSTRUCTION + " " + TYPE_INSTRUCTIONS[problem_type]
    messages = [{"role": "user", "content": content}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages
