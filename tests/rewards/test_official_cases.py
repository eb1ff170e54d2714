"""The training reward's multiple-choice reading on the cases of tests/evaluation/test_official_verdicts.py it shares
with evaluation (`parse_choices`): negative and numeric options, Unicode minus, articles; verdicts as worked out there
from MathVista's `normalize_extracted_answer` and VLMEvalKit's `can_infer_option` / `can_infer_text`."""

import pytest

from sophia_trl.rewards import outcome_reward
from sophia_trl.rewards.scorers import multiple_choice_reward

SIGNED = ["-3", "3", "0", "6"]
EVEN = ["2", "4", "6", "8"]
SHAPES = ["A circle", "A triangle", "A line", "A square"]


@pytest.mark.parametrize(
    "answer, solution, options, reward",
    [
        ("-3", "A", SIGNED, 1.0),  # option A's text, sign kept
        ("\u22123", "A", SIGNED, 1.0),  # Unicode minus
        ("3", "A", SIGNED, 0.0),  # option B
        ("3", "B", SIGNED, 1.0),
        ("0", "C", SIGNED, 1.0),
        ("6.0", "D", SIGNED, 1.0),
        ("4.0", "B", EVEN, 1.0),  # 4.0 is the option 4
        ("4", "B", EVEN, 1.0),
        ("5", "B", EVEN, 0.0),  # no option: unparsable, 0
        ("A. -3", "A", SIGNED, 1.0),
        ("A, B", "A", SIGNED, 0.0),  # two options for one
        ("D, A square", "D", SHAPES, 1.0),  # the letter, then its text
        ("The correct option is D, A square.", "D", SHAPES, 1.0),
        ("A square", "D", SHAPES, 1.0),  # option D's whole text: the "A" is its article
        ("square", "D", SHAPES, 1.0),
        ("A", "D", SHAPES, 0.0),
        ("A circle", "D", SHAPES, 0.0),
    ],
)
def test_multiple_choice_reward_reads_options_as_evaluation_does(answer, solution, options, reward):
    assert multiple_choice_reward(answer, solution, options=options) == reward


def test_outcome_reward_gives_a_right_negative_option_its_reward():
    completions = [f"<think>x</think><answer>{answer}</answer>" for answer in ("-3", "\u22123", "3", "4.0")]
    rewards = outcome_reward(
        completions,
        solution=["<answer>A</answer>"] * 3 + ["<answer>B</answer>"],
        problem_type=["multiple choice"] * 4,
        options=[SIGNED] * 3 + [EVEN],
    )
    assert rewards == [1.0, 1.0, 0.0, 1.0]
