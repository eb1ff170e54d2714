"""Run under torchrun: each process scores its slice of a fixed batch and writes the gathered reward columns.

    torchrun --nproc_per_node 2 tests/distributed/rewards_across_processes.py MODEL_DIR OUT_DIR

With 12 rows, 3 groups of 4 and 2 processes, the second group (rows 4-7) is split across the processes.
"""

import json
import sys
from pathlib import Path

from datasets import Dataset

from sophia_trl.configs import TrustGRPOConfig
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import response_of

G = 4
# Completion text -> (outcome reward, judge score).
TABLE = {
    "c0": (1.0, 0.2), "c1": (1.0, 0.4), "c2": (0.0, 0.9), "c3": (0.0, 0.7),  # gamma exp(-0.5)
    "c4": (1.0, 0.1), "c5": (0.0, 0.5), "c6": (1.0, 0.3), "c7": (0.0, 0.9),  # gamma exp(-0.5), split group
    "c8": (1.0, 0.9), "c9": (1.0, 0.8), "c10": (1.0, 0.7), "c11": (0.0, 0.1),  # gamma 1
}  # fmt: skip


def outcome_reward(completions, **kwargs):
    return [TABLE[response_of(c)][0] for c in completions]


class TableJudge:
    def score(self, questions, responses, images=None):
        return [TABLE[r][1] for r in responses]


def main(model_dir: str, out_dir: str) -> None:
    args = TrustGRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=12,  # overridden below for 2 processes
        num_generations=G,
        max_completion_length=8,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    num_processes = args.world_size
    args.per_device_train_batch_size = 12 // num_processes
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "q"}]] * 3})
    trainer = TrustGRPOTrainer(
        model=model_dir, reward_funcs=[outcome_reward], thinking_judge=TableJudge(), args=args, train_dataset=dataset
    )
    trainer.model.train()
    rank = trainer.accelerator.process_index
    n = 12 // num_processes
    names = [f"c{i}" for i in range(rank * n, (rank + 1) * n)]
    inputs = [{"prompt": [{"role": "user", "content": "q"}]} for _ in names]
    prompts = [x["prompt"] for x in inputs]
    completions = [[{"role": "assistant", "content": name}] for name in names]
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[0]] * n)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("trust/")}
    result = {"num_processes": num_processes, "rewards": rewards.tolist(), "metrics": metrics}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
