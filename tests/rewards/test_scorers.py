"""Tests of the per-type scorers: tables worked out by hand, properties, the math-verify time bound."""

import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sophia_trl.rewards import math_verify_worker
from sophia_trl.rewards.scorers import (
    free_form_reward,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    parse_choices,
    short_text_reward,
)

# ---------------------------------------------------------------------------------------------------------------------
# numerical
# ---------------------------------------------------------------------------------------------------------------------

NUMERICAL_CASES = [
    ("14", "14", 1.0),
    ("14.0", "14", 1.0),
    ("+14", "14", 1.0),
    ("$14$", "14", 1.0),
    ("$$14.00$$", "14", 1.0),
    (r"\(14\)", "14", 1.0),
    (r"\[14\]", "14", 1.0),
    (r"\boxed{14}", "14", 1.0),
    (r"14\text{ cm}", "14", 1.0),
    ("14 cm", "14", 1.0),
    ("14°", "14", 1.0),
    ("x = 14", "14", 1.0),
    (r"\frac{28}{2}", "14", 1.0),
    (r"\frac{1}{2}", "0.5", 1.0),
    ("0.5", r"\frac{1}{2}", 1.0),
    ("1/2", "0.5", 1.0),
    (r"\dfrac12", "0.5", 1.0),
    (r"50\%", "0.5", 1.0),
    ("1,000", "1000", 1.0),
    ("−3", "-3", 1.0),  # U+2212, the minus sign of typeset text
    ("4.242641", r"3\sqrt{2}", 1.0),  # equal to math-verify's 6 decimals
    ("15", "14", 0.0),
    ("14.01", "14", 0.0),
    ("-14", "14", 0.0),
    ("0.33", r"\frac{1}{3}", 0.0),
    ("4.24", r"3\sqrt{2}", 0.0),
    ("fourteen", "14", 0.0),
    ("", "14", 0.0),
    ("$$", "14", 0.0),
]


@pytest.mark.parametrize("answer, solution, expected", NUMERICAL_CASES)
def test_numerical_reward(answer, solution, expected):
    assert numerical_reward(answer, solution) == expected


def test_numerical_reward_rejects_unparsable_solution():
    with pytest.raises(ValueError, match="cannot parse the numerical solution"):
        numerical_reward(r"14 + 1", "\\")


def test_numerical_answer_over_max_length_scores_zero_without_parsing():
    start = time.perf_counter()
    assert numerical_reward("1" * 257, "1" * 257) == 0.0
    assert numerical_reward("1" * 256, "1" * 256) == 1.0
    assert time.perf_counter() - start < 1.0


# "9^{9^{9}}" against 14 ran for minutes in math-verify without a time bound (a 370-million-digit power).
SLOW_ANSWER = "9^{9^{9}}"


@pytest.fixture
def warm_worker():
    """A started math-verify worker, so that timings below measure the deadline and not the process start."""
    assert numerical_reward("1+1", "2") == 1.0
    return math_verify_worker._WORKER


def test_slow_numerical_answer_returns_within_a_second_in_the_main_thread(warm_worker):
    start = time.perf_counter()
    assert numerical_reward(SLOW_ANSWER, "14", timeout=0.5) == 0.0
    elapsed = time.perf_counter() - start
    assert 0.5 <= elapsed < 1.0
    assert numerical_reward("2+2", "4") == 1.0  # a new worker takes over


def test_slow_numerical_answer_returns_within_a_second_in_a_worker_thread(warm_worker):
    result = {}

    def score():
        start = time.perf_counter()
        result["reward"] = numerical_reward(SLOW_ANSWER, "14", timeout=0.5)
        result["elapsed"] = time.perf_counter() - start

    thread = threading.Thread(target=score)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["reward"] == 0.0
    assert 0.5 <= result["elapsed"] < 1.0


def test_numerical_reward_from_concurrent_threads(warm_worker):
    # 4 threads x 3 answers, half of them through the worker process, all right despite sharing it.
    cases = [("1+1", "2", 1.0), ("7", "7.0", 1.0), (r"\frac{3}{4}", "0.7", 0.0)] * 4
    results = [None] * len(cases)

    def score(index):
        answer, solution, _ = cases[index]
        results[index] = numerical_reward(answer, solution)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected for _, _, expected in cases]


# ---------------------------------------------------------------------------------------------------------------------
# multiple choice
# ---------------------------------------------------------------------------------------------------------------------

MULTIPLE_CHOICE_CASES = [
    ("B", "B", 1.0),
    ("(B)", "B", 1.0),
    ("[B]", "B", 1.0),
    ("B.", "B", 1.0),
    ("B)", "B", 1.0),
    ("b", "B", 1.0),
    ("B. 40", "B", 1.0),
    ("B) 40", "B", 1.0),
    ("(B) 40", "B", 1.0),
    ("B: 40", "B", 1.0),
    ("B - 40", "B", 1.0),
    ("B. 1,000 and more", "B", 1.0),
    (r"\boxed{B}", "B", 1.0),
    (r"$\boxed{\text{B}}$", "B", 1.0),
    ("**B**", "B", 1.0),
    ("The answer is B.", "B", 1.0),
    ("Answer: (B)", "B", 1.0),
    ("Option B", "B", 1.0),
    ("B", "B. 40", 1.0),
    ("B", "(B)", 1.0),
    ("A, C", "A,C", 1.0),
    ("A,C", "A, C", 1.0),
    ("C, A", "A,C", 1.0),
    ("A and C", "A,C", 1.0),
    ("(A) and (C)", "A,C", 1.0),
    ("A; C", "A,C", 1.0),
    ("A C", "A,C", 1.0),
    ("AC", "A,C", 1.0),
    ("A. 40, C. 60", "A,C", 1.0),
    ("A", "B", 0.0),
    ("B. 40", "C", 0.0),
    ("A", "A,C", 0.0),
    ("A, B, C", "A,C", 0.0),
    ("A or B", "A", 0.0),  # a hedge names two options
    ("AA", "A", 0.0),
    ("I think it is B", "B", 0.0),  # a letter inside a sentence is not read
    ("40", "B", 0.0),  # an option text needs the options
    ("", "B", 0.0),
]


@pytest.mark.parametrize("answer, solution, expected", MULTIPLE_CHOICE_CASES)
def test_multiple_choice_reward(answer, solution, expected):
    assert multiple_choice_reward(answer, solution) == expected


@pytest.mark.parametrize(
    "answer, solution, options, expected",
    [
        ("50", "B", ["A. 40", "B. 50", "C. 60"], 1.0),
        ("Red.", "C", ["blue", "green", "red"], 1.0),  # unlabelled options are A, B, C in order
        ("B", "50", ["A. 40", "B. 50", "C. 60"], 1.0),  # a solution written as the option text
        ("60", "B", ["A. 40", "B. 50", "C. 60"], 0.0),
        ("55", "B", ["A. 40", "B. 50", "C. 60"], 0.0),
    ],
)
def test_multiple_choice_reward_with_options(answer, solution, options, expected):
    assert multiple_choice_reward(answer, solution, options=options) == expected


def test_multiple_choice_reward_rejects_solution_without_a_letter():
    with pytest.raises(ValueError, match="No option letter"):
        multiple_choice_reward("B", "forty")


def test_parse_choices():
    assert parse_choices("(A) and C") == frozenset("AC")
    assert parse_choices("the answer is d") == frozenset("D")
    assert parse_choices("Answering is hard") is None
    assert parse_choices("...") is None


# ---------------------------------------------------------------------------------------------------------------------
# OCR
# ---------------------------------------------------------------------------------------------------------------------

# WER = (substitutions + deletions + insertions) / reference words.
OCR_CASES = [
    ("hello world", "hello world", 0.0),
    ("  hello   world ", "hello world", 0.0),
    ("hello word", "hello world", 0.5),  # 1 substitution / 2
    ("hello", "hello world", 0.5),  # 1 deletion / 2
    ("hello big world", "hello world", 0.5),  # 1 insertion / 2
    ("Hello world", "hello world", 0.5),  # case counts
    ("a b c d e f g", "hello world", 3.5),  # 2 substitutions + 5 insertions / 2
    ("STOP", "STOP", 0.0),
]


@pytest.mark.parametrize("answer, solution, wer", OCR_CASES)
def test_ocr_reward(answer, solution, wer):
    assert ocr_reward(answer, solution) == pytest.approx(math.exp(-wer))
    assert ocr_reward(answer, solution, mode="neg") == pytest.approx(-wer)


def test_ocr_reward_empty_answer_and_bad_mode():
    assert ocr_reward("", "hello world") == 0.0
    assert ocr_reward("  ", "hello world", mode="neg") == -1.0
    with pytest.raises(ValueError, match="'wer'"):
        ocr_reward("a", "a", mode="wer")


# ---------------------------------------------------------------------------------------------------------------------
# free-form and text
# ---------------------------------------------------------------------------------------------------------------------

FREE_FORM_CASES = [
    ("a red circle left of a blue square", "a red circle left of a blue square", 1.0),
    # R1: P 3/3, R 3/6 -> 2/3; R2: P 2/2, R 2/5 -> 4/7; RL: LCS 3 -> 2/3.
    ("the cat sat", "the cat sat on the mat", (2 / 3 + 4 / 7 + 2 / 3) / 3),
    # One word has no bigram: R1 = RL = 1 and R2 = 0, so a correct one-word answer gets 2/3.
    ("Paris", "Paris", 2 / 3),
    ("cats", "cat", 2 / 3),  # the stemmer maps "cats" to "cat"
    # R1: 2 common of 3 and 3 -> 2/3; R2: "red circle" in both -> 1/2; RL: LCS 2 -> 2/3.
    ("red circle left", "red circle right", (2 / 3 + 1 / 2 + 2 / 3) / 3),
    # The released code scores "text" rows this way: a wrong answer sharing words passes 0.5. R1 2/3, R2 1/2, RL 2/3.
    ("large red square", "small red square", (2 / 3 + 1 / 2 + 2 / 3) / 3),
    ("dog", "red circle", 0.0),
    ("", "red circle", 0.0),
    ("巴黎铁塔", "巴黎铁塔", 1.0),  # no ASCII words: one token per character
    # 2 of 4 characters, one common bigram of 3: R1 1/2, R2 1/3, RL 1/2.
    ("巴黎公园", "巴黎铁塔", (1 / 2 + 1 / 3 + 1 / 2) / 3),
]


@pytest.mark.parametrize("answer, solution, expected", FREE_FORM_CASES)
def test_free_form_reward(answer, solution, expected):
    assert free_form_reward(answer, solution) == pytest.approx(expected)


TEXT_CASES = [
    ("Paris", "Paris", 1.0),
    ("paris", "Paris", 1.0),
    ("PARIS!", "Paris", 1.0),
    ("The Eiffel Tower.", "eiffel tower", 1.0),
    (r"\text{Paris}", "Paris", 1.0),
    ("São Paulo", "são paulo", 1.0),
    ("A", "A", 1.0),  # an answer that is only an article keeps it
    ("The", "A", 0.0),
    ("blue square", "red square", 0.5 * 0.5),  # LCS 1 of 2 and 2: F 1/2
    ("Abraham Lincoln", "Lincoln", 0.5 * 2 / 3),  # P 1/2, R 1: F 2/3
    ("large red square", "small red square", 0.5 * 2 / 3),  # LCS 2 of 3 and 3: below 0.5, unlike free-form
    ("York New", "New York", 0.5 * 0.5),  # reordered words are not a match: LCS 1
    ("Madrid", "Paris", 0.0),
    ("", "Paris", 0.0),
    ("?", "?", 1.0),  # nothing left after normalisation: compared as written
]


@pytest.mark.parametrize("answer, solution, expected", TEXT_CASES)
def test_short_text_reward(answer, solution, expected):
    assert short_text_reward(answer, solution) == pytest.approx(expected)


def test_short_text_reward_exact_match_only():
    assert short_text_reward("blue square", "red square", partial_credit=0.0) == 0.0
    with pytest.raises(ValueError, match="partial_credit"):
        short_text_reward("a", "a", partial_credit=2.0)


# ---------------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    letters=st.lists(st.sampled_from("ABCDEF"), min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_multiple_choice_is_invariant_to_letter_order(letters, data):
    permuted = data.draw(st.permutations(letters))
    separator = data.draw(st.sampled_from([",", ", ", " and ", "; ", " "]))
    wrap = data.draw(st.sampled_from(["{}", "({})", "{}."]))
    answer = separator.join(wrap.format(letter) for letter in permuted)
    assert multiple_choice_reward(answer, ",".join(letters)) == 1.0
    assert multiple_choice_reward(",".join(permuted), "".join(letters)) == 1.0
    if len(letters) > 1:
        assert multiple_choice_reward(answer, ",".join(letters[1:])) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    value=st.integers(min_value=-(10**6), max_value=10**6),
    form=st.sampled_from(["{}", "{}.0", "${}$", r"\boxed{{{}}}"]),
)
def test_numerical_accepts_every_way_of_writing_an_integer(value, form):
    assert numerical_reward(form.format(value), str(value)) == 1.0
    assert numerical_reward(form.format(value + 1), str(value)) == 0.0
