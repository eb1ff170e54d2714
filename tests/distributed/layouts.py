"""Run under torchrun (or plain python for one process): short Trust-GRPO runs whose rewards must not depend on the
launch layout. Each case trains a few steps and writes, per generation batch, the advantages handed to the loss, the
completions and the `trust/*` metrics of this process.

    python tests/distributed/layouts.py MODEL_DIR OUT_DIR                            # 1 process
    torchrun --nproc_per_node 2 tests/distributed/layouts.py MODEL_DIR OUT_DIR       # 2 processes

Generation is replaced by a table: the completion of global row g (prompt p, position k = g % G in its group) is a
fixed text built from (p, k), which carries the outcome reward (`o=...`) and the judge's score (`score=...`, or the
loopback server's `[[garbage]]`, an unparsable reply: a failed call). The sampler draws the same prompts whatever the
layout (the global generation batch is the same), so every layout must give the same advantages and metrics. The
judges read the score from the text: `TableJudge` in-process, `OpenAIJudge` against a `LoopbackJudgeServer` on the
overlapped path.

The `hand_worked` case calls `_calculate_rewards` on a fixed batch of 3 groups of 4 (with 2 processes the second
group is split across them), for the values worked out by hand in the test.

The last cases (`judge_error*`, 2 processes only) have a judge that raises on rank 1 alone, when scoring or when its
request is sent after generation: every rank must raise the same error, which each rank writes down.
"""

import json
import os
import random
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from datasets import Dataset

from sophia_trl.configs import TrustGRPOConfig
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import OpenAIJudge, response_of
from sophia_trl.judges.loopback import LoopbackJudgeServer

NUM_PROMPTS = 8
G = 4  # num_generations of every case
OUTCOMES = [0.0, 0.1, 0.5, 1.0]  # span the official preset's thresholds (0.1, 0.2, 0.9) and correct_threshold 0.5

# name -> (config overrides, global generation batch, judge: "table" | "server" | "rank1_raises[_at_send]")
CASES = {
    "whole_groups": (dict(thinking_reward_T=2, max_steps=2), 16, "table"),
    "split_group": (dict(trust_rule="reliability", max_steps=2), 12, "table"),
    # Generation every steps_per_generation * num_iterations = 4 micro-steps = 2 optimizer steps; T doubled, so the
    # k-th generation (at global step 2k) has the annealed alpha of whole_groups' k-th (at step k).
    "accumulation": (
        dict(
            thinking_reward_T=4,
            max_steps=4,
            gradient_accumulation_steps=2,
            steps_per_generation=2,
            num_iterations=2,
        ),
        16,
        "table",
    ),
    "overlapped": (dict(thinking_reward_T=2, max_steps=2), 16, "server"),
    "official": (dict(thinking_reward_preset="official", max_steps=2), 12, "server"),
    "scale_batch": (dict(scale_rewards="batch", max_steps=2), 16, "table"),
    # The counters to a gamed judge on a split group: the lengths are gathered, GDPO's columns normalised after it.
    "gamed_counters": (
        dict(
            thinking_reward_gate="correct",
            thinking_reward_length_neutral=True,
            multi_objective_aggregation="normalize_then_sum",
            max_steps=2,
        ),
        12,
        "table",
    ),
    "judge_error": (dict(max_steps=1), 16, "rank1_raises"),
    "judge_error_at_send": (dict(max_steps=1), 16, "rank1_raises_at_send"),
}


def completion_text(prompt_id: int, position: int) -> str:
    """The fixed completion of a prompt's `position`-th generation: outcome, and a judge score or a failed call."""
    rng = random.Random(f"{prompt_id}-{position}")
    # Prompts 0 and 1 get uniform groups (all right, all wrong); the others draw their outcomes.
    outcome = 1.0 if prompt_id == 0 else 0.0 if prompt_id == 1 else rng.choice(OUTCOMES)
    judged = "[[garbage]]" if rng.random() < 0.2 else f"score={rng.randrange(9) / 8}"
    return f"o={outcome} {judged}"


def outcome_reward(completions, **kwargs):
    return [float(re.search(r"o=([0-9.]+)", response_of(c)).group(1)) for c in completions]


class TableJudge:
    """Reads the score from the response, as the loopback server does; `[[garbage]]` is a failed call."""

    def score(self, questions, responses, images=None):
        return [None if "[[garbage]]" in r else float(re.search(r"score=([0-9.]+)", r).group(1)) for r in responses]


class JudgeUnreachable(ConnectionError):
    pass


class RankOneRaisingJudge(TableJudge):
    def __init__(self, rank: int):
        self.rank = rank

    def score(self, questions, responses, images=None):
        if self.rank == 1:
            raise JudgeUnreachable("judge at http://judge-host:8001/v1 refused the connection (rank 1)")
        return super().score(questions, responses, images)


class RankOneRaisingAtSendJudge(RankOneRaisingJudge):
    """A server judge whose request fails on rank 1 as it is sent, right after generation (the overlapped path)."""

    def __init__(self, rank: int):
        super().__init__(rank)
        self.executor = ThreadPoolExecutor(max_workers=1)

    def score_async(self, questions, responses, images=None):
        if self.rank == 1:
            raise JudgeUnreachable("judge at http://judge-host:8001/v1 refused the connection (rank 1)")
        return self.executor.submit(self.score, questions, responses, images)


class LayoutTrainer(TrustGRPOTrainer):
    """Generates from the table and records what each generation batch hands to the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tokenizer = self.processing_class.tokenizer
        first = self.accelerator.process_index * len(prompt_ids)  # this process's first global row
        completion_ids = []
        for i, ids in enumerate(prompt_ids):
            prompt_id = int(re.search(r"Question (\d+)", tokenizer.decode(ids)).group(1))
            text = completion_text(prompt_id, (first + i) % num_generations)
            completion_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        return completion_ids, None

    def _generate_and_score_completions(self, inputs):
        metrics = self._metrics["train"]
        seen = {k: len(v) for k, v in metrics.items()}
        output = super()._generate_and_score_completions(inputs)
        texts = self.processing_class.batch_decode(output["completion_ids"], skip_special_tokens=True)
        self.records.append(
            {
                "global_step": self.state.global_step,
                "texts": texts,
                "advantages": output["advantages"].tolist(),
                "metrics": {k: v[seen.get(k, 0) :] for k, v in metrics.items() if k.startswith("trust/")},
            }
        )
        return output


# The hand-worked case: completion text -> (outcome reward, judge score), 3 groups of 4, no failed call; with 2
# processes the second group (rows 4-7) is split across them.
HAND_WORKED = {
    "c0": (1.0, 0.2), "c1": (1.0, 0.4), "c2": (0.0, 0.9), "c3": (0.0, 0.7),  # gamma exp(-0.5)
    "c4": (1.0, 0.1), "c5": (0.0, 0.5), "c6": (1.0, 0.3), "c7": (0.0, 0.9),  # gamma exp(-0.5), split group
    "c8": (1.0, 0.9), "c9": (1.0, 0.8), "c10": (1.0, 0.7), "c11": (0.0, 0.1),  # gamma 1
}  # fmt: skip


class HandWorkedJudge:
    def score(self, questions, responses, images=None):
        return [HAND_WORKED[r][1] for r in responses]


def hand_worked_rewards(model_dir: str, out_dir: Path, num_processes: int, rank: int) -> dict:
    """The reward columns `_calculate_rewards` returns for this process's slice of the HAND_WORKED batch."""
    n = 12 // num_processes

    def outcome(completions, **kwargs):
        return [HAND_WORKED[response_of(c)][0] for c in completions]

    args = TrustGRPOConfig(
        output_dir=str(out_dir / "hand_worked"),
        per_device_train_batch_size=n,
        num_generations=G,
        max_completion_length=8,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "q"}]] * 3})
    trainer = TrustGRPOTrainer(
        model=model_dir, reward_funcs=[outcome], thinking_judge=HandWorkedJudge(), args=args, train_dataset=dataset
    )
    trainer.model.train()
    names = [f"c{i}" for i in range(rank * n, (rank + 1) * n)]
    inputs = [{"prompt": [{"role": "user", "content": "q"}]} for _ in names]
    prompts = [x["prompt"] for x in inputs]
    completions = [[{"role": "assistant", "content": name}] for name in names]
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[0]] * n)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("trust/")}
    return {"rewards": rewards.tolist(), "metrics": metrics}


def run_case(name: str, model_dir: str, out_dir: Path, num_processes: int, rank: int) -> dict:
    overrides, global_batch, judge_kind = CASES[name]
    steps_per_generation = overrides.get("steps_per_generation", 1)
    args = TrustGRPOConfig(
        output_dir=str(out_dir / name),
        per_device_train_batch_size=global_batch // num_processes // steps_per_generation,
        num_generations=G,
        max_completion_length=32,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        **overrides,
    )
    dataset = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": f"Question {p}: how many shapes?"}] for p in range(NUM_PROMPTS)]}
    )

    def train(judge):
        trainer = LayoutTrainer(
            model=model_dir, reward_funcs=[outcome_reward], thinking_judge=judge, args=args, train_dataset=dataset
        )
        try:
            trainer.train()
        except Exception as error:  # the judge_error case: every rank must get here, with the same error
            return {"error": type(error).__name__, "message": str(error), "notes": getattr(error, "__notes__", [])}
        return {"records": trainer.records}

    if judge_kind == "server":
        with LoopbackJudgeServer() as server, OpenAIJudge(server.url, "judge", timeout=10, max_retries=0) as judge:
            return train(judge)
    if judge_kind == "rank1_raises":
        return train(RankOneRaisingJudge(rank))
    if judge_kind == "rank1_raises_at_send":
        return train(RankOneRaisingAtSendJudge(rank))
    return train(TableJudge())


def main(model_dir: str, out_dir: str) -> None:
    out = Path(out_dir)
    torch.manual_seed(0)
    num_processes = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    results = {"hand_worked": hand_worked_rewards(model_dir, out, num_processes, rank)}
    for name in CASES:
        if name.startswith("judge_error") and num_processes == 1:
            continue
        results[name] = run_case(name, model_dir, out, num_processes, rank)
        # Written after every case, so a hang in a later case leaves the earlier results to read.
        Path(out, f"rank{rank}.json").write_text(json.dumps({"num_processes": num_processes, **results}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
