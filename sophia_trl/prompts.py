"""The policy prompt: the question, the R1-style reasoning instruction and the answer-format rule of its problem type.

Every dataset this project trains on (the synthetic task, the converted SophiaVL-R1-130k release, user data) and every
benchmark goes through [`build_prompt`], so the policy always sees the same instruction for a given problem type:
reason inside `<think> </think>`, then answer inside `<answer> </answer>` in the form the outcome reward of that type
checks. The per-type sentences are the `instruction` of each entry of `sophia_trl.rewards.problem_types`.
[`last_message_text`] and [`strip_instruction`] read such prompts back (judge data, the trainer's judge inputs).

`build_prompt(..., policy_prompt="sophiavl-r1")` builds the released SophiaVL-R1 run's prompt instead, from the
templates of the release's `verl/utils/dataset.py` ([`release_policy_prompt`]).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

from .release import POLICY_FILE, SOURCE_ENV, ReleasePolicyPrompt, fetch_release_file, read_policy_prompt
from .rewards.problem_types import PROBLEM_TYPE_REGISTRY

# TRL inserts image blocks itself: a literal placeholder in the question text is a stray token.
IMAGE_PLACEHOLDER = re.compile(r"<image>\s*")

# The structure follows the released SophiaVL-R1 training prompt (question, then a request for deliberate reasoning
# with self-checks in <think>, then the answer in <answer>, then a per-type format rule), so prompts built here match
# what the released checkpoints were trained on in content, not in exact wording.
REASONING_INSTRUCTION = (
    "Think the question through carefully, step by step, as a person would when working it out: talk yourself "
    "through it, double-check your steps and correct yourself when something does not add up. Write this reasoning "
    "between the <think> </think> tags, then give your final answer between the <answer> </answer> tags."
)


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


# The policy prompts `build_prompt` writes: this project's, or the released SophiaVL-R1 run's (read from the release).
POLICY_PROMPTS = ("sophia_trl", "sophiavl-r1")


@functools.lru_cache(maxsize=4)
def _release_policy_prompt(source: str | None) -> ReleasePolicyPrompt:
    return read_policy_prompt(fetch_release_file(POLICY_FILE, source))


def release_policy_prompt(source: str | None = None) -> ReleasePolicyPrompt:
    """
    The released SophiaVL-R1 policy prompt, read once per source from `verl/utils/dataset.py` of the release
    ([`~sophia_trl.release.fetch_release_file`]: `source`, else `$SOPHIA_TRL_RELEASE_SOURCE`, the cache or a download).

    Args:
        source (`str` or `None`, *optional*, defaults to `None`):
            A checkout of the release or the file.

    Returns:
        [`~sophia_trl.release.ReleasePolicyPrompt`]: Its question template, per-type templates and options separator.
    """
    return _release_policy_prompt(source or os.environ.get(SOURCE_ENV) or None)


def build_release_prompt_text(problem: str, problem_type: str, options: list[str] | None = None) -> str:
    """
    The user message of the released SophiaVL-R1 run (`RLHFDataset.__getitem__` of its `verl/utils/dataset.py`): the
    options of a multiple-choice question joined onto the question as the release joins them (nothing added between),
    the question put into its `QUESTION_TEMPLATE`, then the `TYPE_TEMPLATE` text of the problem type.

    The release also writes an `<image>` tag before the question, which its chat template turns into the image tokens;
    here the tag is left out (and any in the question removed), as TRL puts the image block before the text, where the
    tag stood.
    """
    release = release_policy_prompt()
    if problem_type not in release.type_templates:
        raise ValueError(
            f"The released policy prompt has no template for problem_type {problem_type!r}; it has "
            f"{list(release.type_templates)}."
        )
    question = problem
    if problem_type == "multiple choice":
        question += release.options_separator.join(map(str, options or []))
    question = question.replace("<image>", "")
    return release.question_template.format(Question=question) + release.type_templates[problem_type]


def build_prompt(
    problem: str,
    problem_type: str,
    options: list[str] | None = None,
    system_prompt: str | None = None,
    policy_prompt: str = "sophia_trl",
) -> list[dict[str, str]]:
    """
    Build the conversational prompt of one row in TRL's format, with plain-string content: TRL inserts the image
    block itself when the row has an `image` column.

    Args:
        problem (`str`):
            Question text, without any answer-format instruction.
        problem_type (`str`):
            A name in `PROBLEM_TYPE_REGISTRY` (`"multiple choice"`, `"numerical"`, `"OCR"`, `"free-form"`, `"text"`);
            selects the answer-format instruction.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            Options of a multiple-choice question, each with its letter (`"A. 3"`).
        system_prompt (`str` or `None`, *optional*, defaults to `None`):
            System message to put first; none when `None`.
        policy_prompt (`str`, *optional*, defaults to `"sophia_trl"`):
            `"sophia_trl"` for this project's prompt, `"sophiavl-r1"` for the released run's
            ([`build_release_prompt_text`]; its launcher's system prompt is not part of it: pass it as
            `system_prompt`).

    Returns:
        `list[dict[str, str]]`: `[{"role": "system", ...}?, {"role": "user", "content": ...}]`.

    Example:

    ```python
    >>> build_prompt("How many red shapes are there?", "numerical")[0]["role"]
    'user'
    ```
    """
    # The exact name, not an alias: a converter normalises the row's type first, so the dataset's `problem_type`
    # column (which selects the outcome reward) and the prompt agree.
    if problem_type not in PROBLEM_TYPE_REGISTRY:
        raise ValueError(
            f"Unknown problem_type {problem_type!r}: expected one of {list(PROBLEM_TYPE_REGISTRY)}. Map the row's "
            "type to one of these (the outcome reward is chosen by it)."
        )
    if policy_prompt not in POLICY_PROMPTS:
        raise ValueError(f"Unknown policy_prompt {policy_prompt!r}: expected one of {list(POLICY_PROMPTS)}.")
    if policy_prompt == "sophiavl-r1":
        content = build_release_prompt_text(problem, problem_type, options)
    else:
        instruction = PROBLEM_TYPE_REGISTRY[problem_type].instruction
        content = format_question(problem, options) + "\n" + REASONING_INSTRUCTION + " " + instruction
    messages = [{"role": "user", "content": content}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def last_message_text(value: Any, role: str = "user") -> str | None:
    """
    The text of a field that may be a plain string or a conversation: a string is returned as is; for a list of
    messages (TRL's conversational format, with string content or content blocks), the text of the last message with
    `role`, its text blocks joined.

    Args:
        value (`Any`):
            A string, a list of `{"role", "content"}` messages, or anything else (gives `None`).
        role (`str`, *optional*, defaults to `"user"`):
            Role of the message to read.

    Returns:
        `str` or `None`: The text, or `None` when there is none.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return None
    for message in reversed(value):
        if not isinstance(message, dict) or message.get("role") != role:
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
            return "".join(texts)
    return None


def strip_instruction(content: str) -> str:
    """
    The question part of a user message written by [`build_prompt`]: the text before the reasoning instruction
    (options included); other text is returned unchanged.

    Args:
        content (`str`):
            A user message.

    Returns:
        `str`: The question.
    """
    head, found, _ = content.partition("\n" + REASONING_INSTRUCTION)
    return head.strip() if found else content.strip()
