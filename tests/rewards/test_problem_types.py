"""Tests of the problem-type registry: its entries, the one normaliser, and a type added in one place."""

import pytest

from sophia_trl.prompts import REASONING_INSTRUCTION, build_prompt
from sophia_trl.rewards.outcome import outcome_reward, score_answer
from sophia_trl.rewards.problem_types import (
    PROBLEM_TYPE_REGISTRY,
    PROBLEM_TYPES,
    ProblemType,
    get_problem_type,
    normalize_problem_type,
)


def respond(answer: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": f"<think>Reasoning.</think>\n<answer>{answer}</answer>"}]


def test_built_in_types_in_order():
    # The order is the round robin of the synthetic task and the demo: changing it changes their datasets.
    assert PROBLEM_TYPES == ("multiple choice", "numerical", "OCR", "free-form", "text")
    assert tuple(PROBLEM_TYPE_REGISTRY) == PROBLEM_TYPES
    assert all(name == entry.name for name, entry in PROBLEM_TYPE_REGISTRY.items())


def test_every_spelling_names_one_type():
    spellings = [s.strip().lower() for t in PROBLEM_TYPE_REGISTRY.values() for s in (t.name, *t.aliases)]
    assert len(spellings) == len(set(spellings)) == 9


def test_entries_are_frozen():
    with pytest.raises(AttributeError):
        PROBLEM_TYPE_REGISTRY["text"].instruction = "Anything."


@pytest.mark.parametrize(
    "value, expected",
    [
        ("multiple choice", "multiple choice"),
        ("Multiple_Choice", "multiple choice"),
        ("multiple-choice", "multiple choice"),
        ("ocr", "OCR"),
        ("OCR", "OCR"),
        (" free_form ", "free-form"),
        ("Free Form", "free-form"),
        ("numerical", "numerical"),
        ("TEXT", "text"),
        ("regression", None),
        ("", None),
        (None, None),
        (3, None),
    ],
)
def test_normalize_problem_type(value, expected):
    assert normalize_problem_type(value) == expected


def test_get_problem_type_names_the_known_types():
    assert get_problem_type(" Numerical ") is PROBLEM_TYPE_REGISTRY["numerical"]
    with pytest.raises(ValueError, match=r"Unknown problem_type 'essay': expected one of \['multiple choice', "):
        get_problem_type("essay")


def test_outcome_reward_reads_the_aliases_the_converters_read():
    # The outcome reward reads every spelling that the converters normalise, with the same score as the name.
    rewards = outcome_reward(
        [respond("A, C")] * 3 + [respond("the cat sat")],
        solution=["C,A"] * 3 + ["the cat sat on the mat"],
        problem_type=["multiple choice", "multiple_choice", "Multiple-Choice", "free form"],
    )
    assert rewards == pytest.approx([1.0, 1.0, 1.0, (2 / 3 + 4 / 7 + 2 / 3) / 3])  # R1 2/3, R2 4/7, RL 2/3


SOLUTIONS = {
    "multiple choice": "B",
    "numerical": "14",
    "OCR": "hello world",
    "free-form": "a red circle left of a blue square",
    "text": "Paris",
}


@pytest.mark.parametrize("name", PROBLEM_TYPES)
def test_an_empty_answer_gets_the_lowest_score(name):
    # A completion that fails the format gate is scored as an empty answer: 0, or -1 (an empty transcription's -WER).
    scorer = PROBLEM_TYPE_REGISTRY[name].scorer
    assert scorer("", SOLUTIONS[name]) == 0.0
    assert scorer("", SOLUTIONS[name], ocr_mode="neg") == (-1.0 if name == "OCR" else 0.0)
    assert outcome_reward(["no tags"], solution=[SOLUTIONS[name]], problem_type=[name]) == [0.0]


def _yes_no(answer: str, solution: str, **kwargs) -> float:
    return 1.0 if answer.strip().lower() == solution.strip().lower() else 0.0


def test_a_new_type_needs_only_its_registry_entry(monkeypatch):
    yes_no = ProblemType(
        name="yes/no",
        aliases=("yes_no", "boolean"),
        instruction="Inside the <answer> </answer> tags write only yes or no.",
        scorer=_yes_no,
    )
    with monkeypatch.context() as patch:
        patch.setitem(PROBLEM_TYPE_REGISTRY, "yes/no", yes_no)

        (message,) = build_prompt(" Is the circle red? ", "yes/no")
        assert message["content"] == (
            "Is the circle red?\n"
            + REASONING_INSTRUCTION
            + " Inside the <answer> </answer> tags write only yes or no."
        )
        assert normalize_problem_type(" Boolean ") == "yes/no"
        assert normalize_problem_type("YES_NO") == "yes/no"
        # Solutions are unwrapped and `$` removed before the scorer sees them, as for the built-in types.
        assert score_answer("$Yes$", "<answer>yes</answer>", "yes/no") == 1.0
        rewards = outcome_reward(
            [respond("Yes"), respond("no"), "yes"],  # the last one has no tags: scored as an empty answer
            solution=["yes", "<answer>yes</answer>", "yes"],
            problem_type=["yes/no", "boolean", "yes_no"],
        )
        assert rewards == [1.0, 0.0, 0.0]

    assert normalize_problem_type("boolean") is None
    with pytest.raises(ValueError, match="Unknown problem_type 'yes/no'"):
        build_prompt("Is the circle red?", "yes/no")
