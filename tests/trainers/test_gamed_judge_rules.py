"""The counters to a judge that can be gamed, in short training runs: the advantages TRL 1.16 hands to the loss.

`thinking_reward_gate="correct"`, `thinking_reward_length_neutral` and `multi_objective_aggregation="normalize_then_sum"`
(GDPO) are checked here against a reference written group by group (independent of `sophia_trl.trust`), through TRL's
own `_generate_and_score_completions`: the trainer sets TRL's aggregation up for normalize_then_sum, and only TRL's real
advantage code shows that it sums and scales the columns as intended. tests/trainers/test_trust_reference.py checks the
same settings on many generated batches through `_calculate_rewards`.
"""

import math
import statistics

import pytest
import torch
from trust_reference_helpers import length_neutral, normalized

from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import response_of

G = 4
THRESHOLD = 0.5


def outcome_of(text: str) -> float:
    return (len(text) % 3) / 2  # 0, 0.5 or 1: deterministic in the completion


def judge_of(text: str) -> float | None:
    if len(text) % 7 == 0:
        return None  # a failed judge call
    return min(len(text), 60) / 60 * 0.8 + (len(text) % 5) / 20  # mostly length, a little else


class LengthJudge:
    def score(self, questions, responses, images=None):
        return [judge_of(r) for r in responses]


class RecordingTrainer(TrustGRPOTrainer):
    """Keeps each batch's responses, their token lengths and the advantages handed to the loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records, self._batch = [], None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._batch = ([response_of(c) for c in completions], [len(ids) for ids in completion_ids_list])
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    def _generate_and_score_completions(self, inputs):
        step = self.state.global_step
        output = super()._generate_and_score_completions(inputs)
        self.records.append((step, *self._batch, output["advantages"].clone()))
        return output


def outcome_reward(completions, **kwargs):
    return [outcome_of(response_of(c)) for c in completions]


def expected_advantages(texts, lengths, alpha, aggregation, trust):
    """Paper rule, gate on, length-neutral: R_t is the judge's score less its line in the length (failed calls at the
    group's mean), normalised over the group's correct responses and weighted by gamma * alpha_t; wrong responses get 0.
    normalize_then_sum: norm(R_o) + term, normalised over the batch; reliability_separate with trust off (w = 1):
    norm(R_o) + term, centred per group (scale_rewards="none")."""
    sums = []
    for g in range(0, len(texts), G):
        o = [outcome_of(t) for t in texts[g : g + G]]
        judged = length_neutral([judge_of(t) for t in texts[g : g + G]], lengths[g : g + G])
        given = [s for s in judged if s is not None]
        c = [s for s, x in zip(judged, o) if x >= THRESHOLD and s is not None]
        w = [s for s, x in zip(judged, o) if x < THRESHOLD and s is not None]
        gamma = math.exp(statistics.fmean(c) - statistics.fmean(w)) if trust and c and w else 1.0
        gamma = min(gamma, 1.0)
        t = [statistics.fmean(given) if s is None else s for s in judged] if given else [0.0] * G
        correct = [x >= THRESHOLD for x in o]
        normed = iter(normalized([v for v, ok in zip(t, correct) if ok]))
        terms = [gamma * alpha * next(normed) if ok else 0.0 for ok in correct]
        sums += [a + b for a, b in zip(normalized(o), terms)]
    if aggregation == "normalize_then_sum":
        m, s = statistics.fmean(sums), statistics.stdev(sums)
        return torch.tensor([(x - m) / (s + 1e-4) for x in sums])
    centred = []
    for g in range(0, len(sums), G):
        m = statistics.fmean(sums[g : g + G])
        centred += [x - m for x in sums[g : g + G]]
    return torch.tensor(centred)


SETTINGS = {
    "gdpo": dict(multi_objective_aggregation="normalize_then_sum"),
    "reliability_separate": dict(trust_rule="reliability_separate", scale_rewards="none", trust_weighting=False),
}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_gate_and_length_neutral_reach_trls_advantages(
    tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset, name
):
    args = tiny_grpo_config(
        tmp_path,
        thinking_reward_gate="correct",
        thinking_reward_length_neutral=True,
        judge_max_failed_fraction=1.0,
        **SETTINGS[name],
    )
    trainer = RecordingTrainer(
        model=str(tiny_vlm_dir),
        reward_funcs=[outcome_reward],
        thinking_judge=LengthJudge(),
        args=args,
        train_dataset=tiny_grpo_dataset,
    )
    trainer.train()
    assert [step for step, *_ in trainer.records] == [0, 1]
    moved = False
    for step, texts, lengths, advantages in trainer.records:
        alpha = 0.3 * math.exp(-step / args.max_steps)
        expected = expected_advantages(texts, lengths, alpha, args.multi_objective_aggregation, args.trust_weighting)
        torch.testing.assert_close(advantages, expected.float(), atol=1e-4, rtol=1e-4)
        without = expected_advantages(texts, lengths, 0.0, args.multi_objective_aggregation, args.trust_weighting)
        moved |= not torch.allclose(expected, without, atol=1e-3)
    assert moved, "the thinking term changed no advantage: the runs did not exercise it"
