import pytest
from hypothesis import given
from hypothesis import strategies as st

from sophia_trl.evaluation.answers import (
    ExtractedAnswer,
    answer_with_fallback,
    free_text_answer,
    parse_choice,
    parse_number,
)


@pytest.mark.parametrize(
    "response, text, source",
    [
        ("<think>2 + 2 = 4</think><answer>4</answer>", "4", "answer_tag"),
        ("<think>x</think>\n<answer>\n  B \n</answer>\n", "B", "answer_tag"),
        # the last tag wins: models sometimes restate a draft answer before the final one
        ("<answer>A</answer> wait <answer>C</answer>", "C", "answer_tag"),
        ("<ANSWER>7</ANSWER>", "7", "answer_tag"),
        ("<think>x</think><answer></answer>", "", "answer_tag"),
        ("<think>so it is 12</think> The answer is 12.", "The answer is 12.", "after_think"),
        # an opened but never closed answer tag (stopped at a stop string) still yields what follows </think>
        ("<think>ok</think><answer>B", "B", "after_think"),
        ("<think>I count 3 squares", "I count 3 squares", "full_response"),
        ("<think>nothing after</think>", "nothing after", "full_response"),
        ("The answer is B", "The answer is B", "full_response"),
        ("", "", "empty"),
        ("  \n ", "", "empty"),
        (None, "", "empty"),
    ],
)
def test_answer_with_fallback(response, text, source):
    assert answer_with_fallback(response) == ExtractedAnswer(text, source)


@given(
    thinking=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=40),
    answer=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=20),
)
def test_tagged_answer_is_returned_stripped(thinking, answer):
    extracted = answer_with_fallback(f"<think>{thinking}</think><answer>{answer}</answer>")
    assert extracted == ExtractedAnswer(answer.strip(), "answer_tag")


def test_free_text_answer_takes_last_line_only_for_fallbacks():
    assert free_text_answer(ExtractedAnswer("line one\nline two", "answer_tag")) == "line one\nline two"
    assert free_text_answer(ExtractedAnswer("reasoning\n\nYes\n", "full_response")) == "Yes"


OPTIONS = ["30", "40", "50", "60"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"),
        ("(b)", "B"),
        ("B.", "B"),
        ("B. 40", "B"),
        ("B) 40", "B"),
        ("B: 40", "B"),
        ("40", "B"),  # the option's text
        ("40.", "B"),
        ("The answer is (C).", "C"),
        ("So the answer is D", "D"),
        ("\\boxed{B}", "B"),
        ("A, C", None),  # two options for a single-answer question
        ("E", None),  # out of range for four options
        ("forty", None),
        ("", None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text, 4, OPTIONS) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("42", 42.0),
        ("-3.5", -3.5),
        ("1,234", 1234.0),
        ("1,234.5 cm", 1234.5),
        ("5cm", 5.0),
        ("$12$", 12.0),
        ("\\boxed{7}", 7.0),
        ("\\frac{1}{4}", 0.25),
        ("$\\dfrac{3}{2}$", 1.5),
        ("45%", 45.0),
        ("x = 2, so y = 9", 9.0),  # the last number
        ("1e3", 1000.0),
        ("no number here", None),
        ("nan", None),
        ("", None),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected
