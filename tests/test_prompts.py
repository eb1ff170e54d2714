"""sophia_trl.prompts: the policy prompt per problem type, and reading questions back from conversations."""

import pytest

from sophia_trl.prompts import (
    IMAGE_PLACEHOLDER,
    REASONING_INSTRUCTION,
    build_prompt,
    format_question,
    last_message_text,
    strip_instruction,
)
from sophia_trl.rewards.problem_types import PROBLEM_TYPE_REGISTRY, PROBLEM_TYPES


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_build_prompt_per_type(problem_type):
    messages = build_prompt("  What is shown?  ", problem_type)
    instruction = PROBLEM_TYPE_REGISTRY[problem_type].instruction
    assert messages == [{"role": "user", "content": "What is shown?\n" + REASONING_INSTRUCTION + " " + instruction}]
    content = messages[0]["content"]
    assert "<think> </think>" in content and "<answer> </answer>" in content


def test_build_prompt_instructions_say_what_to_answer():
    assert "letter" in PROBLEM_TYPE_REGISTRY["multiple choice"].instruction
    assert "number" in PROBLEM_TYPE_REGISTRY["numerical"].instruction
    assert "text in the image" in PROBLEM_TYPE_REGISTRY["OCR"].instruction
    assert "short answer" in PROBLEM_TYPE_REGISTRY["text"].instruction


def test_build_prompt_options_and_system():
    messages = build_prompt("Pick one.", "multiple choice", ["A. 1", " B. 2 "], system_prompt="Be exact.")
    assert messages[0] == {"role": "system", "content": "Be exact."}
    assert messages[1]["content"].startswith("Pick one.\nOptions:\nA. 1\nB. 2\n" + REASONING_INSTRUCTION)


def test_build_prompt_unknown_type():
    with pytest.raises(ValueError, match="Unknown problem_type 'essay'"):
        build_prompt("Why?", "essay")


def test_format_question():
    assert format_question(" How many? ") == "How many?"
    assert format_question("How many?", []) == "How many?"
    assert format_question("How many?", ["A. 3", "B. 4 "]) == "How many?\nOptions:\nA. 3\nB. 4"


def test_last_message_text():
    conversation = [
        {"role": "user", "content": "first question"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<think>a</think>"}, {"type": "text", "text": "b"}],
        },
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "second question"}]},
    ]
    assert last_message_text(conversation) == "second question"  # the last user message, image blocks left out
    assert last_message_text(conversation, role="assistant") == "<think>a</think>b"
    assert last_message_text(conversation, role="system") is None
    assert last_message_text("plain text", role="assistant") == "plain text"
    assert last_message_text(None) is None


def test_strip_instruction_returns_the_question_of_a_built_prompt():
    (message,) = build_prompt("How many?", "multiple choice", ["A. 3", "B. 4"])
    assert strip_instruction(message["content"]) == "How many?\nOptions:\nA. 3\nB. 4"
    assert strip_instruction("  A question without the instruction. ") == "A question without the instruction."


def test_image_placeholder():
    assert IMAGE_PLACEHOLDER.sub("", "<image>\nHow many circles?") == "How many circles?"
