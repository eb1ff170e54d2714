"""
Rule-based outcome rewards for the problem types of the SophiaVL-R1 data (arXiv 2505.17018).

[`outcome_reward`] is a TRL reward function: it reads the answer of each completion, checks the response format and
scores the answer against the row's `solution` with the scorer of the row's `problem_type`, as written in the registry
`sophia_trl.rewards.problem_types`:

| `problem_type`      | scorer                     | rule                                                          |
|---------------------|----------------------------|---------------------------------------------------------------|
| `"numerical"`       | [`numerical_reward`]       | 1 if equal mathematically (math-verify), else 0               |
| `"multiple choice"` | [`multiple_choice_reward`] | 1 if the set of chosen option letters is the solution's       |
| `"OCR"`             | [`ocr_reward`]             | exp(-WER) (jiwer), or -WER                                    |
| `"free-form"`       | [`free_form_reward`]       | mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures (rouge-score) |
| `"text"`            | [`short_text_reward`]      | 1 on a normalised exact match, else 0.5 x token ROUGE-L F     |

The scorers are in `sophia_trl.rewards.scorers`. Every score is the score of an empty answer (0, or -1 for OCR's
-WER) unless the response is `<think>...</think>` followed by `<answer>...</answer>` ([`format_reward`] is that gate as
a reward function of its own). Trust-GRPO counts a response as correct when its outcome reward is at least 0.5.
"""

import re
from collections.abc import Callable
from typing import Any

from .problem_types import PROBLEM_TYPES, get_problem_type
from .scorers import OCR_MODES, _strip_dollars

__all__ = ["PROBLEM_TYPES", "format_reward", "outcome_reward", "score_answer", "well_formed_answer"]

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


def well_formed_answer(response: str) -> str | None:
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
    >>> well_formed_answer("<think>2 + 2 = 4</think>\\n<answer> 4 </answer>")
    '4'
    >>> well_formed_answer("The answer is 4.") is None
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
    adds such a format reward to the accuracy reward). See [`well_formed_answer`] for the exact rule.

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
    return [0.0 if well_formed_answer(_completion_text(c)) is None else 1.0 for c in completions]


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


# ---------------------------------------------------------------------------------------------------------------------
# The reward function
# ---------------------------------------------------------------------------------------------------------------------


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
            A name or alias of a registered problem type (see `sophia_trl.rewards.problem_types`).
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            The options of a multiple-choice question.
        ocr_mode (`str`, *optional*, defaults to `"exp"`):
            `"exp"` or `"neg"`, see [`ocr_reward`].
        numerical_timeout (`float`, *optional*, defaults to `1.0`):
            Seconds allowed to verify one numerical answer, see [`numerical_reward`].

    Returns:
        `float`: The score.

    Raises:
        `ValueError`: For an unknown problem type, or a solution that is missing or that the scorer cannot read.
    """
    scorer = get_problem_type(problem_type).scorer
    solution = _solution_text(solution)
    return scorer(
        _strip_dollars(answer), solution, options=options, ocr_mode=ocr_mode, numerical_timeout=numerical_timeout
    )


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

    A completion that is not `<think>...</think>` followed by `<answer>...</answer>` (see [`well_formed_answer`]) is
    scored as an empty answer: 0 for every built-in type, and -1 (an empty transcription) for an OCR row with
    `ocr_mode="neg"`, since 0 is the best -WER. Otherwise the content of the answer tags is scored by the scorer of
    the row's problem type in `sophia_trl.rewards.problem_types`: [`numerical_reward`], [`multiple_choice_reward`],
    [`ocr_reward`], [`free_form_reward`] or [`short_text_reward`] for `"numerical"`, `"multiple choice"`, `"OCR"`,
    `"free-form"` and `"text"`. A malformed completion (no tags, empty, very long) never raises; a bad row raises.

    Args:
        completions (`list[list[dict[str, str]]]` or `list[str]`):
            Completions, conversational (`[{"role": "assistant", "content": ...}]`) or plain.
        solution (`list[str]`):
            The dataset's `solution` column: the answer, plain or wrapped as `<answer>X</answer>`.
        problem_type (`list[str]`):
            The dataset's `problem_type` column, each a name or alias of a registered problem type.
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
            kind = get_problem_type(kind).name
            gold = _solution_text(gold)
            answer = well_formed_answer(_completion_text(completion))
            # A gated completion is scored as an empty answer: each scorer gives that its lowest score, and a bad
            # solution raises on every row, gated or not.
            reward = score_answer(answer or "", gold, kind, row_options, ocr_mode, numerical_timeout)
        except ValueError as error:
            raise ValueError(f"outcome_reward, row {index} (problem_type={kind!r}): {error}") from error
        rewards.append(reward)
        answers.append(answer if answer is not None else "")

    if log_extra is not None:
        log_extra("extracted_answer", answers)
    return rewards
