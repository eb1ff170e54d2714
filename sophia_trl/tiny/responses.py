"""Responses to the toy task with sound or flawed reasoning, their step scores, and the rows built from them.

[`write_response`] writes a `<think>...</think><answer>...</answer>` response to a problem of `sophia_trl.tiny.scenes`,
with sound reasoning or one flaw, and scores it by the fraction of its steps that are right (the final answer is one
step), rounded to the nearest tenth. Flaws: a miscount carried to the end, a one-off slip the reasoning recovers from,
irrelevant filler, a repeated step, a wrong final answer after sound steps, a bare guess. [`make_thinking_dataset`]
turns the task's problems into judge data this way; [`policy_sft_row`] and [`judge_row`] build one row each. Row `i`
depends only on `(seed, i)`, as in the task.
"""

from __future__ import annotations

import random

from datasets import Dataset

from ..data.judge_rows import JUDGE_DATA_FEATURES
from ..prompts import build_prompt, format_question
from .scenes import (
    COLORS,
    SHAPES,
    Shape,
    SyntheticProblem,
    draw_problem,
    pair_sentence,
    resolve_problem_types,
    tally_label,
)

FLAWS = ("miscount", "slip", "filler", "repetition", "wrong_answer", "guess")
FILLER_SENTENCES = (
    "Shapes like these are often used in children's books.",
    "The weather has nothing to do with this, but it is sunny today.",
    "I once saw a painting with many colors.",
    "Some people prefer squares to circles.",
    "Let me also mention that triangles have three sides.",
)


def _tally_steps(
    problem: SyntheticProblem, error_at: int | None, delta: int, propagate: bool
) -> tuple[list[tuple[str, bool]], object]:
    """
    Steps `(text, is_correct)` that go through the shapes in reading order, keeping one running count per target.

    With `error_at`, the count stated at that shape step is off by `delta`; with `propagate`, the reasoning carries
    the wrong count to the end (so the conclusion is wrong too), otherwise it goes on from the true count. A step is
    correct when every number it states is true. Returns the steps and the value the reasoning concludes.
    """
    targets = problem.targets
    true = dict.fromkeys(targets, 0)
    claimed = dict.fromkeys(targets, 0)
    steps = []
    for i, shape in enumerate(problem.shapes):
        matched = [t for t in targets if t == "shape" or t in (shape.color, shape.kind)]
        for t in matched:
            true[t] += 1
            claimed[t] += 1
        stated = dict(claimed)
        mentioned = matched
        if error_at == i:
            # A counted shape is miscounted by `delta`; a shape that should not count is counted anyway.
            mentioned = matched or [targets[0]]
            stated[mentioned[0]] += delta if matched else 1
            if propagate:
                claimed = dict(stated)
        text = f"Shape {i + 1} is a {shape.color} {shape.kind}"
        if mentioned:
            text += ", so the count of " + " and of ".join(
                f"{tally_label(t, 2)} is now {stated[t]}" for t in mentioned
            )
        else:
            text += ", which I do not count"
        steps.append((text + ".", all(stated[t] == true[t] for t in mentioned)))

    counts_right = claimed == true
    kind = problem.kind
    if kind in ("count_color", "count_kind", "count_total"):
        t = targets[0]
        value = claimed[t]
        steps.append((f"So there are {value} {tally_label(t, value)}.", counts_right))
    elif kind in ("sum_colors", "diff_colors", "count_pair"):
        n1, n2 = claimed[targets[0]], claimed[targets[1]]
        if kind == "sum_colors":
            value = n1 + n2
            steps.append((f"Adding them up: {n1} + {n2} = {value}.", counts_right))
        elif kind == "diff_colors":
            value = n1 - n2
            steps.append((f"The difference is {n1} - {n2} = {value}.", counts_right))
        else:
            value = (n1, n2)
            steps.append(
                (
                    f"So there are {n1} {tally_label(targets[0], n1)} and {n2} {tally_label(targets[1], n2)}.",
                    counts_right,
                )
            )
    else:  # most_color, most_kind
        best = max(claimed.values())
        value = next(t for t in targets if claimed[t] == best)
        listing = ", ".join(f"{tally_label(t, claimed[t])}: {claimed[t]}" for t in targets)
        steps.append((f"Comparing the counts ({listing}), the most frequent is {value}.", counts_right))
    return steps, value


def _ocr_steps(problem: SyntheticProblem, error_at: int | None, propagate: bool) -> tuple[list[tuple[str, bool]], str]:
    text = problem.value
    read = list(text)
    steps = []
    for i, ch in enumerate(text):
        seen = ch
        if error_at == i:
            seen = _misread(ch)
            if propagate:
                read[i] = seen
        steps.append((f"Character {i + 1} is '{seen}'.", seen == ch))
    value = "".join(read)
    steps.append((f"Together the characters read '{value}'.", value == text))
    return steps, value


def _misread(ch: str) -> str:
    look_alike = {"0": "8", "1": "7", "3": "8", "5": "6", "6": "5", "7": "1", "8": "3", "9": "4", "a": "o", "e": "c"}
    if ch in look_alike:
        return look_alike[ch]
    if ch.isdigit():
        return str((int(ch) + 1) % 10)
    return "x" if ch != "x" else "k"


def _format_answer(problem: SyntheticProblem, value: object) -> str:
    """The answer tag content a reasoning that concluded `value` writes."""
    if problem.kind == "count_pair":
        return pair_sentence(problem.targets[0], value[0], problem.targets[1], value[1])
    if problem.options:
        for option in problem.options:
            letter, _, text = option.partition(". ")
            if text == str(value):
                return letter
        return None  # the concluded value is not among the options
    return str(value)


def _wrong_answer(rng: random.Random, problem: SyntheticProblem) -> str:
    if problem.options:
        return rng.choice([o.partition(". ")[0] for o in problem.options if o.partition(". ")[0] != problem.answer])
    if problem.kind == "ocr":
        i = rng.randrange(len(problem.value))
        return problem.value[:i] + _misread(problem.value[i]) + problem.value[i + 1 :]
    if problem.kind in ("most_color", "most_kind"):
        pool = list(COLORS) if problem.kind == "most_color" else list(SHAPES)
        return rng.choice([c for c in pool if c != problem.value])
    if problem.kind == "count_pair":
        n1, n2 = problem.value
        return pair_sentence(problem.targets[0], n1 + 1, problem.targets[1], n2)
    return str(problem.value + rng.choice([-1, 1]) if problem.value > 0 else problem.value + 1)


def score_steps(num_correct: int, num_steps: int) -> float:
    """
    The fraction of correct steps, rounded to the nearest tenth with halves rounded up (exact integer arithmetic).

    Args:
        num_correct (`int`):
            Steps that are right, the final answer included.
        num_steps (`int`):
            All steps, the final answer included.

    Returns:
        `float`: A score in {0.0, 0.1, ..., 1.0}.
    """
    if num_steps <= 0 or not 0 <= num_correct <= num_steps:
        raise ValueError(f"Need 0 <= num_correct <= num_steps and num_steps > 0, got {num_correct}/{num_steps}.")
    return ((20 * num_correct + num_steps) // (2 * num_steps)) / 10


def write_response(problem: SyntheticProblem, rng: random.Random, flaw: str | None = None) -> tuple[str, float]:
    """
    Write a `<think>...</think><answer>...</answer>` response to a problem and score its reasoning.

    Args:
        problem ([`SyntheticProblem`]):
            The problem to answer.
        rng (`random.Random`):
            Chooses where a flaw goes and what filler says.
        flaw (`str` or `None`, *optional*, defaults to `None`):
            `None` for sound reasoning, or one of `"miscount"` (a count or character goes wrong and the error is
            carried to the answer), `"slip"` (one step states a wrong number or character, the next steps go on from
            the right one), `"filler"` (1-3 irrelevant sentences), `"repetition"` (one step said 2-3 extra times),
            `"wrong_answer"` (sound steps, a different final answer), `"guess"` (no reasoning, a random answer).

    Returns:
        `tuple[str, float]`: The response and its score, the fraction of correct steps (the final answer counts as
        one step; filler sentences and repeated copies count as wrong steps), rounded to the nearest tenth.
    """
    if flaw is not None and flaw not in FLAWS:
        raise ValueError(f"Unknown flaw {flaw!r}: expected None or one of {list(FLAWS)}.")
    if flaw == "guess":
        steps = [("I will just guess.", False)]
        answer = rng.choice([problem.answer, _wrong_answer(rng, problem)])
    else:
        error_at = None
        if flaw in ("miscount", "slip"):
            if problem.kind == "ocr":
                error_at = rng.randrange(len(problem.value))
            else:
                # Prefer a shape that counts; when none does (a count of 0), a non-matching shape gets counted.
                counted = [i for i, s in enumerate(problem.shapes) if _counts_shape(problem, s)]
                error_at = rng.choice(counted or list(range(len(problem.shapes))))
        delta = rng.choice([-1, 1])
        if problem.kind == "ocr":
            steps, value = _ocr_steps(problem, error_at, propagate=flaw == "miscount")
        else:
            steps, value = _tally_steps(problem, error_at, delta, propagate=flaw == "miscount")
        answer = _format_answer(problem, value)
        if answer is None:  # a miscount led outside the options: the reasoning settles on a wrong option
            answer = _wrong_answer(rng, problem)
        if flaw == "wrong_answer":
            answer = _wrong_answer(rng, problem)
        elif flaw == "filler":
            for _ in range(rng.randint(1, 3)):
                steps.insert(rng.randint(0, len(steps)), (rng.choice(FILLER_SENTENCES), False))
        elif flaw == "repetition":
            i = rng.randrange(len(steps))
            for _ in range(rng.randint(2, 3)):
                steps.insert(i + 1, (steps[i][0], False))
    steps.append((answer, answer == problem.answer))
    num_correct = sum(ok for _, ok in steps)
    think = "\n".join(text for text, _ in steps[:-1])
    return f"<think>\n{think}\n</think>\n<answer>{answer}</answer>", score_steps(num_correct, len(steps))


def _counts_shape(problem: SyntheticProblem, shape: Shape) -> bool:
    return any(t == "shape" or t in (shape.color, shape.kind) for t in problem.targets)


def policy_sft_row(problem: SyntheticProblem, response: str) -> dict:
    """One prompt-completion row for supervised fine-tuning of the policy: the policy prompt of `problem`, `response` as
    the assistant's turn, and the image (a policy warm start before GRPO)."""
    return {
        "prompt": build_prompt(problem.problem, problem.problem_type, problem.options),
        "completion": [{"role": "assistant", "content": response}],
        "image": problem.image,
    }


def judge_row(problem: SyntheticProblem, response: str, score: float) -> dict:
    """One row of judge data (the columns of `JUDGE_DATA_FEATURES`): the problem's question and image, a response to it
    and the response's score."""
    return {
        "question": format_question(problem.problem, problem.options),
        "image": problem.image,
        "response": response,
        "score": score,
        "problem_type": problem.problem_type,
    }


def make_thinking_dataset(
    num_rows: int,
    seed: int = 0,
    image_size: int = 56,
    problem_types: list[str] | None = None,
    flawed_fraction: float = 0.5,
    text_only_fraction: float = 0.0,
    start_index: int = 0,
) -> Dataset:
    """
    Generate judge training data from the synthetic task: responses with sound or flawed reasoning and their scores.

    Args:
        num_rows (`int`):
            Number of rows.
        seed (`int`, *optional*, defaults to `0`):
            Row `i` is a function of `(seed, i)` only.
        image_size (`int`, *optional*, defaults to `56`):
            Width and height of the images.
        problem_types (`list[str]` or `None`, *optional*, defaults to `None`):
            Problem types to cycle through, in order; all five when `None`.
        flawed_fraction (`float`, *optional*, defaults to `0.5`):
            Probability that a response has a flaw (drawn uniformly from `FLAWS`).
        text_only_fraction (`float`, *optional*, defaults to `0.0`):
            Probability that a non-OCR question describes its scene in words and has no image.
        start_index (`int`, *optional*, defaults to `0`):
            Index of the first row, as in [`~sophia_trl.tiny.scenes.make_synthetic_dataset`].

    Returns:
        [`~datasets.Dataset`]: Columns `question` (the problem and its options, without instructions), `image` (PIL
        image or `None`), `response`, `score` (in {0.0, 0.1, ..., 1.0}) and `problem_type`.
    """
    if num_rows < 0 or start_index < 0:
        raise ValueError(f"num_rows and start_index must be >= 0, got {num_rows} and {start_index}.")
    if not 0.0 <= flawed_fraction <= 1.0:
        raise ValueError(f"flawed_fraction must be in [0, 1], got {flawed_fraction}.")
    if not 0.0 <= text_only_fraction <= 1.0:
        raise ValueError(f"text_only_fraction must be in [0, 1], got {text_only_fraction}.")
    problem_types = resolve_problem_types(problem_types)
    rows = []
    for index in range(start_index, start_index + num_rows):
        problem, rng = draw_problem(seed, index, "thinking", problem_types, image_size, text_only_fraction)
        flaw = rng.choice(FLAWS) if rng.random() < flawed_fraction else None
        rows.append(judge_row(problem, *write_response(problem, rng, flaw)))
    return Dataset.from_list(rows, features=JUDGE_DATA_FEATURES)
