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


@pytest.mark.parametrize(
    "answer, expected",
    [
        (ExtractedAnswer("line one\nline two", "answer_tag"), "line one\nline two"),  # the tag content as is
        (ExtractedAnswer("reasoning\n\nYes\n", "full_response"), "Yes"),  # reasoning, then the answer
        # a bare answer, then an explanation: the answer is the first line
        (ExtractedAnswer("Yes\nThe image shows a dog.", "full_response"), "Yes"),
        (ExtractedAnswer("No.\n\nThere is no cat.", "after_think"), "No."),
        (ExtractedAnswer("25%\nThe blue bar reads 25 percent.", "full_response"), "25%"),
        (ExtractedAnswer("Okay, let me look\nThe answer is 25", "full_response"), "The answer is 25"),
        (ExtractedAnswer("Yes", "full_response"), "Yes"),
        (ExtractedAnswer("", "empty"), ""),
    ],
)
def test_free_text_answer(answer, expected):
    assert free_text_answer(answer) == expected


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
        # a final letter after a discussion of the other options; mentions and rejected options do not win
        ("Option A gives 30, option C gives 50, so B.", "B"),
        ("Checking each option: A: 30, B: 40. So B", "B"),
        ("B is correct; A is wrong.", "B"),
        ("B, not A.", "B"),
        ("The answer is B. Option A is too small.", "B"),
        ("Not A but C", "C"),
        ("The angle is 40", "B"),  # the option's text inside the answer
        ("It is 40 or 50", None),
        ("B\nOption C does not match the figure.", "B"),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text, 4, OPTIONS) == expected


@pytest.mark.parametrize(
    "text, options, expected",
    [
        # options that are themselves letters or Roman numerals: the letter followed by its own text
        ("A. I", ["I", "II", "III", "IV"], "A"),
        ("(C) III", ["I", "II", "III", "IV"], "C"),
        ("I", ["I", "II", "III", "IV"], "A"),  # out of range as a letter: the option's text
        ("IV", ["I", "II", "III", "IV"], "D"),
        ("A. B", ["B", "A", "D", "C"], "A"),
        ("A", ["B", "A", "D", "C"], "A"),  # a letter in range is the letter
        # an option's text inside a sentence (VLMEvalKit's can_infer_text), exactly one, not inside another option
        ("It is China.", ["China", "Japan", "India", "Korea"], "A"),
        ("I think it is Japan", ["China", "Japan", "India", "Korea"], "B"),
        ("China or Japan", ["China", "Japan", "India", "Korea"], None),
        ("It is in South China", ["South China", "China", "Japan", "India"], "A"),
        ("It is China", ["South China", "China", "Japan", "India"], "B"),
        ("It is 13", ["-3", "3", "0", "6"], None),  # "3" is not inside "13"
        ("It is -3", ["-3", "3", "0", "6"], "A"),  # "3" inside "-3" is option A's text
        ("I think it is 4", ["2", "4", "6", "8"], "B"),  # a short answer, longer than twice the options' texts
        ("I think it is II", ["I", "II", "III", "IV"], "B"),  # the pronoun "I" is not option A
        # an option's text holding a capital letter or an article is not a letter
        ("It is Vitamin C", ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"], "B"),
        ("so D. A Square", ["A circle", "A triangle", "A line", "A Square"], "D"),
        ("B. $7", ["$5", "$7", "$9", "$11"], "B"),
    ],
)
def test_parse_choice_with_option_texts(text, options, expected):
    assert parse_choice(text, len(options), options) == expected


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
        ("62.8 cm^2", 62.8),  # a unit's exponent is not the number
        ("62.8 \\text{cm}^{2}", 62.8),
        ("9.8 m/s^2", 9.8),
        ("2.5 \\times 10^{4}", 25000.0),  # a power of ten still is
        ("no number here", None),
        ("nan", None),
        ("", None),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected
