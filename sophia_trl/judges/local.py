"""The in-process thinking judges: a generative judge run with `transformers` or vLLM, and a scalar-head judge.

- [`TransformersJudge`]: renders the judge prompt, generates greedily and parses the score (CPU or GPU).
- [`ScalarJudge`]: one forward pass of a scalar-head model ([`~sophia_trl.judges.scalar_model`]), `sigmoid(logit)`.
- [`VLLMJudge`]: vLLM's offline `LLM.chat` (GPU); vLLM is imported when the judge is built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..model_utils import loading_whole
from .base import RowImages, ThinkingJudge, image_list
from .messages import build_judge_inputs, build_openai_messages
from .prefix import SharedPrefix, score_shared_groups, supports_shared_prefix
from .scores import JUDGE_READOUTS, SCORE_PREFIX, expected_score, score_token_ids
from .template import DEFAULT_JUDGE_PROMPT, JudgePrompt

logger = logging.getLogger(__name__)

# Log-probabilities vLLM returns per position (its default limit, `max_logprobs`, is 20).
_VLLM_TOP_LOGPROBS = 20


def _length_sorted_batches(
    questions: list[str], responses: list[str], batch_size: int, rows: list[int] | None = None
) -> list[list[int]]:
    """Row indices (of `rows`, all by default) in batches of similar text length, so less compute goes to padding."""
    rows = range(len(questions)) if rows is None else rows
    order = sorted(rows, key=lambda i: len(questions[i]) + len(responses[i]))
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
    """What the in-process judges share: the processor, the device, length-sorted batches of model inputs and the
    choice of sharing a group's prompt prefix."""

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int,
        device: str | None,
        cache_size: int,
        judge_prompt: JudgePrompt | None = None,
        share_prefix: bool | None = None,
    ):
        super().__init__(cache_size=cache_size)
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.batch_size = batch_size
        self.device = device or _default_device()
        self.processor = _load_vlm_processor(model_name_or_path)
        self.tokenizer = self.processor.tokenizer
        if share_prefix and not self.judge_prompt.response_last:
            raise ValueError(
                f"share_prefix=True (judge_share_prefix), but the judge prompt ({self.judge_prompt.source}) puts the "
                "response before the question or the image, so a group's prompts share no prefix that holds them. "
                "Leave judge_share_prefix unset (or false) for this template."
            )
        self._share_prefix_setting = share_prefix

    def _resolve_share_prefix(self) -> None:
        """Called once the model is loaded: `share_prefix` on by default where the template and the model allow it."""
        supported = supports_shared_prefix(self.model)
        if self._share_prefix_setting and not supported:
            raise ValueError(
                f"share_prefix=True (judge_share_prefix), but the judge model ({type(self.model).__name__}) is not a "
                "Qwen2-VL-family model, whose multimodal positions the shared prefix needs. Set judge_share_prefix "
                "to false."
            )
        if self._share_prefix_setting is None:
            self.share_prefix = supported and self.judge_prompt.response_last
        else:
            self.share_prefix = bool(self._share_prefix_setting)
        logger.info("Judge share_prefix: %s", self.share_prefix)

    def _batches(
        self,
        questions: list[str],
        responses: list[str],
        images: list[RowImages],
        assistant_prefix: str = "",
        rows: list[int] | None = None,
    ) -> Iterator[tuple[list[int], Any]]:
        """(row indices, model inputs on the device) per batch of `rows` (all by default); `assistant_prefix` starts
        the judge's answer."""
        for idx in _length_sorted_batches(questions, responses, self.batch_size, rows):
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
        share_prefix (`bool` or `None`, *optional*, defaults to `None`):
            Compute the prompt prefix a group's rows share (system text, image, question) once per group and run
            each response on its key/value cache ([`~sophia_trl.judges.prefix`]); the scores equal the unshared ones.
            `None` turns it on when the template puts the response last and the model is a Qwen2-VL-family model.
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
        share_prefix: bool | None = None,
    ):
        from transformers import AutoModelForImageTextToText

        if readout not in JUDGE_READOUTS:
            raise ValueError(f"readout={readout!r} is not one of {JUDGE_READOUTS}.")
        super().__init__(model_name_or_path, batch_size, device, cache_size, judge_prompt, share_prefix)
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
        self._resolve_share_prefix()

    @torch.no_grad()
    def generate_texts(self, questions: list[str], responses: list[str], images: list[RowImages]) -> list[str]:
        """The judge's raw outputs (before parsing), without the cache; useful to inspect what a judge writes."""
        outputs: list[str] = [""] * len(questions)
        rows = None
        if self.share_prefix:
            shared, rows = score_shared_groups(self, questions, responses, images, "", self._generate_on_prefix)
            for i, text in shared.items():
                outputs[i] = text
        for idx, inputs in self._batches(questions, responses, images, rows=rows):
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

    def _generate_on_prefix(self, prefix: SharedPrefix, suffixes: list[list[int]]) -> list[str]:
        """Greedy generation for a batch of a group's rows on the group's shared prefix (as `generate` does)."""
        from transformers import RepetitionPenaltyLogitsProcessor

        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        eos = torch.tensor([eos] if isinstance(eos, int) else list(eos), device=self.device)
        pad = self.tokenizer.pad_token_id
        # The one logits processor `generate` applies to a greedy search with a checkpoint's generation config (Qwen's
        # instruct models set repetition_penalty): it penalises every token of the prompt and of the answer so far.
        penalty = config.repetition_penalty
        processor = RepetitionPenaltyLogitsProcessor(penalty) if penalty not in (None, 1.0) else None
        hidden, state = prefix.forward_suffixes(suffixes, pad)
        seen = [prefix.prefix_ids.tolist() + s for s in suffixes]
        generated: list[torch.Tensor] = []
        finished = torch.zeros(len(suffixes), dtype=torch.bool, device=self.device)
        last = hidden[:, -1]  # (B, H)
        for _ in range(self.max_new_tokens):
            logits = self.model.lm_head(last).float()  # (B, V)
            if processor is not None:
                width = max(len(s) for s in seen)
                ids = torch.tensor([s + [s[-1]] * (width - len(s)) for s in seen], device=self.device)
                logits = processor(torch.cat([ids, *[g[:, None] for g in generated]], dim=1), logits)
            token = torch.where(finished, pad, logits.argmax(-1))
            generated.append(token)
            finished |= torch.isin(token, eos)
            if finished.all():
                break
            last = prefix.step(token, state)
        new_tokens = torch.stack(generated, dim=1)
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _expected_from_logits(self, logits: torch.Tensor) -> list[float]:
        """The expected score of each row from the logits of its last three positions, `(B, 3, V)`."""
        ids = self._score_ids or score_token_ids(self.tokenizer)
        logits = logits.float()
        first = torch.log_softmax(logits[:, 0], dim=-1)  # (B, V): the token after "<answer>"
        digit = torch.log_softmax(logits[:, 2], dim=-1)  # (B, V): the token after "<answer>0."
        first_ids = [ids["0"], ids["1"]]
        digit_ids = [ids[str(d)] for d in range(10)]
        return [
            expected_score({"0": f[0], "1": f[1]}, {str(k): v for k, v in enumerate(d)})
            for f, d in zip(first[:, first_ids].tolist(), digit[:, digit_ids].tolist())
        ]

    def _expected_on_prefix(self, prefix: SharedPrefix, suffixes: list[list[int]]) -> list[float]:
        hidden, _ = prefix.forward_suffixes(suffixes, self.tokenizer.pad_token_id)
        return self._expected_from_logits(self.model.lm_head(hidden[:, -3:]))

    @torch.no_grad()
    def expected_scores(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        """The expected-score readout of each row (one forward pass per batch), without the cache."""
        scores: list[float | None] = [None] * len(questions)
        answer_prefix = SCORE_PREFIX + "0."
        rows = None
        if self.share_prefix:
            shared, rows = score_shared_groups(
                self, questions, responses, images, answer_prefix, self._expected_on_prefix
            )
            for i, score in shared.items():
                scores[i] = score
        # Left padding: every row ends with "<answer>0.", so the last three positions are ">", "0" and ".".
        for idx, inputs in self._batches(questions, responses, images, answer_prefix, rows):
            logits = self.model(**inputs, logits_to_keep=3).logits  # (B, 3, V)
            for row, score in zip(idx, self._expected_from_logits(logits)):
                scores[row] = score
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
        share_prefix (`bool` or `None`, *optional*, defaults to `None`):
            Compute the prompt prefix a group's rows share (system text, image, question) once per group and run
            each response on its key/value cache ([`~sophia_trl.judges.prefix`]); the scores equal the unshared ones.
            `None` turns it on when the template puts the response last and the model is a Qwen2-VL-family model.
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
        share_prefix: bool | None = None,
    ):
        # Imported here: transformers' Qwen2.5-VL model code takes a second to import and only this judge needs it.
        from .scalar_model import load_scalar_reward_model

        super().__init__(model_name_or_path, batch_size, device, cache_size, judge_prompt, share_prefix)
        with loading_whole():  # under ZeRO-3 too: each process runs its own judge passes
            self.model = load_scalar_reward_model(str(model_name_or_path), dtype=dtype, **(model_init_kwargs or {}))
        self.model.to(self.device).eval()
        self._resolve_share_prefix()

    @staticmethod
    def _sigmoids(logits: torch.Tensor) -> list[float | None]:
        return [1.0 / (1.0 + math.exp(-x)) if math.isfinite(x) else None for x in logits.float().tolist()]

    def _score_on_prefix(self, prefix: SharedPrefix, suffixes: list[list[int]]) -> list[float | None]:
        hidden, _ = prefix.forward_suffixes(suffixes, self.tokenizer.pad_token_id)
        last = hidden[:, -1]  # (B, H): left padding, every row ends at the last column
        return self._sigmoids(self.model.score(last.to(self.model.score.weight.dtype)).squeeze(-1))

    @torch.no_grad()
    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        scores: list[float | None] = [None] * len(questions)
        rows = None
        if self.share_prefix:
            shared, rows = score_shared_groups(self, questions, responses, images, "", self._score_on_prefix)
            for i, score in shared.items():
                scores[i] = score
        for idx, inputs in self._batches(questions, responses, images, rows=rows):
            for i, score in zip(idx, self._sigmoids(self.model(**inputs).logits.squeeze(-1))):  # (B,)
                scores[i] = score
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
