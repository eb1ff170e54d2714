"""Evaluation reads numbers and option texts as the training reward does: spaced thousands are one number, and an
option whose text starts with `$` is chosen by its text."""

import pytest

from sophia_trl.evaluation.answers import parse_choice, parse_number


@pytest.mark.parametrize(
    "text, value",
    [
        ("10 000", 10000.0),  # not 10 and 0, read as the last number 0
        ("45 000", 45000.0),
        ("45 000 cm", 45000.0),
        ("The answer is 1 234.5.", 1234.5),
        ("10\u202f000", 10000.0),  # narrow no-break space
        ("1.2e3", 1200.0),
        ("1.20e3", 1200.0),
        ("3 4", 4.0),  # not groups of three: two numbers, the last one read
    ],
)
def test_parse_number_reads_spaced_thousands_as_one_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("answer", ["$7", "7", "B. $7", "B"])
def test_parse_choice_reads_an_option_that_starts_with_a_dollar(answer):
    assert parse_choice(answer, 3, ["$5", "$7", "$9"]) == "B"
