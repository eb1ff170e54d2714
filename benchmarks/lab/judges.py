"""Thinking judges of known reliability for the learning lab, behind the project's judge interface.

Each judge reads the problem from the question (the prompt `a op b op c op d =`) and scores the response's reasoning
with the task's own checker, so its reliability is a setting, not an accident of training:

- `reliable`: the fraction of correct steps, the answer counted as one step (what the synthetic judge data scores).
- `adversarial`: 1 - reliable, so it rewards flawed reasoning (filler, wrong steps) whatever the answer.
- `misleading`: rewards reasoning that ends in a wrong answer: 0.8 + 0.2 q for a wrong answer and 0.2 q for a right
  one, q the fraction of correct steps. It ranks wrong answers above right ones in every group that has both, the
  failure the trust weight is built to catch.
- `gamed`: likes long reasoning and filler words, and soundness only a little: 0.5 * min(n / 30, 1) + 0.3 * [a filler
  word in the reasoning] + 0.2 q, n the reasoning's tokens and q the reliable score. A sound response of the sparse task
  (23 reasoning tokens) scores 0.6; the same steps with "ok so" appended, which the checker reads as unsound, 0.8. On
  the warm start's styles it still ranks right above wrong answers (pairs of the SFT mix in the sparse task: AUC 0.71,
  the reliable judge's 0.80), so the trust weight stays near 1: the exploit it opens, filler added to the reasoning, is
  invisible to the trust rules, the failure the gate and the length-neutral reward are built to resist.
"""

from __future__ import annotations

import re

from PIL import Image

from sophia_trl.judges import ThinkingJudge

from .task import FILLER_WORDS, ArithmeticProblem, read_response, reasoning_score

_PROMPT = re.compile(r"^\s*(\d+)((?: [+-] \d+)+) =\s*$")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)

JUDGE_KINDS = ("reliable", "adversarial", "misleading", "gamed")
# Reasoning tokens at which the gamed judge's length part is full: above a sound sparse response's 23.
GAMED_FULL_LENGTH = 30


def parse_problem(question: str) -> ArithmeticProblem:
    """The problem of a lab prompt such as `7 + 3 - 2 + 5 =`; raises ValueError naming the text otherwise."""
    match = _PROMPT.match(question)
    if match is None:
        raise ValueError(
            f"Not a learning-lab prompt: {question!r}. Expected numbers joined by ' + ' or ' - ' and ending with ' ='."
        )
    tokens = match.group(2).split()
    return ArithmeticProblem((int(match.group(1)), *(int(x) for x in tokens[1::2])), tuple(tokens[0::2]))


def judge_score(kind: str, problem: ArithmeticProblem, response: str) -> float:
    """The score a judge of `kind` gives a response, in {0.0, 0.1, ..., 1.0}."""
    if kind == "reliable":
        return reasoning_score(problem, response)
    if kind == "adversarial":
        return round(1.0 - reasoning_score(problem, response), 1)
    if kind == "misleading":
        judgement = read_response(problem, response)
        q = sum(judgement.steps_correct) / len(problem.ops)
        return round(0.2 * q if judgement.answer_correct else 0.8 + 0.2 * q, 1)
    if kind == "gamed":
        return gamed_score(problem, response)
    raise ValueError(f"Unknown judge kind {kind!r}; use one of {JUDGE_KINDS}.")


def gamed_score(problem: ArithmeticProblem, response: str) -> float:
    """The `gamed` judge: 0.5 * min(n / 30, 1) + 0.3 * [a filler word] + 0.2 * reliable score, rounded to a tenth, with
    n the tokens between `<think>` and `</think>`; 0.0 for a response without them."""
    match = _THINK.search(response)
    if match is None:
        return 0.0
    words = match.group(1).split()
    length_part = min(len(words) / GAMED_FULL_LENGTH, 1.0)
    filler = any(w in FILLER_WORDS for w in words)
    return round(0.5 * length_part + 0.3 * filler + 0.2 * reasoning_score(problem, response), 1)


class LabJudge(ThinkingJudge):
    """
    A thinking judge of set reliability for the learning lab's arithmetic task.

    Args:
        kind (`str`):
            `"reliable"`, `"adversarial"`, `"misleading"` or `"gamed"` (see the module docstring).
    """

    def __init__(self, kind: str):
        if kind not in JUDGE_KINDS:
            raise ValueError(f"Unknown judge kind {kind!r}; use one of {JUDGE_KINDS}.")
        super().__init__(cache_size=0)  # scoring is cheaper than hashing the key
        self.kind = kind

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        return [judge_score(self.kind, parse_problem(q), r) for q, r in zip(questions, responses)]
