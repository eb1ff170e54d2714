"""TrustGRPOTrainer's rewards, advantages and `trust/*` metrics against a reference written group by group.

The reference below reads the paper's equations (SophiaVL-R1 sec. 3.3), the released code's `official` preset, the
reliability rules and the failure rules of docs/trust_rules.md, and imports nothing from `sophia_trl.trust`:

- a failed judge call (asked, no score) is left out of gamma's means and of the AUC, and its row takes the mean of the
  scores its group got (0 when the group got none) before the thinking term is formed;
- the `official` preset's rows not asked (outcome < 0.2) keep the released code's 0: they count in gamma's means, not in
  the AUC, not in `trust/thinking_reward_mean`;
- `trust/gamma_mean` and `trust/untrusted_frac` average over the groups that get a thinking term.

One trainer on the tiny VLM is built per module; each generated case sets its settings and calls `_calculate_rewards`
on rows whose outcome, format reward and judge score are columns of the case, on the synchronous or the overlapped
judge path. The advantages are then computed as TRL 1.16's `_generate_and_score_completions` computes them from the
returned columns (`sum_then_normalize`); tests/trainers/test_grpo_trainer.py checks the advantages TRL itself hands to
the loss in short training runs.
"""

import math
import re
import statistics
from concurrent.futures import Future

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trl.trainer.utils import nanstd

from sophia_trl.grpo_trainer import TrustGRPOTrainer

FORMAT_WEIGHT = 0.5
ALPHA = 0.3
nan = float("nan")


def outcome_reward(completions, outcome_value, **kwargs):
    return list(outcome_value)


def format_reward(completions, format_value, **kwargs):
    return list(format_value)


class TableJudge:
    """Answers each row's `score` from the case's table (None: a failed call); records which rows it was asked."""

    def __init__(self):
        self.table: dict[int, float | None] = {}
        self.asked: list[int] = []

    def score(self, questions, responses, images=None):
        rows = [int(re.search(r"row (\d+)", r).group(1)) for r in responses]
        self.asked += rows
        return [self.table[i] for i in rows]

    def score_async(self, questions, responses, images=None):
        future = Future()
        future.set_result(self.score(questions, responses, images))
        return future


@pytest.fixture(scope="module")
def trainer(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory):
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "q"}]] * 8})
    args = tiny_grpo_config(
        tmp_path_factory.mktemp("reference"), reward_weights=[1.0, FORMAT_WEIGHT], judge_max_failed_fraction=1.0
    )
    trainer = TrustGRPOTrainer(
        model=str(tiny_vlm_dir),
        reward_funcs=[outcome_reward, format_reward],
        thinking_judge=TableJudge(),
        args=args,
        train_dataset=dataset,
    )
    trainer.model.train()
    trainer.judge_failure_budget.log_warnings = False  # the cases fail many calls on purpose
    return trainer


# ---------------------------------------------------------------------------------------------------------------------
# The reference, group by group
# ---------------------------------------------------------------------------------------------------------------------


def mean(values):
    return statistics.fmean(values) if values else None


def normalized(values: list[float]) -> list[float]:
    """(x - mean) / (std + 1e-4) within a group, unbiased std, as GRPO normalises a group's rewards."""
    m, s = statistics.fmean(values), statistics.stdev(values)
    return [(v - m) / (s + 1e-4) for v in values]


def reference(case: dict) -> dict:
    """Final rewards, advantages, metrics and completions-table columns of one batch, from the method's definition."""
    G, thr, rule, preset = case["G"], case["threshold"], case["rule"], case["preset"]
    alpha = ALPHA * math.exp(-case["step"] / case["T"])
    groups = case["groups"]  # each a list of (outcome, format, judge reply) rows

    # Who is asked, what the judge said, what gamma reads (None: left out).
    per_group = []
    for rows in groups:
        o = [r[0] for r in rows]
        active = preset == "paper" or not (all(x >= 0.9 for x in o) or all(x <= 0.1 for x in o))
        asked = [active and (preset == "paper" or x >= 0.2) for x in o]
        said = [r[2] if a else None for r, a in zip(rows, asked)]  # the judge's scores
        failed = [a and r[2] is None for r, a in zip(rows, asked)]
        # the official preset's rows not asked in an active group: the released code's 0
        gamma_reads = [s if a else (0.0 if active else None) for s, a in zip(said, asked)]
        given_scores = [s for s in said if s is not None]
        fill = mean(given_scores) if given_scores else 0.0
        thinking = [fill if f else (s if s is not None else (0.0 if active else None)) for s, f in zip(said, failed)]
        per_group.append(dict(o=o, active=active, asked=asked, said=said, gamma_reads=gamma_reads, thinking=thinking))

    # The weight of each group's thinking reward.
    metrics = {}
    if rule == "paper":
        gammas = []
        for g in per_group:
            c = [t for t, x in zip(g["gamma_reads"], g["o"]) if x >= thr and t is not None]
            w = [t for t, x in zip(g["gamma_reads"], g["o"]) if x < thr and t is not None]
            gamma = 1.0
            if case["trust"] and c and w and mean(c) < mean(w):
                gamma = math.exp(mean(c) - mean(w))
            gammas.append(gamma)
    else:
        batch_sum = batch_pairs = 0
        for g in per_group:  # pairs (right i, wrong j) of scores the judge gave, within a group
            for si, xi in zip(g["said"], g["o"]):
                for sj, xj in zip(g["said"], g["o"]):
                    if si is not None and sj is not None and xi >= thr > xj:
                        batch_pairs += 1
                        batch_sum += 1.0 if si > sj else 0.5 if si == sj else 0.0
        decay = case["decay"]
        state_sum, state_pairs = decay * case["state"][0] + batch_sum, decay * case["state"][1] + batch_pairs
        auc = state_sum / state_pairs if state_pairs > 0 else case["prior"]
        weight = min(max(2 * auc - 1, 0.0), 1.0) if case["trust"] else 1.0
        gammas = [weight] * len(groups)
        metrics.update({"trust/reliability_auc": auc, "trust/reliability_weight": weight})
        if batch_pairs:
            metrics["trust/batch_auc"] = batch_sum / batch_pairs

    # R = R_o + w_f * R_f + gamma * alpha_t * R_t (reliability_separate: norm(R_o + w_f * R_f) + w * alpha_t * norm(R_t)).
    rewards, thinking_column, advantages = [], [], []
    for rows, g, gamma in zip(groups, per_group, gammas):
        base = [r[0] + FORMAT_WEIGHT * r[1] for r in rows]
        if not g["active"]:
            terms = [0.0] * G
        elif rule == "reliability_separate":
            terms = [gamma * alpha * t for t in normalized(g["thinking"])]
        else:
            terms = [gamma * alpha * t for t in g["thinking"]]
        thinking_column += terms
        if rule == "reliability_separate":
            r = [b + t for b, t in zip(normalized(base), terms)]
            advantages += [x - statistics.fmean(r) for x in r]  # scale_rewards="none"
        else:
            r = [b + t for b, t in zip(base, terms)]
            advantages += normalized(r)
        rewards += r

    with_term = [g["active"] and any(s is not None for s in g["said"]) for g in per_group]
    termed = [gamma for gamma, t in zip(gammas, with_term) if t]
    if termed:
        metrics["trust/gamma_mean"] = statistics.fmean(termed)
        metrics["trust/untrusted_frac"] = statistics.fmean(gamma < 1 for gamma in termed)
    said = [s for g in per_group for s in g["said"] if s is not None]
    if said:
        metrics["trust/thinking_reward_mean"] = statistics.fmean(said)
    metrics["trust/judge_failed"] = sum(a and s is None for g in per_group for a, s in zip(g["asked"], g["said"]))
    metrics["trust/alpha"] = alpha
    return dict(
        rewards=rewards,
        thinking_column=thinking_column,
        advantages=advantages,
        metrics=metrics,
        asked=[i for i, a in enumerate(a for g in per_group for a in g["asked"]) if a],
        raw=[nan if s is None else s for g in per_group for s in g["said"]],
        gamma_column=[gamma if t else nan for gamma, t in zip(gammas, with_term) for _ in range(G)],
    )


# ---------------------------------------------------------------------------------------------------------------------
# The trainer on the same case
# ---------------------------------------------------------------------------------------------------------------------


def trl_advantages(rewards_per_func: torch.Tensor, weights: torch.Tensor, G: int, scale_rewards: str) -> torch.Tensor:
    """TRL 1.16's advantages of `sum_then_normalize` from the reward columns (grpo_trainer.py, `scale_rewards` group or
    none), as `_generate_and_score_completions` computes them."""
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    mean_grouped = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G)
    std = nanstd(rewards.view(-1, G), dim=1).repeat_interleave(G)
    advantages = rewards - mean_grouped
    if scale_rewards != "none":
        advantages = advantages / (std + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


def run_trainer(trainer, case: dict) -> dict:
    args = trainer.args
    args.thinking_reward_preset, args.trust_rule, args.trust_weighting = case["preset"], case["rule"], case["trust"]
    args.correct_threshold, args.thinking_reward_T = case["threshold"], case["T"]
    args.reliability_prior, args.reliability_decay = case["prior"], case["decay"]
    args.thinking_reward_alpha, args.thinking_reward_annealing = ALPHA, "exp"
    trainer.num_generations = case["G"]
    trainer.state.global_step = case["step"]
    trainer._reliability = case["state"]
    trainer.overlap_judge = None if case["overlap"] else False
    trainer._metrics["train"].clear()
    trainer._pending_extra_logs.clear()
    judge = trainer.thinking_judge
    rows = [row for group in case["groups"] for row in group]
    judge.table, judge.asked = {i: row[2] for i, row in enumerate(rows)}, []

    inputs = [
        {"prompt": [{"role": "user", "content": "q"}], "outcome_value": o, "format_value": f} for o, f, _ in rows
    ]
    prompts = [x["prompt"] for x in inputs]
    completions = [
        [{"role": "assistant", "content": f"<think>row {i}</think><answer>1</answer>"}] for i in range(len(rows))
    ]
    ids = [[1]] * len(rows)
    trainer._on_completions(inputs, prompts, completions, ids)  # sends the requests on the overlapped path
    rewards_per_func = trainer._calculate_rewards(inputs, prompts, completions, ids)
    scale = "none" if case["rule"] == "reliability_separate" else "group"
    weights = trainer.reward_weights.to(rewards_per_func.device)
    return dict(
        columns=rewards_per_func,
        rewards=(rewards_per_func * weights).nansum(dim=1),
        advantages=trl_advantages(rewards_per_func, weights, case["G"], scale),
        metrics={k: statistics.fmean(v) for k, v in trainer._metrics["train"].items() if k.startswith("trust/")},
        asked=sorted(set(judge.asked)),
        raw=list(trainer._pending_extra_logs["thinking_reward_raw"]),
        gamma_column=list(trainer._pending_extra_logs["trust_gamma"]),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Generated cases
# ---------------------------------------------------------------------------------------------------------------------

# Binary fractions, so that sums and means of equal values are exact in float32 as in float64: a group whose rewards
# are all equal normalises to exactly 0 in both, rather than to rounding noise divided by GRPO's 1e-4.
OUTCOMES = st.sampled_from([0.0, 0.09375, 0.125, 0.25, 0.5, 0.75, 0.875, 0.9375, 1.0])  # around each preset threshold
SCORES = st.one_of(
    st.none(),  # a failed call
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),  # ties
    st.integers(0, 64).map(lambda k: k / 64),
)


@st.composite
def cases(draw):
    G = draw(st.sampled_from([2, 3, 4, 8]))
    num_groups = draw(st.integers(1, 4))
    row = st.tuples(OUTCOMES, st.sampled_from([0.0, 0.5, 1.0]), SCORES)
    rule = draw(st.sampled_from(["paper", "reliability", "reliability_separate"]))
    pairs = draw(st.floats(0.0, 20.0))
    return dict(
        G=G,
        groups=[draw(st.lists(row, min_size=G, max_size=G)) for _ in range(num_groups)],
        preset=draw(st.sampled_from(["paper", "official"])),
        rule=rule,
        trust=draw(st.booleans()),
        threshold=draw(st.sampled_from([0.5, 0.75])),
        step=draw(st.integers(0, 9)),
        T=draw(st.integers(5, 10)),  # alpha_t >= 0.3 * exp(-2)
        prior=draw(st.sampled_from([0.5, 0.75, 1.0])),
        decay=draw(st.sampled_from([0.0, 0.5, 0.9])),
        state=(pairs * draw(st.floats(0.0, 1.0)), pairs),  # (discounted pair score sum, discounted pairs)
        overlap=draw(st.booleans()),
    )


def assert_matches(got: dict, want: dict, case: dict) -> None:
    tol = dict(atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got["rewards"], torch.tensor(want["rewards"]), **tol)
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor(want["thinking_column"]), **tol)
    if case["rule"] != "reliability_separate":  # the other columns as the reward functions returned them
        outcome_format = torch.tensor([[r[0], r[1]] for group in case["groups"] for r in group])
        torch.testing.assert_close(got["columns"][:, :2], outcome_format)
    # Advantages: where a group's rewards hardly differ, GRPO's division by (std + 1e-4) magnifies float32 rounding,
    # so those groups are compared before the division (centred rewards), the others after it.
    G = case["G"]
    got_adv, want_adv = got["advantages"].view(-1, G), torch.tensor(want["advantages"]).view(-1, G)
    want_rewards = torch.tensor(want["rewards"], dtype=torch.float64).view(-1, G)
    for g, r in enumerate(want_rewards):
        if case["rule"] == "reliability_separate" or r.std() > 1e-2:
            torch.testing.assert_close(got_adv[g], want_adv[g], atol=1e-3, rtol=1e-3)
        else:
            centred = got["rewards"].view(-1, G)[g].double()
            torch.testing.assert_close(centred - centred.mean(), r - r.mean(), atol=1e-5, rtol=0)
    assert got["asked"] == want["asked"]
    assert got["metrics"].keys() >= want["metrics"].keys()
    for key in ("trust/gamma_mean", "trust/untrusted_frac", "trust/thinking_reward_mean", "trust/batch_auc"):
        assert (key in got["metrics"]) == (key in want["metrics"]), key
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    torch.testing.assert_close(torch.tensor(got["raw"]), torch.tensor(want["raw"]), equal_nan=True)
    torch.testing.assert_close(torch.tensor(got["gamma_column"]), torch.tensor(want["gamma_column"]), equal_nan=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_rewards_advantages_and_metrics_follow_the_reference(trainer, case):
    assert_matches(run_trainer(trainer, case), reference(case), case)


def worked_case(preset: str, rule: str, outcomes: list[float], scores: list[float | None]) -> dict:
    return dict(
        G=len(outcomes),
        groups=[[(o, 0.0, s) for o, s in zip(outcomes, scores)]],
        preset=preset,
        rule=rule,
        trust=True,
        threshold=0.5,
        step=0,
        T=10,
        prior=1.0,
        decay=0.9,
        state=(0.0, 0.0),
        overlap=False,
    )


@pytest.mark.parametrize("rule", ["paper", "reliability", "reliability_separate"])
@pytest.mark.parametrize("preset, outcome", [("paper", 1.0), ("paper", 0.0), ("official", 0.5)])
def test_a_failed_call_in_a_uniform_group_is_not_punished(trainer, preset, outcome, rule):
    """The issue's example: G = 8, all answers right (or all wrong), seven scores 0.8 and one failed call. With the
    failure taken as 0, GRPO's normalisation gave the failed row -2.47 and the others +0.35; the judge says nothing
    about the failed row, so the group has no spread and every advantage is 0."""
    case = worked_case(preset, rule, [outcome] * 8, [None] + [0.8] * 7)
    got = run_trainer(trainer, case)
    assert torch.unique(got["rewards"]).numel() == 1  # the failed row's reward is its group's
    # 0 up to TRL's float32 group mean of eight equal rewards (an ulp, divided by its 1e-4)
    torch.testing.assert_close(got["advantages"], torch.zeros(8), atol=2e-3, rtol=0)
    assert_matches(got, reference(case), case)


def test_a_failed_call_takes_the_mean_thinking_term_of_its_group(trainer):
    """A mixed group with a failed call: the failed row's thinking term is the mean of the scored rows' terms, and
    gamma is that of the scored rows alone. Worked by hand: correct rows scored 0.2 and 0.4 (mu_c = 0.3), wrong rows
    0.9 and a failure (mu_w = 0.9), gamma = exp(-0.6); the failure takes (0.2 + 0.4 + 0.9) / 3 = 0.5."""
    case = worked_case("paper", "paper", [1.0, 1.0, 0.0, 0.0], [0.2, 0.4, 0.9, None])
    got = run_trainer(trainer, case)
    gamma = math.exp(-0.6)
    terms = [gamma * ALPHA * t for t in (0.2, 0.4, 0.9, 0.5)]
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor(terms))
    assert got["metrics"]["trust/gamma_mean"] == pytest.approx(gamma)
    assert got["metrics"]["trust/thinking_reward_mean"] == pytest.approx(0.5)
    assert math.isnan(got["raw"][3])


def test_official_reliability_auc_reads_only_the_judges_scores(trainer):
    """The official preset does not ask about rows with outcome < 0.2; their 0 is not a judge score. A judge that
    ranks the right answer below the asked wrong one has AUC 0 and weight 0, whatever the unasked rows' zeros."""
    # right 1.0 scored 0.1, wrong 0.5 < threshold 0.7 scored 0.9, two wrong rows 0.0 not asked
    case = worked_case("official", "reliability", [1.0, 0.5, 0.0, 0.0], [0.1, 0.9, 0.7, 0.7])
    case["threshold"] = 0.7
    got = run_trainer(trainer, case)
    assert got["asked"] == [0, 1]
    assert got["metrics"]["trust/batch_auc"] == 0.0  # one pair (0.1 vs 0.9); with the zeros it would be 2 / 3
    assert got["metrics"]["trust/reliability_weight"] == 0.0
    torch.testing.assert_close(got["columns"][:, -1], torch.zeros(4))


def test_official_metrics_leave_out_groups_without_a_thinking_reward(trainer):
    """Under `official` a uniform group gets no thinking reward: it is not a gamma = 1 in the metrics, and the rows not
    asked are not zeros in `thinking_reward_mean` or the completions table."""
    uniform = [(1.0, 0.0, 0.3)] * 4
    mixed = [(1.0, 0.0, 0.2), (0.0, 0.0, 0.9), (0.0, 0.0, 0.9), (0.3, 0.0, 0.8)]
    case = worked_case("official", "paper", [], [])
    case.update(G=4, groups=[uniform, mixed])
    got = run_trainer(trainer, case)
    gamma = math.exp(0.2 - 0.8 / 3)  # mu_c = 0.2; mu_w over the unasked zeros and the asked 0.8, as the release
    assert got["metrics"]["trust/gamma_mean"] == pytest.approx(gamma)
    assert got["metrics"]["trust/untrusted_frac"] == 1.0
    assert got["metrics"]["trust/thinking_reward_mean"] == pytest.approx(0.5)  # (0.2 + 0.8) / 2
    assert got["raw"][4:] == pytest.approx([0.2, nan, nan, 0.8], nan_ok=True)
    assert all(math.isnan(v) for v in got["raw"][:4] + got["gamma_column"][:4])

    case["groups"] = [uniform, uniform]  # no group with a thinking reward: nothing to log, not a 1
    got = run_trainer(trainer, case)
    assert not {"trust/gamma_mean", "trust/untrusted_frac", "trust/thinking_reward_mean"} & got["metrics"].keys()
