"""Greedy generation for evaluation: batched `transformers`, or vLLM when it is installed.

Both backends render prompts exactly as `TrustGRPOTrainer` does during training (TRL's `prepare_multimodal_messages`,
then the processor's chat template with the generation prompt), so a checkpoint is evaluated on the prompt format it
was trained on. torch, transformers and TRL are imported when a generator is used, so that re-scoring saved
predictions does not pay for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from sophia_trl.prompts import build_prompt

logger = logging.getLogger(__name__)

# R1-style responses reason for hundreds to a few thousand tokens before the answer tag. A short limit cuts the
# response inside <think>, the <answer> tag never comes, and the item is scored as wrong: the most common cause of
# low reproduced numbers. 2048 covers the responses of the released 7B checkpoints; raise it for longer reasoners.
DEFAULT_MAX_NEW_TOKENS = 2048


@dataclass
class EvalPrompt:
    """One prompt to answer: TRL conversational messages with plain-string content, and the item's images in the
    order they are shown."""

    messages: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)


def r1_prompt(
    problem: str,
    problem_type: str,
    images: list[Image.Image | None],
    system_prompt: str | None = None,
    options: list[str] | None = None,
) -> EvalPrompt:
    """The training prompt (`sophia_trl.prompts.build_prompt`) for one item.

    Args:
        problem (`str`):
            The question text.
        problem_type (`str`):
            The training data's problem type, which selects the answer-format instruction.
        images (`list[PIL.Image.Image | None]`):
            The item's images in order; `None` entries (absent images) are dropped.
        system_prompt (`str`, *optional*):
            A system message.
        options (`list[str]`, *optional*):
            Option texts of a multiple-choice question, shown lettered (`"A. ..."`) as in the training data.

    Returns:
        `EvalPrompt`: the messages and the images.
    """
    lettered = [f"{chr(ord('A') + i)}. {text}" for i, text in enumerate(options)] if options else None
    messages = build_prompt(problem, problem_type, lettered, system_prompt)
    return EvalPrompt(messages, [image for image in images if image is not None])


@dataclass
class Generation:
    """A model's output for one prompt; `truncated` is True when generation stopped at the token limit."""

    text: str
    truncated: bool


def render_prompt(processor: Any, prompt: EvalPrompt) -> str:
    """The prompt as text, with one image placeholder per image, ending with the assistant's generation prompt."""
    from trl.data_utils import prepare_multimodal_messages

    messages = prepare_multimodal_messages(prompt.messages, prompt.images)
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _batches(prompts: list[EvalPrompt], batch_size: int) -> list[list[int]]:
    # Similar lengths share a batch so that little compute goes to padding; results are put back in input order.
    order = sorted(range(len(prompts)), key=lambda i: sum(len(m["content"]) for m in prompts[i].messages))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class TransformersGenerator:
    """Batched greedy generation with `AutoModelForImageTextToText` and `AutoProcessor` (left padding).

    Args:
        model_name_or_path (`str`):
            A Hub id or a local checkpoint folder of a vision-language model.
        batch_size (`int`, *optional*, defaults to `8`):
            Prompts per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to `2048`):
            Generation budget per response; see `DEFAULT_MAX_NEW_TOKENS` for why it is long.
        device (`str`, *optional*):
            Where to run the model; `None` picks `"cuda"` when available, else `"cpu"`.
        dtype (`str`, *optional*, defaults to `"auto"`):
            Weight dtype passed to `from_pretrained` (`"auto"`, `"bfloat16"`, `"float16"`, `"float32"`).
        min_pixels (`int`, *optional*):
            Lower bound on an image's pixel count after resizing (Qwen2-VL-style processors); `None` keeps the
            checkpoint's setting.
        max_pixels (`int`, *optional*):
            Upper bound on an image's pixel count after resizing; `None` keeps the checkpoint's setting.
        model_init_kwargs (`dict`, *optional*):
            Extra keyword arguments for `from_pretrained` (e.g. `attn_implementation`).
    """

    backend = "transformers"

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int = 8,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        device: str | None = None,
        dtype: str = "auto",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        model_init_kwargs: dict[str, Any] | None = None,
    ):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}.")
        self.model_name_or_path = str(model_name_or_path)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.device = device or _default_device()
        self.processor = AutoProcessor.from_pretrained(self.model_name_or_path)
        if getattr(self.processor, "image_processor", None) is None:
            # Without torchvision, Qwen-VL processors can load as a bare tokenizer and images would be dropped.
            raise ValueError(
                f"The processor loaded from {self.model_name_or_path} has no image processor, so the model would not "
                "see the benchmark images. Check that torchvision is installed and that the checkpoint has a "
                "processor_config.json."
            )
        _set_pixel_bounds(self.processor, min_pixels, max_pixels)
        self.tokenizer = self.processor.tokenizer
        # Generation appends after the last token: pad on the left so every prompt ends at the same column.
        self.tokenizer.padding_side = "left"
        kwargs = {"dtype": dtype, **(model_init_kwargs or {})}
        self.model = AutoModelForImageTextToText.from_pretrained(self.model_name_or_path, **kwargs)
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._stop_ids = {i for i in [*eos, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id] if i is not None}

    def settings(self) -> dict[str, Any]:
        """What the output JSON records about how the responses were generated."""
        return {
            "backend": self.backend,
            "model": self.model_name_or_path,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "dtype": str(self.model.dtype),
        }

    def generate(self, prompts: list[EvalPrompt], progress: tqdm | None = None) -> list[Generation]:
        """Greedy responses to `prompts`, in input order; `progress` (a tqdm bar) advances by one per prompt, a new
        bar is shown when none is given."""
        import torch

        outputs: list[Generation | None] = [None] * len(prompts)
        with _progress_bar(progress, len(prompts)) as progress, torch.no_grad():
            for idx in _batches(prompts, self.batch_size):
                batch = [prompts[i] for i in idx]
                texts = [render_prompt(self.processor, prompt) for prompt in batch]
                images = [image for prompt in batch for image in prompt.images]
                inputs = self.processor(
                    text=texts, images=images or None, padding=True, padding_side="left", return_tensors="pt"
                ).to(self.device)
                generated = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
                new_tokens = generated[:, inputs["input_ids"].shape[1] :]
                decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i, row_tokens, text in zip(idx, new_tokens.tolist(), decoded):
                    stopped = any(token in self._stop_ids for token in row_tokens)
                    outputs[i] = Generation(text=text, truncated=not stopped)
                progress.update(len(idx))
        return outputs


@contextmanager
def _progress_bar(progress: tqdm | None, total: int) -> Iterator[tqdm]:
    if progress is not None:
        yield progress
        return
    with tqdm(total=total, desc="generating", unit="item") as bar:
        yield bar


def _set_pixel_bounds(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    if min_pixels is None and max_pixels is None:
        return
    image_processor = processor.image_processor
    size = dict(getattr(image_processor, "size", None) or {})
    if "shortest_edge" not in size and "longest_edge" not in size:
        raise ValueError(
            f"{type(image_processor).__name__} does not bound images by pixel count; drop --min_pixels/--max_pixels."
        )
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
    image_processor.size = size


class VLLMGenerator:
    """Greedy generation with an in-process vLLM engine (`pip install -e .[vllm]`, GPU only).

    Args:
        model_name_or_path (`str`):
            A Hub id or a local checkpoint folder.
        max_new_tokens (`int`, *optional*, defaults to `2048`):
            Generation budget per response.
        max_images_per_prompt (`int`, *optional*, defaults to `7`):
            vLLM reserves memory per image; 7 is MMMU's maximum.
        llm_kwargs (`dict`, *optional*):
            Extra keyword arguments for `vllm.LLM` (e.g. `tensor_parallel_size`, `gpu_memory_utilization`).
    """

    backend = "vllm"

    def __init__(
        self,
        model_name_or_path: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_images_per_prompt: int = 7,
        llm_kwargs: dict[str, Any] | None = None,
    ):
        vllm = import_vllm()
        from transformers import AutoProcessor

        self.model_name_or_path = str(model_name_or_path)
        self.max_new_tokens = max_new_tokens
        self.processor = AutoProcessor.from_pretrained(self.model_name_or_path)
        self.sampling_params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.llm = vllm.LLM(
            model=self.model_name_or_path,
            limit_mm_per_prompt={"image": max_images_per_prompt},
            **(llm_kwargs or {}),
        )

    def settings(self) -> dict[str, Any]:
        """What the output JSON records about how the responses were generated."""
        return {
            "backend": self.backend,
            "model": self.model_name_or_path,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
        }

    def generate(self, prompts: list[EvalPrompt], progress: tqdm | None = None) -> list[Generation]:
        """Greedy responses to `prompts`, in input order; vLLM shows its own progress bar when `progress` is None."""
        requests = build_vllm_requests(self.processor, prompts)
        results = self.llm.generate(requests, self.sampling_params, use_tqdm=progress is None)
        if progress is not None:
            progress.update(len(prompts))
        return [Generation(text=r.outputs[0].text, truncated=r.outputs[0].finish_reason == "length") for r in results]


def import_vllm() -> Any:
    """Imports vLLM, or raises an `ImportError` that says how to install it and what to use instead."""
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            "The vLLM backend needs vLLM, which is not installed. Install the project's vllm extra on a GPU machine "
            "(`pip install -e .[vllm]`, see requirements-vllm.txt for a stack that installs together), or use "
            "`--backend transformers`."
        ) from error
    return vllm


def build_vllm_requests(processor: Any, prompts: list[EvalPrompt]) -> list[dict[str, Any]]:
    """vLLM's offline inputs: the rendered prompt text, and the images under `multi_modal_data` when there are any."""
    requests = []
    for prompt in prompts:
        request: dict[str, Any] = {"prompt": render_prompt(processor, prompt)}
        if prompt.images:
            request["multi_modal_data"] = {"image": list(prompt.images)}
        requests.append(request)
    return requests
