"""The judge's conversation and answer (`sophia_trl.judges.messages`, `sophia_trl.judges.scores`): the judge's inputs on
every path, the messages, the score format and parser."""

import pytest
from PIL import Image

from sophia_trl.judges import (
    JUDGE_SYSTEM_PROMPT,
    build_judge_messages,
    build_openai_messages,
    format_judge_sft_example,
    format_score,
    image_to_data_url,
    judge_inputs,
    parse_score,
)

# ---------------------------------------------------------------------------------------------------------------------
# The judge's inputs
# ---------------------------------------------------------------------------------------------------------------------


def test_judge_inputs_of_a_judge_data_row():
    red = Image.new("RGB", (8, 8), "red")
    row = {
        "question": "How many circles?",
        "image": red,
        "response": "<think>2 + 1</think><answer>3</answer>",
        "score": 1,
    }
    question, response, image = judge_inputs(row)
    assert (question, response) == ("How many circles?", "<think>2 + 1</think><answer>3</answer>")
    assert image is red
    assert judge_inputs({"question": "q", "response": "r", "image": None}) == ("q", "r", None)
    assert judge_inputs({"question": "q", "response": "r"}) == ("q", "r", None)


def test_judge_inputs_of_a_policy_rollout():
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    # TRL's multimodal prompt: the user turn holds an image block and the text; the last user turn is the question.
    prompt = [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "An earlier question."},
        {"role": "assistant", "content": "An earlier answer."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?\nThink step"}]},
    ]
    completion = [{"role": "assistant", "content": "<think>2 + 1</think><answer>3</answer>"}]
    question, response, images = judge_inputs({"images": [red, blue], "image": None}, prompt, completion)
    assert (question, response) == ("How many circles?\nThink step", "<think>2 + 1</think><answer>3</answer>")
    assert len(images) == 2 and images[0] is red and images[1] is blue  # every image of the row, in order
    # Plain-text prompt and completion; an `image` column; a row with an empty image list is text-only.
    assert judge_inputs({"image": blue}, "How many?", "3") == ("How many?", "3", blue)
    assert judge_inputs({"images": []}, "How many?", "3") == ("How many?", "3", None)
    # The policy prompt wins over a `question` column of the row.
    assert judge_inputs({"question": "other", "response": "other"}, "How many?", "3") == ("How many?", "3", None)


@pytest.mark.parametrize("args", [("How many?", None), (None, "3")])
def test_judge_inputs_needs_prompt_and_completion_together(args):
    with pytest.raises(ValueError, match="pass both"):
        judge_inputs({"question": "q", "response": "r"}, *args)


def test_sft_rows_and_scoring_read_the_same_inputs():
    red = Image.new("RGB", (8, 8), "red")
    row = {"question": "How many circles?", "image": red, "response": "<answer>3</answer>", "score": 0.73}
    sft = format_judge_sft_example(row)
    messages = build_judge_messages(*judge_inputs(row))
    assert sft["prompt"] == [{"role": m["role"], "content": m["content"][-1]["text"]} for m in messages]
    assert sft["images"] == [red] and messages[1]["content"][0] == {"type": "image", "image": red}
    assert sft["completion"] == [{"role": "assistant", "content": "<answer>0.7</answer>"}]
    assert format_judge_sft_example({**row, "image": None})["images"] == []


# ---------------------------------------------------------------------------------------------------------------------
# Prompt and parser
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>0.8</answer>", 0.8),
        ("<answer> 0.3 </answer>", 0.3),
        ("<ANSWER>1</ANSWER>", 1.0),
        ("<answer>.5</answer>", 0.5),
        ("The reasoning is sound. <answer>0.9</answer>", 0.9),
        ("<answer>0.2</answer> on reflection <answer>0.6</answer>", 0.6),  # the last block wins
        ("<answer>0.7", 0.7),  # cut by max_new_tokens before the closing tag
        ("<answer>1.4</answer>", 1.0),  # clamped
        ("<answer>-0.2</answer>", 0.0),  # clamped
        ("0.4", 0.4),
        ("  1 \n", 1.0),
        ("0.6.", 0.6),
        ("3", 1.0),
        ("", None),
        (None, None),
        ("good reasoning", None),
        ("<answer>good</answer>", None),
        ("<answer></answer>", None),
        ("score 0.7 out of 1", None),  # a number inside prose is not a score
        ("<answer>0.7 0.8</answer>", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_score(text, expected):
    result = parse_score(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    "score, text", [(0.0, "<answer>0.0</answer>"), (0.73, "<answer>0.7</answer>"), (1.0, "<answer>1.0</answer>")]
)
def test_format_score_round_trips_through_parser(score, text):
    assert format_score(score) == text
    assert parse_score(text) == pytest.approx(round(score, 1))


def test_format_score_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        format_score(1.5)


def test_build_judge_messages_with_and_without_image():
    image = Image.new("RGB", (56, 56), "red")
    with_image = build_judge_messages("How many circles?", "<think>2 + 1 = 3</think><answer>3</answer>", image)
    assert [m["role"] for m in with_image] == ["system", "user"]
    assert with_image[0]["content"] == [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]
    user = with_image[1]["content"]
    assert user[0] == {"type": "image", "image": image}
    assert "How many circles?" in user[1]["text"] and "2 + 1 = 3" in user[1]["text"]

    text_only = build_judge_messages("q", "r")
    assert [block["type"] for block in text_only[1]["content"]] == ["text"]


def test_system_prompt_names_the_five_criteria_and_the_answer_format():
    prompt = JUDGE_SYSTEM_PROMPT.lower()
    for criterion in (
        "logical soundness",
        "correct reasoning",
        "error identification",
        "language consistency",
        "redundancy",
    ):
        assert criterion in prompt
    assert "<answer>score</answer>" in prompt and "0.1" in prompt


def test_openai_messages_carry_the_image_as_data_url():
    image = Image.new("RGB", (4, 4), "red")
    messages = build_openai_messages("How many?", "<think>2</think><answer>2</answer>", image)
    user = messages[1]["content"]
    assert user[0] == {"type": "image_url", "image_url": {"url": image_to_data_url(image)}}
    assert user[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert user[1]["type"] == "text" and "How many?" in user[1]["text"]
    assert [b["type"] for b in build_openai_messages("q", "r")[1]["content"]] == ["text"]
