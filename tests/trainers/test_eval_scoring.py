"""Evaluation batches: scored by the outcome reward alone with `thinking_reward_on_eval=False`, as in training otherwise."""

import statistics
from concurrent.futures import Future

import pytest
import torch
from datasets import Dataset
from PIL import Image

from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import response_of

G = 4
LENGTH_WEIGHT = 0.5


def outcome_of(text: str) -> float:
    return (len(text) % 3) / 2


def length_of(text: str) -> float:
    return (len(text) % 4) / 4


def outcome_reward(completions, **kwargs):
    return [outcome_of(response_of(c)) for c in completions]


def length_reward(completions, **kwargs):
    return [length_of(response_of(c)) for c in completions]


def judge_of(text: str) -> float:
    return (len(text) % 5) / 4  # varies within a group, unlike the outcome and length columns' sum


class ModeRecordingJudge:
    """Scores `judge_of` and records whether the trainer was training or evaluating when it was asked."""

    def __init__(self):
        self.trainer = None
        self.modes = []

    def score(self, questions, responses, images=None):
        self.modes += ["train" if self.trainer.model.training else "eval"] * len(responses)
        return [judge_of(r) for r in responses]


class OverlappedModeRecordingJudge(ModeRecordingJudge):
    """The same judge with `score_async`: the trainer sends its requests right after generation."""

    def score_async(self, questions, responses, images=None):
        future = Future()
        future.set_result(self.score(questions, responses, images))
        return future


class EvalRecordingTrainer(TrustGRPOTrainer):
    """Keeps the completions and advantages of every evaluation batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_records = []

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            texts = [self.processing_class.decode(ids, skip_special_tokens=True) for ids in output["completion_ids"]]
            self.eval_records.append((texts, output["advantages"].clone()))
        return output


def group_normalized(rewards: list[float]) -> torch.Tensor:
    """GRPO's advantages written out group by group: (r - group mean) / (group std + 1e-4)."""
    advantages = []
    for g in range(0, len(rewards), G):
        group = rewards[g : g + G]
        mean, std = statistics.fmean(group), statistics.stdev(group)
        advantages += [(r - mean) / (std + 1e-4) for r in group]
    return torch.tensor(advantages)


def eval_dataset() -> Dataset:
    colours = ["red", "green", "blue", "yellow"]
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": f"How many {colours[i]} shapes?"}] for i in range(4)],
            "image": [Image.new("RGB", (56, 56), colours[i]) for i in range(4)],
        }
    )


EVAL_EVERY_STEP = dict(
    reward_weights=[1.0, LENGTH_WEIGHT], eval_strategy="steps", eval_steps=1, per_device_eval_batch_size=8
)


def train_with_evaluation(judge, tiny_vlm_dir, args, train_dataset) -> EvalRecordingTrainer:
    """Trains the tiny run with the outcome and length rewards, evaluating after every step; returns the trainer."""
    trainer = EvalRecordingTrainer(
        model=str(tiny_vlm_dir),
        reward_funcs=[outcome_reward, length_reward],
        thinking_judge=judge,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset(),
    )
    judge.trainer = trainer
    trainer.train()
    return trainer


@pytest.mark.parametrize("overlapped", [False, True])
@pytest.mark.parametrize("on_eval", [False, True])
def test_eval_batches_use_the_judge_only_when_asked(
    tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset, on_eval, overlapped
):
    judge = OverlappedModeRecordingJudge() if overlapped else ModeRecordingJudge()
    trainer = train_with_evaluation(
        judge,
        tiny_vlm_dir,
        tiny_grpo_config(
            tmp_path,
            thinking_reward_annealing="none",  # alpha = 0.3 at every step, train and eval
            trust_weighting=False,  # gamma = 1: the thinking term is alpha * judge score
            thinking_reward_on_eval=on_eval,
            **EVAL_EVERY_STEP,
        ),
        tiny_grpo_dataset,
    )

    assert trainer.eval_records, "no evaluation batch ran: the test would not check evaluation"
    assert judge.modes.count("train") == 2 * 2 * G  # training asks the judge about every completion either way
    num_eval_rows = sum(len(texts) for texts, _ in trainer.eval_records)
    assert judge.modes.count("eval") == (num_eval_rows if on_eval else 0)
    for texts, advantages in trainer.eval_records:
        base = [outcome_of(t) + LENGTH_WEIGHT * length_of(t) for t in texts]
        rewards = [b + 0.3 * judge_of(t) for b, t in zip(base, texts)] if on_eval else base
        torch.testing.assert_close(advantages, group_normalized(rewards), atol=1e-4, rtol=1e-4)

    eval_logs = [entry for entry in trainer.state.log_history if "eval_rewards/thinking_reward/mean" in entry]
    assert eval_logs
    for entry in eval_logs:
        # The thinking column adds nothing without the judge; the judge's metrics are logged only when it is asked.
        assert (entry["eval_rewards/thinking_reward/mean"] > 0) == on_eval
        assert ("eval_trust/judge_calls" in entry) == on_eval


def test_eval_batches_without_the_judge_under_normalize_then_sum(
    tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset
):
    """GDPO without the judge on evaluation batches: norm(R_o) + 0.5 * norm(R_len) per group, normalised over the batch,
    as TRL's own normalize_then_sum gives (the trainer hands TRL the columns normalised)."""
    args = tiny_grpo_config(
        tmp_path, multi_objective_aggregation="normalize_then_sum", thinking_reward_on_eval=False, **EVAL_EVERY_STEP
    )
    trainer = train_with_evaluation(ModeRecordingJudge(), tiny_vlm_dir, args, tiny_grpo_dataset)

    assert trainer.eval_records, "no evaluation batch ran: the test would not check evaluation"
    for texts, advantages in trainer.eval_records:
        outcome = [outcome_of(t) for t in texts]
        length = [length_of(t) for t in texts]
        sums = [
            o + LENGTH_WEIGHT * n
            for g in range(0, len(texts), G)
            for o, n in zip(column_normalized(outcome[g : g + G]), column_normalized(length[g : g + G]))
        ]
        mean, std = statistics.fmean(sums), statistics.stdev(sums)
        expected = torch.tensor([(s - mean) / (std + 1e-4) for s in sums])
        torch.testing.assert_close(advantages, expected, atol=1e-4, rtol=1e-4)


def column_normalized(values: list[float]) -> list[float]:
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return [(v - mean) / (std + 1e-4) for v in values]
