"""The judge prompt: what a thinking judge reads and how its reply is read back.

Every way of scoring goes through two functions of this module, so a change to what the judge sees is made once:

- [`judge_inputs`] builds the judge's inputs (question, response, image) from an item: a judge-data row (stage-1
  training and evaluation, labelling) or a policy rollout (the GRPO trainer's prompt, completion and dataset row).
- [`build_judge_messages`] turns those inputs into the judge's conversation with a [`JudgePrompt`]: ours
  ([`JUDGE_SYSTEM_PROMPT`] and [`JUDGE_USER_TEMPLATE`]) by default, or a template file a user supplies
  ([`load_judge_prompt`]) to match the prompt a released judge was trained with; the local models' inputs
  ([`build_judge_inputs`]), the stage-1 SFT rows ([`format_judge_sft_example`]) and the server requests
  ([`build_openai_messages`]) are all rendered from it.

[`format_score`] writes the judge's target text and [`parse_score`] reads the score from its reply.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from ..prompts import message_text, strip_instruction

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

# The placeholders of a judge prompt template: the item's question and response, and where its image goes.
JUDGE_PROMPT_PLACEHOLDERS = ("question", "response", "image")
JUDGE_PROMPT_KEYS = ("system", "user")


# ---------------------------------------------------------------------------------------------------------------------
# The judge prompt template
# ---------------------------------------------------------------------------------------------------------------------


def _parse_template(template: str, where: str, allowed: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pieces of a `str.format`-style template, checked against `allowed`."""
    hint = (
        "The placeholders are {question}, {response} and {image} (user message only), without format specs; write a "
        "literal brace as {{ or }}."
    )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:  # a lone brace
        raise ValueError(f"{where} is not a valid template ({err}). {hint}") from err
    pieces: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            if name not in allowed or spec or conversion:
                raise ValueError(f"{where} has the unknown placeholder {written}. {hint}")
        pieces.append((literal, name))
    return pieces


@dataclass(frozen=True)
class JudgePrompt:
    r"""
    The judge's prompt as a template: a system message and a user message with placeholders for the item.

    Placeholders are written as in `str.format`, but only these names are substituted (nothing is evaluated):

    - `{question}`: the question ([`judge_inputs`]: the bare question, options included);
    - `{response}`: the full response to judge, reasoning and answer;
    - `{image}` (user message only, at most once): where the image block goes. Without it the image comes before the
      text of the user message. For a text-only item it is left out and the text around it is joined.

    `{question}` and `{response}` must each appear in the system or the user message. A literal brace is written
    `{{` or `}}`. An empty or missing system message means no system turn (the chat template may then add its
    default one, as it did when such a judge was trained).

    The default is this project's prompt ([`JUDGE_SYSTEM_PROMPT`] and [`JUDGE_USER_TEMPLATE`]); a judge trained
    elsewhere (e.g. a released thinking reward model) is given the prompt it was trained with through a template file
    ([`JudgePrompt.from_file`]).

    Args:
        system (`str` or `None`, *optional*, defaults to `JUDGE_SYSTEM_PROMPT`):
            The system message template; `None` or `""` for no system turn.
        user (`str`, *optional*, defaults to `JUDGE_USER_TEMPLATE`):
            The user message template.
        source (`str`, *optional*, defaults to `"JudgePrompt"`):
            Where the template comes from (its file), named in error messages.

    Example:

    ```python
    >>> prompt = JudgePrompt(system=None, user="Question: {question}\n{image}\nAnswer: {response}")
    >>> prompt.render("How many?", "3")
    (None, 'Question: How many?\n', '\nAnswer: 3')
    ```
    """

    system: str | None = JUDGE_SYSTEM_PROMPT
    user: str = JUDGE_USER_TEMPLATE
    source: str = field(default="JudgePrompt", compare=False)
    _system_pieces: list = field(init=False, repr=False, compare=False)
    _user_pieces: list = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for key in JUDGE_PROMPT_KEYS:
            value = getattr(self, key)
            if not (isinstance(value, str) or (key == "system" and value is None)):
                raise ValueError(f"{self.source}: '{key}' must be a string, got {type(value).__name__}.")
        system_pieces = _parse_template(
            self.system or "", f"{self.source}: the system message", ("question", "response")
        )
        user_pieces = _parse_template(self.user, f"{self.source}: the user message", JUDGE_PROMPT_PLACEHOLDERS)
        names = [name for _, name in system_pieces + user_pieces if name is not None]
        for required in ("question", "response"):
            if required not in names:
                raise ValueError(
                    f"{self.source}: the template has no {{{required}}} placeholder, so the judge would never see the "
                    f"{required}. Add {{{required}}} to the user (or system) message."
                )
        if names.count("image") > 1:
            raise ValueError(
                f"{self.source}: the user message has {{image}} {names.count('image')} times; the judge "
                "reads one image per item, so write it once."
            )
        object.__setattr__(self, "_system_pieces", system_pieces)
        object.__setattr__(self, "_user_pieces", user_pieces)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> JudgePrompt:
        """
        Loads a template file: YAML (or JSON) with the keys `system` (optional) and `user`, e.g.

        ```yaml
        system: |-
          You grade the reasoning in a model's response to a question.
        user: |-
          Question:
          {question}

          Response:
          {response}
        ```

        (`|-` keeps the lines as written without a final newline.) The file is checked at once: an unknown key, an
        unknown or missing placeholder raises a `ValueError` naming the file.

        Args:
            path (`str` or `os.PathLike`):
                The template file.

        Returns:
            [`JudgePrompt`]: The template, with `source` the file's path.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Judge prompt template {path} does not exist. Give a YAML file with 'system' and 'user' keys "
                "(recipes/judge_prompts/sophia_trl.yaml is an example), or leave judge_prompt_template unset for the "
                "default prompt."
            )
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"Judge prompt template {path} is not valid YAML: {err}") from err
        if not isinstance(content, dict):
            raise ValueError(
                f"Judge prompt template {path} must hold a mapping with the keys 'system' and 'user', got "
                f"{type(content).__name__}."
            )
        unknown = sorted(str(key) for key in content if key not in JUDGE_PROMPT_KEYS)
        if unknown:
            raise ValueError(
                f"Judge prompt template {path} has the unknown key(s) {unknown}; a template has 'system' (optional) and "
                "'user'."
            )
        if "user" not in content:
            raise ValueError(f"Judge prompt template {path} has no 'user' key: the user message template is required.")
        return cls(system=content.get("system"), user=content["user"], source=str(path))

    @property
    def image_first(self) -> bool:
        """Whether the image block comes before the user text (the template has no `{image}`), as TRL places it."""
        return all(name != "image" for _, name in self._user_pieces)

    def render(self, question: str, response: str) -> tuple[str | None, str, str]:
        """
        Fills in the template for one item.

        Args:
            question (`str`):
                The question.
            response (`str`):
                The response to judge.

        Returns:
            `tuple[str | None, str, str]`: The system message (`None` for no system turn) and the user message's text
            before and after the image (all of it after the image when the template has no `{image}`).
        """
        values = {"question": question, "response": response}

        def fill(pieces: list[tuple[str, str | None]]) -> list[str]:
            parts = [""]
            for literal, name in pieces:
                parts[-1] += literal
                if name == "image":
                    parts.append("")
                elif name is not None:
                    parts[-1] += values[name]
            return parts

        system = "".join(fill(self._system_pieces)) or None
        user = fill(self._user_pieces)
        before, after = ("", user[0]) if len(user) == 1 else (user[0], user[1])
        return system, before, after


DEFAULT_JUDGE_PROMPT = JudgePrompt()


def load_judge_prompt(path: str | os.PathLike | None) -> JudgePrompt:
    """The judge prompt of a template file ([`JudgePrompt.from_file`]), or this project's prompt when `path` is
    `None` or empty."""
    return JudgePrompt.from_file(path) if path else DEFAULT_JUDGE_PROMPT


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
    # The judge was trained on bare questions (Thinking-156k, labelled data): drop the policy's instruction.
    return strip_instruction(question_of(prompt)), response_of(completion), image_of(row)


# ---------------------------------------------------------------------------------------------------------------------
# The judge's conversation and its renderings
# ---------------------------------------------------------------------------------------------------------------------


def build_judge_messages(
    question: str,
    response: str,
    image: Image.Image | None = None,
    judge_prompt: JudgePrompt | None = None,
) -> list[dict[str, Any]]:
    """Builds the judge's conversation for one (question, response) pair.

    Args:
        question (`str`):
            The question the response answers, as the user asked it.
        response (`str`):
            The full response to judge, reasoning and answer included.
        image (`PIL.Image.Image` or `None`, *optional*, defaults to `None`):
            The question's image. When given, an image block (`{"type": "image", "image": image}`) goes where the
            template's `{image}` is, or before the text of the user turn when it has none.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's ([`JUDGE_SYSTEM_PROMPT`], [`JUDGE_USER_TEMPLATE`]) when `None`.

    Returns:
        `list[dict]`: A system turn (unless the template has none) and a user turn, both with list-of-blocks content,
        the format that processors' `apply_chat_template` and TRL's vision datasets use.
    """
    system, before, after = (judge_prompt or DEFAULT_JUDGE_PROMPT).render(question, response)
    user_content: list[dict[str, Any]] = []
    if image is None:
        user_content.append({"type": "text", "text": before + after})
    else:
        # No empty text blocks around the image: a chat template would render them as nothing, a server may refuse.
        if before:
            user_content.append({"type": "text", "text": before})
        user_content.append({"type": "image", "image": image})
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
    images: list[Image.Image | None],
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
        images (`list[PIL.Image.Image | None]`):
            The image of each row, `None` for a text-only row; rows with and without images can be mixed.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`.
        assistant_prefix (`str`, *optional*, defaults to `""`):
            Text the judge's answer starts with, appended after the generation prompt (e.g. `"<answer>0."` for the
            expected-score readout, which reads the next-token probabilities there).

    Returns:
        [`~transformers.BatchFeature`]: `input_ids`, `attention_mask` and, when some row has an image,
        `pixel_values` and `image_grid_thw`, as PyTorch tensors.
    """
    texts = [
        processor.apply_chat_template(
            build_judge_messages(q, r, img, judge_prompt), tokenize=False, add_generation_prompt=True
        )
        + assistant_prefix
        for q, r, img in zip(questions, responses, images)
    ]
    # The processor matches images to image placeholders in order, so the images of the image rows, in row order.
    flat_images = [img for img in images if img is not None]
    return processor(text=texts, images=flat_images or None, padding=True, return_tensors="pt")


def format_judge_sft_example(example: dict[str, Any], judge_prompt: JudgePrompt | None = None) -> dict[str, Any]:
    """Turns a judge-data row into a prompt-completion row for TRL's `SFTTrainer` (the generative judge's training).

    The prompt is [`build_judge_messages`], rendered by TRL exactly as the judge prompt at scoring time: with
    plain-string contents when the image goes first (TRL inserts the image block before the user text), and with
    list-of-blocks contents and an image placeholder block (`{"type": "image"}`, which TRL fills from `images`) when
    the template places it with `{image}`. The completion is the score in the judge's answer format
    ([`format_score`]), so with `completion_only_loss` the model learns to write `<answer>x</answer>`.

    Args:
        example (`dict`):
            A row with `question` (str), `response` (str), `score` (float in [0, 1]) and optionally `image`.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`. Pass it with `Dataset.map(..., fn_kwargs=...)`.

    Returns:
        `dict`: `prompt` (system + user turns), `completion` (one assistant turn) and `images` (`[image]` or `[]`).
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
    judge_prompt: JudgePrompt | None = None,
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
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt template; this project's when `None`.

    Returns:
        `list[dict]`: Messages for `/v1/chat/completions` (also accepted by vLLM's `LLM.chat`).
    """
    messages = build_judge_messages(question, response, image, judge_prompt)
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


# The expected-score readout: instead of the greedy text, the judge's probabilities over the scores of the 0.1 grid it
# was trained to write (as G-Eval weights its scores by their token probabilities). After `<answer>`, a score starts
# with "1" (1.0: `parse_score` clamps anything above) or "0", and "0" continues as "0." and one digit d (0.d). So one
# forward pass over the prompt + "<answer>0." reads both distributions: the first score token at the position of ">"
# and the digit at the position of ".".
SCORE_PREFIX = "<answer>"
# How a generative judge's score is read: the probability-weighted mean of the score tokens, or the written text.
JUDGE_READOUTS = ("expected", "greedy")
SCORE_TOKENS = ("0", "1", ".", *[str(d) for d in range(2, 10)])


def score_token_ids(tokenizer: Any) -> dict[str, int]:
    """The token id of each character the judge writes a score with (`"0"`-`"9"` and `"."`).

    Raises:
        `ValueError`: The tokenizer does not write `<answer>0.7` as `<answer>` followed by one token per character,
            which the expected-score readout needs; use the greedy readout with such a judge.
    """
    ids = {}
    for text in SCORE_TOKENS:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if len(tokens) != 1:
            raise ValueError(
                f"The judge's tokenizer writes {text!r} as {len(tokens)} tokens; the expected-score readout needs one "
                "token per digit. Use readout='greedy' with this judge."
            )
        ids[text] = tokens[0]
    probe = tokenizer.encode(SCORE_PREFIX + "0.7", add_special_tokens=False)
    if probe[-3:] != [ids["0"], ids["."], ids["7"]]:
        raise ValueError(
            "The judge's tokenizer merges the score with `<answer>` (it does not write '<answer>0.7' as '<answer>', "
            "'0', '.', '7'), so the expected-score readout cannot read it. Use readout='greedy' with this judge."
        )
    return ids


def expected_score(first: Mapping[str, float], digit: Mapping[str, float] | None) -> float | None:
    """The probability-weighted mean of the scores 0.0, 0.1, ..., 1.0 the judge can write after `<answer>`.

    P(1.0) = P("1") and P(0.d) = P("0") * P(d | "0."), renormalised over these 11 scores (probability on any other
    token, e.g. a word, is left out).

    Args:
        first (`Mapping[str, float]`):
            Log-probabilities of the token after `<answer>`, by token text; `"0"` and `"1"` are read, missing ones
            count as probability 0.
        digit (`Mapping[str, float]` or `None`):
            Log-probabilities of the token after `<answer>0.`, by token text; `"0"`-`"9"` are read. `None` when unknown,
            allowed only when "0" has probability 0.

    Returns:
        `float` or `None`: The expected score in [0, 1], or `None` when the judge puts no probability on any score.

    Example:

    ```python
    >>> import math
    >>> round(expected_score({"0": math.log(0.5), "1": math.log(0.5)}, {"6": math.log(0.5), "8": math.log(0.5)}), 6)
    0.85
    ```
    """
    p_one = math.exp(first.get("1", -math.inf))
    p_zero = math.exp(first.get("0", -math.inf))
    if p_zero + p_one == 0.0 or not math.isfinite(p_zero + p_one):
        return None
    tenths = 0.0
    if p_zero > 0.0:
        probs = {d: math.exp(digit.get(str(d), -math.inf)) for d in range(10)} if digit is not None else {}
        total = sum(probs.values())
        if total == 0.0 or not math.isfinite(total):
            return None
        tenths = sum(d * p for d, p in probs.items()) / total  # E[d | "0."]
    return (p_one * 1.0 + p_zero * tenths / 10) / (p_zero + p_one)
