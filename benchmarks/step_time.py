"""What the thinking judge adds to a Trust-GRPO step: median step time against plain GRPO on the same policy and data.

One `TrustGRPOTrainer` trains one policy (a Qwen2.5-VL built offline with random weights, large enough that its
log-prob passes take a measurable time) and switches the setting at every step, round-robin, so that a shared or
throttled machine slows every setting alike; the median of each setting's steps after the warm-up rounds is reported.
The settings, each with `beta` 0 and 0.04 (the paper's KL, which adds the reference model's log-prob pass):

- `grpo`: no judge (the thinking-reward column stays empty: plain GRPO on the outcome reward);
- `server S=.. sync` / `server S=.. overlap`: `OpenAIJudge` against a loopback OpenAI-compatible server that takes S
  seconds per request, with the requests sent inside `_calculate_rewards` (sync) or as soon as generation returns
  (overlap, the default for servers);
- `local generative` / `local scalar`: `TransformersJudge` and `ScalarJudge` on a tiny judge, in the same process.

For each setting it prints the median step, the time of the log-prob passes before the rewards, Trust-GRPO step /
GRPO step and (Trust-GRPO - GRPO) / S. With the overlap, (Trust-GRPO - GRPO) / S should stay small while S is at most
the log-prob time, and only the excess of S over it should show above.

```bash
# CPU (2 cores: ~8 minutes for the server settings, ~2 for the local judges; the reference pass takes ~0.3 s)
python benchmarks/step_time.py --no_local
python benchmarks/step_time.py --no_server
# One GPU, bf16, a ~250 M-parameter policy with random weights (nothing is downloaded, vLLM is not needed)
python benchmarks/step_time.py --device cuda --bf16 --hidden_size 1024 --num_layers 24 \
    --batch_size 32 --num_generations 8 --max_completion_length 512 --service_times 0.25 0.5 1 2 4
```
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/step_time.py` from the repo root

from benchmarks.judge_throughput import loopback_server_process  # noqa: E402


def build_policy(
    output_dir: Path, hidden_size: int, num_layers: int, seed: int = 0, vision_depth: int | None = None
) -> Path:
    """A Qwen2.5-VL with the tiny tokenizer and vision tower, and a text model of the given width and depth;
    `vision_depth` blocks of the text model's width in the vision tower instead of the tiny one's 2 narrow blocks."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from sophia_trl.tiny.models import build_tiny_config, build_tiny_processor, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(seed=seed)
    processor = build_tiny_processor(tokenizer)
    config = build_tiny_config(tokenizer, hidden_size=hidden_size)
    config.text_config.num_hidden_layers = num_layers
    if vision_depth is not None:
        vision = config.vision_config
        vision.depth, vision.fullatt_block_indexes = vision_depth, [vision_depth - 1]
        vision.hidden_size, vision.intermediate_size, vision.num_heads = hidden_size, 4 * hidden_size, 4
    config.text_config.layer_types = ["full_attention"] * num_layers
    config.text_config.intermediate_size = (
        4 * hidden_size
    )  # the usual MLP ratio: the passes cost what a real model's do
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir


def build_dataset(num_rows: int):
    from datasets import Dataset

    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    return Dataset.from_dict(
        {
            "prompt": [
                [
                    {
                        "role": "user",
                        "content": f"How many {colours[i % 6]} shapes are in the picture? Think step by step.",
                    }
                ]
                for i in range(num_rows)
            ],
            "image": [Image.new("RGB", (56, 56), colours[i % 6]) for i in range(num_rows)],
            "solution": [str(i % 7) for i in range(num_rows)],
        }
    )


def outcome_reward(completions: list, solution: list[str], **kwargs: Any) -> list[float]:
    """A cheap rule-based reward: 1 when the solution's digit appears in the completion."""
    return [float(s in c[0]["content"]) for c, s in zip(completions, solution)]


@dataclass
class Setting:
    name: str
    beta: float
    judge: Any = None  # None: plain GRPO
    overlap: bool = False
    service_time: float | None = None


def make_trainer_class():
    from sophia_trl.grpo_trainer import TrustGRPOTrainer

    class TimedTrustGRPOTrainer(TrustGRPOTrainer):
        """Times the log-prob passes that run between generation and the rewards, and the reward computation."""

        timings: dict[str, float]

        def _generate_and_score_completions(self, inputs):
            self.timings = {"logprobs": 0.0, "rewards": 0.0}
            self._scoring = True
            start = time.perf_counter()
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self._scoring = False
                # Everything between generation and the advantages: the part of the step the judge can lengthen.
                self.timings["scoring"] = time.perf_counter() - start - self.timings["generate"]

        def _generate(self, prompts):
            start = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self.timings["generate"] = time.perf_counter() - start

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super()._get_per_token_logps_and_entropies(*args, **kwargs)
            finally:
                if getattr(self, "_scoring", False):
                    self.timings["logprobs"] += time.perf_counter() - start

        def _calculate_rewards(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super()._calculate_rewards(*args, **kwargs)
            finally:
                self.timings["rewards"] += time.perf_counter() - start

    return TimedTrustGRPOTrainer


def make_round_robin_callback(trainer_ref: list, settings: list[Setting], records: dict[str, list[dict]]):
    from transformers import TrainerCallback

    class RoundRobin(TrainerCallback):
        """Switches judge, beta and overlap at every step and records each step's wall time."""

        def on_step_begin(self, args, state, control, **kwargs):
            trainer = trainer_ref[0]
            setting = settings[state.global_step % len(settings)]
            trainer.thinking_judge = setting.judge
            trainer.beta = setting.beta
            trainer.overlap_judge = setting.overlap
            self.setting = setting
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - self.start
            trainer = trainer_ref[0]
            record = {"step": elapsed, **getattr(trainer, "timings", {})}
            records[self.setting.name].append(record)
            print(
                f"step {state.global_step:4d} {self.setting.name:32s} "
                + " ".join(f"{k} {v:.3f}" for k, v in record.items()),
                flush=True,
            )

    return RoundRobin()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden_size", type=int, default=512, help="Width of the policy's text model.")
    parser.add_argument(
        "--num_layers", type=int, default=8, help="Layers of the policy's text model (8: ~0.3 s per log-prob pass)."
    )
    parser.add_argument(
        "--batch_size", type=int, default=8, help="Completions per step (per_device_train_batch_size)."
    )
    parser.add_argument("--num_generations", type=int, default=4, help="Completions per prompt (G).")
    parser.add_argument("--max_completion_length", type=int, default=24, help="Tokens per completion.")
    parser.add_argument(
        "--service_times", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0], help="Seconds per judge request (S)."
    )
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.04], help="KL coefficients to run.")
    parser.add_argument("--rounds", type=int, default=6, help="Measured steps per setting (after the warm-up).")
    parser.add_argument("--warmup_rounds", type=int, default=1, help="Rounds of all settings left out of the medians.")
    parser.add_argument("--no_sync", action="store_true", help="Skip the synchronous server settings.")
    parser.add_argument("--no_local", action="store_true", help="Skip the local generative and scalar judges.")
    parser.add_argument("--no_server", action="store_true", help="Skip the server settings (local judges only).")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda'.")
    parser.add_argument("--bf16", action="store_true", help="Train in bf16 (GPU).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoProcessor

    from sophia_trl.configs import TrustGRPOConfig
    from sophia_trl.judges import OpenAIJudge, ScalarJudge, TransformersJudge
    from sophia_trl.judges.scalar_model import load_scalar_reward_model
    from sophia_trl.tiny.models import build_tiny_vlm

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        policy_dir = build_policy(tmp / "policy", args.hidden_size, args.num_layers, seed=args.seed)
        judges: dict[float, OpenAIJudge] = {}
        for s in [] if args.no_server else args.service_times:
            url = stack.enter_context(loopback_server_process(s, fast=True))
            judges[s] = stack.enter_context(OpenAIJudge(url, "judge", cache_size=0, max_concurrency=64, timeout=60))

        if not args.no_local:
            judge_dir = build_tiny_vlm(tmp / "judge", seed=1)
            scalar_dir = tmp / "scalar"
            load_scalar_reward_model(str(judge_dir)).save_pretrained(scalar_dir)
            AutoProcessor.from_pretrained(judge_dir).save_pretrained(scalar_dir)
            generative = TransformersJudge(judge_dir, batch_size=args.batch_size, device=args.device, cache_size=0)
            scalar = ScalarJudge(scalar_dir, batch_size=args.batch_size, device=args.device, cache_size=0)

        settings: list[Setting] = []
        for beta in args.betas:
            settings.append(Setting(f"grpo beta={beta:g}", beta))
            for s in [] if args.no_server else args.service_times:
                if not args.no_sync:
                    settings.append(Setting(f"server S={s:g} sync beta={beta:g}", beta, judges[s], False, s))
                settings.append(Setting(f"server S={s:g} overlap beta={beta:g}", beta, judges[s], True, s))
            if not args.no_local:
                settings.append(Setting(f"local generative beta={beta:g}", beta, generative))
                settings.append(Setting(f"local scalar beta={beta:g}", beta, scalar))

        rounds = args.rounds + args.warmup_rounds
        config = TrustGRPOConfig(
            output_dir=str(tmp / "out"),
            per_device_train_batch_size=args.batch_size,
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            max_steps=rounds * len(settings),
            beta=max(args.betas),  # a reference model exists; steps with beta 0 skip its pass
            learning_rate=1e-6,
            temperature=1.0,
            thinking_reward_alpha=0.3,
            thinking_reward_annealing="none",
            use_cpu=args.device == "cpu",
            bf16=args.bf16,
            gradient_checkpointing=False,
            logging_steps=10**6,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            seed=args.seed,
        )
        records: dict[str, list[dict]] = {s.name: [] for s in settings}
        trainer_ref: list = []
        trainer = make_trainer_class()(
            model=str(policy_dir),
            reward_funcs=[outcome_reward],
            args=config,
            train_dataset=build_dataset(rounds * len(settings) * args.batch_size // args.num_generations + 8),
            thinking_judge=next(setting.judge for setting in settings if setting.judge is not None),
            callbacks=[make_round_robin_callback(trainer_ref, settings, records)],
        )
        trainer_ref.append(trainer)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        print(
            f"policy: {n_params / 1e6:.0f} M parameters (hidden {args.hidden_size}, {args.num_layers} layers), "
            f"{args.batch_size} completions of {args.max_completion_length} tokens per step, {len(settings)} settings "
            f"x {rounds} rounds ({args.warmup_rounds} warm-up), device {args.device}",
            flush=True,
        )
        load_before = _uptime()
        trainer.train()
        load_after = _uptime()

    print(f"load before: {load_before}\nload after:  {load_after}")
    print_table(settings, records, args.warmup_rounds)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def print_table(settings: list[Setting], records: dict[str, list[dict]], warmup_rounds: int) -> None:
    def median(name: str, key: str) -> float:
        values = [r.get(key, float("nan")) for r in records[name][warmup_rounds:]]
        return statistics.median(values) if values else float("nan")

    print(
        "\n| setting | step (s) | after generation (s) | log-prob passes (s) | rewards (s) | Trust-GRPO / GRPO | "
        "(Trust-GRPO - GRPO) / S | same, after generation | judge wait in rewards / S |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for setting in settings:
        grpo_name = f"grpo beta={setting.beta:g}"
        step, grpo = median(setting.name, "step"), median(grpo_name, "step")
        scoring, grpo_scoring = median(setting.name, "scoring"), median(grpo_name, "scoring")
        ratio = f"{step / grpo:.2f}" if setting.judge is not None else ""
        excess = f"{(step - grpo) / setting.service_time:.2f}" if setting.service_time else ""
        excess_scoring = f"{(scoring - grpo_scoring) / setting.service_time:.2f}" if setting.service_time else ""
        # The time `_calculate_rewards` spends beyond GRPO's: the judge's latency the step waits for.
        rewards, grpo_rewards = median(setting.name, "rewards"), median(grpo_name, "rewards")
        wait = f"{(rewards - grpo_rewards) / setting.service_time:.2f}" if setting.service_time else ""
        print(
            f"| {setting.name} | {step:.3f} | {scoring:.3f} | {median(setting.name, 'logprobs'):.3f} | "
            f"{rewards:.3f} | {ratio} | {excess} | {excess_scoring} | {wait} |"
        )


if __name__ == "__main__":
    main()
