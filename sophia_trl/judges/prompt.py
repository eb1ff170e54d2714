"""The judge prompt: what a thinking judge reads and how its reply is read back.

Every way of scoring goes through two functions of this module, so a change to what the judge sees is made once:

- [`judge_inputs`] builds the judge's inputs (question, response, image) from an item: a judge-data row (stage-1
  training and evaluation, labelling) or a policy rollout (the GRPO trainer's prompt, completion and dataset row).
- [`build_judge_messages`] turns those inputs into the judge's conversation with [`JUDGE_SYSTEM_PROMPT`] and
  [`JUDGE_USER_TEMPLATE`]; the local models' inputs ([`build_judge_inputs`]), the stage-1 SFT rows
  ([`format_judge_sft_example`]) and the server requests ([`build_openai_messages`]) are all rendered from it.

[`format_score`] writes the judge's target text and [`parse_score`] reads the score from its reply.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping
from typing import Any

from PIL import Image

from ..prompts import message_text

JUDGE_SYSTEM_PROMPT = (
    "You grade the reasoning in a model's response to a question. The question may come with an image. Judge the "
    "thinking that leads to the answer, not only whether the final answer is right, using five criteria:\n"
    "1. Logical soundness: every step follows from the question, the image and the steps before it.\n"
    "2. Correct reasoning: the facts, readings of the image and calculations used along the way are right.\n"
    "3. Error identification: mistakes are noticed and corrected instead of being carried forward.\n"
    "4. Language consistency: the response keeps to one language and says what it means.\n"
    "5. Redundancy: no needless repetition, filler or detours that add nothing.\n"
    "Give one overall score from 0 to 1 in steps of 0.1 (0, 0.1, 0.2, ..., 1.0): 1.0 for flawless reasoning, 0 for "
    "reasoning of no value. Reply with the score only, written as <answer>score</answer>, for example "
    "<answer>0.7</answer>."
)

JUDGE_USER_TEMPLATE = "Question:\n{question}\n\nResponse:\n{response}\n\nScore the reasoning in this response."


# ---------------------------------------------------------------------------------------------------------------------
# The judge's inputs
# ---------------------------------------------------------------------------------------------------------------------


def question_of(prompt: str | list[dict[str, Any]]) -> str:
    """The question the judge reads from a policy prompt: the text of its last user message (the prompt itself when it
    is a string), reasoning instruction included."""
    return message_text(prompt, role="user") or ""


def response_of(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion, conversational (`[{"role": "assistant", "content": ...}]`) or plain."""
    return message_text(completion, role="assistant") or ""


def image_of(row: Mapping[str, Any]) -> Image.Image | None:
    """The first image of a dataset row (`image` or `images` column), or None for a text-only row."""
    if row.get("images"):
        return row["images"][0]
    return row.get("image")


def judge_inputs(
    row: Mapping[str, Any],
    prompt: str | list[dict[str, Any]] | None = None,
    completion: str | list[dict[str, Any]] | None = None,
) -> tuple[str, str, Image.Image | None]:
    """The judge's inputs for one item: the question, the response to judge and the question's image.

    An item is either a judge-data row, read from its columns, or a policy rollout, read from the policy's prompt and
    completion with the image from the dataset row:

    - `judge_inputs(row)`: `row` has `question`, `response` and optionally `image` (stage-1 training and evaluation
      data, labelling);
    - `judge_inputs(row, prompt, completion)`: `row` is the policy's dataset row (its `image` or `images` column),
      `prompt` the policy prompt and `completion` the policy's completion, as TRL's `GRPOTrainer` passes them to
      reward functions. The question is the text of the prompt's last user message ([`question_of`]).

    Args:
        row (`Mapping[str, Any]`):
            The judge-data row, or the policy's dataset row.
        prompt (`str` or `list[dict]`, *optional*, defaults to `None`):
            The policy prompt, plain or conversational. Give it together with `completion`.
        completion (`str` or `list[dict]`, *optional*, defaults to `None`):
            The policy's completion, plain or conversational. Give it together with `prompt`.

    Returns:
        `tuple[str, str, PIL.Image.Image | None]`: The question, the response and the image (`None` for a text-only
        item), the arguments of [`~sophia_trl.judges.ThinkingJudge.score`] for one row.

    Example:

    ```python
    >>> judge_inputs({"question": "How many?", "response": "<answer>3</answer>", "image": None})
    ('How many?', '<answer>3</answer>', None)
    >>> judge_inputs({"images": []}, [{"role": "user", "content": "How many?"}], [{"role": "assistant", "content": "3"}])
    ('How many?', '3', None)
    ```
    """
    if (prompt is None) != (completion is None):
        raise ValueError(
            "judge_inputs reads a policy rollout from its prompt and its completion together; pass both (a GRPO "
            "rollout) or neither (a judge-data row with question and response columns)."
        )
    if prompt is None:
        return row["question"], row["response"], image_of(row)
    return question_of(prompt), response_of(completion), image_of(row)


# ---------------------------------------------------------------------------------------------------------------------
# The judge's conversation and its renderings
# ---------------------------------------------------------------------------------------------------------------------


def build_judge_messages(question: str, response: str, image: Image.Image | None = None) -> list[dict[str, Any]]:
    """Builds the judge's conversation for one (question, response) pair.

    Args:
        question (`str`):
            The question the response answers, as the user asked it.
        response (`str`):
            The full response to judge, reasoning and answer included.
        image (`PIL.Image.Image` or `None`, *optional*, defaults to `None`):
            The question's image. When given, an image block (`{"type": "image", "image": image}`) comes before the
            text of the user turn.

    Returns:
        `list[dict]`: A system turn with [`JUDGE_SYSTEM_PROMPT`] and a user turn, both with list-of-blocks content, the
        format that processors' `apply_chat_template` and TRL's vision datasets use.
    """
    user_content: list[dict[str, Any]] = []
    if image is not None:
        user_content.append({"type": "image", "image": image})
    user_content.append({"type": "text", "text": JUDGE_USER_TEMPLATE.format(question=question, response=response)})
    return [
        {"role": "system", "content": [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]},
        {"role": "user", "content": user_content},
    ]


def build_judge_inputs(
    processor: Any,
    questions: list[str],
    responses: list[str],
    images: list[Image.Image | None],
) -> Any:
    """Renders and processes a batch of judge prompts for a local model (generative or scalar-head).

    Each row is [`build_judge_messages`] rendered by the processor's chat template with the generation prompt, so a
    generative judge writes its answer next and a scalar-head judge reads the same text it was trained on.

    Args:
        processor ([`~transformers.ProcessorMixin`]):
            The judge's processor (tokenizer + image processor). Its tokenizer's `padding_side` decides the padding.
        questions (`list[str]`):
            The question of each row.
        responses (`list[str]`):
            The response of each row.
        images (`list[PIL.Image.Image | None]`):
            The image of each row, `None` for a text-only row; rows with and without images can be mixed.

    Returns:
        [`~transformers.BatchFeature`]: `input_ids`, `attention_mask` and, when some row has an image,
        `pixel_values` and `image_grid_thw`, as PyTorch tensors.
    """
    texts = [
        processor.apply_chat_template(build_judge_messages(q, r, img), tokenize=False, add_generation_prompt=True)
        for q, r, img in zip(questions, responses, images)
    ]
    # The processor matches images to image placeholders in order, so the images of the image rows, in row order.
    flat_images = [img for img in images if img is not None]
    return processor(text=texts, images=flat_images or None, padding=True, return_tensors="pt")


def format_judge_sft_example(example: dict[str, Any]) -> dict[str, Any]:
    """Turns a judge-data row into a prompt-completion row for TRL's `SFTTrainer` (the generative judge's training).

    The prompt is [`build_judge_messages`] with plain-string contents (TRL inserts the image block before the user
    text, which renders exactly as the judge prompt at scoring time); the completion is the score in the judge's
    answer format ([`format_score`]), so with `completion_only_loss` the model learns to write `<answer>x</answer>`.

    Args:
        example (`dict`):
            A row with `question` (str), `response` (str), `score` (float in [0, 1]) and optionally `image`.

    Returns:
        `dict`: `prompt` (system + user turns), `completion` (one assistant turn) and `images` (`[image]` or `[]`).
    """
    question, response, image = judge_inputs(example)
    messages = build_judge_messages(question, response)
    return {
        "prompt": [{"role": m["role"], "content": m["content"][0]["text"]} for m in messages],
        "completion": [{"role": "assistant", "content": format_score(example["score"])}],
        "images": [image] if image is not None else [],
    }


def image_to_data_url(image: Image.Image, image_format: str = "PNG") -> str:
    """Encodes an image as a base64 data URL, the form OpenAI-compatible servers accept in `image_url` blocks."""
    buffer = io.BytesIO()
    if image_format.upper() == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buffer, format=image_format)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format.lower()};base64,{encoded}"


def build_openai_messages(
    question: str,
    response: str,
    image: Image.Image | None = None,
    image_format: str = "PNG",
    image_url: str | None = None,
) -> list[dict[str, Any]]:
    """[`build_judge_messages`] in the OpenAI chat format: the image becomes a base64 data-URL `image_url` block.

    Args:
        question (`str`):
            The question.
        response (`str`):
            The response to judge.
        image (`PIL.Image.Image` or `None`, *optional*, defaults to `None`):
            The question's image.
        image_format (`str`, *optional*, defaults to `"PNG"`):
            Encoding of the image (`"PNG"` is lossless; `"JPEG"` is smaller).
        image_url (`str` or `None`, *optional*, defaults to `None`):
            The image already encoded (e.g. shared by a group's completions); `image` is encoded when `None`.

    Returns:
        `list[dict]`: Messages for `/v1/chat/completions` (also accepted by vLLM's `LLM.chat`).
    """
    messages = build_judge_messages(question, response, image)
    for message in messages:
        message["content"] = [
            {"type": "image_url", "image_url": {"url": image_url or image_to_data_url(block["image"], image_format)}}
            if block["type"] == "image"
            else block
            for block in message["content"]
        ]
    return messages


# ---------------------------------------------------------------------------------------------------------------------
# The judge's answer
# ---------------------------------------------------------------------------------------------------------------------


def format_score(score: float) -> str:
    """The judge's target text for a score, rounded to the prompt's 0.1 grid: `0.73 -> "<answer>0.7</answer>"`."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"A thinking score must be in [0, 1], got {score}.")
    return f"<answer>{round(score * 10) / 10:.1f}</answer>"


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# The last <answer> block; an unclosed one at the very end counts too (generation cut by max_new_tokens).
_ANSWER_RE = re.compile(r"<answer>\s*(" + _NUMBER + r")\s*(?:</answer>|$)", re.IGNORECASE)
_ANY_ANSWER_RE = re.compile(r"<answer>", re.IGNORECASE)
_BARE_RE = re.compile(r"\s*(" + _NUMBER + r")\s*\.?\s*")


def parse_score(text: str | None) -> float | None:
    """Reads the judge's score from its output.

    Accepted forms are `<answer>x</answer>` (the last such block wins; an unclosed `<answer>x` at the end of the text
    is accepted, as generation may stop before the closing tag) and a bare number making up the whole text. The value
    is clamped to [0, 1].

    Args:
        text (`str` or `None`):
            The judge's output.

    Returns:
        `float` or `None`: The score, or `None` when the text holds no score (empty text, words only, an `<answer>`
        block that is not a number).

    Example:

    ```python
    >>> parse_score("<answer>0.8</answer>")
    0.8
    >>> parse_score("1.3")
    1.0
    >>> parse_score("<answer>good</answer>") is None
    True
    ```
    """
    if not text:
        return None
    matches = _ANSWER_RE.findall(text)
    if matches:
        value = float(matches[-1])
    elif _ANY_ANSWER_RE.search(text):
        return None  # an <answer> block without a number is a malformed reply, not a bare number
    else:
        bare = _BARE_RE.fullmatch(text)
        if bare is None:
            return None
        value = float(bare.group(1))
    if not math.isfinite(value):
        return None
    return min(1.0, max(0.0, value))
