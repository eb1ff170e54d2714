"""TrustGRPOTrainer sends the judge requests as soon as generation returns; the results equal the synchronous path."""

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image

from sophia_trl.configs import TrustGRPOConfig
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import OpenAIJudge, response_of

G = 4


def outcome_of(text: str) -> float:
    return [0.0, 0.1, 0.5, 1.0][len(text) % 4]  # spans the official preset's thresholds (0.1, 0.2, 0.9)


def outcome_reward(completions, **kwargs):
    return [outcome_of(response_of(c)) for c in completions]


class FakeServerJudge:
    """A judge with `score_async`, as OpenAIJudge: deterministic scores, some failed (None); records what it scores."""

    def __init__(self):
        self.scored: list[str] = []
        self.events: list[str] | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1)

    def score(self, questions, responses, images=None):
        assert len(questions) == len(responses) == len(images)
        assert all(isinstance(im, Image.Image) for im in images)  # the row's image reaches the judge
        with self._lock:
            self.scored.extend(responses)
        return [None if len(r) % 7 == 0 else (len(r) % 5) / 4 for r in responses]

    def score_async(self, questions, responses, images=None):
        if self.events is not None:
            self.events.append("judge sent")
        return self._executor.submit(self.score, questions, responses, images)


class RecordingTrainer(TrustGRPOTrainer):
    """Keeps the rewards `_calculate_rewards` returns and the order of generation, log-prob passes and rewards."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rewards = []
        self.events = []
        self.same_completions = []

    def _on_completions(self, inputs, prompts, completions, completion_ids_list):
        self.events.append("generated")
        self._generated = completions
        super()._on_completions(inputs, prompts, completions, completion_ids_list)

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        if self.events and self.events[-1] != "log-probs":
            self.events.append("log-probs")
        return super()._get_per_token_logps_and_entropies(*args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self.events.append("rewards")
        self.same_completions.append(completions is self._generated)
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.rewards.append(rewards.clone())
        return rewards


@pytest.fixture
def train(tiny_vlm_dir, tiny_grpo_config, tiny_grpo_dataset):
    """`train(output_dir, judge, overlap_judge, **config)`: a RecordingTrainer of the tiny GRPO run, trained 3 steps."""

    def run(output_dir, judge, overlap_judge, **config):
        # beta > 0: a reference pass runs between generation and the rewards
        args = tiny_grpo_config(output_dir, **{"max_steps": 3, "beta": 0.04, **config})
        trainer = RecordingTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            thinking_judge=judge,
            overlap_judge=overlap_judge,
            args=args,
            train_dataset=tiny_grpo_dataset,
        )
        if isinstance(judge, FakeServerJudge):
            judge.events = trainer.events
        trainer.train()
        return trainer

    return run


def logged_metrics(trainer) -> list[dict]:
    # Timing entries differ from run to run by nature; everything else must be equal.
    timing = ("step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second")
    return [{k: v for k, v in log.items() if k not in timing} for log in trainer.state.log_history]


def assert_same_runs(sync, overlap):
    assert len(sync.rewards) == len(overlap.rewards) == 3
    for a, b in zip(sync.rewards, overlap.rewards):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    metrics_sync, metrics_overlap = logged_metrics(sync), logged_metrics(overlap)
    assert len(metrics_sync) == len(metrics_overlap)
    for a, b in zip(metrics_sync, metrics_overlap):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    for (name, a), (_, b) in zip(sync.model.named_parameters(), overlap.model.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    "preset, rule",
    [("paper", "paper"), ("official", "paper"), ("official", "reliability_separate")],
)
def test_overlap_gives_the_synchronous_rewards_metrics_and_parameters(train, tmp_path, preset, rule):
    config = dict(thinking_reward_preset=preset, trust_rule=rule)
    if rule == "reliability_separate":
        config["scale_rewards"] = "none"
    sync_judge, overlap_judge = FakeServerJudge(), FakeServerJudge()
    sync = train(tmp_path / "sync", sync_judge, overlap_judge=False, **config)
    overlap = train(tmp_path / "overlap", overlap_judge, overlap_judge=None, **config)

    assert_same_runs(sync, overlap)
    # The judge saw the same completions: the official preset's skipping holds with the requests sent early.
    assert sync_judge.scored == overlap_judge.scored
    assert "judge sent" not in sync.events
    sends = overlap.events.count("judge sent")
    assert sends == 3 if preset == "paper" else sends <= 3
    # Some rows failed, some were skipped by the official preset: the comparison covers those paths.
    assert any(len(r) % 7 == 0 for r in sync_judge.scored)  # FakeServerJudge fails these calls
    if preset == "official":
        assert len(sync_judge.scored) < 3 * 2 * G


def test_generation_returns_before_logprob_passes(train, tmp_path):
    """The requests leave before TRL's log-prob passes: the order `_on_completions` relies on in TRL 1.16."""
    trainer = train(tmp_path, FakeServerJudge(), overlap_judge=None, max_steps=1)
    assert trainer.events == ["generated", "judge sent", "log-probs", "rewards", "log-probs"]  # last: the loss
    assert trainer.same_completions == [True]


def test_overlap_off_for_judges_without_score_async(train, tiny_vlm_dir, tiny_grpo_dataset, tmp_path):
    class LocalJudge:
        def score(self, questions, responses, images=None):
            return [0.5] * len(responses)

    trainer = train(tmp_path, LocalJudge(), overlap_judge=None, max_steps=1)
    assert trainer._pending_judgement is None
    assert trainer.state.log_history[0]["trust/thinking_reward_mean"] == 0.5
    with pytest.raises(ValueError, match="score_async"):
        RecordingTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            thinking_judge=LocalJudge(),
            overlap_judge=True,
            args=TrustGRPOConfig(str(tmp_path), use_cpu=True, bf16=False, report_to="none"),
            train_dataset=tiny_grpo_dataset,
        )


def test_openai_judge_overlapped_against_a_server(train, tmp_path):
    """The real server backend: same rewards with and without the overlap; the scores come from the row's image."""
    from sophia_trl.judges.loopback import LoopbackJudgeServer

    with LoopbackJudgeServer(service_time=0.05) as server:
        with OpenAIJudge(server.url, "judge", cache_size=0) as judge:
            sync = train(tmp_path / "sync", judge, overlap_judge=False, max_steps=2)
            overlap = train(tmp_path / "overlap", judge, overlap_judge=None, max_steps=2)
        assert server.total_requests == 2 * 2 * 2 * G
    for a, b in zip(sync.rewards, overlap.rewards):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    # The server read each row's own image (it answers the red channel of its top-left pixel).
    colours = {Image.new("RGB", (1, 1), c).getpixel((0, 0)) for c in ["red", "green", "blue", "yellow"]}
    assert {image.getpixel((0, 0)) for image in server.images} <= colours


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Whole groups of 4 on this process: group 0 is uniform (all >= 0.9) and skipped; in group 1 the rows with
        # outcome >= 0.2 are asked, as official_preset_masks decides on the gathered batch.
        ([1.0, 1.0, 0.9, 1.0, 0.0, 0.5, 0.1, 1.0], [5, 7]),
        ([0.0, 0.1, 0.0, 0.1, 0.2, 0.2, 0.2, 0.2], [4, 5, 6, 7]),
        # 6 rows: the second group continues on another process, so only the row-level rule (>= 0.2) applies here
        # and the uniform first group is sent too (its scores are dropped in _calculate_rewards).
        ([1.0, 1.0, 1.0, 1.0, 0.1, 0.5], [0, 1, 2, 3, 5]),
    ],
)
def test_official_preset_rows_sent_after_generation(values, expected):
    from types import SimpleNamespace

    def value_reward(completions, value, log_extra, log_metric, **kwargs):
        log_extra("must_not_be_logged", value)  # the early call passes no-op logging hooks
        return value

    trainer = TrustGRPOTrainer.__new__(TrustGRPOTrainer)  # only what _official_rows_to_send reads
    trainer.reward_funcs = [value_reward]
    trainer.state, trainer.environments = None, None
    trainer.model = SimpleNamespace(training=True)
    trainer.num_generations = G
    inputs = [{"prompt": "p", "value": v} for v in values]
    completions = [[{"role": "assistant", "content": "c"}] for _ in values]
    assert trainer._official_rows_to_send(inputs, ["p"] * len(values), completions, [[1]] * len(values)) == expected
