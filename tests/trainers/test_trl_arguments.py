"""TrustGRPOTrainer takes GRPOTrainer's arguments that add reward columns: `reward_processing_classes` and an
`environment_factory` whose environment defines `get_reward` (TRL 1.16 appends its column after the thinking column).
Each case runs one step beside GRPOTrainer from the same model, seed and data: with alpha = 0 (no thinking reward) the
advantages are GRPO's, and with the thinking reward on, every column but the thinking one is GRPO's."""

import pytest
import torch
from transformers import AutoProcessor
from trl import GRPOTrainer
from trl.chat_template_utils import qwen3_vl_chat_template

from sophia_trl.grpo_trainer import THINKING_REWARD_NAME, TrustGRPOTrainer
from sophia_trl.judges import response_of


def outcome_reward(completions, **kwargs):
    return [(len(response_of(c)) % 3) / 2 for c in completions]


class LengthJudge:
    def score(self, questions, responses, images=None):
        return [(len(r) % 5) / 4 for r in responses]


class CountEnv:
    """An environment without tools that owns a reward: 0, 0.25, 0.5, 0.75 by the order of the resets (rollouts), so
    that the column varies within each group and moves the advantages."""

    resets = 0

    def reset(self, **kwargs):
        self.value = (CountEnv.resets % 4) / 4
        CountEnv.resets += 1

    def get_reward(self) -> float:
        return self.value


class Recording:
    """Keeps each step's advantages and the reward columns TRL logged, by reward name."""

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.seen = getattr(self, "seen", [])
        self.seen.append((output["advantages"].clone(), {k: list(v) for k, v in self._logs["rewards"].items()}))
        return output


class RecordingGRPO(Recording, GRPOTrainer):
    pass


class RecordingTrustGRPO(Recording, TrustGRPOTrainer):
    pass


CASES = {
    "reward_processing_classes": dict(reward_processing_classes="tokenizer"),
    "environment": dict(environment_factory=CountEnv),
    "both": dict(reward_processing_classes="tokenizer", environment_factory=CountEnv),
}


@pytest.fixture
def run_one_step(tiny_vlm_dir, tiny_grpo_config, tiny_grpo_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")

    def run(trainer_class, case, **extra):
        CountEnv.resets = 0
        processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
        kwargs = dict(CASES[case])
        if "environment_factory" in kwargs:  # TRL asks for a chat template that renders tool calls
            processor.chat_template = processor.tokenizer.chat_template = qwen3_vl_chat_template
        if kwargs.get("reward_processing_classes") == "tokenizer":
            kwargs["reward_processing_classes"] = [processor.tokenizer]
        config = extra.pop("config", {})
        trainer = trainer_class(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            args=tiny_grpo_config(tmp_path / trainer_class.__name__, max_steps=1, **config),
            train_dataset=tiny_grpo_dataset,
            processing_class=processor,
            **kwargs,
            **extra,
        )
        trainer.train()
        return trainer

    return run


@pytest.mark.parametrize(
    "case", ["reward_processing_classes", "environment", pytest.param("both", marks=pytest.mark.slow)]
)
def test_trl_reward_arguments_work_as_with_grpo_trainer(run_one_step, case):
    grpo = run_one_step(RecordingGRPO, case)
    [(grpo_advantages, grpo_rewards)] = grpo.seen

    # No thinking reward (alpha = 0): the advantages are GRPO's.
    silent = run_one_step(RecordingTrustGRPO, case, thinking_judge=LengthJudge(), config=dict(thinking_reward_alpha=0))
    [(advantages, rewards)] = silent.seen
    torch.testing.assert_close(advantages, grpo_advantages)

    trust = run_one_step(RecordingTrustGRPO, case, thinking_judge=LengthJudge())
    [(_, rewards)] = trust.seen
    names = [*grpo.reward_func_names[:1], THINKING_REWARD_NAME, *grpo.reward_func_names[1:]]
    assert trust.reward_func_names == list(rewards) == names
    if "reward_processing_classes" in CASES[case]:
        assert trust.reward_processing_classes[0] is trust.processing_class.tokenizer
        assert trust.reward_processing_classes[1] is None  # the thinking column's
    # Every column but the thinking one is GRPO's (the first step's completions are the same); the thinking column
    # holds alpha * R_t (gamma = 1 in this run's groups or not, the raw judge scores stay in thinking_reward_raw).
    for name in grpo.reward_func_names:
        assert rewards[name] == pytest.approx(grpo_rewards[name]), name
    if case != "reward_processing_classes":
        assert rewards["CountEnv"] == [0.0, 0.25, 0.5, 0.75] * 2
    raw = trust._logs["extra"]["thinking_reward_raw"]
    assert all(t <= trust.args.thinking_reward_alpha * r + 1e-6 for t, r in zip(rewards[THINKING_REWARD_NAME], raw))
    assert any(t > 0 for t in rewards[THINKING_REWARD_NAME])


def test_reliability_separate_normalises_environment_columns_with_the_outcome(run_one_step):
    # reliability_separate normalises the columns other than the thinking one jointly; with alpha = 0 and
    # scale_rewards="none" that is GRPO's group-normalised advantage of outcome + environment reward.
    grpo = run_one_step(RecordingGRPO, "environment")
    config = dict(thinking_reward_alpha=0, trust_rule="reliability_separate", scale_rewards="none")
    separate = run_one_step(RecordingTrustGRPO, "environment", thinking_judge=LengthJudge(), config=config)
    torch.testing.assert_close(separate.seen[0][0], grpo.seen[0][0], atol=1e-5, rtol=1e-5)


def test_reward_processing_classes_of_the_wrong_length_name_the_fix(tiny_vlm_dir, tiny_grpo_config, tmp_path):
    with pytest.raises(ValueError, match="reward_processing_classes has 2 entries for 1 reward functions"):
        TrustGRPOTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            thinking_judge=LengthJudge(),
            args=tiny_grpo_config(tmp_path),
            reward_processing_classes=[None, None],
        )
