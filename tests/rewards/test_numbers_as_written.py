"""Numbers read as written by the outcome reward: spaced thousands are one number, scientific notation is a number, no
answer matches by a product of words and zero, and an option's text may start with `$`."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sophia_trl.rewards import outcome_reward
from sophia_trl.rewards.numbers import (
    join_spaced_thousands,
    number_value,
    read_as_written,
    zero_next_to_word,
    zero_written_as_one,
)
from sophia_trl.rewards.scorers import multiple_choice_reward, numerical_reward

# ---------------------------------------------------------------------------------------------------------------------
# The numerical scorer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, solution, reward",
    [
        # Spaced thousands: one number (math-verify alone reads 10 x 0 = 0 and 45 x 0 = 0).
        ("10 000", "0", 0.0),
        ("10 000", "10000", 1.0),
        ("45 000", "45000", 1.0),
        ("45 000", "45", 0.0),
        ("1 234 567.5", "1234567.5", 1.0),
        ("10\\,000", "10000", 1.0),  # LaTeX thin space
        ("10\u202f000", "10000", 1.0),  # narrow no-break space
        ("$45 000$", "45000", 1.0),
        ("0", "10 000", 0.0),  # the solution is read the same way: 10000, not 10 x 0
        ("10000", "10 000", 1.0),
        ("3 4", "34", 0.0),  # not groups of three: left to math-verify, which reads 3 + 4 = 7
        # E-notation: a number (math-verify alone reads 1.2e3 as 1.2 x e x 3 = 9.79).
        ("1.2e3", "1200", 1.0),
        ("1.20e3", "1200", 1.0),
        ("2.5E4", "25000", 1.0),
        ("1.2e-3", "0.0012", 1.0),
        ("2e3", "2000", 1.0),
        ("1.2e3", "120", 0.0),
        ("1200", "1.2e3", 1.0),
        ("9.3e2", "930", 1.0),  # exactly 930, where 9.3 x 10^2 in floating point is 930.0000000000001
        ("e", "2.718282", 1.0),  # a lone e is still Euler's number (compared to 6 decimals)
        # A product with a power of ten, written out exactly (math-verify alone: 930.0000000000001 != 930).
        ("9.3 \\times 10^{2}", "930", 1.0),
        ("1.1\\times10^{5}", "110000", 1.0),
        ("2.5\\cdot10^{-3}", "0.0025", 1.0),
        ("4 \u00d7 10^6", "4000000", 1.0),
        ("9.3 \\times 10^{2}", "93", 0.0),
        # A zero beside words: the whole answer (0 cm) or a product of letters and 0 (i*t*i*s*0), which never matches.
        ("it is 0", "0", 0.0),
        ("no 0", "0", 0.0),
        ("x 0", "0", 0.0),
        ("cm 0", "0", 0.0),
        ("x0", "0", 0.0),
        ("0 people", "0", 0.0),  # as "14 people" against 14: math-verify reads 14 x p x e x o x p x l x e
        ("x 0 + 5", "5", 0.0),
        ("0 cm", "0", 1.0),
        ("0 apples", "0", 1.0),  # as "14 apples" against 14
        ("0\\text{ cm}", "0", 1.0),
        ("x = 0", "0", 1.0),
        ("0", "0", 1.0),
        ("0.0", "0", 1.0),
        ("0\\%", "0", 1.0),
        ("3 \\times 0", "0", 1.0),  # an explicit product of numbers is not a product of words
    ],
)
def test_numerical_reward_reads_numbers_as_written(answer, solution, reward):
    assert numerical_reward(answer, solution) == reward


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1000, max_value=10**12), st.sampled_from([" ", "\u00a0", "\u2009", "\\,"]))
def test_any_integer_with_spaced_thousands_is_that_integer(value, space):
    written = f"{value:,}".replace(",", space)
    assert join_spaced_thousands(written) == str(value)
    assert number_value(written) == value
    assert numerical_reward(written, str(value)) == 1.0
    assert numerical_reward(written, "0") == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=99), st.integers(min_value=-6, max_value=9), st.sampled_from("eE"))
def test_any_e_notation_is_its_number(mantissa_tenths, exponent, e):
    written = f"{mantissa_tenths / 10}{e}{exponent}"  # "1.2e3", "9.9E-6"
    assert number_value(written) == pytest.approx(mantissa_tenths / 10 * 10.0**exponent)
    assert numerical_reward(written, f"{mantissa_tenths}\\times10^{{{exponent - 1}}}") == 1.0


# ---------------------------------------------------------------------------------------------------------------------
# The multiple-choice scorer: option texts read as written
# ---------------------------------------------------------------------------------------------------------------------

DOLLARS = ["A. $5", "B. $7", "C. $9"]


@pytest.mark.parametrize(
    "answer, solution, options, reward",
    [
        ("$7", "B", DOLLARS, 1.0),  # the option's text, "$" and all
        ("7", "B", DOLLARS, 1.0),
        ("B. $7", "B", DOLLARS, 1.0),
        ("$9", "B", DOLLARS, 0.0),
        ("7", "B", ["$5", "$7"], 1.0),  # unlabelled options
        ("$7", "$7", ["$5", "$7"], 1.0),  # the solution written as the option's text
        ("45000", "B", ["4 500", "45 000"], 1.0),
        ("45 000", "B", ["4500", "45000"], 1.0),
        ("1000", "B", ["100", "1,000"], 1.0),
        ("1.2e3", "A", ["1200", "120"], 1.0),
    ],
)
def test_multiple_choice_reads_option_numbers_as_written(answer, solution, options, reward):
    assert multiple_choice_reward(answer, solution, options=options) == reward


def test_outcome_reward_scores_an_option_that_starts_with_a_dollar():
    completions = [f"<think>x</think><answer>{answer}</answer>" for answer in ("$7", "$5", "1.2e3", "10 000")]
    rewards = outcome_reward(
        completions,
        solution=["<answer>B</answer>", "<answer>B</answer>", "<answer>1200</answer>", "<answer>0</answer>"],
        problem_type=["multiple choice", "multiple choice", "numerical", "numerical"],
        options=[DOLLARS, DOLLARS, None, None],
    )
    assert rewards == [1.0, 0.0, 1.0, 0.0]


# ---------------------------------------------------------------------------------------------------------------------
# The readers themselves
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, joined",
    [
        ("45 000", "45000"),
        ("-10 000", "-10000"),
        ("1 234 567.5", "1234567.5"),
        ("10\\,000 cm", "10000 cm"),
        ("10~000", "10000"),
        ("3 4", "3 4"),  # a second group of one digit
        ("10 00", "10 00"),  # of two
        ("2007 2008", "2007 2008"),  # a first group of four
        ("1.5 000", "1.5 000"),  # after a decimal point
        ("10  000", "10  000"),  # two spaces
    ],
)
def test_join_spaced_thousands(text, joined):
    assert join_spaced_thousands(text) == joined


@pytest.mark.parametrize(
    "text, read",
    [
        ("1.2e3", "1200"),
        ("1.20E3", "1200"),
        ("2.5E-4", "0.00025"),
        ("-9.3e2", "-930"),
        ("5e2 cm", "500 cm"),
        ("x = 3e+2.", "x = 300."),
        ("9.3 \\times 10^{2}", "930"),
        ("2.5\\cdot10^-3", "0.0025"),
        ("1.5*10^{4}", "15000"),
        ("2 \\cdot 9.3 \\times 10^{2}", "2 \\cdot 930"),
        ("1e40", "1\\times10^{40}"),  # a large exponent stays a power of ten
        ("5.5e-40", "55\\times10^{-41}"),
        ("45 000", "45000"),
        ("2e", "2e"),  # Euler's number
        ("e^{3}", "e^{3}"),
        ("x2e3", "x2e3"),  # part of a name
        ("1.2e3m", "1.2e3m"),
        ("x^2 \\times 10^3", "x^2 \\times 10^3"),  # the 2 is an exponent, not a mantissa
    ],
)
def test_read_as_written_writes_scientific_notation_out(text, read):
    assert read_as_written(text) == read


@pytest.mark.parametrize(
    "text, value",
    [("45 000", 45000.0), ("-1,234.5", -1234.5), ("1.2e3", 1200.0), (".5", 0.5), ("7", 7.0)]
    + [(text, None) for text in ("7 cm", "1,5", "12,34", "e3", "-", "", "x")],
)
def test_number_value(text, value):
    assert number_value(text) == value


@pytest.mark.parametrize(
    "text, beside_word",
    [
        ("it is 0", True),
        ("it is 0.", True),
        ("0 cm", True),
        ("0x", True),
        ("3 0", True),
        ("\\text{none} 0", True),
        ("x = 0", False),
        ("3 \\times 0", False),
        ("0 \\times 5", False),
        ("0\\%", False),
        ("0^\\circ", False),
        ("(0, 1)", False),
        ("10", False),
        ("2.0", False),
        ("0.5 kg", False),
    ],
)
def test_zero_next_to_word(text, beside_word):
    assert zero_next_to_word(text) is beside_word


def test_zero_written_as_one_keeps_other_numbers():
    assert zero_written_as_one("it is 0, not 10 or 2.0 or 0.5; 0.00 cm") == "it is 1, not 10 or 2.0 or 0.5; 1 cm"
