"""The judge's conversation: its inputs from an item, and its renderings for local models, SFT rows and servers.

Every way of scoring goes through two functions of this module, so a change to what the judge sees is made once:
[`judge_inputs`] builds the judge's inputs (question, response, images) from an item (a judge-data row or a policy
rollout), and [`build_judge_messages`] turns them into the judge's conversation with a [`JudgePrompt`]; the local
models' inputs ([`build_judge_inputs`]), the stage-1 SFT rows ([`format_judge_sft_example`]) and the server requests
([`build_openai_messages`]) are all rendered from it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from ..prompts import last_message_text, strip_instruction
from .base import RowImages, image_list
from .scores import format_score
from .template import DEFAULT_JUDGE_PROMPT, JudgePrompt

# ---------------------------------------------------------------------------------------------------------------------
# The judge's inputs
# ---------------------------------------------------------------------------------------------------------------------


def question_of(prompt: str | list[dict[str, Any]]) -> str:
    """The question the judge reads from a policy prompt: the text of its last user message (the prompt itself when it
    is a string), reasoning instruction included."""
    return last_message_text(prompt, role="user") or ""


def response_of(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion, conversational (`[{"role": "assistant", "content": ...}]`) or plain."""
    return last_message_text(completion, role="assistant") or ""


def image_of(row: Mapping[str, Any]) -> RowImages:
    """The images of a dataset row (`image` or `images` column) as the judges take them: the image of a row with one,
    the list of them in order for a row with several, `None` for a text-only row."""
    images = image_list(row.get("images") or row.get("image"))
    if not images:
        return None
    return images[0] if len(images) == 1 else images


def judge_inputs(
    row: Mapping[str, Any],
    prompt: str | list[dict[str, Any]] | None = None,
    completion: str | list[dict[str, Any]] | None = None,
) -> tuple[str, str, RowImages]:
    """The judge's inputs for one item: the question, the response to judge and the question's image(s).

    An item is either a judge-data row, read from its columns, or a policy rollout, read from the policy's prompt and
    completion with the image from the dataset row:

    - `judge_inputs(row)`: `row` has `question`, `response` and optionally `image` or `images` (stage-1 training and
      evaluation data, labelling);
    - `judge_inputs(row, prompt, completion)`: `row` is the policy's dataset row (its `image` or `images` column: every
      image of a row with several reaches the judge, in order, as they reach the policy),
      `prompt` the policy prompt and `completion` the policy's completion, as TRL's `GRPOTrainer` passes them to
      reward functions. The question is the text of the prompt's last user message ([`question_of`]) without the
      reasoning and answer-format instruction the policy prompt adds ([`~sophia_trl.prompts.strip_instruction`]):
      the bare question, options included, as the judge's training rows hold it.

    Args:
        row (`Mapping[str, Any]`):
            The judge-data row, or the policy's dataset row.
        prompt (`str` or `list[dict]`, *optional*, defaults to `None`):
            The policy prompt, plain or conversational. Give it together with `completion`.
        completion (`str` or `list[dict]`, *optional*, defaults to `None`):
            The policy's completion, plain or conversational. Give it together with `prompt`.

    Returns:
        `tuple[str, str, PIL.Image.Image | list[PIL.Image.Image] | None]`: The question, the response and the image
        ([`image_of`]: a list for an item with several, `None` for a text-only item), the arguments of
        [`~sophia_trl.judges.ThinkingJudge.score`] for one row.

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
    # The judge was trained on bare questions (Thinking-156k, labelled data): drop the policy's instruction.
    return strip_instruction(question_of(prompt)), response_of(completion), image_of(row)


# ---------------------------------------------------------------------------------------------------------------------
# The judge's conversation and its renderings
# ---------------------------------------------------------------------------------------------------------------------


def build_judge_messages(
    question: str,
    response: str,
    image: RowImages = None,
    judge_prompt: JudgePrompt | None = None,
) -> list[dict[str, Any]]:
    """Builds the judge's conversation for one (question, response) pair.

    Args:
        question (`str`):
            The question the response answers, as the user asked it.
        response (`str`):
            The full response to judge, reasoning and answer included.
        image (`PIL.Image.Image`, `list[PIL.Image.Image]` or `None`, *optional*, defaults to `None`):
            The question's image, or its images in order. Each becomes an image block (`{"type": "image", "image":
            image}`); the blocks go, in order, where the template's `{image}` is, or before the text of the user turn
            when it has none (as TRL places a policy prompt's images).
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's ([`JUDGE_SYSTEM_PROMPT`], [`JUDGE_USER_TEMPLATE`]) when `None`.

    Returns:
        `list[dict]`: A system turn (unless the template has none) and a user turn, both with list-of-blocks content,
        the format that processors' `apply_chat_template` and TRL's vision datasets use.
    """
    images = image_list(image)
    system, before, after = (judge_prompt or DEFAULT_JUDGE_PROMPT).render(question, response, bool(images))
    user_content: list[dict[str, Any]] = []
    if not images:
        user_content.append({"type": "text", "text": before + after})
    else:
        # No empty text blocks around the images: a chat template would render them as nothing, a server may refuse.
        if before:
            user_content.append({"type": "text", "text": before})
        user_content += [{"type": "image", "image": img} for img in images]
        if after:
            user_content.append({"type": "text", "text": after})
    messages = [{"role": "user", "content": user_content}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return messages


def build_judge_inputs(
    processor: Any,
    questions: list[str],
    responses: list[str],
    images: list[RowImages],
    judge_prompt: JudgePrompt | None = None,
    assistant_prefix: str = "",
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
        images (`list[PIL.Image.Image | list[PIL.Image.Image] | None]`):
            The image of each row (a list for a row with several), `None` for a text-only row; rows with and without
            images can be mixed.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`.
        assistant_prefix (`str`, *optional*, defaults to `""`):
            Text the judge's answer starts with, appended after the generation prompt (e.g. `"<answer>0."` for the
            expected-score readout, which reads the next-token probabilities there).

    Returns:
        [`~transformers.BatchFeature`]: `input_ids`, `attention_mask` and, when some row has an image,
        `pixel_values` and `image_grid_thw`, as PyTorch tensors.
    """
    texts = render_judge_texts(processor, questions, responses, images, judge_prompt, assistant_prefix)
    # The processor matches images to image placeholders in order: every image of every row, in row order.
    flat_images = [img for row_images in images for img in image_list(row_images)]
    return processor(text=texts, images=flat_images or None, padding=True, return_tensors="pt")


def render_judge_texts(
    processor: Any,
    questions: list[str],
    responses: list[str],
    images: list[RowImages],
    judge_prompt: JudgePrompt | None = None,
    assistant_prefix: str = "",
) -> list[str]:
    """The prompt text of each row as [`build_judge_inputs`] processes it (one image placeholder per image)."""
    return [
        processor.apply_chat_template(
            build_judge_messages(q, r, img, judge_prompt), tokenize=False, add_generation_prompt=True
        )
        + assistant_prefix
        for q, r, img in zip(questions, responses, images)
    ]


def format_judge_sft_example(example: dict[str, Any], judge_prompt: JudgePrompt | None = None) -> dict[str, Any]:
    """Turns a judge-data row into a prompt-completion row for TRL's `SFTTrainer` (the generative judge's training).

    The prompt is [`build_judge_messages`], rendered by TRL exactly as the judge prompt at scoring time: with
    plain-string contents when the image goes first (TRL inserts the image block before the user text), and with
    list-of-blocks contents and an image placeholder block (`{"type": "image"}`, which TRL fills from `images`) when
    the template places it with `{image}`. The completion is the score in the judge's answer format
    ([`format_score`]), so with `completion_only_loss` the model learns to write `<answer>x</answer>`.

    Args:
        example (`dict`):
            A row with `question` (str), `response` (str), `score` (float in [0, 1]) and optionally `image` (or
            `images`, a list of the question's images).
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`. Pass it with `Dataset.map(..., fn_kwargs=...)`.

    Returns:
        `dict`: `prompt` (system + user turns), `completion` (one assistant turn) and `images` (the row's images in
        order, `[]` for a text-only row).
    """
    judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
    question, response, image = judge_inputs(example)
    messages = build_judge_messages(question, response, image, judge_prompt)
    if judge_prompt.image_first:
        prompt = [{"role": m["role"], "content": m["content"][-1]["text"]} for m in messages]
    else:
        # Every row has list contents (one column type); the image block is a placeholder TRL fills from `images`.
        prompt = [
            {"role": m["role"], "content": [{"type": "image"} if b["type"] == "image" else b for b in m["content"]]}
            for m in messages
        ]
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": format_score(example["score"])}],
        "images": image_list(image),
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
    image: RowImages = None,
    image_format: str = "PNG",
    image_url: str | list[str] | None = None,
    judge_prompt: JudgePrompt | None = None,
) -> list[dict[str, Any]]:
    """[`build_judge_messages`] in the OpenAI chat format: each image becomes a base64 data-URL `image_url` block.

    Args:
        question (`str`):
            The question.
        response (`str`):
            The response to judge.
        image (`PIL.Image.Image`, `list[PIL.Image.Image]` or `None`, *optional*, defaults to `None`):
            The question's image, or its images in order.
        image_format (`str`, *optional*, defaults to `"PNG"`):
            Encoding of the images (`"PNG"` is lossless; `"JPEG"` is smaller).
        image_url (`str`, `list[str]` or `None`, *optional*, defaults to `None`):
            The image already encoded (e.g. shared by a group's completions), or one URL per image in order; the
            images are encoded when `None`.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`.

    Returns:
        `list[dict]`: Messages for `/v1/chat/completions` (also accepted by vLLM's `LLM.chat`); the system turn's content
        is a plain string, as OpenAI's API and the released SophiaVL-R1 reward code write it.
    """
    messages = build_judge_messages(question, response, image, judge_prompt)
    urls = [image_url] if isinstance(image_url, str) else image_url
    if urls is None:
        urls = [image_to_data_url(img, image_format) for img in image_list(image)]
    if len(urls) != len(image_list(image)):
        raise ValueError(f"Got {len(urls)} image URLs for {len(image_list(image))} images; pass one URL per image.")
    next_url = iter(urls)
    for message in messages:
        message["content"] = [
            {"type": "image_url", "image_url": {"url": next(next_url)}} if block["type"] == "image" else block
            for block in message["content"]
        ]
    if messages[0]["role"] == "system":
        messages[0]["content"] = messages[0]["content"][0]["text"]
    return messages


def decoded_policy_prompt(processing_class: Any, prompt: str | list[dict[str, Any]]) -> str:
    """The policy's prompt as its tokenizer decodes it without special tokens: what the released SophiaVL-R1 reward
    code sends to the judge as the question (`{policy_prompt}`).

    A conversational prompt is rendered by the policy's chat template with the generation prompt (as TRL renders it
    for generation); the text is then tokenized and decoded with `skip_special_tokens=True`, which drops the chat and
    vision markers (`<|im_start|>`, `<|vision_start|>`, ...) and keeps the role names, system prompt and question.

    Args:
        processing_class (`PreTrainedTokenizerBase` or `ProcessorMixin`):
            The policy's processor or tokenizer.
        prompt (`str` or `list[dict]`):
            The policy prompt, plain or conversational.

    Returns:
        `str`: The decoded prompt.
    """
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    text = prompt
    if not isinstance(prompt, str):
        text = processing_class.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids, skip_special_tokens=True)
