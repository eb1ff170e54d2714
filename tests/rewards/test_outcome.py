"""Tests of the outcome reward functions: the format gate, dispatch by problem type, the TRL call, properties."""

import functools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sophia_trl.rewards.outcome import format_reward, outcome_reward, score_answer, well_formed_answer
from sophia_trl.rewards.problem_types import PROBLEM_TYPES


def respond(answer: str, think: str = "Reasoning.") -> list[dict[str, str]]:
    return [{"role": "assistant", "content": f"<think>{think}</think>\n<answer>{answer}</answer>"}]


# ---------------------------------------------------------------------------------------------------------------------
# Format gate
# ---------------------------------------------------------------------------------------------------------------------

FORMAT_CASES = [
    ("<think>a</think><answer>b</answer>", "b"),
    ("  <think>\na\n</think>\n\n<answer> b </answer>\n", "b"),
    ("<think></think><answer>b</answer>", "b"),
    ("<think>a</think><answer></answer>", ""),
    ("<think>x < y and y > z</think><answer>b</answer>", "b"),
    ("<answer>b</answer>", None),
    ("<think>a</think>", None),
    ("<think>a</think>b", None),
    ("<answer>b</answer><think>a</think>", None),
    ("<think>a</think> so <answer>b</answer>", None),
    ("<think>a</think><answer>b</answer> Hope this helps.", None),
    ("Sure! <think>a</think><answer>b</answer>", None),
    ("<think>a</think><answer>b</answer><answer>c</answer>", None),
    ("<think>a<think>b</think><answer>c</answer>", None),
    ("<think>a</think><answer>b", None),
    ("<THINK>a</THINK><ANSWER>b</ANSWER>", None),
    ("", None),
    ("b", None),
]


@pytest.mark.parametrize("response, expected", FORMAT_CASES)
def test_well_formed_answer(response, expected):
    assert well_formed_answer(response) == expected


def test_format_reward_reads_conversational_and_plain_completions():
    completions = [
        respond("4"),
        "<think>t</think><answer>4</answer>",
        "4",
        [{"role": "assistant", "content": [{"type": "text", "text": "<think>t</think><answer>4</answer>"}]}],
        [{"role": "assistant", "content": ""}],
    ]
    assert format_reward(completions) == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert format_reward.__name__ == "format_reward"


def test_huge_response_is_gated_quickly():
    huge = "<think>" + "x" * 2_000_000 + "</think>"  # no answer tags: a rambling policy cut by the length limit
    start = time.perf_counter()
    assert format_reward([huge, huge + "<answer>4</answer>"]) == [0.0, 1.0]
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------------------------------------------------------------
# outcome_reward
# ---------------------------------------------------------------------------------------------------------------------


def test_outcome_reward_dispatches_by_problem_type():
    completions = [
        respond("$14.0$"),
        respond("(B) 40"),
        respond("hello word"),
        respond("the cat sat"),
        respond("The Eiffel Tower"),
        "<think>plain string</think><answer>C, A</answer>",
        respond("14", think=""),
        [{"role": "assistant", "content": "14"}],  # no tags
    ]
    rewards = outcome_reward(
        completions,
        solution=[
            "<answer>14</answer>",
            "<answer>B</answer>",
            "hello world",
            "<answer>the cat sat on the mat</answer>",
            "eiffel tower",
            "A,C",
            "$14$",
            "14",
        ],
        problem_type=[
            "numerical",
            "multiple choice",
            "OCR",
            "free-form",
            "text",
            "Multiple Choice",
            "numerical",
            "numerical",
        ],
    )
    expected = [1.0, 1.0, math.exp(-0.5), (2 / 3 + 4 / 7 + 2 / 3) / 3, 1.0, 1.0, 1.0, 0.0]
    assert rewards == pytest.approx(expected)
    assert outcome_reward.__name__ == "outcome_reward"


def test_outcome_reward_as_trl_calls_it():
    # GRPOTrainer passes every dataset column and its own arguments by keyword (trl 1.16, `_calculate_rewards`).
    logged = {}
    rewards = outcome_reward(
        prompts=[[{"role": "user", "content": "How many?"}]] * 2,
        completions=[respond("3"), respond("4")],
        completion_ids=[[1, 2], [3, 4]],
        solution=["<answer>3</answer>"] * 2,
        problem_type=["numerical"] * 2,
        options=[[], []],
        problem=["How many?"] * 2,
        image=[None, None],
        trainer_state=None,
        log_extra=lambda column, values: logged.setdefault(column, values),
        log_metric=lambda name, value: None,
    )
    assert rewards == [1.0, 0.0]
    assert logged == {"extracted_answer": ["3", "4"]}


def test_outcome_reward_ocr_mode_through_partial():
    neg_wer = functools.partial(outcome_reward, ocr_mode="neg")  # trl 1.16 names a partial after its function
    rewards = neg_wer([respond("hello word"), "hello world"], solution=["hello world"] * 2, problem_type=["OCR"] * 2)
    assert rewards == [-0.5, -1.0]  # a gated response scores as an empty transcription, not as a perfect one


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"problem_type": ["essay"]}, r"row 0 .*Unknown problem_type 'essay': expected one of \['multiple choice'"),
        ({"problem_type": [None]}, "Unknown problem_type None"),
        ({"solution": [None]}, "row 0 .*Missing solution"),
        ({"solution": ["<answer> $ </answer>"]}, "row 0 .*Empty solution"),
        ({"solution": ["forty"], "problem_type": ["multiple choice"]}, "row 0 .*No option letter"),
        ({"solution": None}, "needs a `solution` column"),
        ({"problem_type": None}, "needs a `problem_type` column"),
        ({"ocr_mode": "wer"}, "Unknown ocr_mode 'wer'"),
        ({"solution": ["1", "2"]}, "1 completions, 2 solutions and 1 problem types"),
    ],
)
def test_outcome_reward_bad_rows_raise(kwargs, message):
    arguments = {"solution": ["14"], "problem_type": ["numerical"]} | kwargs
    with pytest.raises(ValueError, match=message):
        outcome_reward(["no tags at all"], **arguments)  # raises even though the completion is gated


def test_score_answer_unwraps_the_solution():
    assert score_answer("$14$", "<answer>$14.0$</answer>", "numerical") == 1.0
    assert score_answer("b", "<answer>(B)</answer>", " multiple choice ") == 1.0


# ---------------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------------

SOLUTIONS = {
    "multiple choice": "B",
    "numerical": "14",
    "OCR": "hello world",
    "free-form": "a red circle left of a blue square",
    "text": "Paris",
}
# Letters, digits, LaTeX and the tag characters: the material models write answers with.
ANSWER_TEXT = st.lists(st.sampled_from([*"ABCabc0123456789 .,()$\\{}^-+/<>=!?", "Paris", "hello", "14"])).map("".join)


@settings(max_examples=60, deadline=None)
@given(answer=ANSWER_TEXT, problem_type=st.sampled_from(PROBLEM_TYPES))
def test_every_score_is_in_the_unit_interval(answer, problem_type):
    solution = SOLUTIONS[problem_type]
    (reward,) = outcome_reward([respond(answer)], solution=[solution], problem_type=[problem_type])
    assert 0.0 <= reward <= 1.0


@settings(max_examples=60, deadline=None)
@given(answer=ANSWER_TEXT, solution=st.text(alphabet="abc xyz", min_size=1).filter(str.strip))
def test_negative_wer_is_at_most_zero(answer, solution):
    (reward,) = outcome_reward([respond(answer)], solution=[solution], problem_type=["OCR"], ocr_mode="neg")
    assert reward <= 0.0
    assert (reward == 0.0) == (answer.split() == solution.split())  # WER is 0 only for the same words


@settings(max_examples=60, deadline=None)
@given(
    problem_type=st.sampled_from(PROBLEM_TYPES),
    dropped=st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>"]), min_size=1, unique=True),
    think=st.text(alphabet="abc 12\n"),
)
def test_gate_zeroes_a_response_missing_a_tag(problem_type, dropped, think):
    solution = SOLUTIONS[problem_type]
    response = f"<think>{think}</think>\n<answer>{solution}</answer>"
    assert outcome_reward([response], solution=[solution], problem_type=[problem_type]) == [1.0]
    for tag in dropped:
        response = response.replace(tag, "")
    assert outcome_reward([response], solution=[solution], problem_type=[problem_type]) == [0.0]
