"""The learning lab's multimodal check: the synthetic scenes of `sophia_trl.tiny.scenes` with the tiny VLM.

The same experiment as the text lab (SFT warm start, then the arms with `TrustGRPOTrainer` over seeds, judges of set
reliability, held-out curves and group diagnostics), on questions that come with an image: a 56 x 56 scene of
coloured shapes (4 image tokens for the tiny Qwen2.5-VL of `sophia_trl.tiny`), the policy prompt of
`sophia_trl.prompts.build_prompt`, the outcome reward of `sophia_trl.rewards.outcome_reward`.

The judges need the scene's ground truth. The lab generates the data, so [`SceneIndex`] maps what both the dataset and
the judge see, the bare question (options included) and the image's pixels, to the generated problem.

The step checker ([`read_scene_response`]) reads a policy response line by line against the sound response that
`sophia_trl.tiny.responses.write_response` writes for the scene (one line per shape in reading order, then a
conclusion), the final answer counted as one more step:

    Shape 1 is a red circle, so the count of red shapes is now 1.     slot "shape 1": right if it is the sound line
    Shape 2 is a blue square, which I do not count.                   slot "shape 2"
    So there are 1 red shape.                                          slot "conclusion"
    <answer>1</answer>                                                 the answer: right if the outcome reward says so

A line that starts like a shape step or a conclusion fills that slot, right only when it says exactly what the sound
line says; a line with no free slot (filler, a repeated step, a shape the scene does not have) is a wrong step of its
own; a slot left empty is a wrong step. Score = `score_steps(right, slots + extra lines + 1)`. On every response that
`write_response` writes, except its bare guess, this is the score `write_response` gives (a test checks it); a bare
guess scores its missing steps as wrong, as the text lab's filler does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from PIL import Image

from sophia_trl.judges import ThinkingJudge
from sophia_trl.prompts import build_prompt, format_question
from sophia_trl.rewards import outcome_reward
from sophia_trl.rewards.outcome import well_formed_answer
from sophia_trl.tiny.responses import FLAWS, policy_sft_row, score_steps, write_response
from sophia_trl.tiny.scenes import SyntheticProblem, sample_problem

logger = logging.getLogger(__name__)

# The problem types GRPO draws, in turn. See docs/learning_lab.md ("The multimodal check") for the measured accuracy
# of the warm start per type; free-form is left out: its ROUGE outcome counts almost any sentence of the right shape
# as right, so its groups are never mixed. OCR is left out: its steps are characters, not shapes.
SCENE_PROBLEM_TYPES = ("multiple choice", "text", "numerical")
SCENE_JUDGE_KINDS = ("reliable", "adversarial")
SFT_FLAWED_FRACTION = 0.5  # half the warm-start responses carry a flaw from FLAWS, so GRPO has styles to choose from
MAX_COMPLETION_LENGTH = 224  # a sound response takes 78-193 tokens of the tiny tokenizer (60 problems measured)
HELD_OUT_SEED = 99  # held-out problems: a seed no training set uses (those are 20_000 + seed, SFT 10_000 + seed)
CHECK_PROMPTS = 48  # warm-start check: G completions to each of 48 held-out prompts, 16 per type
CORRECT_THRESHOLD = 0.5  # an outcome reward >= 0.5 is a right answer, as in TrustGRPOConfig.correct_threshold
_CONCLUSION = re.compile(r"^(So there are|So there is|Adding them up|The difference is|Comparing the counts)\b")
_SHAPE = re.compile(r"^Shape (\d+) ")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# --- Problems and data ----------------------------------------------------------------------------------------------


def make_scene_problems(num: int, seed: int, problem_types: tuple[str, ...] = SCENE_PROBLEM_TYPES) -> list:
    """`num` scene problems, types in turn; problem `i` is a function of `(seed, i)` and the type list only."""
    return [
        sample_problem(random.Random(f"learning-lab-scenes/{seed}/{i}"), problem_types[i % len(problem_types)])
        for i in range(num)
    ]


def question_of(problem: SyntheticProblem) -> str:
    """The question as the trainer hands it to the judge: the problem and its options, without the instruction."""
    return format_question(problem.problem, problem.options)


def image_digest(image: Image.Image | None) -> str:
    """A key for an image's pixels (size, mode and bytes), the same after a PNG round trip through `datasets`."""
    if image is None:
        return "no-image"
    rgb = image.convert("RGB")
    return hashlib.sha1(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


class SceneIndex:
    """The generated problems by (question, image): how a judge finds the ground truth of the scene it is shown."""

    def __init__(self, problems: list[SyntheticProblem]):
        self._problems = {(question_of(p), image_digest(p.image)): p for p in problems}

    def __len__(self) -> int:
        return len(self._problems)

    def lookup(self, question: str, image: Image.Image | None) -> SyntheticProblem:
        key = (question.strip(), image_digest(image))
        if key not in self._problems:
            raise KeyError(
                f"No generated scene for the question {question.strip()[:80]!r} with this image: the judge can only "
                "score prompts of the lab's own problems (pass every training problem to SceneIndex)."
            )
        return self._problems[key]


def scene_dataset(problems: list[SyntheticProblem]) -> Dataset:
    """GRPO rows: the policy prompt (`build_prompt`), the image, and the `solution` and `problem_type` columns that
    `sophia_trl.rewards.outcome_reward` reads."""
    return Dataset.from_list(
        [
            {
                "prompt": build_prompt(p.problem, p.problem_type, p.options),
                "image": p.image,
                "solution": f"<answer>{p.answer}</answer>",
                "problem_type": p.problem_type,
            }
            for p in problems
        ]
    )


def sft_rows(num: int, seed: int, flawed_fraction: float, problem_types: tuple[str, ...]) -> Dataset:
    """SFT rows: prompts with responses by `write_response`, a `flawed_fraction` of them with a flaw from `FLAWS`."""
    rows = []
    for i, problem in enumerate(make_scene_problems(num, seed, problem_types)):
        rng = random.Random(f"learning-lab-scenes-sft/{seed}/{i}")
        flaw = rng.choice(FLAWS) if rng.random() < flawed_fraction else None
        response, _ = write_response(problem, rng, flaw)
        rows.append(policy_sft_row(problem, response))
    return Dataset.from_list(rows)


# --- The step checker -----------------------------------------------------------------------------------------------


def _normalise(line: str) -> str:
    return " ".join(line.split())


def sound_lines(problem: SyntheticProblem) -> list[str]:
    """The reasoning lines of the sound response to `problem`: one per shape in reading order, then the conclusion."""
    response, _ = write_response(problem, random.Random(0), None)  # no flaw: the random stream is not used
    think = response.split("<think>", 1)[1].split("</think>", 1)[0]
    return [_normalise(line) for line in think.strip().split("\n")]


def _slot(line: str, num_shapes: int) -> str | None:
    """Which step of the sound reasoning a line is written as: `shape k`, `conclusion`, or None."""
    match = _SHAPE.match(line)
    if match is not None:
        k = int(match.group(1))
        return f"shape {k}" if 1 <= k <= num_shapes else None
    return "conclusion" if _CONCLUSION.match(line) else None


@dataclass(frozen=True)
class SceneJudgement:
    """What a scene response says: whether it is well formed, its answer's correctness, its steps and its score."""

    well_formed: bool
    answer_correct: bool
    num_steps: int
    num_correct: int
    score: float


def answer_is_right(problem: SyntheticProblem, response: str) -> bool:
    """The outcome reward's verdict (>= `CORRECT_THRESHOLD`), format gate included."""
    reward = outcome_reward(
        [response], solution=[f"<answer>{problem.answer}</answer>"], problem_type=[problem.problem_type]
    )[0]
    return reward is not None and reward >= CORRECT_THRESHOLD


def read_scene_response(problem: SyntheticProblem, response: str) -> SceneJudgement:
    """
    Checks a response to a scene problem step by step against the scene (see the module docstring).

    A response without the `<think>...</think><answer>...</answer>` format scores 0.0.
    """
    if well_formed_answer(response) is None:
        return SceneJudgement(False, False, 0, 0, 0.0)
    think = response.split("<think>", 1)[1].split("</think>", 1)[0]
    sentences = [_normalise(s) for line in think.split("\n") for s in _SENTENCE_END.split(line.strip())]
    reference = sound_lines(problem)
    slots = {f"shape {k + 1}": line for k, line in enumerate(reference[:-1])}
    slots["conclusion"] = reference[-1]
    filled: dict[str, bool] = {}
    extra = 0
    for sentence in filter(None, sentences):
        slot = _slot(sentence, len(reference) - 1)
        if slot is None or slot in filled:
            extra += 1  # filler, a repeated step, a shape the scene does not have
        else:
            filled[slot] = sentence == slots[slot]
    right = answer_is_right(problem, response)
    num_steps = len(slots) + extra + 1
    num_correct = sum(filled.values()) + int(right)
    return SceneJudgement(True, right, num_steps, num_correct, score_steps(num_correct, num_steps))


def scene_reasoning_score(problem: SyntheticProblem, response: str) -> float:
    """The reliable judge's score: the fraction of right steps, the answer as one step, rounded to a tenth."""
    return read_scene_response(problem, response).score


# --- Judges ---------------------------------------------------------------------------------------------------------


def scene_judge_score(kind: str, problem: SyntheticProblem, response: str) -> float:
    """`reliable`: the step checker's score; `adversarial`: 1 - that, so it rewards flawed reasoning."""
    if kind == "reliable":
        return scene_reasoning_score(problem, response)
    if kind == "adversarial":
        return round(1.0 - scene_reasoning_score(problem, response), 1)
    raise ValueError(f"Unknown scene judge kind {kind!r}; use one of {SCENE_JUDGE_KINDS}.")


class SceneJudge(ThinkingJudge):
    """
    A thinking judge of set reliability for the scenes: finds the scene in `index` and checks the response's steps.

    Args:
        kind (`str`):
            `"reliable"` or `"adversarial"`.
        index ([`SceneIndex`]):
            The generated problems the judge will be asked about.
    """

    def __init__(self, kind: str, index: SceneIndex):
        if kind not in SCENE_JUDGE_KINDS:
            raise ValueError(f"Unknown scene judge kind {kind!r}; use one of {SCENE_JUDGE_KINDS}.")
        super().__init__(cache_size=0)
        self.kind, self.index = kind, index

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        return [
            scene_judge_score(self.kind, self.index.lookup(q, image), r)
            for q, r, image in zip(questions, responses, images)
        ]


# --- Warm start and evaluation --------------------------------------------------------------------------------------


def grade_scenes(problems: list[SyntheticProblem], texts: list[str]) -> dict[str, float]:
    """
    Accuracy, sound-reasoning fraction (reliable score 1.0), mean reasoning score and well-formed fraction of
    completions to `problems`, and accuracy per problem type (`accuracy/<type>`).
    """
    judgements = [read_scene_response(p, t) for p, t in zip(problems, texts)]
    n = len(judgements)
    result = {
        "accuracy": sum(j.answer_correct for j in judgements) / n,
        "sound": sum(j.score == 1.0 for j in judgements) / n,
        "reasoning": statistics.fmean(j.score for j in judgements),
        "well_formed": sum(j.well_formed for j in judgements) / n,
    }
    for problem_type in sorted({p.problem_type for p in problems}):
        hits = [j.answer_correct for p, j in zip(problems, judgements) if p.problem_type == problem_type]
        result[f"accuracy/{problem_type}"] = sum(hits) / len(hits)
    return result


@torch.no_grad()
def sample_scenes(model, processor, problems: list, max_new_tokens: int, seed: int, batch_size: int = 32) -> list:
    """One sampled completion (temperature 1) per problem; the caller's RNG state is restored."""
    from trl.data_utils import prepare_multimodal_messages

    state = torch.get_rng_state()
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    texts = []
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        chats = [
            processor.apply_chat_template(
                prepare_multimodal_messages(build_prompt(p.problem, p.problem_type, p.options), images=[p.image]),
                add_generation_prompt=True,
                tokenize=False,
            )
            for p in batch
        ]
        inputs = processor(text=chats, images=[[p.image] for p in batch], padding=True, return_tensors="pt")
        out = model.generate(
            **inputs, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens
        )
        texts += processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    torch.set_rng_state(state)
    model.train(was_training)
    return texts


def train_scene_sft(output_dir: Path, examples: int, epochs: float, seed: int, flawed_fraction: float) -> float:
    """
    Builds the tiny VLM (`sophia_trl.tiny.models.build_tiny_vlm`, seed `seed`) and warm-starts it with TRL's SFTTrainer
    on `examples` scene responses (batch 8, lr 2e-3 cosine, as `make demo`); saves to `output_dir`, returns seconds.
    """
    from sophia_trl.tiny.models import build_tiny_vlm, warm_start_tiny_vlm

    start = time.perf_counter()
    base = output_dir.parent / f"{output_dir.name}-base"
    build_tiny_vlm(base, seed=seed)
    data = sft_rows(examples, 10_000 + seed, flawed_fraction, SCENE_PROBLEM_TYPES)
    warm_start_tiny_vlm(base, output_dir, data, seed=seed, num_train_epochs=epochs, disable_tqdm=True)
    return time.perf_counter() - start


def warm_start(sft_dir: Path, config, sft_seed: int) -> dict[str, float]:
    """
    The SFT warm start of one init (reused when `sft_dir` holds one with the same settings) and its check: G =
    `config.num_generations` sampled completions to each of `CHECK_PROMPTS` held-out prompts, graded as in
    [`grade_scenes`], and the share of those groups that are mixed (right and wrong answers), overall
    (`mixed`) and per problem type (`mixed/<type>`). `seconds` is the SFT's wall time, `check_seconds` the check's.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    settings = {
        "seed": sft_seed,
        "examples": config.sft_examples,
        "epochs": config.sft_epochs,
        "flawed_fraction": SFT_FLAWED_FRACTION,
        "problem_types": list(SCENE_PROBLEM_TYPES),
    }
    marker = sft_dir / "sft_settings.json"
    if marker.exists() and json.loads(marker.read_text())["settings"] == settings:
        logger.info("Reusing the SFT model in %s (same settings).", sft_dir)
        seconds = json.loads(marker.read_text())["seconds"]
    else:
        torch.set_num_threads(1)  # as the GRPO runs; measured with one thread
        seconds = train_scene_sft(sft_dir, config.sft_examples, config.sft_epochs, sft_seed, SFT_FLAWED_FRACTION)
        marker.write_text(json.dumps({"settings": settings, "seconds": seconds}))
    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(sft_dir, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(sft_dir)
    group = config.num_generations
    prompts = make_scene_problems(CHECK_PROMPTS, HELD_OUT_SEED + 1)
    rows = [p for p in prompts for _ in range(group)]
    texts = sample_scenes(model, processor, rows, config.max_completion_length, seed=1234, batch_size=64)
    check = grade_scenes(rows, texts)
    right = [read_scene_response(p, t).answer_correct for p, t in zip(rows, texts)]
    mixed = [0 < sum(right[i : i + group]) < group for i in range(0, len(rows), group)]
    check["mixed"] = sum(mixed) / len(mixed)
    for problem_type in SCENE_PROBLEM_TYPES:
        of_type = [m for m, p in zip(mixed, prompts) if p.problem_type == problem_type]
        check[f"mixed/{problem_type}"] = sum(of_type) / len(of_type)
    check["seconds"] = seconds
    check["check_seconds"] = time.perf_counter() - start
    return check


def format_scene_check(check: dict[str, float]) -> str:
    """The warm-start check in one line: accuracy, reasoning, and per problem type accuracy and mixed groups."""
    parts = [
        f"accuracy {check['accuracy']:.2f}",
        f"sound {check['sound']:.2f}",
        f"reasoning score {check['reasoning']:.2f}",
        f"well formed {check['well_formed']:.2f}",
        f"mixed groups {check['mixed']:.2f}",
    ]
    for problem_type in SCENE_PROBLEM_TYPES:
        acc, mixed = check.get(f"accuracy/{problem_type}", math.nan), check.get(f"mixed/{problem_type}", math.nan)
        parts.append(f"{problem_type}: accuracy {acc:.2f}, mixed {mixed:.2f}")
    return "; ".join(parts)
