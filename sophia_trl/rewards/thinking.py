"""The thinking judge: the evaluation prompt, the score parser and the backends that score a response's reasoning.

A thinking judge reads a question (with its image, when there is one) and a model's response, and returns one score in
[0, 1] for the quality of the reasoning, as the thinking reward model of SophiaVL-R1 (arXiv 2505.17018) does. Every
backend implements one interface:

```python
judge.score(questions, responses, images=None) -> list[float | None]
```

`None` marks a failed or unparsable judgement; callers turn it into NaN, never into 0, so a failure is not mistaken for
"bad reasoning". The base class keeps a small cache keyed by (question, response, image hash), so a completion that
is sampled twice is judged once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# Prompt and parser
# ---------------------------------------------------------------------------------------------------------------------

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


def _length_sorted_batches(questions: list[str], responses: list[str], batch_size: int) -> list[list[int]]:
    """Row indices in batches of similar text length, so less compute goes to padding."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]) + len(responses[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


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
    messages = build_judge_messages(example["question"], example["response"])
    image = example.get("image")
    return {
        "prompt": [{"role": m["role"], "content": m["content"][0]["text"]} for m in messages],
        "completion": [{"role": "assistant", "content": format_score(example["score"])}],
        "images": [image] if image is not None else [],
    }


def question_group_id(question: str, image: Image.Image | None) -> int:
    """A 63-bit id shared by rows with the same question text and the same image (pairwise accuracy groups)."""
    key = f"{question}\x00{image_hash(image)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1


def pairwise_accuracy(predictions: torch.Tensor, targets: torch.Tensor, group_ids: torch.Tensor) -> tuple[float, int]:
    """
    Fraction of pairs from the same group with different targets that the predictions order the same way (a tie in
    the predictions counts as wrong).

    Args:
        predictions (`torch.Tensor` of shape `(N,)`):
            Predicted scores.
        targets (`torch.Tensor` of shape `(N,)`):
            Target scores.
        group_ids (`torch.Tensor` of shape `(N,)`):
            Group of each row; only pairs within a group count.

    Returns:
        `tuple[float, int]`: The accuracy (NaN when there is no such pair) and the number of pairs.
    """
    same_group = group_ids[:, None] == group_ids[None, :]  # (N, N)
    target_diff = targets[:, None] - targets[None, :]
    pred_diff = predictions[:, None] - predictions[None, :]
    # Each unordered pair once: the ordered pair with the larger target first.
    pairs = same_group & (target_diff > 0)
    num_pairs = int(pairs.sum())
    if num_pairs == 0:
        return math.nan, 0
    return float((pred_diff[pairs] > 0).float().mean()), num_pairs


def evaluate_judge(judge: ThinkingJudge, dataset: Any, batch_size: int = 64) -> dict[str, float]:
    """Scores labelled judge data with a judge and compares with the labels.

    Args:
        judge ([`ThinkingJudge`]):
            Any backend.
        dataset ([`~datasets.Dataset`] or `list[dict]`):
            Rows with `question`, `response`, `score` and optionally `image`.
        batch_size (`int`, *optional*, defaults to `64`):
            Rows per `judge.score` call.

    Returns:
        `dict[str, float]`: `mae` (mean absolute error over the rows the judge scored), `failed_fraction` (rows it
        gave no score for; they are not counted as 0 in `mae`), `pairwise_accuracy` and `num_pairs` (pairs of rows with
        the same question and image and different labels, ordered like the labels), `mean_score`, `num_rows`.
    """
    predictions, targets, groups = [], [], []
    num_rows = len(dataset)
    for start in range(0, num_rows, batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, num_rows))]
        images = [row.get("image") for row in rows]
        scores = judge.score([r["question"] for r in rows], [r["response"] for r in rows], images)
        for row, image, score in zip(rows, images, scores):
            predictions.append(math.nan if score is None else score)
            targets.append(float(row["score"]))
            groups.append(question_group_id(row["question"], image))
    pred, target = torch.tensor(predictions, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)
    scored = ~torch.isnan(pred)
    accuracy, num_pairs = pairwise_accuracy(pred[scored], target[scored], torch.tensor(groups)[scored])
    return {
        "mae": float((pred[scored] - target[scored]).abs().mean()) if scored.any() else math.nan,
        "failed_fraction": float((~scored).double().mean()) if num_rows else math.nan,
        "pairwise_accuracy": accuracy,
        "num_pairs": num_pairs,
        "mean_score": float(pred[scored].mean()) if scored.any() else math.nan,
        "num_rows": num_rows,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Base class: the interface and the cache
# ---------------------------------------------------------------------------------------------------------------------


def image_hash(image: Image.Image | None) -> str | None:
    """A content hash of an image (mode, size and pixels), so equal images share cache entries."""
    if image is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class ThinkingJudge:
    """Base class of the thinking judges: scores the reasoning of responses, with a cache of past judgements.

    Subclasses implement `_score_uncached(questions, responses, images)`, which scores rows the cache does not hold and
    returns one `float | None` per row. [`ThinkingJudge.score`] checks its inputs, serves repeated rows from the cache
    (within one call and across calls) and stores new successful scores. Failures (`None`) are not cached, so a row
    that failed is asked again the next time.

    Args:
        cache_size (`int`, *optional*, defaults to `4096`):
            Number of judgements kept (least recently used evicted first). `0` disables the cache.

    Attributes:
        num_requests (`int`): Rows sent to the backend since creation.
        num_cache_hits (`int`): Rows answered from the cache (including duplicates within one call).
        num_failures (`int`): Rows the backend returned `None` for.
    """

    def __init__(self, cache_size: int = 4096):
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}.")
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str | None], float] = OrderedDict()
        # score() may be called from several threads (e.g. a reward function in a thread pool).
        self._lock = threading.Lock()
        self.num_requests = 0
        self.num_cache_hits = 0
        self.num_failures = 0

    def score(
        self,
        questions: list[str],
        responses: list[str],
        images: list[Image.Image | None] | None = None,
    ) -> list[float | None]:
        """Scores the reasoning of each response.

        Args:
            questions (`list[str]`):
                The question of each row.
            responses (`list[str]`):
                The response to judge in each row (the full completion text).
            images (`list[PIL.Image.Image | None]` or `None`, *optional*, defaults to `None`):
                The image of each row, `None` for a text-only row; `None` for the whole argument when no row has one.

        Returns:
            `list[float | None]`: One score in [0, 1] per row, `None` where the judge failed or gave no score.
        """
        n = len(questions)
        if len(responses) != n:
            raise ValueError(f"Got {n} questions but {len(responses)} responses; pass one question per response.")
        if images is None:
            images = [None] * n
        elif len(images) != n:
            raise ValueError(f"Got {n} questions but {len(images)} images; pass one image (or None) per question.")
        for i, (q, r) in enumerate(zip(questions, responses)):
            if not isinstance(q, str) or not isinstance(r, str):
                raise TypeError(
                    f"Row {i}: question and response must be strings, got {type(q).__name__} and {type(r).__name__}."
                )

        keys = [(q, r, image_hash(img)) for q, r, img in zip(questions, responses, images)]
        results: list[float | None] = [None] * n
        todo: dict[tuple[str, str, str | None], list[int]] = {}  # first occurrence order = request order
        with self._lock:
            for i, key in enumerate(keys):
                if key in self._cache:
                    self._cache.move_to_end(key)
                    results[i] = self._cache[key]
                    self.num_cache_hits += 1
                elif key in todo:
                    todo[key].append(i)
                    self.num_cache_hits += 1
                else:
                    todo[key] = [i]
        if not todo:
            return results

        rows = [idx[0] for idx in todo.values()]
        scores = self._score_uncached(
            [questions[i] for i in rows], [responses[i] for i in rows], [images[i] for i in rows]
        )
        if len(scores) != len(rows):
            raise RuntimeError(f"{type(self).__name__} returned {len(scores)} scores for {len(rows)} rows.")

        num_failed = 0
        with self._lock:
            self.num_requests += len(rows)
            for (key, idx), value in zip(todo.items(), scores):
                for i in idx:
                    results[i] = value
                if value is None:
                    num_failed += 1
                elif self.cache_size > 0:
                    self._cache[key] = value
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            self.num_failures += num_failed
        if num_failed:
            logger.warning(
                "%s: %d of %d judgements failed or had no score.", type(self).__name__, num_failed, len(rows)
            )
        return results

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        """Scores rows that are not in the cache; one `float | None` per row."""
        raise NotImplementedError(f"{type(self).__name__} must implement _score_uncached.")

    def clear_cache(self) -> None:
        """Forgets every cached judgement."""
        with self._lock:
            self._cache.clear()


# ---------------------------------------------------------------------------------------------------------------------
# Local generative judge (transformers)
# ---------------------------------------------------------------------------------------------------------------------


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_vlm_processor(model_name_or_path: str) -> Any:
    """AutoProcessor, checked to have an image processor (without torchvision, Qwen2.5-VL's silently has none)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(model_name_or_path))
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError(
            f"The processor loaded from {model_name_or_path} is a {type(processor).__name__} without an image "
            "processor, so images cannot reach the judge. Check that torchvision is installed and that the folder "
            "holds a processor_config.json."
        )
    return processor


class _LocalJudge(ThinkingJudge):
    """What the in-process judges share: the processor, the device and length-sorted batches of model inputs."""

    def __init__(self, model_name_or_path: str, batch_size: int, device: str | None, cache_size: int):
        super().__init__(cache_size=cache_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        self.device = device or _default_device()
        self.processor = _load_vlm_processor(model_name_or_path)
        self.tokenizer = self.processor.tokenizer

    def _batches(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> Iterator[tuple[list[int], Any]]:
        """(row indices, model inputs on the device) per batch."""
        for idx in _length_sorted_batches(questions, responses, self.batch_size):
            inputs = build_judge_inputs(
                self.processor, [questions[i] for i in idx], [responses[i] for i in idx], [images[i] for i in idx]
            )
            yield idx, inputs.to(self.device)


class TransformersJudge(_LocalJudge):
    """A generative judge run in-process with `transformers`: renders the judge prompt, generates greedily, parses.

    Rows are sorted by prompt length and scored in batches of `batch_size` with left padding; rows with and without
    images can share a batch.

    Args:
        model_name_or_path (`str`):
            A vision-language checkpoint (Hub id or local folder) that loads with `AutoModelForImageTextToText` and
            `AutoProcessor`, e.g. a judge trained with `recipes/thinking_reward.py --judge_type generative`.
        batch_size (`int`, *optional*, defaults to `8`):
            Rows per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to `16`):
            Generation budget; `<answer>0.7</answer>` needs far fewer tokens, so a judge that rambles is cut short.
        device (`str` or `None`, *optional*, defaults to `None`):
            Where to run the model; `None` picks `"cuda"` when available, else `"cpu"`.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`):
            Weight dtype passed to `from_pretrained`.
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`ThinkingJudge`].
        model_init_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra keyword arguments for `AutoModelForImageTextToText.from_pretrained` (e.g. `attn_implementation`).
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int = 8,
        max_new_tokens: int = 16,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
        cache_size: int = 4096,
        model_init_kwargs: dict[str, Any] | None = None,
    ):
        from transformers import AutoModelForImageTextToText

        super().__init__(model_name_or_path, batch_size, device, cache_size)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        self.max_new_tokens = max_new_tokens
        # Generation appends after the last token: pad on the left so every row's prompt ends at the same column.
        self.tokenizer.padding_side = "left"
        kwargs = {"dtype": dtype, **(model_init_kwargs or {})}
        self.model = AutoModelForImageTextToText.from_pretrained(str(model_name_or_path), **kwargs)
        self.model.to(self.device).eval()

    @torch.no_grad()
    def generate_texts(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[str]:
        """The judge's raw outputs (before parsing), without the cache; useful to inspect what a judge writes."""
        outputs: list[str] = [""] * len(questions)
        for idx, inputs in self._batches(questions, responses, images):
            generated = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            for i, text in zip(idx, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[i] = text
        return outputs

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        return [parse_score(text) for text in self.generate_texts(questions, responses, images)]


# ---------------------------------------------------------------------------------------------------------------------
# Local scalar-head judge
# ---------------------------------------------------------------------------------------------------------------------


class ScalarJudge(_LocalJudge):
    """A judge with a scalar head: one forward pass per batch, `sigmoid(logit)` is the score.

    Loads a checkpoint trained with [`~sophia_trl.reward_trainer.ThinkingRewardTrainer`]
    (`recipes/thinking_reward.py --judge_type scalar`) as a
    [`~sophia_trl.reward_trainer.Qwen2_5_VLForScalarReward`]. It never fails to give a score (except for a
    non-finite logit), and costs one forward pass instead of a generation.

    Args:
        model_name_or_path (`str`):
            The scalar-head checkpoint (local folder or Hub id).
        batch_size (`int`, *optional*, defaults to `16`):
            Rows per forward pass.
        device (`str` or `None`, *optional*, defaults to `None`):
            Where to run the model; `None` picks `"cuda"` when available, else `"cpu"`.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `"auto"`):
            Weight dtype passed to `from_pretrained`.
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`ThinkingJudge`].
        model_init_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra keyword arguments for `from_pretrained`.
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
        cache_size: int = 4096,
        model_init_kwargs: dict[str, Any] | None = None,
    ):
        from ..reward_trainer import load_scalar_reward_model

        super().__init__(model_name_or_path, batch_size, device, cache_size)
        self.model = load_scalar_reward_model(str(model_name_or_path), dtype=dtype, **(model_init_kwargs or {}))
        self.model.to(self.device).eval()

    @torch.no_grad()
    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        scores: list[float | None] = [None] * len(questions)
        for idx, inputs in self._batches(questions, responses, images):
            logits = self.model(**inputs).logits.squeeze(-1).float()  # (B,)
            for i, logit in zip(idx, logits.tolist()):
                scores[i] = 1.0 / (1.0 + math.exp(-logit)) if math.isfinite(logit) else None
        return scores


# ---------------------------------------------------------------------------------------------------------------------
# OpenAI-compatible server (vllm serve, transformers serve, hosted APIs)
# ---------------------------------------------------------------------------------------------------------------------


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


class _EventLoopThread:
    """An asyncio loop running in its own daemon thread, so synchronous callers in any thread (with or without a
    running loop of their own) can run coroutines on it."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        if threading.current_thread() is self.thread:
            raise RuntimeError("A judge cannot be called from inside its own event loop thread.")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class JudgeServerError(RuntimeError):
    """The judge server rejects the configuration (authentication, permissions, unknown model or URL)."""


def _close_openai_judge(loop_thread: _EventLoopThread, clients: list[Any]) -> None:
    if clients and not loop_thread.loop.is_closed() and loop_thread.thread.is_alive():

        async def close_all() -> None:
            await asyncio.gather(*(client.aclose() for client in clients))

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop_thread.loop).result(timeout=10)
        except Exception:  # closing is best effort: the process may be shutting down
            logger.debug("Closing the judge clients failed.", exc_info=True)
    loop_thread.stop()


# Connections per httpx client of OpenAIJudge (see OpenAIJudge._ensure_client).
_CONNECTIONS_PER_CLIENT = 8


class OpenAIJudge(ThinkingJudge):
    """A judge behind an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted APIs).

    Requests run concurrently, at most `max_concurrency` at a time (over `httpx` connection pools of 8), on an event loop owned by the judge (in its own
    thread, so `score` works from any thread, including one that runs an event loop). Each attempt is bounded by
    `timeout`; timeouts, connection errors, HTTP 429 and 5xx are retried up to `max_retries` times with exponential
    backoff and jitter; a request that still fails, or whose reply holds no score, gives `None`. Authentication,
    permission and not-found errors mean the configuration is wrong and raise [`JudgeServerError`] at once.

    Args:
        base_url (`str`):
            The server's OpenAI API root, e.g. `"http://localhost:8001/v1"`.
        model (`str`):
            The served model name (`vllm serve --served-model-name`, or the path given to the server).
        api_key (`str` or `None`, *optional*, defaults to `None`):
            API key; read from the `OPENAI_API_KEY` environment variable when `None` (local servers accept any value).
            It is sent in the request header only, never logged.
        timeout (`float`, *optional*, defaults to `60.0`):
            Seconds allowed for one attempt, from sending the request to the end of the reply.
        max_retries (`int`, *optional*, defaults to `3`):
            Retries after the first attempt of a request; the total number of attempts is `max_retries + 1`.
        max_concurrency (`int`, *optional*, defaults to `32`):
            Requests in flight at once.
        max_new_tokens (`int`, *optional*, defaults to `16`):
            `max_tokens` of each request.
        temperature (`float`, *optional*, defaults to `0.0`):
            Sampling temperature; 0 is greedy, as the judge should be.
        backoff (`float`, *optional*, defaults to `0.5`):
            Wait before the first retry in seconds; doubles with each retry (plus up to 10 % jitter).
        max_backoff (`float`, *optional*, defaults to `8.0`):
            Upper bound of one wait.
        image_format (`str`, *optional*, defaults to `"PNG"`):
            Encoding of images in the requests.
        request_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra fields of the request body (e.g. `{"top_k": 1}` for vLLM).
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`ThinkingJudge`].

    Attributes:
        num_attempts (`int`): HTTP requests sent, retries included.
        num_retries (`int`): Attempts that were retries.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 32,
        max_new_tokens: int = 16,
        temperature: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        image_format: str = "PNG",
        request_kwargs: dict[str, Any] | None = None,
        cache_size: int = 4096,
    ):
        super().__init__(cache_size=cache_size)
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}.")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}.")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.image_format = image_format
        self.request_kwargs = dict(request_kwargs or {})
        self.num_attempts = 0
        self.num_retries = 0
        # Local servers ignore the key but the client requires one.
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._loop_thread = _EventLoopThread(name=f"{type(self).__name__}-loop")
        self._clients: list[Any] = []
        self._slots: asyncio.Queue[int] | None = None
        self._finalizer = weakref.finalize(self, _close_openai_judge, self._loop_thread, [])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    def _ensure_client(self) -> Any:
        """Creates the HTTP clients and the request slots on the judge's loop (they belong to the loop that uses them).

        Returns the first client (for requests outside the slots, e.g. listing models).
        """
        if not self._clients:
            import httpx

            # httpx rather than the openai SDK: the SDK's request validation cost ~10 ms of CPU per request here. And
            # several small connection pools rather than one: httpcore assigns requests to connections in time
            # quadratic in the pool size, which took half the client's CPU at 32 connections.
            num_clients = math.ceil(self.max_concurrency / _CONNECTIONS_PER_CLIENT)
            self._clients = [
                httpx.AsyncClient(
                    base_url=self.base_url.rstrip("/") + "/",
                    headers={"Authorization": f"Bearer {self._api_key}"},
                    timeout=httpx.Timeout(self.timeout),
                    limits=httpx.Limits(
                        max_connections=_CONNECTIONS_PER_CLIENT, max_keepalive_connections=_CONNECTIONS_PER_CLIENT
                    ),
                )
                for _ in range(num_clients)
            ]
            # A request holds one of max_concurrency slots; slot k always goes through client k // 8.
            self._slots = asyncio.Queue()
            for slot in range(self.max_concurrency):
                self._slots.put_nowait(slot)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _close_openai_judge, self._loop_thread, self._clients)
        return self._clients[0]

    def close(self) -> None:
        """Closes the HTTP client and stops the judge's event loop; the judge cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def check_server(self) -> list[str]:
        """Asks the server for its models, to fail early with a clear message when it is down or misconfigured.

        Returns:
            `list[str]`: The served model ids (empty when the server answers but cannot list them; some servers,
            e.g. `transformers serve` without a Hub cache, answer HTTP 500 there). A warning is logged when `model`
            is not among them.

        Raises:
            `ConnectionError`: The server did not answer within `timeout`.
            [`JudgeServerError`]: The server refused the request (wrong API key).
        """
        import httpx

        async def list_models() -> httpx.Response:
            return await asyncio.wait_for(self._ensure_client().get("models"), timeout=self.timeout)

        try:
            response = self._loop_thread.run(list_models())
        except (httpx.HTTPError, asyncio.TimeoutError, OSError) as err:
            raise ConnectionError(
                f"The judge server at {self.base_url} did not answer ({type(err).__name__}). Start it (see "
                "scripts/serve_judge.sh) or fix the base URL."
            ) from err
        if response.status_code in (401, 403):
            raise JudgeServerError(
                f"The judge server at {self.base_url} refused the request (HTTP {response.status_code}): check the API "
                "key (api_key or OPENAI_API_KEY)."
            )
        try:
            response.raise_for_status()
            model_ids = [m["id"] for m in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            logger.warning(
                "The judge server at %s answers but could not list its models (HTTP %d).",
                self.base_url,
                response.status_code,
            )
            return []
        if self.model not in model_ids:
            logger.warning(
                "The judge server at %s does not list the model %r (it lists %s).",
                self.base_url,
                self.model,
                model_ids,
            )
        return model_ids

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        # One encoding per distinct image object: a group's completions share their prompt's image.
        urls: dict[int, str] = {}
        for img in images:
            if img is not None and id(img) not in urls:
                urls[id(img)] = image_to_data_url(img, self.image_format)
        requests = [
            build_openai_messages(q, r, img, image_url=urls.get(id(img)))
            for q, r, img in zip(questions, responses, images)
        ]
        return [parse_score(reply) for reply in self.complete(requests)]

    def complete(self, conversations: list[list[dict[str, Any]]]) -> list[str | None]:
        """Sends chat conversations to the server, with the judge's timeout, retries and bounded concurrency.

        Neither cached nor parsed: [`~ThinkingJudge.score`] builds its own conversations and reads the score from these
        replies; other clients of the same server (e.g. the evaluation's answer extractor) send theirs.

        Args:
            conversations (`list[list[dict]]`):
                One list of OpenAI chat messages per request.

        Returns:
            `list[str | None]`: Each reply's text, in order; `None` for a request that failed after its retries or was
            rejected, or whose reply holds no text.

        Raises:
            [`JudgeServerError`]: The server answered HTTP 401, 403 or 404 (wrong API key, URL or model name).
        """
        if not conversations:
            return []
        return self._loop_thread.run(self._complete_all(conversations))

    async def _complete_all(self, conversations: list[list[dict[str, Any]]]) -> list[str | None]:
        self._ensure_client()
        results = await asyncio.gather(
            *(self._complete_one(messages) for messages in conversations), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _complete_one(self, messages: list[dict[str, Any]]) -> str | None:
        import httpx

        payload = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "max_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                **self.request_kwargs,
            }
        )
        headers = {"Content-Type": "application/json"}
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                self.num_retries += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (1.0 + 0.1 * random.random()))
            slot = await self._slots.get()
            try:
                self.num_attempts += 1
                client = self._clients[slot // _CONNECTIONS_PER_CLIENT]
                response = await asyncio.wait_for(
                    client.post("chat/completions", content=payload, headers=headers), timeout=self.timeout
                )
            except (httpx.TransportError, asyncio.TimeoutError) as err:  # timeouts, refused or dropped connections
                error = type(err).__name__
                logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                continue
            finally:
                self._slots.put_nowait(slot)
            status = response.status_code
            if status in (401, 403, 404):
                raise JudgeServerError(
                    f"The judge server at {self.base_url} answered HTTP {status} for model {self.model!r}: check the "
                    "base URL, the served model name and the API key."
                )
            if status in (408, 409, 429) or status >= 500:  # busy or broken for now: worth another try
                error = f"HTTP {status}"
                logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                continue
            if status >= 400:
                logger.warning(
                    "The judge server rejected a request (HTTP %d: %s); its reply is None.",
                    status,
                    response.text[:300],
                )
                return None
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as err:
                content = err
            if not isinstance(content, str):
                logger.warning(
                    "The judge server sent an unreadable reply (%s); its reply is None.", type(content).__name__
                )
                return None
            return content
        logger.warning(
            "A judge request failed %d times (last error: %s); its reply is None.", self.max_retries + 1, error
        )
        return None


# ---------------------------------------------------------------------------------------------------------------------
# In-process vLLM
# ---------------------------------------------------------------------------------------------------------------------


class VLLMJudge(ThinkingJudge):
    """A generative judge run in-process with vLLM's offline `LLM.chat` (GPU). vLLM is imported when this is built.

    Args:
        model_name_or_path (`str`):
            The judge checkpoint (local folder or Hub id).
        max_new_tokens (`int`, *optional*, defaults to `16`):
            Generation budget per row.
        gpu_memory_utilization (`float`, *optional*, defaults to `0.3`):
            Fraction of GPU memory vLLM may take; keep room for the policy when both share a GPU.
        tensor_parallel_size (`int`, *optional*, defaults to `1`):
            GPUs the judge is sharded over.
        image_format (`str`, *optional*, defaults to `"PNG"`):
            Encoding of images in the chat messages.
        llm_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra arguments of `vllm.LLM` (e.g. `max_model_len`, `dtype`).
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`ThinkingJudge`].
    """

    def __init__(
        self,
        model_name_or_path: str,
        max_new_tokens: int = 16,
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        image_format: str = "PNG",
        llm_kwargs: dict[str, Any] | None = None,
        cache_size: int = 4096,
    ):
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "VLLMJudge needs vLLM, which is not installed. On a GPU machine install the `vllm` extra "
                "(`pip install -e '.[vllm]'`, with the versions pinned in requirements-vllm.txt so that torch and "
                "transformers stay compatible), or use TransformersJudge locally or OpenAIJudge with a `vllm serve` "
                "server."
            ) from err
        super().__init__(cache_size=cache_size)
        self.image_format = image_format
        kwargs = {
            "model": str(model_name_or_path),
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "limit_mm_per_prompt": {"image": 1},
            **(llm_kwargs or {}),
        }
        self.llm = vllm.LLM(**kwargs)
        self.sampling_params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        conversations = [
            build_openai_messages(q, r, img, self.image_format) for q, r, img in zip(questions, responses, images)
        ]
        outputs = self.llm.chat(conversations, sampling_params=self.sampling_params, use_tqdm=False)
        return [parse_score(output.outputs[0].text) if output.outputs else None for output in outputs]
