"""The in-process thinking judges: a generative judge run with `transformers` or vLLM, and a scalar-head judge.

- [`TransformersJudge`]: renders the judge prompt, generates greedily and parses the score (CPU or GPU).
- [`ScalarJudge`]: one forward pass of a scalar-head model ([`~sophia_trl.judges.scalar_model`]), `sigmoid(logit)`.
- [`VLLMJudge`]: vLLM's offline `LLM.chat` (GPU); vLLM is imported when the judge is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from ..model_utils import loading_whole
from .base import RowImages, ThinkingJudge, image_list
from .messages import build_judge_inputs, build_openai_messages
from .scores import JUDGE_READOUTS, SCORE_PREFIX, expected_score, score_token_ids
from .template import DEFAULT_JUDGE_PROMPT, JudgePrompt

# Log-probabilities vLLM returns per position (its default limit, `max_logprobs`, is 20).
_VLLM_TOP_LOGPROBS = 20


def _length_sorted_batches(questions: list[str], responses: list[str], batch_size: int) -> list[list[int]]:
    """Row indices in batches of similar text length, so less compute goes to padding."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]) + len(responses[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


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

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int,
        device: str | None,
        cache_size: int,
        judge_prompt: JudgePrompt | None = None,
    ):
        super().__init__(cache_size=cache_size)
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        self.device = device or _default_device()
        self.processor = _load_vlm_processor(model_name_or_path)
        self.tokenizer = self.processor.tokenizer

    def _batches(
        self, questions: list[str], responses: list[str], images: list[RowImages], assistant_prefix: str = ""
    ) -> Iterator[tuple[list[int], Any]]:
        """(row indices, model inputs on the device) per batch; `assistant_prefix` starts the judge's answer."""
        for idx in _length_sorted_batches(questions, responses, self.batch_size):
            inputs = build_judge_inputs(
                self.processor,
                [questions[i] for i in idx],
                [responses[i] for i in idx],
                [images[i] for i in idx],
                self.judge_prompt,
                assistant_prefix,
            )
            yield idx, inputs.to(self.device)


class TransformersJudge(_LocalJudge):
    """A generative judge run in-process with `transformers`: renders the judge prompt and reads the judge's score.

    Two readouts of the score the judge was trained to write as `<answer>0.7</answer>`:

    - `"expected"`: one forward pass over the prompt followed by `<answer>0.`, and the probability-weighted mean of the
      scores 0.0, 0.1, ..., 1.0 from the judge's next-token probabilities ([`~sophia_trl.judges.expected_score`]): a
      continuous score, no generation loop, no unparsable reply.
    - `"greedy"`: greedy generation of the answer (6-8 tokens), parsed with the template's `score_parser`
      ([`~sophia_trl.judges.parse_score`] by default: a reply without a score gives `None`).

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
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt the judge was trained with (e.g. from a template file, [`~sophia_trl.judges.load_judge_prompt`]);
            this project's prompt when `None`.
        readout (`str`, *optional*, defaults to `"expected"`):
            `"expected"` or `"greedy"` (see above); `max_new_tokens` applies to `"greedy"` only. `"expected"` is the
            default from measurements on a trained tiny judge and held-out judge data (docs/thinking_reward_model.md):
            it ranks a question's responses far better (no ties on the 0.1 grid), never fails to parse, and costs one
            forward pass instead of a generation loop.
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
        judge_prompt: JudgePrompt | None = None,
        readout: str = "expected",
    ):
        from transformers import AutoModelForImageTextToText

        if readout not in JUDGE_READOUTS:
            raise ValueError(f"readout={readout!r} is not one of {JUDGE_READOUTS}.")
        super().__init__(model_name_or_path, batch_size, device, cache_size, judge_prompt)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
        self.max_new_tokens = max_new_tokens
        self.readout = readout
        # Checked now: a tokenizer that cannot express the readout fails at start-up, not at the first step.
        self._score_ids = score_token_ids(self.tokenizer) if readout == "expected" else None
        # Generation appends after the last token: pad on the left so every row's prompt ends at the same column.
        self.tokenizer.padding_side = "left"
        kwargs = {"dtype": dtype, **(model_init_kwargs or {})}
        with loading_whole():  # under ZeRO-3 too: each process runs its own judge passes
            self.model = AutoModelForImageTextToText.from_pretrained(str(model_name_or_path), **kwargs)
        self.model.to(self.device).eval()

    @torch.no_grad()
    def generate_texts(self, questions: list[str], responses: list[str], images: list[RowImages]) -> list[str]:
        """The judge's raw outputs (before parsing), without the cache; useful to inspect what a judge writes."""
        outputs: list[str] = [""] * len(questions)
        for idx, inputs in self._batches(questions, responses, images):
            generated = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                # Under ZeRO-3, transformers would keep every process generating until all are done (the passes of a
                # partitioned model); this judge is whole, and processes run different numbers of batches.
                synced_gpus=False,
            )
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            for i, text in zip(idx, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[i] = text
        return outputs

    @torch.no_grad()
    def expected_scores(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        """The expected-score readout of each row (one forward pass per batch), without the cache."""
        ids = self._score_ids or score_token_ids(self.tokenizer)
        scores: list[float | None] = [None] * len(questions)
        # Left padding: every row ends with "<answer>0.", so the last three positions are ">", "0" and ".".
        for idx, inputs in self._batches(questions, responses, images, assistant_prefix=SCORE_PREFIX + "0."):
            logits = self.model(**inputs, logits_to_keep=3).logits.float()  # (B, 3, V)
            first = torch.log_softmax(logits[:, 0], dim=-1)  # (B, V): the token after "<answer>"
            digit = torch.log_softmax(logits[:, 2], dim=-1)  # (B, V): the token after "<answer>0."
            first_ids = [ids["0"], ids["1"]]
            digit_ids = [ids[str(d)] for d in range(10)]
            for row, f, d in zip(idx, first[:, first_ids].tolist(), digit[:, digit_ids].tolist()):
                scores[row] = expected_score({"0": f[0], "1": f[1]}, {str(k): v for k, v in enumerate(d)})
        return scores

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        if self.readout == "expected":
            return self.expected_scores(questions, responses, images)
        return [self.judge_prompt.parse_score(text) for text in self.generate_texts(questions, responses, images)]


# ---------------------------------------------------------------------------------------------------------------------
# Local scalar-head judge
# ---------------------------------------------------------------------------------------------------------------------


class ScalarJudge(_LocalJudge):
    """A judge with a scalar head: one forward pass per batch, `sigmoid(logit)` is the score.

    Loads a checkpoint trained with [`~sophia_trl.reward_trainer.ThinkingRewardTrainer`]
    (`recipes/thinking_reward.py --judge_type scalar`) as a
    [`~sophia_trl.judges.scalar_model.Qwen2_5_VLForScalarReward`]. It never fails to give a score (except for a
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
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt the judge was trained with (e.g. from a template file, [`~sophia_trl.judges.load_judge_prompt`]);
            this project's prompt when `None`.
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int = 16,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
        cache_size: int = 4096,
        model_init_kwargs: dict[str, Any] | None = None,
        judge_prompt: JudgePrompt | None = None,
    ):
        # Imported here: transformers' Qwen2.5-VL model code takes a second to import and only this judge needs it.
        from .scalar_model import load_scalar_reward_model

        super().__init__(model_name_or_path, batch_size, device, cache_size, judge_prompt)
        with loading_whole():  # under ZeRO-3 too: each process runs its own judge passes
            self.model = load_scalar_reward_model(str(model_name_or_path), dtype=dtype, **(model_init_kwargs or {}))
        self.model.to(self.device).eval()

    @torch.no_grad()
    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        scores: list[float | None] = [None] * len(questions)
        for idx, inputs in self._batches(questions, responses, images):
            logits = self.model(**inputs).logits.squeeze(-1).float()  # (B,)
            for i, logit in zip(idx, logits.tolist()):
                scores[i] = 1.0 / (1.0 + math.exp(-logit)) if math.isfinite(logit) else None
        return scores


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
        max_images_per_row (`int`, *optional*, defaults to `1`):
            Most images one row may have (vLLM's `limit_mm_per_prompt`, which it reserves memory for); a row with more
            raises a `ValueError` that says so.
        llm_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra arguments of `vllm.LLM` (e.g. `max_model_len`, `dtype`).
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`ThinkingJudge`].
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt the judge was trained with (e.g. from a template file, [`~sophia_trl.judges.load_judge_prompt`]);
            this project's prompt when `None`.
        readout (`str`, *optional*, defaults to `"greedy"`):
            `"greedy"` parses the generated text. `"expected"` continues an assistant turn prefilled with
            `<answer>0.` for one token, with the top-20 log-probabilities of the prompt's last tokens and of that token:
            the distribution after `<answer>` ("0" or "1") and after `<answer>0.` (the digit) give
            [`~sophia_trl.judges.expected_score`] in one pass, as [`TransformersJudge`] does. It needs a tokenizer
            that writes `<answer>0.7` one token per character ([`~sophia_trl.judges.score_token_ids`] checks it when
            the judge is built).
    """

    def __init__(
        self,
        model_name_or_path: str,
        max_new_tokens: int = 16,
        gpu_memory_utilization: float = 0.3,
        tensor_parallel_size: int = 1,
        image_format: str = "PNG",
        max_images_per_row: int = 1,
        llm_kwargs: dict[str, Any] | None = None,
        cache_size: int = 4096,
        judge_prompt: JudgePrompt | None = None,
        readout: str = "greedy",
    ):
        if readout not in JUDGE_READOUTS:
            raise ValueError(f"readout={readout!r} is not one of {JUDGE_READOUTS}.")
        if max_images_per_row < 1:
            raise ValueError(f"max_images_per_row must be >= 1, got {max_images_per_row}.")
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
        self.max_images_per_row = max_images_per_row
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        kwargs = {
            "model": str(model_name_or_path),
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "limit_mm_per_prompt": {"image": max_images_per_row},
            **(llm_kwargs or {}),
        }
        self.llm = vllm.LLM(**kwargs)
        self.readout = readout
        if readout == "expected":
            self._score_ids = score_token_ids(self.llm.get_tokenizer())
            self.sampling_params = vllm.SamplingParams(
                temperature=0.0, max_tokens=1, logprobs=_VLLM_TOP_LOGPROBS, prompt_logprobs=_VLLM_TOP_LOGPROBS
            )
        else:
            self.sampling_params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        most = max((len(image_list(row_images)) for row_images in images), default=0)
        if most > self.max_images_per_row:
            raise ValueError(
                f"A row has {most} images, more than the {self.max_images_per_row} per row this VLLMJudge was started "
                "with: build it with max_images_per_row (recipes: judge_max_images_per_row) at least that large."
            )
        conversations = [
            build_openai_messages(q, r, img, self.image_format, judge_prompt=self.judge_prompt)
            for q, r, img in zip(questions, responses, images)
        ]
        if self.readout == "expected":
            return self._expected_scores(conversations)
        outputs = self.llm.chat(conversations, sampling_params=self.sampling_params, use_tqdm=False)
        return [
            self.judge_prompt.parse_score(output.outputs[0].text) if output.outputs else None for output in outputs
        ]

    def _expected_scores(self, conversations: list[list[dict[str, Any]]]) -> list[float | None]:
        prefilled = [[*c, {"role": "assistant", "content": SCORE_PREFIX + "0."}] for c in conversations]
        outputs = self.llm.chat(
            prefilled,
            sampling_params=self.sampling_params,
            use_tqdm=False,
            add_generation_prompt=False,
            continue_final_message=True,
        )
        ids = self._score_ids

        def by_char(logprobs: dict[int, Any] | None) -> dict[str, float]:
            # vLLM's {token id: Logprob}: the top-20 and the token that is there; read by id, not decoded text.
            return {ch: logprobs[i].logprob for ch, i in ids.items() if logprobs and i in logprobs}

        scores: list[float | None] = []
        for output in outputs:
            try:
                # The prompt ends "<answer>", "0", ".": the entry at "0" is the distribution after "<answer>".
                first = by_char(output.prompt_logprobs[-2])
                digit = by_char(output.outputs[0].logprobs[0])
            except (AttributeError, IndexError, TypeError):  # no log-probabilities in the output
                scores.append(None)
                continue
            scores.append(expected_score(first, digit))
        return scores
