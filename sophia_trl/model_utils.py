"""Loading a vision-language model and its processor from TRL's `ModelConfig`, shared by the recipes."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoProcessor
from trl import ModelConfig, get_quantization_config


def load_processor(
    model_args: ModelConfig, min_pixels: int | None = None, max_pixels: int | None = None, **kwargs: Any
):
    """The model's processor; raises if it has no image processor, so a VLM never trains silently as text-only.

    Args:
        model_args ([`trl.ModelConfig`]):
            `model_name_or_path` and `model_revision` are read.
        min_pixels (`int` or `None`, *optional*, defaults to `None`):
            Qwen2-VL/Qwen2.5-VL lower bound on the pixels of an image.
        max_pixels (`int` or `None`, *optional*, defaults to `None`):
            Qwen2-VL/Qwen2.5-VL upper bound on the pixels of an image.
        **kwargs:
            Passed to `AutoProcessor.from_pretrained` (e.g. `padding_side="left"`).
    """
    pixel_bounds = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, **pixel_bounds, **kwargs
    )
    if getattr(processor, "image_processor", None) is None:
        raise RuntimeError(
            f"AutoProcessor.from_pretrained({model_args.model_name_or_path!r}) returned {type(processor).__name__} "
            "without an image processor, so images would be dropped. Qwen2-VL/Qwen2.5-VL processors need torchvision "
            "installed at the version matching torch (see requirements.txt)."
        )
    return processor


def model_init_kwargs(model_args: ModelConfig) -> dict[str, Any]:
    """`from_pretrained` keyword arguments from a `ModelConfig`: revision, dtype, attention and 4/8-bit loading."""
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    quantization_config = get_quantization_config(model_args)
    device_map = None
    if quantization_config is not None and torch.cuda.is_available():
        device_map = {"": PartialState().local_process_index}  # each process loads its quantized copy on its GPU
    return {
        "revision": model_args.model_revision,
        "dtype": dtype,
        "attn_implementation": model_args.attn_implementation,
        "quantization_config": quantization_config,
        "device_map": device_map,
    }
