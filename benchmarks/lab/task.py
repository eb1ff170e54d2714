"""The learning lab's task: "a ± b ± c ± d" with step-by-step reasoning that is sound or flawed, and a checkable answer.

The task follows the structure of `sophia_trl.tiny` (a problem, a response whose reasoning is sound or carries a
deliberate flaw, a checkable answer, and a reasoning score = the fraction of correct steps with the final answer as one
step, from [`sophia_trl.tiny.responses.score_steps`]), on a text problem small enough for a 0.8 M-parameter policy to
learn on a CPU in minutes:

    prompt:     7 + 3 - 2 + 5 =
    sound:      <think> 7 + 3 = 10 , 10 - 2 = 8 , 8 + 5 = 13 </think> <answer> 13 </answer>
    slip:       <think> 7 + 3 = 11 , 10 - 2 = 8 , 8 + 5 = 13 </think> <answer> 13 </answer>   (recovers: right answer)
    carried:    <think> 7 + 3 = 11 , 11 - 2 = 9 , 9 + 5 = 14 </think> <answer> 14 </answer>   (wrong answer)
    filler:     <think> let me think about it ok </think> <answer> 13 </answer>             (no working shown)

Every number is one token of a word-level vocabulary, so the policy's only job is the arithmetic and the choice of a
reasoning style. Operands are digits 0-5 and every running total stays in [0, MAX_TOTAL].

`TASKS` names the variants: `"default"` (4 operands) and `"sparse"` (5 operands, digits 0-9), whose SFT warm start
answers few prompts right, so that many GRPO groups are all wrong and the judge is the only signal there.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sophia_trl.tiny.responses import score_steps

NUM_OPERANDS = 4
MAX_OPERAND = 5  # digits 0-5: an addition table a 0.8 M model learns in a few minutes of SFT on a shared CPU
MAX_TOTAL = NUM_OPERANDS * MAX_OPERAND  # the largest running total
FILLER_WORDS = ("let", "me", "think", "about", "it", "ok", "so", "hmm", "well", "now", "then", "the", "answer", "is")
FLAWS = ("slip", "carried", "filler")
STYLES = ("sound", "slip", "carried", "filler", "other")
SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")


@dataclass(frozen=True)
class TaskVariant:
    """Size of the lab's problems: `num_operands` digits from 0 to `max_operand`, and completion tokens to allow."""

    num_operands: int
    max_operand: int
    max_completion_length: int

    @property
    def max_number(self) -> int:
        """The largest number a response can state: the largest running total plus an error of 2."""
        return self.num_operands * self.max_operand + 2


TASKS = {
    "default": TaskVariant(NUM_OPERANDS, MAX_OPERAND, max_completion_length=32),  # a sound response takes 28 tokens
    # Larger operands and a longer chain: its warm start answers 14 % right (measured); 6 operands of 0-5 still 33 %.
    "sparse": TaskVariant(5, 9, max_completion_length=36),  # 4 steps of digits 0-9: a sound response takes 29 tokens
}

_STEP = re.compile(r"^(\d+) ([+-]) (\d+) = (-?\d+)$")
_RESPONSE = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>\s*(-?\d+)\s*</answer>\s*$", re.DOTALL)


@dataclass(frozen=True)
class ArithmeticProblem:
    """
    One problem `a op b op c op d`.

    `operands` are the four digits, `ops` the three signs; `totals` are the true running totals after each operation
    (so `totals[-1]` is the answer).
    """

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def prompt(self) -> str:
        parts = [str(self.operands[0])]
        for op, x in zip(self.ops, self.operands[1:]):
            parts += [op, str(x)]
        return " ".join(parts) + " ="

    @property
    def totals(self) -> tuple[int, ...]:
        total, totals = self.operands[0], []
        for op, x in zip(self.ops, self.operands[1:]):
            total = total + x if op == "+" else total - x
            totals.append(total)
        return tuple(totals)

    @property
    def answer(self) -> int:
        return self.totals[-1]


def sample_problem(rng: random.Random, variant: TaskVariant = TASKS["default"]) -> ArithmeticProblem:
    """Draws a problem whose running totals are all >= 0 (a sign that would go below 0 becomes "+")."""
    operands = [rng.randint(0, variant.max_operand) for _ in range(variant.num_operands)]
    ops, total = [], operands[0]
    for x in operands[1:]:
        op = "-" if rng.random() < 0.5 and total - x >= 0 else "+"
        total = total + x if op == "+" else total - x
        ops.append(op)
    return ArithmeticProblem(tuple(operands), tuple(ops))


def _error(rng: random.Random, totals: tuple[int, ...], max_number: int) -> int:
    """An error of +-1 or +-2 that keeps every total in `totals` within the vocabulary's numbers, 0..max_number."""
    return rng.choice([d for d in (-2, -1, 1, 2) if min(totals) + d >= 0 and max(totals) + d <= max_number])


def write_response(
    problem: ArithmeticProblem, rng: random.Random, flaw: str | None = None, max_number: int = MAX_TOTAL + 2
) -> str:
    """
    Writes a response to `problem` with sound reasoning (`flaw=None`) or one of the flaws.

    Args:
        problem ([`ArithmeticProblem`]):
            The problem.
        rng (`random.Random`):
            Chooses where the error goes, its size and the filler words.
        flaw (`str` or `None`, *optional*, defaults to `None`):
            `"slip"`: one running total is stated 1-2 off and the next step goes on from the true one (right answer);
            `"carried"`: one running total is 1-2 off and the error is carried to the answer (wrong answer);
            `"filler"`: no working, a few filler words, then the right answer.
        max_number (`int`, *optional*, defaults to `MAX_TOTAL + 2`):
            The largest number the tokenizer knows ([`TaskVariant.max_number`]); a wrong total stays within it.

    Returns:
        `str`: `<think> ... </think> <answer> N </answer>`.
    """
    if flaw is not None and flaw not in FLAWS:
        raise ValueError(f"Unknown flaw {flaw!r}: expected None or one of {list(FLAWS)}.")
    if flaw == "filler":
        words = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(3, 6))]
        return f"<think> {' '.join(words)} </think> <answer> {problem.answer} </answer>"
    error_at = rng.randrange(len(problem.ops)) if flaw in FLAWS else None
    if error_at is not None:
        # A carried error shifts every later total by the same amount; a slip shifts one.
        delta = _error(
            rng,
            problem.totals[error_at:] if flaw == "carried" else problem.totals[error_at : error_at + 1],
            max_number,
        )
    steps, carried = [], problem.operands[0]
    for i, (op, x) in enumerate(zip(problem.ops, problem.operands[1:])):
        true_next = carried + x if op == "+" else carried - x
        stated = true_next + delta if i == error_at else true_next
        steps.append(f"{carried} {op} {x} = {stated}")
        # "carried" goes on from the wrong total (right arithmetic on a wrong number), "slip" from the true one.
        carried = stated if flaw == "carried" else true_next
    answer = carried
    return f"<think> {' , '.join(steps)} </think> <answer> {answer} </answer>"


@dataclass(frozen=True)
class Judgement:
    """What a response says: its final answer (None if unreadable), its steps' correctness and its style."""

    answer: int | None
    answer_correct: bool
    steps_correct: tuple[bool, ...]
    style: str


def read_response(problem: ArithmeticProblem, response: str) -> Judgement:
    """
    Checks a response against the problem, step by step.

    A step `x op y = z` is correct when it applies the problem's next operation to the true running total and states
    the true result. The style is `"sound"` (one correct step per operation and the right answer), `"slip"` (some step
    wrong, right answer), `"carried"` (some step wrong, wrong answer), `"filler"` (no steps, only filler words) or
    `"other"` (not in the `<think> .. </think> <answer> N </answer>` format, steps missing or unreadable, or correct
    steps followed by a different answer).
    """
    match = _RESPONSE.match(response)
    if match is None:
        return Judgement(None, False, (), "other")
    think, answer = match.group(1).strip(), int(match.group(2))
    right = answer == problem.answer
    chunks = [c.strip() for c in think.split(",")] if think else []
    parsed = [_STEP.match(c) for c in chunks]
    if not any(parsed):
        style = "filler" if all(w in FILLER_WORDS for w in think.split()) else "other"
        return Judgement(answer, right, (), style)
    if not all(parsed) or len(parsed) != len(problem.ops):
        return Judgement(answer, right, (), "other")
    before = (problem.operands[0], *problem.totals[:-1])
    correct = tuple(
        int(m.group(1)) == b and m.group(2) == op and int(m.group(3)) == x and int(m.group(4)) == t
        for m, b, op, x, t in zip(parsed, before, problem.ops, problem.operands[1:], problem.totals)
    )
    if all(correct):
        style = "sound" if right else "other"  # sound steps, then a different answer
    else:
        style = "slip" if right else "carried"
    return Judgement(answer, right, correct, style)


def outcome_score(problem: ArithmeticProblem, response: str) -> float:
    """1.0 when the response is well formed and its answer is right, else 0.0."""
    return float(read_response(problem, response).answer_correct)


def reasoning_score(problem: ArithmeticProblem, response: str) -> float:
    """
    The fraction of correct steps, the final answer counted as one step, rounded to a tenth
    ([`sophia_trl.tiny.responses.score_steps`]): 1.0 for sound reasoning, 0.0 for a malformed response.

    Filler counts as the missing steps being wrong: a right answer with no working scores 1/4 -> 0.3.
    """
    judgement = read_response(problem, response)
    num_steps = len(problem.ops) + 1
    num_correct = sum(judgement.steps_correct) + int(judgement.answer_correct)
    return score_steps(num_correct, num_steps)


def build_tokenizer(max_number: int = MAX_TOTAL + 2) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: one token per number 0..max_number, sign, tag and filler word (~70 tokens)."""
    words = [
        *SPECIAL_TOKENS,
        *(str(n) for n in range(max_number + 1)),
        "+",
        "-",
        "=",
        ",",
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        *FILLER_WORDS,
    ]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side="left"
    )


def make_problems(num: int, seed: int, variant: TaskVariant = TASKS["default"]) -> list[ArithmeticProblem]:
    """`num` problems of `variant`, a function of `seed` and `variant` only."""
    rng = random.Random(seed)
    return [sample_problem(rng, variant) for _ in range(num)]
