"""Loading a vision-language model, its processor and its LoRA configuration from TRL's `ModelConfig`, and checking the
local paths a recipe reads, shared by the recipes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoConfig, AutoProcessor
from trl import ModelConfig, get_quantization_config
from trl import get_peft_config as trl_get_peft_config

logger = logging.getLogger(__name__)

# The language model's attention and MLP projections. The names are matched on their full path because the vision
# tower's blocks of Qwen2.5-VL also have gate/up/down_proj layers; the vision tower stays frozen (its attention
# layers are `qkv`/`proj`, its merger `mlp.0`/`mlp.2`).
_LANGUAGE_MODEL_PROJECTIONS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
DEFAULT_LORA_TARGET_MODULES = {"qwen2_vl": _LANGUAGE_MODEL_PROJECTIONS, "qwen2_5_vl": _LANGUAGE_MODEL_PROJECTIONS}

# Local paths the recipes and their READMEs name, and what writes each: a missing one is a step not yet run.
PATH_PRODUCERS = {
    "outputs/demo/": "`make demo` (scripts/demo.py) writes the tiny models and data under outputs/demo/; run it once "
    "first",
    "data/sophiavl-130k": "python data_prep/sophiavl_130k.py --input_dir data/SophiaVL-R1-130k --output_dir "
    "data/sophiavl-130k (after `huggingface-cli download bunny127/SophiaVL-R1-130k --repo-type dataset "
    "--local-dir data/SophiaVL-R1-130k`)",
    "data/thinking-156k": "python data_prep/thinking_156k.py --input_dir data/Thinking-156k --output_dir "
    "data/thinking-156k (after `huggingface-cli download bunny127/SophiaVL-R1-Thinking-156k --repo-type dataset "
    "--local-dir data/Thinking-156k`)",
    "outputs/Qwen2.5-VL-3B-Instruct-Thinking-Reward": "recipes/thinking_reward.py --config "
    "recipes/Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml (or use the released judge "
    "bunny127/SophiaVL-R1-Thinking-Reward-Model-3B)",
}


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


def default_lora_target_modules(model_type: str) -> str | list[str]:
    """
    The LoRA target modules used when `use_peft` is set without `lora_target_modules`.

    Qwen2-VL and Qwen2.5-VL (and the tiny models of `sophia_trl.tiny`, whose module names mirror them): the language
    model's attention and MLP projections, with the vision tower frozen. Other model types: PEFT's default for the
    type. To adapt the vision tower too, set `lora_target_modules` yourself, e.g. `all-linear`.

    Args:
        model_type (`str`):
            The `model_type` of the model's config, e.g. `"qwen2_5_vl"`.

    Returns:
        `str` or `list[str]`: A regular expression on the full module names, or a list of module names.
    """
    if model_type in DEFAULT_LORA_TARGET_MODULES:
        return DEFAULT_LORA_TARGET_MODULES[model_type]
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    if model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
    raise ValueError(
        f"No default LoRA target modules for model type {model_type!r}: set lora_target_modules (in the YAML or "
        "--lora_target_modules on the command line), e.g. all-linear, or a regular expression on the module names."
    )


def get_peft_config(model_args: ModelConfig, model_type: str | None = None):
    """
    TRL's `get_peft_config`, with default target modules for the model family when `lora_target_modules` is unset.

    Args:
        model_args ([`trl.ModelConfig`]):
            `use_peft`, the `lora_*` settings and `model_name_or_path` are read.
        model_type (`str` or `None`, *optional*, defaults to `None`):
            The model's `model_type`; read from `model_name_or_path`'s config when `None`.

    Returns:
        [`peft.LoraConfig`] or `None`: `None` unless `use_peft` is set.
    """
    peft_config = trl_get_peft_config(model_args)
    if peft_config is None or peft_config.target_modules is not None or peft_config.target_parameters:
        return peft_config
    if model_type is None:
        model_type = AutoConfig.from_pretrained(
            model_args.model_name_or_path, revision=model_args.model_revision
        ).model_type
    peft_config.target_modules = default_lora_target_modules(model_type)
    logger.info("LoRA target modules for %s (lora_target_modules unset): %s", model_type, peft_config.target_modules)
    return peft_config


def check_local_paths(settings: Mapping[str, str | os.PathLike | None]) -> None:
    """
    Raises `FileNotFoundError` for a setting that names a local path that does not exist, saying what writes it.

    A value is taken for a local path when it exists, starts with `./`, `../`, `/` or `~`, has two or more `/`, or
    starts with one of the paths of `PATH_PRODUCERS` (`outputs/demo/`, `data/sophiavl-130k`, ...). Hub ids
    (`owner/name`) are left to the loaders.

    Args:
        settings (`Mapping[str, str | os.PathLike | None]`):
            Setting name to value, e.g. `{"model_name_or_path": "outputs/demo/policy"}`; `None` values are skipped.

    Example:
        >>> check_local_paths({"dataset_name": "outputs/demo/data/synthetic"})  # before `make demo`
        FileNotFoundError: dataset_name=outputs/demo/data/synthetic does not exist. `make demo` (scripts/demo.py) ...
    """
    for key, value in settings.items():
        if value is None:
            continue
        path = str(value)
        producer = next((cmd for prefix, cmd in PATH_PRODUCERS.items() if path.startswith(prefix)), None)
        looks_local = path.startswith(("./", "../", "/", "~")) or path.count("/") >= 2 or producer is not None
        if not looks_local or Path(path).expanduser().exists():
            continue
        hint = f"It is written by: {producer}." if producer else "Point it at an existing file or folder, or a Hub id."
        raise FileNotFoundError(
            f"{key}={path} does not exist (relative to {os.getcwd()}). {hint} Or set {key} to another path "
            f"(--{key} PATH on the command line)."
        )


def judge_model_init_kwargs(load_in_4bit: bool = False, load_in_8bit: bool = False) -> dict[str, Any]:
    """
    `from_pretrained` keyword arguments that load an in-process judge in 4-bit (NF4) or 8-bit with bitsandbytes.

    The judge is never trained, so it can be quantised like a QLoRA policy's base: a 3B judge takes ~2.5 GB in 4-bit
    instead of ~7.5 GB in bf16, which is what lets a QLoRA policy and its judge share one 16 GB GPU.

    Args:
        load_in_4bit (`bool`, *optional*, defaults to `False`):
            NF4 weights with double quantisation; compute in bf16 where the GPU supports it, else fp16 (T4), fp32 on
            the CPU.
        load_in_8bit (`bool`, *optional*, defaults to `False`):
            LLM.int8() weights.

    Returns:
        `dict[str, Any]`: `quantization_config` and, on a GPU, a `device_map` that loads the judge on this process's
        GPU; empty when neither option is set.
    """
    if load_in_4bit and load_in_8bit:
        raise ValueError("Set at most one of judge_load_in_4bit and judge_load_in_8bit.")
    if not (load_in_4bit or load_in_8bit):
        return {}
    from transformers import BitsAndBytesConfig

    if torch.cuda.is_available():
        compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        compute_dtype = torch.float32
    if load_in_4bit:
        quantization_config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    else:
        quantization_config = BitsAndBytesConfig(load_in_8bit=True)
    kwargs: dict[str, Any] = {"quantization_config": quantization_config}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": PartialState().local_process_index}  # quantised on load, on this process's GPU
    return kwargs


@contextmanager
def loading_whole() -> Iterator[None]:
    """
    Models loaded inside this block are whole on every process, also under an active DeepSpeed ZeRO-3 configuration.

    With ZeRO-3 active (`accelerate launch --config_file accelerate_configs/zero3.yaml`: the training arguments register
    transformers' DeepSpeed configuration when they are parsed), `from_pretrained` builds a model inside
    `deepspeed.zero.Init`, which partitions each weight over the processes; every forward pass then gathers the weights
    from all processes, so all of them must run the same passes at the same time. That suits the policy and TRL's
    reference model; an in-process judge scores each process's own completions, in batches whose number differs
    between processes, so it is loaded whole instead: transformers' DeepSpeed configuration is set aside during the
    load and restored after it. (A quantised model is never partitioned: transformers skips `zero.Init` for it.)

    Written against transformers 5.23, whose `is_deepspeed_zero3_enabled` reads the module-level weak reference
    `transformers.integrations.deepspeed._hf_deepspeed_config_weak_ref`; `tests/judges/test_zero3_loading.py` fails if
    that moves.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    reference = hf_deepspeed._hf_deepspeed_config_weak_ref
    config = reference() if reference is not None else None
    if config is None or not hf_deepspeed.is_deepspeed_zero3_enabled():
        yield
        return
    logger.info("DeepSpeed ZeRO-3 is active: loading the judge whole on this process, not partitioned.")
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)
