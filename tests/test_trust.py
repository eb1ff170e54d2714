import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sophia_trl.trust import annealed_alpha, official_preset_masks, thinking_bonus, trust_weights

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
