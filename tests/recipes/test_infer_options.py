"""scripts/infer.py takes a multiple-choice question's options with or without their letters, and the prompt letters
each option once."""

import sys

import pytest
from recipe_helpers import ROOT

from sophia_trl.evaluation.generation import Generation

sys.path.insert(0, str(ROOT / "scripts"))
import infer  # noqa: E402


class PromptRecorder:
    """A generator that records the prompts it is given and answers each with a fixed response."""

    def __init__(self):
        self.prompts = []

    def generate(self, prompts, progress=None):
        self.prompts.extend(prompts)
        return [Generation("<think>x</think><answer>A</answer>", truncated=False) for _ in prompts]


def options_block(options):
    recorder = PromptRecorder()
    infer.infer(recorder, "Find x.", None, "multiple choice", options)
    text = recorder.prompts[0].messages[-1]["content"]
    return text.split("Options:\n", 1)[1].split("\n")[: len(options)]


@pytest.mark.parametrize(
    "options",
    [
        ["30", "45", "60"],
        ["A. 30", "B. 45", "C. 60"],
        ["A.30", "B.45", "C.60"],
        ["(A) 30", "(B) 45", "(C) 60"],
        ["A) 30", "B) 45", "C) 60"],
        ["A: 30", "B: 45", "C: 60"],
    ],
)
def test_options_are_lettered_once(options):
    assert options_block(options) == ["A. 30", "B. 45", "C. 60"]


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        (["B", "A"], ["A. B", "B. A"]),  # option texts that are letters
        (["B. 45", "A. 30"], ["A. B. 45", "B. A. 30"]),  # letters not in order: texts as given
        (["A. I", "B. II"], ["A. I", "B. II"]),  # Roman numerals after the letters
        (["I", "II"], ["A. I", "B. II"]),
    ],
)
def test_options_that_are_not_lettered_in_order_are_texts(options, shown):
    assert options_block(options) == shown
