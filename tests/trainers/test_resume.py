"""TrustGRPOTrainer resumed from a checkpoint logs what the uninterrupted run logs: the reliability rules' running AUC
and the judge failure budget's window are saved with each checkpoint (also the one SIGTERM asks for) and restored."""

import json
import os
import signal

import pytest
import torch
from transformers import Trainer, TrainerCallback

from sophia_trl.callbacks import SaveOnPreemptionCallback
from sophia_trl.grpo_trainer import TRUST_STATE_NAME, TrustGRPOTrainer
from sophia_trl.judges import response_of
from sophia_trl.judges.health import JudgeFailureBudget, JudgeOutageError
from sophia_trl.trl_compat import TRANSFORMERS_VERSION

RULES = {
    "paper": dict(trust_rule="paper"),
    "reliability": dict(trust_rule="reliability"),
    "reliability_separate": dict(trust_rule="reliability_separate", scale_rewards="none"),
}


def outcome_of(text: str) -> float:
    return (len(text) % 3) / 2  # 0, 0.5 or 1: deterministic in the completion


def outcome_reward(completions, **kwargs):
    return [outcome_of(response_of(c)) for c in completions]


class LengthJudge:
    """Scores by length, fails (None) on lengths divisible by 7: a judge whose ranking the AUC estimate follows."""

    def score(self, questions, responses, images=None):
        return [None if len(r) % 7 == 0 else (len(r) % 5) / 4 for r in responses]


class FailingJudge:
    def score(self, questions, responses, images=None):
        return [None] * len(responses)


class StopAfter(TrainerCallback):
    """Stops training after step `step`; with `sigterm`, by sending this process SIGTERM during the step instead."""

    def __init__(self, step: int, sigterm: bool = False):
        self.step, self.sigterm = step, sigterm

    def on_step_begin(self, args, state, control, **kwargs):
        if self.sigterm and state.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGTERM)  # SaveOnPreemptionCallback saves after this step and stops

    def on_step_end(self, args, state, control, **kwargs):
        if not self.sigterm and state.global_step == self.step:
            control.should_training_stop = True


@pytest.fixture
def make_trainer(tiny_vlm_dir, tiny_grpo_config, tiny_grpo_dataset):
    def build(output_dir, judge, callbacks=(), **config):
        return TrustGRPOTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            thinking_judge=judge,
            args=tiny_grpo_config(output_dir, max_steps=4, **config),
            train_dataset=tiny_grpo_dataset,
            callbacks=list(callbacks),
        )

    return build


def step_logs(trainer) -> list[dict]:
    return [entry for entry in trainer.state.log_history if "trust/alpha" in entry]


# Every rule stopped by SIGTERM; a regular checkpoint (the same save) by default for one rule, all in the slow run.
CASES = [(rule, "sigterm") for rule in RULES] + [
    (rule, "checkpoint") if rule == "reliability" else pytest.param(rule, "checkpoint", marks=pytest.mark.slow)
    for rule in RULES
]


@pytest.mark.parametrize(("rule", "interruption"), CASES)
def test_resumed_run_logs_the_uninterrupted_runs_trust_metrics(make_trainer, tmp_path, rule, interruption):
    config = RULES[rule]
    straight = make_trainer(tmp_path / "straight", LengthJudge(), **config)
    straight.train()

    out = tmp_path / "interrupted"
    if interruption == "checkpoint":  # a regular checkpoint at step 2, then the job ends
        first = make_trainer(out, LengthJudge(), [StopAfter(2)], save_strategy="steps", save_steps=2, **config)
    else:  # preempted during step 2: SaveOnPreemptionCallback saves after it
        first = make_trainer(out, LengthJudge(), [StopAfter(2, sigterm=True), SaveOnPreemptionCallback()], **config)
    first.train()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    saved = json.loads((out / "checkpoint-2" / TRUST_STATE_NAME).read_text())
    assert saved == {
        "reliability": list(first._reliability),
        "judge_failure_budget": {
            "window": [[8, failed] for failed in (e["trust/judge_failed"] for e in step_logs(first))]
        },
    }

    resumed = make_trainer(out, LengthJudge(), **config)
    resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    expected, got = step_logs(straight), step_logs(resumed)
    assert [e["step"] for e in got] == [e["step"] for e in expected] == [1, 2, 3, 4]
    if rule != "paper":
        # The estimate moves over the run: a restart from the prior would show at steps 3 and 4.
        assert len({e["trust/reliability_auc"] for e in expected}) > 1
    for want, have in zip(expected, got):
        keys = sorted(key for key in want if key.startswith("trust/"))  # batch_auc only at steps with pairs
        assert keys == sorted(key for key in have if key.startswith("trust/")), want["step"]
        for key in [*keys, "reward", "loss"]:
            assert have[key] == pytest.approx(want[key], abs=1e-6), (want["step"], key)
    assert resumed._reliability == pytest.approx(straight._reliability, abs=1e-12)
    assert resumed.judge_failure_budget.state_dict() == straight.judge_failure_budget.state_dict()


def test_failure_window_survives_a_resume(make_trainer, tmp_path):
    # Every call fails; a window of 3 steps at most half failed: the run stops at step 3 whether or not it resumed.
    budget = dict(judge_failure_window=3, judge_max_failed_fraction=0.5)
    out = tmp_path / "run"
    first = make_trainer(out, FailingJudge(), [StopAfter(2)], save_strategy="steps", save_steps=2, **budget)
    first.train()  # two steps of failures: not a full window yet

    resumed = make_trainer(out, FailingJudge(), **budget)
    with pytest.raises(JudgeOutageError, match="failed 24 of 24 calls .* over the last 3 steps \\(up to step 3\\)"):
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    # The outage's checkpoint (of step 2 again) has an empty window: the resumed run counts afresh once the judge is
    # checked, instead of stopping at once on the failures that stopped it.
    saved = json.loads((out / "checkpoint-2" / TRUST_STATE_NAME).read_text())
    assert saved["judge_failure_budget"] == {"window": []}
    assert resumed.state.global_step == 2


def test_checkpoint_without_trust_state_starts_afresh(make_trainer, tmp_path, caplog):
    out = tmp_path / "run"
    first = make_trainer(
        out, LengthJudge(), [StopAfter(2)], save_strategy="steps", save_steps=2, trust_rule="reliability"
    )
    first.train()
    (out / "checkpoint-2" / TRUST_STATE_NAME).unlink()  # e.g. a checkpoint of GRPOTrainer
    resumed = make_trainer(out, LengthJudge(), trust_rule="reliability")
    with caplog.at_level("WARNING", logger="sophia_trl.grpo_trainer"):
        resumed.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    assert f"has no {TRUST_STATE_NAME}: the reliability rules' running AUC" in caplog.text


def test_budget_state_dict_round_trip():
    budget = JudgeFailureBudget("judge", max_failed_fraction=1.0, window=3, log_warnings=False)
    for failed in (0, 8, 2, 4):
        budget.update(step=0, calls=8, failed=failed)
    assert budget.state_dict() == {"window": [[8, 8], [8, 2], [8, 4]]}
    restored = JudgeFailureBudget("judge", max_failed_fraction=0.5, window=2, log_warnings=False)
    restored.load_state_dict(json.loads(json.dumps(budget.state_dict())))
    assert restored.state_dict() == {"window": [[8, 2], [8, 4]]}  # a shorter window keeps the latest steps
    assert restored.failed_fraction == 6 / 16
    restored.reset()
    assert restored.state_dict() == {"window": []} and restored.failed_fraction == 0.0


def test_resume_loads_the_checkpoints_weights(make_trainer, tmp_path):
    out = tmp_path / "run"
    first = make_trainer(out, LengthJudge(), [StopAfter(2)], save_strategy="steps", save_steps=2)
    first.train()
    trained = {name: p.detach().clone() for name, p in first.model.named_parameters()}
    resumed = make_trainer(out, LengthJudge())
    initial = {name: p.detach().clone() for name, p in resumed.model.named_parameters()}
    assert any(not torch.equal(trained[name], initial[name]) for name in trained)
    resumed._load_from_checkpoint(str(out / "checkpoint-2"))
    for name, p in resumed.model.named_parameters():
        assert torch.equal(p, trained[name]), name


def test_stock_trainer_still_loses_the_weights_on_resume(make_trainer, tmp_path):
    # The reason for ResumeLoadsCheckpointWeights (sophia_trl/trl_compat.py): the day this fails, transformers loads
    # a Qwen2.5-VL checkpoint's weights on resume by itself and the mixin can go.
    out = tmp_path / "run"
    make_trainer(out, LengthJudge(), [StopAfter(2)], save_strategy="steps", save_steps=2).train()
    resumed = make_trainer(out, LengthJudge())
    initial = {name: p.detach().clone() for name, p in resumed.model.named_parameters()}
    Trainer._load_from_checkpoint(resumed, str(out / "checkpoint-2"))
    assert all(torch.equal(p, initial[name]) for name, p in resumed.model.named_parameters()), (
        f"transformers {TRANSFORMERS_VERSION}'s Trainer._load_from_checkpoint now loads the checkpoint's weights: "
        "ResumeLoadsCheckpointWeights in sophia_trl/trl_compat.py may be unnecessary; check and remove it."
    )
