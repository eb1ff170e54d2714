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

import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
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


class TransformersJudge(ThinkingJudge):
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
        from transformers import AutoModelForImageTextToText, AutoProcessor

        super().__init__(cache_size=cache_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device or _default_device()
        self.processor = AutoProcessor.from_pretrained(str(model_name_or_path))
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if getattr(self.processor, "image_processor", None) is None:
            # Without torchvision, some VLM processors silently load as a bare tokenizer and images would be dropped.
            raise ValueError(
                f"The processor loaded from {model_name_or_path} has no image processor, so images cannot reach the "
                "judge. Check that torchvision is installed and that the folder holds a processor_config.json."
            )
        # Generation appends after the last token: pad on the left so every row's prompt ends at the same column.
        self.tokenizer.padding_side = "left"
        kwargs = {"dtype": dtype, **(model_init_kwargs or {})}
        self.model = AutoModelForImageTextToText.from_pretrained(str(model_name_or_path), **kwargs)
        self.model.to(self.device).eval()

    def _render(self, question: str, response: str, image: Image.Image | None) -> str:
        messages = build_judge_messages(question, response, image)
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def generate_texts(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[str]:
        """The judge's raw outputs (before parsing), without the cache; useful to inspect what a judge writes."""
        texts = [self._render(q, r, img) for q, r, img in zip(questions, responses, images)]
        # Similar lengths in a batch waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[str] = [""] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch_images = [images[i] for i in idx if images[i] is not None]
            inputs = self.processor(
                text=[texts[i] for i in idx],
                images=batch_images or None,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
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
