"""TrustGRPOTrainer's rewards, advantages and `trust/*` metrics against a reference written group by group.

The reference below reads the paper's equations (SophiaVL-R1 sec. 3.3), the released code's `official` preset, the
reliability rules and the failure rules of docs/trust_rules.md, and imports nothing from `sophia_trl.trust`:

- a failed judge call (asked, no score) is left out of gamma's means and of the AUC, and its row takes the mean of the
  scores its group got (0 when the group got none) before the thinking term is formed;
- the `official` preset's rows not asked (outcome < 0.2) keep the released code's 0: they count in gamma's means, not in
  the AUC, not in `trust/thinking_reward_mean`;
- `trust/gamma_mean` and `trust/untrusted_frac` average over the groups that get a thinking term;
- `thinking_reward_length_neutral`: the judge's scores of a group, less their least-squares line in the response
  length, are what the trust rule and the thinking term read (the logs keep the judge's own);
- `thinking_reward_gate="correct"`: a wrong response's thinking term is 0; the rules that normalise the thinking reward
  per group normalise it over the group's correct responses;
- `multi_objective_aggregation="normalize_then_sum"` (GDPO): every column is normalised per group, the thinking one
  then weighted by gamma * alpha_t, and the sum is normalised over the batch.

One trainer on the tiny VLM is built per module; each generated case sets its settings and calls `_calculate_rewards`
on rows whose outcome, format reward and judge score are columns of the case, on the synchronous or the overlapped
judge path. The advantages are then computed as TRL 1.16's `_generate_and_score_completions` computes them from the
returned columns (`sum_then_normalize`, with the trainer's `scale_rewards`); tests/trainers/test_grpo_trainer.py and
tests/trainers/test_gamed_judge_rules.py check the advantages TRL itself hands to the loss in short training runs.
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
from trust_reference_helpers import length_neutral, normalized

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


def build_trainer(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory, **config):
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "q"}]] * 8})
    args = tiny_grpo_config(
        tmp_path_factory.mktemp("reference"),
        reward_weights=[1.0, FORMAT_WEIGHT],
        judge_max_failed_fraction=1.0,
        **config,
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


@pytest.fixture(scope="module")
def trainer(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory):
    return build_trainer(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory)


@pytest.fixture(scope="module")
def gdpo_trainer(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory):
    """The trainer of `multi_objective_aggregation="normalize_then_sum"` (set at construction)."""
    return build_trainer(
        tiny_vlm_dir, tiny_grpo_config, tmp_path_factory, multi_objective_aggregation="normalize_then_sum"
    )


# ---------------------------------------------------------------------------------------------------------------------
# The reference, group by group
# ---------------------------------------------------------------------------------------------------------------------


def mean(values):
    return statistics.fmean(values) if values else None


def reference(case: dict) -> dict:
    """Final rewards, advantages, metrics and completions-table columns of one batch, from the method's definition."""
    G, thr, rule, preset = case["G"], case["threshold"], case["rule"], case["preset"]
    alpha = ALPHA * math.exp(-case["step"] / case["T"])
    groups = case["groups"]  # each a list of (outcome, format, judge reply) rows
    separate = rule == "reliability_separate" or case["aggregation"] == "normalize_then_sum"
    assert len(case["lengths"]) == len(groups)

    # Who is asked, what the judge said, what gamma reads (None: left out).
    per_group = []
    for rows, lengths in zip(groups, case["lengths"]):
        o = [r[0] for r in rows]
        active = preset == "paper" or not (all(x >= 0.9 for x in o) or all(x <= 0.1 for x in o))
        asked = [active and (preset == "paper" or x >= 0.2) for x in o]
        said = [r[2] if a else None for r, a in zip(rows, asked)]  # the judge's scores
        judged = length_neutral(said, lengths) if case["length_neutral"] else said  # what the rule reads
        failed = [a and r[2] is None for r, a in zip(rows, asked)]
        # the official preset's rows not asked in an active group: the released code's 0
        gamma_reads = [s if a else (0.0 if active else None) for s, a in zip(judged, asked)]
        given_scores = [s for s in judged if s is not None]
        fill = mean(given_scores) if given_scores else 0.0
        thinking = [fill if f else (s if s is not None else (0.0 if active else None)) for s, f in zip(judged, failed)]
        per_group.append(
            dict(o=o, active=active, asked=asked, said=said, judged=judged, gamma_reads=gamma_reads, thinking=thinking)
        )

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
            for si, xi in zip(g["judged"], g["o"]):
                for sj, xj in zip(g["judged"], g["o"]):
                    if si is not None and sj is not None and xi >= thr > xj:
                        batch_pairs += 1
                        # scores within 1e-6 tie: a length-neutral fit leaves equal judgements a rounding apart
                        batch_sum += 0.5 if abs(si - sj) <= 1e-6 else 1.0 if si > sj else 0.0
        decay = case["decay"]
        state_sum, state_pairs = decay * case["state"][0] + batch_sum, decay * case["state"][1] + batch_pairs
        auc = state_sum / state_pairs if state_pairs > 0 else case["prior"]
        weight = min(max(2 * auc - 1, 0.0), 1.0) if case["trust"] else 1.0
        gammas = [weight] * len(groups)
        metrics.update({"trust/reliability_auc": auc, "trust/reliability_weight": weight})
        if batch_pairs:
            metrics["trust/batch_auc"] = batch_sum / batch_pairs

    # R = R_o + w_f * R_f + gamma * alpha_t * R_t (reliability_separate: norm(R_o + w_f * R_f) + w * alpha_t * norm(R_t);
    # normalize_then_sum: norm(R_o) + w_f * norm(R_f) + gamma * alpha_t * norm(R_t), then normalised over the batch).
    # With the gate, a wrong response's term is 0, and norm(R_t) is taken over the group's correct responses.
    rewards, thinking_column, advantages = [], [], []
    for rows, g, gamma in zip(groups, per_group, gammas):
        base = [r[0] + FORMAT_WEIGHT * r[1] for r in rows]
        correct = [x >= thr for x in g["o"]] if case["gate"] == "correct" else [True] * G
        t = g["thinking"]
        if separate and g["active"]:
            normed = iter(normalized([v for v, c in zip(t, correct) if c]))
            t = [next(normed) if c else 0.0 for c in correct]
        terms = [gamma * alpha * v if c and g["active"] else 0.0 for v, c in zip(t, correct)]
        thinking_column += terms
        if case["aggregation"] == "normalize_then_sum":
            columns = zip(normalized([r[0] for r in rows]), normalized([r[1] for r in rows]), terms)
            r = [no + FORMAT_WEIGHT * nf + term for no, nf, term in columns]
        elif rule == "reliability_separate":
            r = [b + t for b, t in zip(normalized(base), terms)]
            advantages += [x - statistics.fmean(r) for x in r]  # scale_rewards="none"
        else:
            r = [b + t for b, t in zip(base, terms)]
            advantages += normalized(r)
        rewards += r
    if case["aggregation"] == "normalize_then_sum":
        m, s = statistics.fmean(rewards), statistics.stdev(rewards)
        advantages = [(r - m) / (s + 1e-4) for r in rewards]

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
    """TRL 1.16's advantages of `sum_then_normalize` from the reward columns (grpo_trainer.py, `scale_rewards` group,
    batch or none), as `_generate_and_score_completions` computes them."""
    rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    mean_grouped = torch.nanmean(rewards.view(-1, G), dim=1).repeat_interleave(G)
    if scale_rewards == "batch":
        std = nanstd(rewards).expand_as(rewards)
    else:
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
    args.thinking_reward_gate, args.thinking_reward_length_neutral = case["gate"], case["length_neutral"]
    assert args.multi_objective_aggregation == case["aggregation"], "the case needs the trainer of its aggregation"
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
    ids = [[1] * n for group in case["lengths"] for n in group]
    trainer._on_completions(inputs, prompts, completions, ids)  # sends the requests on the overlapped path
    rewards_per_func = trainer._calculate_rewards(inputs, prompts, completions, ids)
    if case["aggregation"] == "normalize_then_sum":  # as the trainer set TRL up: it normalised the columns itself
        assert (trainer.multi_objective_aggregation, trainer.scale_rewards) == ("sum_then_normalize", "batch")
        scale = "batch"
    else:
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
    aggregation = draw(st.sampled_from(["sum_then_normalize", "normalize_then_sum"]))
    rules = ["paper", "reliability"] + (["reliability_separate"] if aggregation == "sum_then_normalize" else [])
    rule = draw(st.sampled_from(rules))
    pairs = draw(st.floats(0.0, 20.0))
    return dict(
        G=G,
        groups=[draw(st.lists(row, min_size=G, max_size=G)) for _ in range(num_groups)],
        lengths=[draw(st.lists(st.integers(1, 40), min_size=G, max_size=G)) for _ in range(num_groups)],
        gate=draw(st.sampled_from(["none", "correct"])),
        length_neutral=draw(st.booleans()),
        aggregation=aggregation,
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
    if case["rule"] != "reliability_separate" and case["aggregation"] == "sum_then_normalize":
        # the other columns as the reward functions returned them
        outcome_format = torch.tensor([[r[0], r[1]] for group in case["groups"] for r in group])
        torch.testing.assert_close(got["columns"][:, :2], outcome_format)
    # Advantages: where a group's rewards hardly differ, GRPO's division by (std + 1e-4) magnifies float32 rounding,
    # so those groups are compared before the division (centred rewards), the others after it.
    G = case["G"]
    got_adv, want_adv = got["advantages"].view(-1, G), torch.tensor(want["advantages"]).view(-1, G)
    want_rewards = torch.tensor(want["rewards"], dtype=torch.float64).view(-1, G)
    for g, r in enumerate(want_rewards):
        if case["rule"] == "reliability_separate" or case["aggregation"] == "normalize_then_sum" or r.std() > 1e-2:
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
def test_rewards_advantages_and_metrics_follow_the_reference(trainer, gdpo_trainer, case):
    chosen = trainer if case["aggregation"] == "sum_then_normalize" else gdpo_trainer
    assert_matches(run_trainer(chosen, case), reference(case), case)


def worked_case(preset: str, rule: str, outcomes: list[float], scores: list[float | None]) -> dict:
    return dict(
        G=len(outcomes),
        groups=[[(o, 0.0, s) for o, s in zip(outcomes, scores)]],
        lengths=[[10] * len(outcomes)],
        gate="none",
        length_neutral=False,
        aggregation="sum_then_normalize",
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
    case.update(G=4, groups=[uniform, mixed], lengths=[[10] * 4] * 2)
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


# ---------------------------------------------------------------------------------------------------------------------
# The counters to a gamed judge, worked by hand (alpha_t = 0.3 at step 0)
# ---------------------------------------------------------------------------------------------------------------------


def test_the_gate_gives_wrong_answers_no_thinking_term(trainer):
    """R = R_o + 1[correct] * gamma * alpha_t * R_t. Right answers scored 0.2 and 0.6 (mu_c = 0.4), wrong ones 0.9 and
    0.9 (mu_w = 0.9): gamma = exp(-0.5), read from every score; the wrong answers' terms are 0, not 0.27 * gamma."""
    case = worked_case("paper", "paper", [1.0, 1.0, 0.0, 0.0], [0.2, 0.6, 0.9, 0.9])
    case["gate"] = "correct"
    got = run_trainer(trainer, case)
    gamma = math.exp(-0.5)
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor([0.06 * gamma, 0.18 * gamma, 0.0, 0.0]))
    rewards = [1 + 0.06 * gamma, 1 + 0.18 * gamma, 0.0, 0.0]
    torch.testing.assert_close(got["advantages"], torch.tensor(normalized(rewards)), atol=1e-4, rtol=1e-4)
    assert got["metrics"]["trust/gamma_mean"] == pytest.approx(gamma)


def test_the_gate_under_reliability_separate_normalises_over_the_correct_answers(trainer):
    """Pairs (right, wrong): 0.6 > 0.1, 0.6 > 0.3, 0.2 > 0.1, 0.2 < 0.3: AUC 0.75, w = 0.5. The right answers' scores
    0.6 and 0.2 normalise to +-0.2 / (0.28284 + 1e-4) = +-0.70686 among themselves, the wrong ones get 0; the outcome
    column normalises to +-0.5 / (0.57735 + 1e-4) = +-0.86588, and scale_rewards "none" only centres the sum."""
    case = worked_case("paper", "reliability_separate", [1.0, 1.0, 0.0, 0.0], [0.6, 0.2, 0.1, 0.3])
    case["gate"] = "correct"
    got = run_trainer(trainer, case)
    term = 0.5 * 0.3 * 0.2 / (math.sqrt(0.08) + 1e-4)
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor([term, -term, 0.0, 0.0]))
    o = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    torch.testing.assert_close(got["advantages"], torch.tensor([o + term, o - term, -o, -o]), atol=1e-5, rtol=1e-5)
    assert got["metrics"]["trust/reliability_weight"] == pytest.approx(0.5)


def test_length_neutral_removes_what_the_length_explains(trainer):
    """All right, lengths 10, 20, 30, 40. Scores 0.1, 0.3, 0.3, 0.5: slope 6 / 500 = 0.012 per token, the scores
    become 0.28, 0.36, 0.24, 0.32 (the second row, above the line, now ranks first). Scores that are a line in the
    length (0.1, 0.2, 0.3, 0.4) become 0.25 each: every advantage is 0."""
    case = worked_case("paper", "paper", [1.0] * 4, [0.1, 0.3, 0.3, 0.5])
    case.update(length_neutral=True, lengths=[[10, 20, 30, 40]])
    got = run_trainer(trainer, case)
    terms = [0.3 * t for t in (0.28, 0.36, 0.24, 0.32)]
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor(terms))
    want = normalized([1 + t for t in terms])
    torch.testing.assert_close(got["advantages"], torch.tensor(want), atol=1e-3, rtol=1e-3)
    assert got["raw"] == pytest.approx([0.1, 0.3, 0.3, 0.5])  # the logs keep the judge's own scores

    case["groups"] = [[(1.0, 0.0, s) for s in (0.1, 0.2, 0.3, 0.4)]]
    got = run_trainer(trainer, case)
    torch.testing.assert_close(got["columns"][:, -1], torch.full((4,), 0.3 * 0.25))
    torch.testing.assert_close(got["advantages"], torch.zeros(4), atol=2e-3, rtol=0)


def test_normalize_then_sum_weights_the_thinking_column_after_its_normalisation(gdpo_trainer):
    """GDPO: every column normalised per group, the thinking one then weighted by gamma * alpha_t, the sum normalised
    over the batch. Group 1: outcomes 1, 1, 0, 0 -> +-0.86588; format 1, 0, 1, 0 -> +-0.86588 (weight 0.5); scores
    0.9, 0.5, 0.1, 0.1 (gamma 1) -> (0.5, 0.1, -0.3, -0.3) / (0.38297 + 1e-4). Group 2: all wrong, format 0, scores
    0.8, 0.2, 0.2, 0.2 -> (0.45, -0.15, -0.15, -0.15) / (0.3 + 1e-4). TRL's own normalize_then_sum would normalise the
    thinking column after the weight and lose it."""
    case = worked_case("paper", "paper", [], [])
    case.update(
        G=4,
        groups=[
            [(1.0, 1.0, 0.9), (1.0, 0.0, 0.5), (0.0, 1.0, 0.1), (0.0, 0.0, 0.1)],
            [(0.0, 0.0, 0.8), (0.0, 0.0, 0.2), (0.0, 0.0, 0.2), (0.0, 0.0, 0.2)],
        ],
        lengths=[[10] * 4] * 2,
        aggregation="normalize_then_sum",
    )
    got = run_trainer(gdpo_trainer, case)
    n = 0.5 / (math.sqrt(1 / 3) + 1e-4)
    t1 = [0.3 * d / (math.sqrt(0.44 / 3) + 1e-4) for d in (0.5, 0.1, -0.3, -0.3)]
    t2 = [0.3 * d / (0.3 + 1e-4) for d in (0.45, -0.15, -0.15, -0.15)]
    torch.testing.assert_close(got["columns"][:, -1], torch.tensor(t1 + t2))
    sums = [n + 0.5 * n + t1[0], n - 0.5 * n + t1[1], -n + 0.5 * n + t1[2], -n - 0.5 * n + t1[3], *t2]
    torch.testing.assert_close(got["rewards"], torch.tensor(sums), atol=1e-5, rtol=1e-5)
    m, s = statistics.fmean(sums), statistics.stdev(sums)
    torch.testing.assert_close(got["advantages"], torch.tensor([(x - m) / (s + 1e-4) for x in sums]))
