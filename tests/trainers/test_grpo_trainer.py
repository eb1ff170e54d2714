"""TrustGRPOTrainer: the advantages handed to the loss equal R = R_o + gamma * alpha_t * R_t normalised per group."""

import math
import statistics

import pytest
import torch
from datasets import Dataset
from PIL import Image

from sophia_trl.configs import TrustGRPOConfig
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import response_of

G = 4


def outcome_of(text: str) -> float:
    return (len(text) % 3) / 2  # 0, 0.5 or 1: deterministic in the completion


def judge_of(text: str, outcome: float) -> float | None:
    if len(text) % 7 == 0:
        return None  # a failed judge call
    # Adversarial: high scores for wrong answers, so that mixed groups get gamma < 1.
    return 0.9 if outcome < 0.5 else (len(text) % 4) / 4


class RecordingJudge:
    def __init__(self):
        self.calls = []

    def score(self, questions, responses, images=None):
        assert len(questions) == len(responses) == len(images)
        assert all(isinstance(im, Image.Image) for im in images)  # the row's image reaches the judge
        self.calls.append(list(responses))
        return [judge_of(r, outcome_of(r)) for r in responses]


class RecordingTrainer(TrustGRPOTrainer):
    """Keeps each generation batch's completions and the advantages handed to the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []

    def _generate_and_score_completions(self, inputs):
        step = self.state.global_step
        output = super()._generate_and_score_completions(inputs)
        texts = [self.processing_class.decode(ids, skip_special_tokens=True) for ids in output["completion_ids"]]
        self.records.append((step, texts, output["advantages"].clone()))
        return output


def outcome_reward(completions, **kwargs):
    return [outcome_of(response_of(c)) for c in completions]


def filled(scores: list[float | None], asked: list[bool]) -> list[float | None]:
    """A failed call (asked, no score) takes the mean of the scores its group got, 0 when the group got none."""
    given = [s for s, a in zip(scores, asked) if a and s is not None]
    fill = statistics.fmean(given) if given else 0.0
    return [fill if a and s is None else s for s, a in zip(scores, asked)]


def expected_advantages(texts, step, T, preset, trust, annealing, judged=True):
    """Reference computation written out group by group, independent of sophia_trl.trust."""
    alpha = 0.3 * (math.exp(-step / T) if annealing == "exp" else 1.0)
    advantages = []
    for g in range(len(texts) // G):
        group = texts[g * G : (g + 1) * G]
        o = [outcome_of(t) for t in group]
        uniform = all(x >= 0.9 for x in o) or all(x <= 0.1 for x in o)
        if not judged or (preset == "official" and uniform):
            terms = [0.0] * G  # no thinking reward at all
        else:
            asked = [preset == "paper" or x >= 0.2 for x in o]
            # The judge's scores, None for a failed call; the official preset's rows not asked score 0.
            t_scores = [judge_of(t, x) if a else 0.0 for t, x, a in zip(group, o, asked)]
            c = [s for s, x in zip(t_scores, o) if x >= 0.5 and s is not None]
            w = [s for s, x in zip(t_scores, o) if x < 0.5 and s is not None]
            gamma = 1.0
            if trust and c and w and sum(c) / len(c) < sum(w) / len(w):
                gamma = math.exp(sum(c) / len(c) - sum(w) / len(w))
            terms = [gamma * alpha * s for s in filled(t_scores, asked)]
        r = [x + term for x, term in zip(o, terms)]
        mean, std = statistics.fmean(r), statistics.stdev(r)
        advantages += [(x - mean) / (std + 1e-4) for x in r]
    return torch.tensor(advantages)


@pytest.fixture
def make_trainer(tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset):
    """`make_trainer(judge, **config)`: a RecordingTrainer of the tiny GRPO run writing to `tmp_path`."""

    def build(judge, **config):
        return RecordingTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[outcome_reward],
            thinking_judge=judge,
            args=tiny_grpo_config(tmp_path, **config),
            train_dataset=tiny_grpo_dataset,
        )

    return build


SETTINGS = {
    "trust-grpo": dict(thinking_reward_preset="paper"),
    "official": dict(thinking_reward_preset="official"),
    "no-trust": dict(trust_weighting=False),
    "no-trust-no-annealing": dict(trust_weighting=False, thinking_reward_annealing="none"),
    "fixed-T": dict(thinking_reward_T=7),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_advantages_follow_trust_grpo(make_trainer, name):
    judge = RecordingJudge()
    trainer = make_trainer(judge, **SETTINGS[name])
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    args = trainer.args
    T = args.thinking_reward_T or args.max_steps
    assert [step for step, _, _ in trainer.records] == [0, 1]
    saw_distrust = False
    for step, texts, advantages in trainer.records:
        expected = expected_advantages(
            texts, step, T, args.thinking_reward_preset, args.trust_weighting, args.thinking_reward_annealing
        )
        torch.testing.assert_close(advantages, expected, atol=1e-4, rtol=1e-4)
        saw_distrust |= any(
            (0 < sum(outcome_of(t) >= 0.5 for t in texts[i : i + G]) < G) for i in range(0, len(texts), G)
        )
    assert saw_distrust, "the run produced no mixed group: the test would not exercise gamma"

    # The official preset does not ask the judge about outcome < 0.2 nor about uniform groups.
    asked = [r for call in judge.calls for r in call]
    if args.thinking_reward_preset == "official":
        assert all(outcome_of(r) >= 0.2 for r in asked)
    else:
        assert len(asked) == 2 * 2 * G

    logs = [entry for entry in trainer.state.log_history if "trust/alpha" in entry]
    assert len(logs) == 2
    expected_alpha = [0.3 * (math.exp(-s / T) if args.thinking_reward_annealing == "exp" else 1.0) for s in (0, 1)]
    assert [entry["trust/alpha"] for entry in logs] == pytest.approx(expected_alpha)
    for key in ("trust/gamma_mean", "trust/untrusted_frac", "trust/judge_calls", "trust/outcome_reward_mean"):
        assert key in logs[0]
    assert sum(entry["trust/judge_calls"] for entry in logs) == len(asked)

    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed, "no parameter changed after two training steps"


def test_plain_grpo_without_judge(make_trainer):
    trainer = make_trainer(judge=None)
    trainer.train()
    assert trainer.reward_func_names == ["outcome_reward"]
    for step, texts, advantages in trainer.records:
        expected = expected_advantages(texts, step, 2, "paper", True, "exp", judged=False)
        torch.testing.assert_close(advantages, expected, atol=1e-4, rtol=1e-4)


def test_reward_weights_get_a_thinking_column(make_trainer):
    trainer = make_trainer(RecordingJudge(), reward_weights=[2.0])
    assert trainer.reward_weights.tolist() == [2.0, 1.0]
    assert trainer.reward_func_names == ["outcome_reward", "thinking_reward"]


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="thinking_reward_preset"):
        TrustGRPOConfig(output_dir=str(tmp_path), thinking_reward_preset="released", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="thinking_reward_T"):
        TrustGRPOConfig(output_dir=str(tmp_path), thinking_reward_T=0, use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="thinking_reward_gate"):
        TrustGRPOConfig(output_dir=str(tmp_path), thinking_reward_gate="right", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="trust_rule='reliability'"):
        TrustGRPOConfig(
            output_dir=str(tmp_path),
            multi_objective_aggregation="normalize_then_sum",
            trust_rule="reliability_separate",
            scale_rewards="none",
            use_cpu=True,
            bf16=False,
        )
    # GDPO's aggregation is accepted: the trainer applies gamma and alpha_t after the thinking column's normalisation
    TrustGRPOConfig(
        output_dir=str(tmp_path), multi_objective_aggregation="normalize_then_sum", use_cpu=True, bf16=False
    )


def test_annealing_continues_after_resume(make_trainer, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                control.should_training_stop = True

    config = dict(max_steps=4, save_strategy="steps", save_steps=2)
    first = make_trainer(RecordingJudge(), **config)
    first.add_callback(StopAt())
    first.train()
    assert (tmp_path / "checkpoint-2").is_dir()

    resumed = make_trainer(RecordingJudge(), **config)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert [step for step, _, _ in resumed.records] == [2, 3]
    alphas = [e["trust/alpha"] for e in resumed.state.log_history if "trust/alpha" in e]
    # Steps 2 and 3 of a 4-step run: alpha * exp(-2/4), alpha * exp(-3/4), not a restart at exp(0).
    assert alphas[-2:] == pytest.approx([0.3 * math.exp(-0.5), 0.3 * math.exp(-0.75)])


@pytest.mark.parametrize("column, all_text", [("image", False), ("images", False), ("image", True)])
def test_mixed_image_and_text_only_rows(make_trainer, column, all_text):
    red = Image.new("RGB", (56, 56), "red")
    empty = None if column == "image" else []
    images = [empty if all_text else (red if column == "image" else [red]), empty] * 2
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"q{i}"}] for i in range(4)], column: images})

    class ImageCheckingJudge:
        seen = []

        def score(self, questions, responses, images=None):
            self.seen += [(q, im is not None) for q, im in zip(questions, images)]
            return [0.5] * len(questions)

    judge = ImageCheckingJudge()
    trainer = make_trainer(judge, per_device_train_batch_size=8)
    trainer.train_dataset = dataset
    trainer.train()
    assert len(trainer.records) == 2
    # Rows 0 and 2 have an image, rows 1 and 3 are text-only; the judge sees exactly that.
    assert {q: has for q, has in judge.seen} == {"q0": not all_text, "q1": False, "q2": not all_text, "q3": False}


def graded_judge_of(text: str, outcome: float) -> float | None:
    if len(text) % 7 == 0:
        return None  # a failed judge call
    # Mostly ranks right answers above wrong ones, not always: its AUC lies strictly between 0.5 and 1.
    return 0.3 * outcome + 0.7 * (len(text) % 5) / 4


class GradedJudge:
    def score(self, questions, responses, images=None):
        return [graded_judge_of(r, outcome_of(r)) for r in responses]


def length_reward(completions, **kwargs):
    return [(len(response_of(c)) % 4) / 4 for c in completions]  # a second reward column, e.g. a format reward


def normalized(values: list[float]) -> list[float]:
    """(x - mean) / (std + 1e-4) over the non-None values (unbiased std), None -> 0."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return [0.0] * len(values)
    mean, std = statistics.fmean(present), statistics.stdev(present)
    return [0.0 if v is None else (v - mean) / (std + 1e-4) for v in values]


def expected_reliability_advantages(records, separate, prior, decay=0.9, length_weight=0.5, trust=True):
    """Reference for the reliability rules, written out step by step and group by group from the rule's definition."""
    score_sum = num_pairs = 0.0
    weights, advantages_per_step = [], []
    for step, texts, _ in records:
        alpha = 0.3 * math.exp(-step / 2)
        groups = [texts[g * G : (g + 1) * G] for g in range(len(texts) // G)]
        batch_sum = batch_pairs = 0.0
        for group in groups:
            for ti in group:
                for tj in group:
                    si, sj = graded_judge_of(ti, outcome_of(ti)), graded_judge_of(tj, outcome_of(tj))
                    if outcome_of(ti) >= 0.5 > outcome_of(tj) and si is not None and sj is not None:
                        batch_pairs += 1
                        batch_sum += 1.0 if si > sj else 0.5 if si == sj else 0.0
        score_sum, num_pairs = decay * score_sum + batch_sum, decay * num_pairs + batch_pairs
        auc = score_sum / num_pairs if num_pairs else prior
        w = min(max(2 * auc - 1, 0.0), 1.0) if trust else 1.0
        weights.append(w)
        advantages = []
        for group in groups:
            base = [outcome_of(t) + length_weight * (len(t) % 4) / 4 for t in group]
            thinking = filled([graded_judge_of(t, outcome_of(t)) for t in group], [True] * G)
            if separate:
                advantages += [b + w * alpha * s for b, s in zip(normalized(base), normalized(thinking))]
            else:
                r = [b + w * alpha * s for b, s in zip(base, thinking)]
                mean, std = statistics.fmean(r), statistics.stdev(r)
                advantages += [(x - mean) / (std + 1e-4) for x in r]
        advantages_per_step.append(torch.tensor(advantages))
    return weights, advantages_per_step


@pytest.mark.parametrize(
    "rule, config",
    [
        ("reliability", {}),
        ("reliability_separate", {"scale_rewards": "none"}),
        ("reliability_separate", {"scale_rewards": "none", "reliability_prior": 0.9}),
        ("reliability_separate", {"scale_rewards": "none", "trust_weighting": False}),
    ],
)
def test_advantages_follow_the_reliability_rules(
    tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset, rule, config
):
    args = tiny_grpo_config(tmp_path, trust_rule=rule, reward_weights=[1.0, 0.5], **config)
    trainer = RecordingTrainer(
        model=str(tiny_vlm_dir),
        reward_funcs=[outcome_reward, length_reward],
        thinking_judge=GradedJudge(),
        args=args,
        train_dataset=tiny_grpo_dataset,
    )
    trainer.train()
    weights, expected = expected_reliability_advantages(
        trainer.records, rule == "reliability_separate", args.reliability_prior, trust=args.trust_weighting
    )
    for (_, _, advantages), want in zip(trainer.records, expected):
        torch.testing.assert_close(advantages, want, atol=1e-4, rtol=1e-4)
    if args.trust_weighting:
        assert len(set(weights)) > 1, "the judge's weight did not move with the evidence: the test would not weigh it"
    logs = [entry for entry in trainer.state.log_history if "trust/reliability_weight" in entry]
    assert [entry["trust/reliability_weight"] for entry in logs] == pytest.approx(weights)
    assert [entry["trust/gamma_mean"] for entry in logs] == pytest.approx(weights)
    # TRL logs the rescaled columns; the raw outcome mean is logged by the trainer.
    raw = [statistics.fmean(outcome_of(t) for t in texts) for _, texts, _ in trainer.records]
    assert [entry["trust/outcome_reward_mean"] for entry in logs] == pytest.approx(raw)


def test_config_checks_the_reliability_rules(tmp_path):
    base = dict(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="scale_rewards='none'"):
        TrustGRPOConfig(**base, trust_rule="reliability_separate")
    with pytest.raises(ValueError, match="trust_rule"):
        TrustGRPOConfig(**base, trust_rule="auc")
    with pytest.raises(ValueError, match="reliability_prior"):
        TrustGRPOConfig(**base, trust_rule="reliability", reliability_prior=1.5)
    with pytest.raises(ValueError, match="reliability_decay"):
        TrustGRPOConfig(**base, trust_rule="reliability", reliability_decay=1.0)
