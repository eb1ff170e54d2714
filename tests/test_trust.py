import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sophia_trl.trust import (
    annealed_alpha,
    fill_failed_scores,
    gate_to_correct,
    group_normalize,
    length_neutral_scores,
    normalize_columns_jointly,
    official_preset_masks,
    ranking_pairs,
    reliability_auc,
    reliability_weight,
    thinking_bonus,
    trust_weights,
    update_reliability,
)

nan = float("nan")


@pytest.mark.parametrize(
    "outcome, thinking, expected",
    [
        # The paper's case: the judge scores wrong answers higher (mu_c 0.3 < mu_w 0.8) -> exp(-0.5).
        ([1.0, 1.0, 0.0, 0.0], [0.2, 0.4, 0.9, 0.7], math.exp(-0.5)),
        # Judge agrees with the outcome (mu_c 0.8 >= mu_w 0.3) -> 1.
        ([1.0, 0.0, 1.0, 0.0], [0.9, 0.4, 0.7, 0.2], 1.0),
        # Equal means -> trusted.
        ([1.0, 0.0], [0.5, 0.5], 1.0),
        # NaN thinking rewards are left out of the means: mu_c = 0.4, mu_w = 0.9.
        ([1.0, 1.0, 0.0, 0.0], [nan, 0.4, 0.9, nan], math.exp(-0.5)),
        # Threshold is inclusive: 0.5 is correct, 0.49 is wrong; mu_c 0.1, mu_w 0.6.
        ([0.5, 0.49], [0.1, 0.6], math.exp(-0.5)),
        # Unequal group sizes: mu_c = 0.1, mu_w = (0.2 + 0.4 + 0.9) / 3 = 0.5.
        ([1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.4, 0.9], math.exp(-0.4)),
        # One-sided groups: all correct, all wrong.
        ([1.0, 1.0], [0.1, 0.9], 1.0),
        ([0.0, 0.2], [0.9, 0.1], 1.0),
        # Correct rows exist but none was scored: no mu_c, so gamma = 1.
        ([1.0, 0.0, 0.0], [nan, 0.9, 0.8], 1.0),
        # NaN outcome rows are out of both sides: only a wrong row is left -> one-sided.
        ([nan, 0.0], [0.1, 0.9], 1.0),
    ],
)
def test_trust_weights_hand_worked(outcome, thinking, expected):
    gamma = trust_weights(torch.tensor(outcome), torch.tensor(thinking), num_generations=len(outcome))
    assert gamma.shape == (1,)
    assert gamma.item() == pytest.approx(expected, rel=1e-6)


def test_trust_weights_several_groups_are_independent():
    outcome = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    thinking = torch.tensor([0.1, 0.9, 0.9, 0.1, 0.0, 1.0])
    gamma = trust_weights(outcome, thinking, num_generations=2)
    torch.testing.assert_close(gamma, torch.tensor([math.exp(-0.8), 1.0, 1.0]))


def test_trust_weights_custom_threshold():
    # With threshold 0.8 the 0.6 row is wrong: mu_c = 0.2 (row 0), mu_w = 0.7 -> exp(-0.5).
    gamma = trust_weights(torch.tensor([0.9, 0.6]), torch.tensor([0.2, 0.7]), 2, correct_threshold=0.8)
    assert gamma.item() == pytest.approx(math.exp(-0.5))


def test_trust_weights_rejects_partial_groups():
    with pytest.raises(ValueError, match="multiple of num_generations=4"):
        trust_weights(torch.zeros(6), torch.zeros(6), num_generations=4)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda g: st.tuples(
            st.just(g),
            st.lists(st.sampled_from([0.0, 0.3, 0.5, 1.0]), min_size=g, max_size=g),
            st.lists(st.floats(0, 1), min_size=g, max_size=g),
            st.permutations(list(range(g))),
        )
    )
)
def test_trust_weights_properties(case):
    g, outcome, thinking, perm = case
    o, t = torch.tensor(outcome), torch.tensor(thinking)
    gamma = trust_weights(o, t, g).item()
    assert 0.0 < gamma <= 1.0
    # Within-group order does not matter.
    assert trust_weights(o[perm], t[perm], g).item() == pytest.approx(gamma)
    correct = [x for x, y in zip(thinking, outcome) if y >= 0.5]
    wrong = [x for x, y in zip(thinking, outcome) if y < 0.5]
    if correct and wrong:
        gap = sum(correct) / len(correct) - sum(wrong) / len(wrong)
        assert gamma == pytest.approx(min(1.0, math.exp(gap)), rel=1e-5)
    else:
        assert gamma == 1.0


@pytest.mark.parametrize(
    "step, T, schedule, expected",
    [
        (0, 100, "exp", 0.3),
        (100, 100, "exp", 0.3 / math.e),
        (50, 100, "exp", 0.3 * math.exp(-0.5)),
        (1500, 1500, "exp", 0.3 * math.exp(-1)),
        (700, 100, "none", 0.3),
        (700, None, "none", 0.3),
    ],
)
def test_annealed_alpha(step, T, schedule, expected):
    assert annealed_alpha(step, 0.3, T, schedule) == pytest.approx(expected)


@pytest.mark.parametrize("T, schedule, match", [(None, "exp", "T > 0"), (0, "exp", "T > 0"), (10, "cosine", "cosine")])
def test_annealed_alpha_errors(T, schedule, match):
    with pytest.raises(ValueError, match=match):
        annealed_alpha(1, 0.3, T, schedule)


def test_official_preset_masks():
    outcome = torch.tensor(
        [
            [1.0, 0.0, 0.15, 0.5],  # mixed: ask rows with outcome >= 0.2
            [1.0, 0.95, 0.9, 1.0],  # all >= 0.9: inactive
            [0.0, 0.1, 0.05, 0.0],  # all <= 0.1: inactive
            [0.6, 0.7, 0.6, 0.8],  # all correct at 0.5 but not >= 0.9: active, all asked
        ]
    ).view(-1)
    ask, active = official_preset_masks(outcome, num_generations=4)
    assert active.tolist() == [True, False, False, True]
    assert ask.view(4, 4).tolist() == [
        [True, False, False, True],
        [False] * 4,
        [False] * 4,
        [True] * 4,
    ]


def test_thinking_bonus():
    thinking = torch.tensor([0.5, nan, 1.0, 0.2])
    gamma = torch.tensor([0.5, 1.0])
    bonus = thinking_bonus(thinking, gamma, alpha=0.3, num_generations=2)
    torch.testing.assert_close(bonus[[0, 2, 3]], torch.tensor([0.075, 0.3, 0.06]))
    assert math.isnan(bonus[1].item())  # a failed judge call adds nothing (TRL's nansum), it is not a 0 score
    inactive = thinking_bonus(thinking, gamma, alpha=0.3, num_generations=2, active=torch.tensor([True, False]))
    assert inactive[2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "outcome, thinking, G, expected",
    [
        # right 0.9 and 0.4 against wrong 0.4 and 0.1: wins 0.9>0.4, 0.9>0.1, 0.4>0.1, tie 0.4=0.4 -> 3.5 of 4
        ([1.0, 1.0, 0.0, 0.0], [0.9, 0.4, 0.4, 0.1], 4, (3.5, 4)),
        # the judge ranks the wrong answer first: 0 of 1
        ([1.0, 0.0], [0.2, 0.8], 2, (0.0, 1)),
        # uniform groups have no pairs
        ([1.0, 1.0, 0.0, 0.0], [0.9, 0.1, 0.5, 0.2], 2, (0.0, 0)),
        # pairs only within a group: group 1 loses (0.2 < 0.8), group 2 ties (0.3 = 0.3)
        ([1.0, 0.0, 0.0, 1.0], [0.2, 0.8, 0.3, 0.3], 2, (0.5, 2)),
        # a NaN score (failed call) is in no pair: only right 0.5 against wrong 0.7 is left
        ([1.0, 0.0, 0.0], [0.5, nan, 0.7], 3, (0.0, 1)),
        # the threshold is inclusive: 0.5 is right, 0.49 wrong
        ([0.5, 0.49], [0.6, 0.1], 2, (1.0, 1)),
        # one right against three wrong: beats 0.2 and 0.3, loses to 0.9 -> 2 of 3
        ([1.0, 0.0, 0.0, 0.0], [0.5, 0.2, 0.9, 0.3], 4, (2.0, 3)),
    ],
)
def test_ranking_pairs_hand_worked(outcome, thinking, G, expected):
    score_sum, num_pairs = ranking_pairs(torch.tensor(outcome), torch.tensor(thinking), G)
    assert (score_sum, num_pairs) == (pytest.approx(expected[0]), expected[1])


@pytest.mark.parametrize(
    "state, score_sum, num_pairs, decay, expected_state, expected_auc",
    [
        ((0.0, 0.0), 3.5, 4, 0.9, (3.5, 4.0), 0.875),  # the first evidence replaces the prior
        ((3.5, 4.0), 0.0, 2, 0.9, (3.15, 5.6), 3.15 / 5.6),  # 0.9 * 3.5 + 0, 0.9 * 4 + 2
        ((3.5, 4.0), 0.0, 0, 0.9, (3.15, 3.6), 0.875),  # no pairs: the past fades, the estimate stays
        ((9.0, 10.0), 1.0, 10, 0.0, (1.0, 10.0), 0.1),  # decay 0: this step only
    ],
)
def test_update_reliability_hand_worked(state, score_sum, num_pairs, decay, expected_state, expected_auc):
    new = update_reliability(state, score_sum, num_pairs, decay)
    assert new == pytest.approx(expected_state)
    assert reliability_auc(new, prior=0.5) == pytest.approx(expected_auc)


def test_reliability_auc_prior_before_any_pair():
    assert reliability_auc((0.0, 0.0), prior=0.5) == 0.5
    assert reliability_auc((0.0, 0.0), prior=0.8) == 0.8


@pytest.mark.parametrize("auc, weight", [(1.0, 1.0), (0.9, 0.8), (0.75, 0.5), (0.5, 0.0), (0.2, 0.0), (0.0, 0.0)])
def test_reliability_weight(auc, weight):
    assert reliability_weight(auc) == pytest.approx(weight)


def test_group_normalize_hand_worked():
    x = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.7, 0.7, 0.7, 0.7, 1.0, nan, 0.0, 0.0, nan, nan, nan, 0.3])
    out = group_normalize(x, num_generations=4)
    # group 1: mean 0.25, unbiased std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    torch.testing.assert_close(out[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-4))
    assert out[4:8].tolist() == [0.0] * 4  # all equal
    # group 3 without its NaN: mean 1/3, std sqrt((4/9 + 2/9) / 2) = sqrt(1/3)
    std = math.sqrt(1 / 3) + 1e-4
    torch.testing.assert_close(out[[8, 10, 11]], torch.tensor([2 / 3, -1 / 3, -1 / 3]) / std)
    assert math.isnan(out[9].item())
    assert out[15].item() == 0.0 and all(math.isnan(v) for v in out[12:15].tolist())  # one value: 0


def test_normalize_columns_jointly_hand_worked():
    # outcome and a format reward of weight 0.5: S = (1.25, 0.5, 0, 1.5), mean 0.8125, std 0.68845
    columns = torch.tensor([[1.0, 0.5], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    out = normalize_columns_jointly(columns, torch.tensor([1.0, 0.5]), num_generations=4)
    std = math.sqrt((0.4375**2 + 0.3125**2 + 0.8125**2 + 0.6875**2) / 3) + 1e-4
    # column k: (w_k * r_k - its group mean) / std / w_k; 0.5 * format = (0.25, 0.5, 0, 0.5), mean 0.3125
    torch.testing.assert_close(out[:, 0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std)
    torch.testing.assert_close(out[:, 1], torch.tensor([-0.0625, 0.1875, -0.3125, 0.1875]) / 0.5 / std)
    torch.testing.assert_close(out @ torch.tensor([1.0, 0.5]), torch.tensor([0.4375, -0.3125, -0.8125, 0.6875]) / std)


def test_normalize_columns_jointly_nan_and_zero_weights():
    columns = torch.tensor([[1.0, nan, 0.3], [0.0, 1.0, 0.9]])
    out = normalize_columns_jointly(columns, torch.tensor([1.0, 1.0, 0.0]), num_generations=2)
    assert out[:, 2].tolist() == [0.0, 0.0]  # a weight-0 column adds nothing, as in GRPO
    # The NaN counts as 0, as in TRL's nansum: S = (1, 1), std 0, so each row's columns add up to 0 (the columns are
    # (+-0.5) / 1e-4 each, and cancel).
    torch.testing.assert_close(out[:, :2].sum(dim=1), torch.zeros(2))
    torch.testing.assert_close(out[:, 0], torch.tensor([0.5, -0.5]) / 1e-4)
    # A row with no reward at all stays NaN and is out of its group's statistics: S = (1, 0) over rows 0 and 2.
    columns = torch.tensor([[1.0, nan], [nan, nan], [0.0, 0.0]])
    out = normalize_columns_jointly(columns, torch.tensor([1.0, 1.0]), num_generations=3)
    assert all(math.isnan(v) for v in out[1].tolist())
    torch.testing.assert_close(out[[0, 2], 0], torch.tensor([0.5, -0.5]) / (math.sqrt(0.5) + 1e-4))
    assert out[[0, 2], 1].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="shape"):
        normalize_columns_jointly(columns, torch.tensor([1.0]), num_generations=3)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda g: st.tuples(
            st.just(g),
            st.lists(st.sampled_from([0.0, 1.0]), min_size=2 * g, max_size=2 * g),
            st.lists(st.integers(0, 10).map(lambda k: k / 10), min_size=2 * g, max_size=2 * g),
            st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=2 * g, max_size=2 * g),
        )
    )
)
def test_reliability_properties(case):
    g, outcome, thinking, fmt = case
    o, t = torch.tensor(outcome), torch.tensor(thinking)
    score_sum, num_pairs = ranking_pairs(o, t, g)
    # A judge scoring in the opposite order wins exactly the pairs the first one lost (ties count 1/2 to both); scores
    # are tenths, as the judges give them, so that 1 - t keeps every tie and every order.
    flipped_sum, flipped_pairs = ranking_pairs(o, 1.0 - t, g)
    assert flipped_pairs == num_pairs and score_sum + flipped_sum == pytest.approx(num_pairs, abs=1e-6)
    # The jointly normalised columns add up to GRPO's normalisation of the weighted sum.
    columns, weights = torch.stack([o, torch.tensor(fmt)], dim=1), torch.tensor([1.0, 0.5])
    joint = normalize_columns_jointly(columns, weights, g) @ weights
    torch.testing.assert_close(joint, group_normalize(columns @ weights, g), atol=1e-4, rtol=1e-4)


def test_fill_failed_scores_hand_worked():
    # Group 1: a failure beside 0.2, 0.4, 0.9 takes 0.5; group 2: a row not asked (the official preset's 0) stays, the
    # failure takes the mean of the judge's 0.6 alone; group 3: every call failed, no thinking term (0).
    scores = torch.tensor([0.2, 0.4, 0.9, nan, 0.6, nan, nan, nan, nan, nan, nan, nan])
    thinking = torch.tensor([0.2, 0.4, 0.9, nan, 0.6, 0.0, nan, 0.0, nan, nan, nan, nan])
    failed = torch.tensor([0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 1], dtype=torch.bool)
    out = fill_failed_scores(thinking, scores, failed, num_generations=4)
    torch.testing.assert_close(out, torch.tensor([0.2, 0.4, 0.9, 0.5, 0.6, 0.0, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0]))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 8).flatmap(
        lambda g: st.tuples(
            st.just(g), st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=2 * g, max_size=2 * g)
        )
    )
)
def test_fill_failed_scores_puts_a_failure_at_its_groups_mean_term(case):
    g, replies = case
    scores = torch.tensor([nan if r is None else r for r in replies])
    failed = torch.isnan(scores)
    filled = fill_failed_scores(scores, scores, failed, g)
    normalized = group_normalize(filled, g)
    for group in range(2):
        rows = slice(group * g, (group + 1) * g)
        given_rows = ~failed[rows]
        if not given_rows.any():  # no score at all: no thinking term
            assert filled[rows].tolist() == [0.0] * g and normalized[rows].tolist() == [0.0] * g
            continue
        torch.testing.assert_close(filled[rows][given_rows], scores[rows][given_rows])  # scored rows unchanged
        for values in (filled[rows], normalized[rows]):  # a failed row's term is the scored rows' mean term
            want = values[given_rows].mean().expand(int(failed[rows].sum()))
            torch.testing.assert_close(values[~given_rows], want, atol=1e-4, rtol=1e-4)


def test_gate_to_correct_hand_worked():
    outcome = torch.tensor([1.0, 0.5, 0.49, 0.0, nan])
    thinking = torch.tensor([0.2, 0.4, 0.9, 0.7, 0.8])
    got = gate_to_correct(thinking, outcome, correct_threshold=0.5)  # 0.5 is correct, 0.49 and NaN are not
    torch.testing.assert_close(got, torch.tensor([0.2, 0.4, nan, nan, nan]), equal_nan=True)


@pytest.mark.parametrize(
    "scores, lengths, G, expected",
    [
        # slope cov / var = 6 / 500 = 0.012 per token around the mean length 25; the mean 0.3 is kept
        ([0.1, 0.3, 0.3, 0.5], [10, 20, 30, 40], 4, [0.28, 0.36, 0.24, 0.32]),
        # scores that are a line in the length: all of it goes, every row gets the mean
        ([0.1, 0.2, 0.3, 0.4], [10, 20, 30, 40], 4, [0.25, 0.25, 0.25, 0.25]),
        # one length: nothing to remove
        ([0.1, 0.9, 0.5, 0.3], [12, 12, 12, 12], 4, [0.1, 0.9, 0.5, 0.3]),
        # NaN rows are left out of the line and stay NaN: over rows 0, 1, 3 (lengths 10, 20, 30, scores 0.2, 0.6,
        # 0.4), slope 0.2 * 10 / 200 = 0.01, mean 0.4
        ([0.2, 0.6, nan, 0.4], [10, 20, 99, 30], 4, [0.3, 0.6, nan, 0.3]),
        # two scored rows of different lengths: the line fits them, both get the mean; a group of one is kept
        ([0.2, 0.8, 0.7, nan], [5, 9, 3, 4], 2, [0.5, 0.5, 0.7, nan]),
    ],
)
def test_length_neutral_scores_hand_worked(scores, lengths, G, expected):
    got = length_neutral_scores(torch.tensor(scores), torch.tensor(lengths, dtype=torch.float32), G)
    torch.testing.assert_close(got, torch.tensor(expected), equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(
    case=st.integers(2, 8).flatmap(
        lambda G: st.tuples(
            st.just(G),
            st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=G, max_size=G),
            st.lists(st.integers(1, 200), min_size=G, max_size=G),
        )
    )
)
def test_length_neutral_scores_properties(case):
    """The result keeps each group's mean score and is uncorrelated with the length over the scored rows."""
    G, scores, lengths = case
    t = torch.tensor([nan if s is None else s for s in scores], dtype=torch.float64)
    length = torch.tensor(lengths, dtype=torch.float64)
    got = length_neutral_scores(t, length, G).double()
    given_rows = ~torch.isnan(t)
    assert torch.equal(torch.isnan(got), ~given_rows)
    if given_rows.sum() >= 1:
        assert got[given_rows].mean().item() == pytest.approx(t[given_rows].mean().item(), abs=1e-6)
    if given_rows.sum() >= 2:
        dl = length[given_rows] - length[given_rows].mean()
        assert (dl * (got[given_rows] - got[given_rows].mean())).sum().item() == pytest.approx(0.0, abs=1e-3)
