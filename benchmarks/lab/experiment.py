"""The learning lab's experiment: SFT warm start, Trust-GRPO arms over seeds, held-out curves, a table and a plot.

Every arm trains with the project's [`TrustGRPOTrainer`] and [`TrustGRPOConfig`]; an arm is only a set of config
values (see `ARMS`). [`LabTrainer`] adds bookkeeping, nothing else: after the trainer has combined the rewards, it
records per step how many groups were mixed (right and wrong answers), the trust weight gamma in those groups, and in
how many uniform-outcome groups the judge still moved the advantages.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import sophia_trl  # noqa: F401  (first: its import filters a bitsandbytes warning, see sophia_trl/__init__.py)

# isort: split

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, TrainerCallback
from trl import SFTConfig, SFTTrainer

from sophia_trl.configs import TrustGRPOConfig
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.rewards import outcome_reward

from . import scenes
from .judges import JUDGE_KINDS, LabJudge, parse_problem
from .task import STYLES, TASKS, build_tokenizer, make_problems, outcome_score, read_response, write_response

logger = logging.getLogger(__name__)

# Each arm is a set of TrustGRPOConfig values; `None` trains without a judge (plain GRPO).
ARMS: dict[str, dict | None] = {
    "grpo": None,
    "naive": {"trust_weighting": False, "thinking_reward_annealing": "none"},
    "annealing": {"trust_weighting": False, "thinking_reward_annealing": "exp"},
    "trust": {"trust_weighting": True, "thinking_reward_annealing": "none"},
    "trust_grpo": {"trust_weighting": True, "thinking_reward_annealing": "exp", "thinking_reward_preset": "paper"},
    "trust_grpo_official": {
        "trust_weighting": True,
        "thinking_reward_annealing": "exp",
        "thinking_reward_preset": "official",
    },
    # trust_grpo with one of the reliability rules in place of the paper's gamma (see sophia_trl.trust)
    "reliability": {"trust_weighting": True, "thinking_reward_annealing": "exp", "trust_rule": "reliability"},
    "reliability_separate": {
        "trust_weighting": True,
        "thinking_reward_annealing": "exp",
        "trust_rule": "reliability_separate",
        "scale_rewards": "none",
    },
    # trust_grpo with one counter to a judge that can be gamed (see sophia_trl.trust and docs/trust_rules.md)
    "posterior_gate": {"trust_weighting": True, "thinking_reward_annealing": "exp", "thinking_reward_gate": "correct"},
    "length_neutral": {
        "trust_weighting": True,
        "thinking_reward_annealing": "exp",
        "thinking_reward_length_neutral": True,
    },
}
# Share of each reasoning style in the SFT data: flawed styles are common enough that GRPO has something to choose.
# The same for every text task: the sparse task is harder, not rarer in sound responses.
SFT_STYLE_MIX = {None: 0.4, "filler": 0.3, "slip": 0.15, "carried": 0.15}
CORRECT_THRESHOLD = 0.5
# The tasks: the text variants of `TASKS`, and the synthetic scenes with the tiny VLM (`benchmarks.lab.scenes`).
SCENES_TASK = "scenes"
TASK_NAMES = (*TASKS, SCENES_TASK)


@dataclass
class LabConfig:
    """
    Sizes of one lab run.

    Args:
        sft_examples (`int`, *optional*, defaults to `6000`):
            SFT examples (styles mixed as `SFT_STYLE_MIX`).
        sft_epochs (`float`, *optional*, defaults to `3.0`):
            SFT epochs.
        grpo_steps (`int`, *optional*, defaults to `100`):
            GRPO steps per run (8 prompts x 8 completions each).
        eval_every (`int`, *optional*, defaults to `20`):
            Steps between held-out evaluations (also run at step 0 and at the end).
        eval_prompts (`int`, *optional*, defaults to `256`):
            Held-out prompts, one sampled completion each (temperature 1, as in training).
        seeds (`int`, *optional*, defaults to `2`):
            GRPO seeds per arm, all from the same SFT model.
        first_seed (`int`, *optional*, defaults to `0`):
            The first GRPO seed: the runs use seeds `first_seed` to `first_seed + seeds - 1` (to add seeds to a lab).
        sft_seeds (`int`, *optional*, defaults to `1`):
            SFT warm starts; every arm and seed runs from each.
        judges (`list[str]`, *optional*, defaults to `["adversarial", "misleading"]`):
            Judge kinds (see `benchmarks.lab.judges`).
        arms (`list[str]`, *optional*, defaults to `["grpo", "naive", "trust_grpo", "trust_grpo_official"]`):
            Arm names from `ARMS`; `"grpo"` does not use a judge and runs once per seed.
        workers (`int`, *optional*, defaults to `2`):
            Runs in parallel, one CPU thread each.
        num_generations (`int`, *optional*, defaults to `8`), prompts_per_step (`int`, *optional*, defaults to `8`):
            Group size G and prompts per GRPO step.
        max_completion_length (`int` or `None`, *optional*, defaults to `None`):
            Tokens per completion; `None` takes the task's (32 for "default", where a sound response takes 28 with its
            EOS; 36 for "sparse").
        learning_rate (`float`, *optional*, defaults to `1e-4`):
            GRPO learning rate.
        task (`str`, *optional*, defaults to `"default"`):
            Task variant from `benchmarks.lab.task.TASKS`: `"default"` (4 operands of 0-5) or `"sparse"` (5 operands
            of 0-9, a warm start that answers few prompts right); or `"scenes"`, the synthetic scenes with the tiny VLM
            (`benchmarks.lab.scenes`; start from the `SCENES` sizes).
    """

    sft_examples: int = 6000
    sft_epochs: float = 3.0
    grpo_steps: int = 100
    eval_every: int = 20
    eval_prompts: int = 256
    seeds: int = 2
    first_seed: int = 0
    sft_seeds: int = 1
    judges: list[str] = field(default_factory=lambda: ["adversarial", "misleading"])
    arms: list[str] = field(default_factory=lambda: ["grpo", "naive", "trust_grpo", "trust_grpo_official"])
    workers: int = 2
    num_generations: int = 8
    prompts_per_step: int = 8
    max_completion_length: int | None = None
    learning_rate: float = 1e-4
    task: str = "default"

    def __post_init__(self):
        if self.task not in TASK_NAMES:
            raise ValueError(f"Unknown task {self.task!r}; choose from {list(TASK_NAMES)}.")
        if self.max_completion_length is None:
            self.max_completion_length = (
                scenes.MAX_COMPLETION_LENGTH if self.task == SCENES_TASK else TASKS[self.task].max_completion_length
            )
        if self.task == SCENES_TASK and any(j not in scenes.SCENE_JUDGE_KINDS for j in self.judges):
            raise ValueError(f"The scenes task has the judges {list(scenes.SCENE_JUDGE_KINDS)}; got {self.judges}.")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"Unknown arm(s) {unknown}; choose from {list(ARMS)}.")
        if min(self.grpo_steps, self.eval_every, self.seeds, self.sft_seeds, self.workers) < 1:
            raise ValueError("grpo_steps, eval_every, seeds, sft_seeds and workers must all be >= 1.")
        if self.first_seed < 0:
            raise ValueError(f"first_seed must be >= 0, got {self.first_seed}.")
        unknown = [j for j in self.judges if j not in JUDGE_KINDS]
        if unknown:
            raise ValueError(f"Unknown judge(s) {unknown}; choose from {list(JUDGE_KINDS)}.")


QUICK = LabConfig(
    sft_examples=512,
    sft_epochs=1.0,
    grpo_steps=4,
    eval_every=2,
    eval_prompts=32,
    seeds=1,
    judges=["adversarial"],
    arms=["grpo", "trust_grpo"],
    workers=1,
)

# The multimodal check (`--task scenes`): sizes that fit the tiny VLM's step time (see docs/learning_lab.md).
SCENES = LabConfig(
    task=SCENES_TASK,
    sft_examples=1200,
    sft_epochs=4.0,  # 600 SFT steps of 8: 33 % right, every group of 8 mixed (measured; 100 steps: 2 %)
    grpo_steps=20,  # ~8.5 s a step on the shared 2 cores: 21 runs fit in about 40 minutes
    eval_every=10,
    eval_prompts=96,
    seeds=3,
    judges=["reliable", "adversarial"],
    arms=["grpo", "naive", "trust_grpo", "reliability_separate"],
    workers=2,
    num_generations=8,
    prompts_per_step=4,
)
SCENES_QUICK = LabConfig(
    task=SCENES_TASK,
    sft_examples=48,
    sft_epochs=1.0,
    grpo_steps=2,
    eval_every=1,
    eval_prompts=6,
    seeds=1,
    judges=["adversarial"],
    arms=["grpo", "trust_grpo"],
    workers=1,
    num_generations=4,
    prompts_per_step=2,
    max_completion_length=48,
)

# --- Policy and SFT warm start --------------------------------------------------------------------------------------


def build_policy(tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen2ForCausalLM:
    """A 0.8 M-parameter Qwen2ForCausalLM over the lab's word-level vocabulary (hidden 128, 3 layers)."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,  # prompt (8 tokens) + completion (<= 32)
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


def sft_dataset(num: int, seed: int, task: str = "default") -> Dataset:
    """Prompt-completion rows of `task` with reasoning styles mixed as `SFT_STYLE_MIX`; each completion ends with the
    EOS."""
    rng = random.Random(seed)
    styles, weights = list(SFT_STYLE_MIX), list(SFT_STYLE_MIX.values())
    variant = TASKS[task]
    rows = []
    for problem in make_problems(num, seed, variant):
        flaw = rng.choices(styles, weights)[0]
        response = write_response(problem, rng, flaw, variant.max_number)
        # The EOS is appended with a space here: the word-level tokenizer splits on whitespace only.
        rows.append({"prompt": problem.prompt, "completion": " " + response + " <eos>"})
    return Dataset.from_list(rows)


def train_sft(output_dir: Path, config: LabConfig, seed: int) -> Path:
    """
    Trains the SFT warm start with TRL's SFTTrainer (completion-only loss) and saves it to `output_dir`.

    A model already saved there by the same SFT settings is reused (`sft_settings.json` records them).
    """
    settings = {
        "seed": seed,
        "examples": config.sft_examples,
        "epochs": config.sft_epochs,
        "mix": str(SFT_STYLE_MIX),
    }
    if config.task != "default":
        settings["task"] = str(TASKS[config.task])
    marker = output_dir / "sft_settings.json"
    if marker.exists() and json.loads(marker.read_text()) == settings:
        logger.info("Reusing the SFT model in %s (same settings).", output_dir)
        return output_dir
    torch.set_num_threads(1)  # on a shared 2-core machine one thread was faster than two
    tokenizer = build_tokenizer(TASKS[config.task].max_number)
    model = build_policy(tokenizer, seed)
    args = SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=config.sft_epochs,
        per_device_train_batch_size=64,
        learning_rate=2e-3,  # a 0.8 M model from scratch: a high rate with warmup and cosine decay
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a fraction of the run
        weight_decay=0.0,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
        max_length=64,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=sft_dataset(config.sft_examples, seed=10_000 + seed, task=config.task),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    marker.write_text(json.dumps(settings))
    return output_dir


# --- Evaluation on held-out prompts ---------------------------------------------------------------------------------


@torch.no_grad()
def sample_and_grade(model, tokenizer, problems: list, max_new_tokens: int, seed: int) -> dict[str, float]:
    """
    One sampled completion (temperature 1, no top-k/top-p) per held-out problem; accuracy and style fractions.

    The sampling seed is fixed and the caller's RNG state is restored, so evaluating does not change training.

    Returns:
        `dict[str, float]`: `accuracy`, `sound` (fraction with sound reasoning), `length` (mean completion tokens),
        `style/<name>` fractions, and `accuracy/<name>` (accuracy among completions of that style, NaN when there are
        none).
    """
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    enc = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
    out = model.generate(
        **enc,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    torch.set_rng_state(state)
    model.train(was_training)
    return grade(problems, texts)


def grade(problems: list, texts: list[str]) -> dict[str, float]:
    """Accuracy, sound-reasoning fraction, mean length (tokens of the word-level vocabulary, EOS left out) and per-style
    fractions and accuracies of completions to `problems`."""
    judgements = [read_response(p, t) for p, t in zip(problems, texts)]
    n = len(judgements)
    styles = Counter(j.style for j in judgements)
    result = {
        "accuracy": sum(j.answer_correct for j in judgements) / n,
        "sound": styles["sound"] / n,
        "length": statistics.fmean(len(t.split()) for t in texts),
    }
    for style in STYLES:
        result[f"style/{style}"] = styles[style] / n
        hits = [j.answer_correct for j in judgements if j.style == style]
        result[f"accuracy/{style}"] = sum(hits) / len(hits) if hits else math.nan
    return result


# --- GRPO arms -------------------------------------------------------------------------------------------------------


def lab_outcome_reward(completions: list[str], prompts: list[str], **kwargs) -> list[float]:
    """Outcome reward of the lab task: 1 for a well-formed response with the right answer, else 0."""
    return [outcome_score(parse_problem(p), c) for p, c in zip(prompts, completions)]


def group_diagnostics(
    outcome: torch.Tensor, bonus: torch.Tensor | None, gamma: torch.Tensor | None, num_generations: int
) -> dict[str, float]:
    """
    What the judge did in one batch, per group of `num_generations` consecutive rows.

    Args:
        outcome (`torch.Tensor`): outcome rewards, shape (B,).
        bonus (`torch.Tensor` or `None`): the thinking term added to each reward (gamma * alpha_t * R_t), shape (B,),
            NaN where no score was given; `None` without a judge.
        gamma (`torch.Tensor` or `None`): the trust weight of each row's group, shape (B,); `None` without a judge.

    Returns:
        `dict[str, float]`: `mixed_frac` (groups with right and wrong answers), `gamma_mixed` (mean gamma over mixed
        groups, NaN if none or no judge) and `uniform_judge_acts` (fraction of uniform-outcome groups whose thinking
        terms differ, so that the judge alone sets their advantages; NaN if there is no uniform group or no judge).
    """
    right = (outcome.view(-1, num_generations) >= CORRECT_THRESHOLD).float().mean(dim=1)  # (num_groups,)
    mixed = (right > 0) & (right < 1)
    result = {"mixed_frac": mixed.float().mean().item(), "gamma_mixed": math.nan, "uniform_judge_acts": math.nan}
    if bonus is None or gamma is None:
        return result
    if mixed.any():
        result["gamma_mixed"] = gamma.view(-1, num_generations)[mixed, 0].nanmean().item()  # NaN: no thinking term
    uniform = ~mixed
    if uniform.any():
        b = torch.nan_to_num(bonus.view(-1, num_generations)[uniform], nan=0.0)  # (num_uniform, G)
        acts = (b.max(dim=1).values - b.min(dim=1).values) > 1e-8
        result["uniform_judge_acts"] = acts.float().mean().item()
    return result


def _text_outcome(inputs: list[dict], prompts: list, completions: list) -> list[float]:
    return lab_outcome_reward(completions, prompts)


class LabTrainer(TrustGRPOTrainer):
    """
    [`TrustGRPOTrainer`] that also records [`group_diagnostics`] of every training batch in `self.diagnostics`.

    `outcome_fn(inputs, prompts, completions) -> list[float]` grades the batch for the diagnostics (the text task's
    [`lab_outcome_reward`] by default).
    """

    def __init__(self, *args, outcome_fn=_text_outcome, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome_fn = outcome_fn
        self.diagnostics: list[dict[str, float]] = []

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (B, F)
        if not self.model.training:
            return rewards_per_func
        bonus = gamma = None
        # Graded here, not read from column 0: a reliability rule may hand TRL that column normalised.
        outcome = torch.tensor(self.outcome_fn(inputs, prompts, completions), dtype=torch.float32)
        if self.thinking_judge is not None:
            bonus = rewards_per_func[:, -1]
            # The trainer logs each row's gamma as a completions-table column; single process, so it is the batch.
            gamma = torch.tensor(self._pending_extra_logs["trust_gamma"][-len(prompts) :])
        row = group_diagnostics(outcome, bonus, gamma, self.num_generations)
        self.diagnostics.append({"step": self.state.global_step, **row})
        return rewards_per_func


class HeldOutEval(TrainerCallback):
    """Runs `evaluate(model) -> metrics` (held-out prompts, sampled and graded) at step 0, every `every` steps and at
    the end."""

    def __init__(self, evaluate, every: int):
        self.evaluate, self.every = evaluate, every
        self.curve: list[dict[str, float]] = []

    def _evaluate(self, step: int, model) -> None:
        if self.curve and self.curve[-1]["step"] == step:
            return
        self.curve.append({"step": step, **self.evaluate(model)})

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._evaluate(0, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._evaluate(state.global_step, model)


@dataclass
class RunSpec:
    """One GRPO run: an arm, a judge (None for plain GRPO), a seed and the SFT model it starts from."""

    arm: str
    judge: str | None
    seed: int
    sft_seed: int
    sft_dir: str
    output_dir: str
    config: LabConfig


def _grpo_args(spec: RunSpec) -> TrustGRPOConfig:
    """The TrustGRPOConfig of one run: the lab's sizes, the paper's alpha, and the arm's settings."""
    config = spec.config
    return TrustGRPOConfig(
        output_dir=spec.output_dir,
        max_steps=config.grpo_steps,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        learning_rate=config.learning_rate,
        temperature=1.0,
        beta=0.0,
        thinking_reward_alpha=0.3,  # paper sec. 4.1
        correct_threshold=CORRECT_THRESHOLD,
        logging_steps=max(1, config.grpo_steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=spec.seed,
        data_seed=spec.seed,
        disable_tqdm=True,
        **(ARMS[spec.arm] or {}),
    )


def _train_and_save(spec: RunSpec, trainer: LabTrainer, evaluator: HeldOutEval) -> dict:
    """Trains, then writes the run's `result.json` (held-out curve, per-step diagnostics, speed) and returns it."""
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    result = {
        "arm": spec.arm,
        "judge": spec.judge,
        "seed": spec.seed,
        "sft_seed": spec.sft_seed,
        "settings": run_settings(spec.config),
        "seconds": seconds,
        "steps_per_second": spec.config.grpo_steps / seconds,
        "curve": evaluator.curve,
        "diagnostics": trainer.diagnostics,
    }
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(spec.output_dir) / "result.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(tmp.with_suffix(""))  # atomic: an interrupted run leaves no half-written result.json
    return result


def run_arm(spec: RunSpec) -> dict:
    """Trains one arm and returns its held-out curve, per-step diagnostics and speed (runs in a worker process)."""
    torch.set_num_threads(1)  # two runs share the two cores
    config = spec.config
    if config.task == SCENES_TASK:
        return run_scene_arm(spec)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(spec.sft_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.sft_dir)
    num_prompts = config.grpo_steps * config.prompts_per_step
    variant = TASKS[config.task]
    problems = make_problems(num_prompts, seed=20_000 + spec.seed, variant=variant)
    train = Dataset.from_dict({"prompt": [p.prompt for p in problems]})
    held_out = make_problems(config.eval_prompts, seed=99, variant=variant)
    evaluator = HeldOutEval(
        lambda model: sample_and_grade(model, tokenizer, held_out, config.max_completion_length, seed=1234),
        config.eval_every,
    )
    trainer = LabTrainer(
        model=model,
        reward_funcs=[lab_outcome_reward],
        args=_grpo_args(spec),
        train_dataset=train,
        processing_class=tokenizer,
        thinking_judge=LabJudge(spec.judge) if ARMS[spec.arm] is not None else None,
        callbacks=[evaluator],
    )
    return _train_and_save(spec, trainer, evaluator)


def _scene_outcome(inputs: list[dict], prompts: list, completions: list) -> list[float]:
    return outcome_reward(
        completions, solution=[x["solution"] for x in inputs], problem_type=[x["problem_type"] for x in inputs]
    )


def run_scene_arm(spec: RunSpec) -> dict:
    """[`run_arm`] on the synthetic scenes: the tiny VLM, `outcome_reward`, a [`scenes.SceneJudge`] over the run's
    training problems."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    config = spec.config
    processor = AutoProcessor.from_pretrained(spec.sft_dir, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(spec.sft_dir)
    problems = scenes.make_scene_problems(config.grpo_steps * config.prompts_per_step, seed=20_000 + spec.seed)
    held_out = scenes.make_scene_problems(config.eval_prompts, seed=scenes.HELD_OUT_SEED)

    def evaluate(model) -> dict[str, float]:
        texts = scenes.sample_scenes(model, processor, held_out, config.max_completion_length, seed=1234)
        return scenes.grade_scenes(held_out, texts)

    evaluator = HeldOutEval(evaluate, config.eval_every)
    trainer = LabTrainer(
        model=model,
        reward_funcs=[outcome_reward],
        args=_grpo_args(spec),
        train_dataset=scenes.scene_dataset(problems),
        processing_class=processor,
        thinking_judge=(
            scenes.SceneJudge(spec.judge, scenes.SceneIndex(problems)) if ARMS[spec.arm] is not None else None
        ),
        callbacks=[evaluator],
        outcome_fn=_scene_outcome,
    )
    return _train_and_save(spec, trainer, evaluator)


# Settings that change what a single run computes; a saved run is reused only when they all match.
RUN_SETTINGS = (
    "sft_examples",
    "sft_epochs",
    "grpo_steps",
    "eval_every",
    "eval_prompts",
    "num_generations",
    "prompts_per_step",
    "max_completion_length",
    "learning_rate",
    "task",
)


def run_settings(config: LabConfig) -> dict:
    """The settings of `config` that one run's result depends on (see `RUN_SETTINGS`)."""
    settings = {name: getattr(config, name) for name in RUN_SETTINGS}
    if config.task == SCENES_TASK:
        settings["scene_problem_types"] = list(scenes.SCENE_PROBLEM_TYPES)
    return settings


def load_finished(spec: RunSpec) -> dict | None:
    """
    The saved result of `spec` if a run with the same settings already finished in `spec.output_dir`, else `None`.

    This lets an interrupted lab, or a lab extended with more arms or seeds, be run again with the same command and
    `--output_dir` without repeating finished runs. A result from different settings is not reused (it is overwritten).
    """
    path = Path(spec.output_dir) / "result.json"
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        logger.warning("Ignoring %s: not valid JSON (truncated or edited); the run is repeated.", path)
        return None
    if result.get("settings") != run_settings(spec.config):
        return None
    return result


# --- Aggregation, table and plot ------------------------------------------------------------------------------------


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the non-NaN values (NaN when empty; sd 0 for one value)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _metrics(results: list[dict]) -> tuple[str, ...]:
    """The held-out metrics the lab compares: accuracy and sound fraction, and the reasoning score and the mean length
    where every run measured them (runs saved before the length was measured have none)."""
    optional = [key for key in ("reasoning", "length") if results and all(key in r["curve"][0] for r in results)]
    return ("accuracy", "sound", *optional)


def summarise(results: list[dict], per_sft_init: bool = False) -> list[dict]:
    """
    One row per (judge, arm): final held-out accuracy and sound fraction (and the mean reasoning score, where the
    curves have one: the scenes), mean and sd over seeds and SFT inits, and the training diagnostics averaged over
    each run, then over runs. With `per_sft_init`, one row per (SFT init, judge, arm), with an `sft_init` entry.

    `accuracy_vs_grpo` and `sound_vs_grpo` are paired differences: each run's final value minus that of the plain GRPO
    run with the same seed and SFT init (same training prompts in the same order, same start), mean and sd over the
    pairs; NaN when no such GRPO run exists.
    """
    grpo = {(r["sft_seed"], r["seed"]): r for r in results if r["arm"] == "grpo"}
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        key = (r["judge"] or "-", r["arm"]) + ((r["sft_seed"],) if per_sft_init else ())
        groups.setdefault(key, []).append(r)
    rows = []
    judge_order = ["-", *JUDGE_KINDS]

    def order(key: tuple) -> tuple:  # no judge first, then judges and arms in their declared order
        judge, arm, *sft_init = key
        return (
            judge_order.index(judge) if judge in judge_order else len(judge_order),
            list(ARMS).index(arm),
            *sft_init,
        )

    for (judge, arm, *sft_init), runs in sorted(groups.items(), key=lambda item: order(item[0])):
        row = {"judge": judge, "arm": arm, "runs": len(runs)}
        if per_sft_init:
            row["sft_init"] = sft_init[0]
        for key in _metrics(results):
            row[f"{key}_start"] = mean_sd([r["curve"][0][key] for r in runs])
            row[key] = mean_sd([r["curve"][-1][key] for r in runs])
            row[f"{key}_vs_grpo"] = mean_sd(
                [
                    r["curve"][-1][key] - grpo[r["sft_seed"], r["seed"]]["curve"][-1][key]
                    for r in runs
                    if (r["sft_seed"], r["seed"]) in grpo
                ]
            )
        for key in ("mixed_frac", "gamma_mixed", "uniform_judge_acts"):
            row[key] = mean_sd([mean_sd([d[key] for d in r["diagnostics"]])[0] for r in runs])
        row["steps_per_second"] = mean_sd([r["steps_per_second"] for r in runs])
        rows.append(row)
    return rows


def paired_difference(
    results: list[dict], arm: str, judge: str | None, baseline: str, baseline_judge: str | None, key: str
) -> tuple[float, float, int]:
    """
    Final `key` ("accuracy" or "sound") of the runs of (`arm`, `judge`) minus that of the (`baseline`,
    `baseline_judge`) run with the same seed and SFT init: mean, standard error (sd / sqrt(n)) and number of pairs n.

    NaN mean and SE when there is no pair; SE NaN for one pair.
    """
    base = {(r["sft_seed"], r["seed"]): r for r in results if r["arm"] == baseline and r["judge"] == baseline_judge}
    diffs = [
        r["curve"][-1][key] - base[r["sft_seed"], r["seed"]]["curve"][-1][key]
        for r in results
        if r["arm"] == arm and r["judge"] == judge and (r["sft_seed"], r["seed"]) in base
    ]
    if not diffs:
        return math.nan, math.nan, 0
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    return statistics.fmean(diffs), se, len(diffs)


def _fmt_paired(diff: tuple[float, float, int]) -> str:
    mean, se, n = diff
    if n == 0:
        return "-"
    ratio = f", {mean / se:+.1f} SE" if se > 1e-9 else ""  # equal differences: no ratio of rounding noise
    return f"{mean:+.3f} ± {se:.3f}{ratio}"


METRIC_LABELS = {"accuracy": "accuracy", "sound": "sound", "reasoning": "reasoning score", "length": "length"}


def comparisons_table(results: list[dict]) -> str:
    """
    Paired differences of every arm with a judge against plain GRPO and against the paper's Trust-GRPO (`trust_grpo`,
    same judge), each run against the baseline run with the same seed and SFT init: mean ± standard error over the
    pairs, and the mean in standard errors.
    """
    metrics = _metrics(results)
    keys = sorted(
        {(r["judge"], r["arm"]) for r in results if r["judge"] is not None},
        key=lambda k: (JUDGE_KINDS.index(k[0]) if k[0] in JUDGE_KINDS else len(JUDGE_KINDS), list(ARMS).index(k[1])),
    )
    columns = [f"{METRIC_LABELS[m]} vs {base}" for base in ("GRPO", "trust_grpo") for m in metrics]
    lines = ["| judge | arm | pairs | " + " | ".join(columns) + " |", "|---|---|---" + "|---" * len(columns) + "|"]
    for judge, arm in keys:
        cells = [paired_difference(results, arm, judge, "grpo", None, key) for key in metrics]
        if arm == "trust_grpo":
            cells += [(math.nan, math.nan, 0)] * len(metrics)
        else:
            cells += [paired_difference(results, arm, judge, "trust_grpo", judge, key) for key in metrics]
        lines.append(f"| {judge} | {arm} | {cells[0][2]} | " + " | ".join(_fmt_paired(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(pair: tuple[float, float], digits: int = 2, signed: bool = False) -> str:
    mean, sd = pair
    if math.isnan(mean):
        return "-"
    return f"{mean:{'+' if signed else ''}.{digits}f} ± {sd:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    """The summary as a markdown table (mean ± sd over runs); with reasoning-score and length columns where rows have
    them."""
    per_init = bool(rows) and "sft_init" in rows[0]
    metrics = [m for m in ("accuracy", "sound", "reasoning", "length") if rows and m in rows[0]]
    course = {"accuracy": "accuracy", "sound": "sound reasoning", "reasoning": "reasoning score", "length": "length"}
    columns = [
        *(["SFT init"] if per_init else []),
        "judge",
        "arm",
        "runs",
        *(f"{course[m]} (start -> end)" for m in metrics),
        *(f"{METRIC_LABELS[m]} vs GRPO" for m in metrics),
        "mixed groups",
        "gamma in mixed groups",
        "uniform groups moved by the judge",
        "steps/s",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in rows:
        cells = [
            *([str(r["sft_init"])] if per_init else []),
            r["judge"],
            r["arm"],
            str(r["runs"]),
            *(f"{_fmt(r[f'{m}_start'])} -> {_fmt(r[m])}" for m in metrics),
            *(_fmt(r[f"{m}_vs_grpo"], 3, signed=True) for m in metrics),
            _fmt(r["mixed_frac"]),
            _fmt(r["gamma_mixed"]),
            _fmt(r["uniform_judge_acts"]),
            _fmt(r["steps_per_second"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure(num_rows: int, judges: list[str], height: float):
    """A grid of panels, one column per judge, and the colour of each arm (the same in every figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(num_rows, len(judges), figsize=(4.5 * len(judges), height), squeeze=False, sharex=True)
    colors = dict(zip(ARMS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    return fig, axes, colors


def _runs_by_arm(results: list[dict], judge: str) -> list[tuple[str, list[dict]]]:
    """The runs of each arm under `judge`, plain GRPO (no judge) included, arms in the order they first appear."""
    arms = list(dict.fromkeys(r["arm"] for r in results))
    by_arm = [(arm, [r for r in results if r["arm"] == arm and r["judge"] in (judge, None)]) for arm in arms]
    return [(arm, runs) for arm, runs in by_arm if runs]


def _save(fig, axes, path: Path) -> None:
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CURVE_LABELS = {
    "accuracy": "held-out accuracy (sampled)",
    "sound": "sound-reasoning fraction",
    "reasoning": "mean reasoning score",
    "length": "mean response length (tokens)",
}


def plot_curves(results: list[dict], judges: list[str], path: Path) -> None:
    """Held-out accuracy and sound-reasoning fraction (and the mean reasoning score, where measured) over steps, one
    column per judge, mean ± sd shaded."""
    metrics = _metrics(results)
    fig, axes, colors = _figure(len(metrics), judges, height=3.25 * len(metrics))
    for col, judge in enumerate(judges):
        for arm, runs in _runs_by_arm(results, judge):
            steps = [p["step"] for p in runs[0]["curve"]]
            for row, key in enumerate(metrics):
                stats = [mean_sd([r["curve"][i][key] for r in runs]) for i in range(len(steps))]
                mean = [m for m, _ in stats]
                sd = [s for _, s in stats]
                ax = axes[row][col]
                ax.plot(steps, mean, label=arm, color=colors[arm], linestyle="--" if arm == "grpo" else "-")
                ax.fill_between(
                    steps,
                    [m - s for m, s in zip(mean, sd)],
                    [m + s for m, s in zip(mean, sd)],
                    alpha=0.15,
                    color=colors[arm],
                )
        axes[0][col].set_title(f"{judge} judge")
        for row, key in enumerate(metrics):
            axes[row][col].set_ylabel(CURVE_LABELS[key])
        axes[-1][col].set_xlabel("GRPO step")
    _save(fig, axes, path)


DIAGNOSTICS = {
    "mixed_frac": "mixed groups (fraction)",
    "gamma_mixed": "gamma in mixed groups",
    "uniform_judge_acts": "uniform groups moved by the judge",
}


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of the last `window` non-NaN values at each position (NaN while there are none): smooths per-step noise."""
    out = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if not math.isnan(v)]
        out.append(statistics.fmean(recent) if recent else math.nan)
    return out


def plot_diagnostics(results: list[dict], judges: list[str], path: Path, window: int = 10) -> None:
    """Per training step, averaged over runs and smoothed over `window` steps: the fraction of mixed groups, gamma in
    mixed groups, and the fraction of uniform-outcome groups whose advantages the judge set; one column per judge."""
    fig, axes, colors = _figure(len(DIAGNOSTICS), judges, height=8)
    for col, judge in enumerate(judges):
        for arm, runs in _runs_by_arm(results, judge):
            steps = [d["step"] for d in runs[0]["diagnostics"]]
            for row, key in enumerate(DIAGNOSTICS):
                per_step = [mean_sd([r["diagnostics"][i][key] for r in runs])[0] for i in range(len(steps))]
                if all(math.isnan(v) for v in per_step):
                    continue  # plain GRPO has no judge
                linestyle = "--" if arm == "grpo" else "-"
                smoothed = moving_average(per_step, window)
                axes[row][col].plot(steps, smoothed, label=arm, color=colors[arm], linestyle=linestyle)
        axes[0][col].set_title(f"{judge} judge")
        for row, label in enumerate(DIAGNOSTICS.values()):
            axes[row][col].set_ylabel(label)
            axes[row][col].set_ylim(-0.05, 1.05)
        axes[-1][col].set_xlabel(f"GRPO step (mean over runs, {window}-step moving average)")
    _save(fig, axes, path)


# --- The whole lab ---------------------------------------------------------------------------------------------------


def run_lab(config: LabConfig, output_dir: str | os.PathLike) -> dict:
    """
    Runs the lab: SFT warm start(s) with a per-style check, every (arm, judge, seed) in parallel, then the report.

    Args:
        config ([`LabConfig`]):
            What to run.
        output_dir (`str` or `os.PathLike`):
            Folder for the SFT models, each run's `result.json`, `results.json`, `table.md`, `curves.png` (held-out
            accuracy and sound fraction over steps) and `diagnostics.png` (the group diagnostics over steps).

    Returns:
        `dict`: `sft_checks` (per SFT seed, held-out accuracy per reasoning style), `rows` (the summary), `results`
        (every run) and `seconds` (wall time).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sft_checks, specs = {}, []
    for sft_seed in range(config.sft_seeds):
        sft_dir = out / f"sft_{sft_seed}"
        if config.task == SCENES_TASK:
            check = scenes.warm_start(sft_dir, config, sft_seed)
        else:
            sft_start = time.perf_counter()
            train_sft(sft_dir, config, sft_seed)
            model = AutoModelForCausalLM.from_pretrained(sft_dir)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(sft_dir)
            check = sample_and_grade(
                model,
                tokenizer,
                make_problems(max(config.eval_prompts, 512), seed=99, variant=TASKS[config.task]),
                config.max_completion_length,
                1234,
            )
            check["seconds"] = time.perf_counter() - sft_start
        sft_checks[sft_seed] = check
        logger.info("SFT init %d: %s", sft_seed, format_sft_check(check))
        for seed in range(config.first_seed, config.first_seed + config.seeds):
            for arm in config.arms:
                for judge in [None] if ARMS[arm] is None else config.judges:
                    name = f"{arm}" if judge is None else f"{arm}-{judge}"
                    specs.append(
                        RunSpec(
                            arm,
                            judge,
                            seed,
                            sft_seed,
                            str(sft_dir),
                            str(out / f"runs/sft{sft_seed}/{name}/s{seed}"),
                            config,
                        )
                    )
    finished = {i: result for i, spec in enumerate(specs) if (result := load_finished(spec)) is not None}
    if finished:
        logger.info("Reusing %d finished run(s) of %d from %s.", len(finished), len(specs), out)
    todo = [spec for i, spec in enumerate(specs) if i not in finished]
    if config.workers == 1 or len(todo) <= 1:
        new_results = [run_arm(spec) for spec in todo]  # in this process: no start-up cost of a worker
    else:
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=get_context("spawn")) as pool:
            new_results = list(pool.map(run_arm, todo))
    fresh = iter(new_results)
    results = [finished[i] if i in finished else next(fresh) for i in range(len(specs))]
    rows = summarise(results)
    seconds = time.perf_counter() - start
    (out / "results.json").write_text(
        json.dumps({"config": asdict(config), "sft_checks": sft_checks, "results": results, "seconds": seconds})
    )
    table = markdown_table(rows)
    if config.sft_seeds > 1:
        table += "\nPer SFT init:\n\n" + markdown_table(summarise(results, per_sft_init=True))
    if any(r["judge"] is not None for r in results):
        table += "\nPaired differences (mean ± standard error over seeds):\n\n" + comparisons_table(results)
    (out / "table.md").write_text(table)
    plot_curves(results, config.judges, out / "curves.png")
    plot_diagnostics(results, config.judges, out / "diagnostics.png")
    return {"sft_checks": sft_checks, "rows": rows, "results": results, "seconds": seconds, "table": table}


def format_sft_check(check: dict[str, float]) -> str:
    """One line per reasoning style: its share of sampled completions and its accuracy."""
    if "mixed" in check:
        return scenes.format_scene_check(check)
    parts = [f"accuracy {check['accuracy']:.2f}"]
    for style in STYLES:
        acc = check[f"accuracy/{style}"]
        parts.append(f"{style} {check[f'style/{style}']:.2f} (acc {'-' if math.isnan(acc) else f'{acc:.2f}'})")
    return ", ".join(parts)
