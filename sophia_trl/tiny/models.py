"""Tiny Qwen2.5-VL checkpoints built offline, and their SFT warm start, for tests, the CPU demo and benchmarks.

Nothing here downloads: the tokenizer is a byte-level BPE trained in a second on a small generated corpus, with the
Qwen2.5-VL special tokens and a Qwen-style chat template, and the model is a real
`Qwen2_5_VLForConditionalGeneration` with 2 text layers (hidden 256) and a 2-block vision tower (~2.5 M parameters).
The result is saved with `save_pretrained`, so it loads with `AutoModelForImageTextToText` / `AutoProcessor` like any
Hub checkpoint.

```bash
python -m sophia_trl.tiny --output_dir outputs/tiny-qwen2.5-vl
```
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

logger = logging.getLogger(__name__)

# The Qwen2.5-VL special tokens, in the order of the real vocabulary's added tokens.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template (system prompt default, image and video blocks), so prompts render as on real checkpoints.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Small images keep the vision tower cheap: a 56x56 image becomes 2x2 merged patches, i.e. 4 image tokens.
MIN_PIXELS = 28 * 28
MAX_PIXELS = 56 * 56

_WORDS = (
    "the a an of to in is are what how many which shape shapes colour color red green blue yellow purple orange "
    "circle circles square squares triangle triangles image picture count counting total sum difference more fewer "
    "than equal answer think step first then so therefore because left right there one two three four five six seven "
    "eight nine ten plus minus times question option options choose reasoning response score correct wrong mistake "
    "error sound flawed logic careful check result number text read word words"
).split()


def _corpus(num_lines: int = 2000, seed: int = 0) -> list[str]:
    """Generated text that covers words, digits, arithmetic and the R1 tags the tiny models must write."""
    rng = random.Random(seed)
    lines = []
    for _ in range(num_lines):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12)))
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        lines.append(
            f"<think>{words}. {a} + {b} = {a + b}, {a} - {b} = {a - b}.</think> "
            f"<answer>{rng.choice(['A', 'B', 'C', 'D', str(a), f'{a / 10:.1f}'])}</answer>"
        )
        lines.append(words.capitalize() + "? (A) " + str(a) + " (B) " + str(b) + "\n")
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024, seed: int = 0) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE with the Qwen special tokens and wraps it as a fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed=seed), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_processor(tokenizer: PreTrainedTokenizerFast | None = None) -> Qwen2_5_VLProcessor:
    """The stock Qwen2.5-VL processor (image + video processors) around the tiny tokenizer, with small pixel bounds."""
    tokenizer = tokenizer or build_tiny_tokenizer()
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int = 256) -> Qwen2_5_VLConfig:
    """A 2-layer text model and a 2-block vision tower; `mrope_section` sums to head_dim / 2 as the model requires."""
    num_heads = 4
    half = hidden_size // num_heads // 2  # the temporal, height and width rope sections must sum to head_dim / 2
    mrope_section = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]  # [8, 12, 12] for hidden 256
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": 2,
            "num_attention_heads": num_heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            "tie_word_embeddings": True,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": hidden_size,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_vlm(output_dir: str | Path, seed: int = 0, hidden_size: int = 256) -> Path:
    """Builds and saves a tiny Qwen2.5-VL checkpoint (model, processor, tokenizer, generation config).

    Args:
        output_dir (`str` or `Path`):
            Where to save; the folder then loads with `AutoModelForImageTextToText.from_pretrained(output_dir)` and
            `AutoProcessor.from_pretrained(output_dir)`.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the tokenizer corpus and the weight initialisation: the same seed gives the same checkpoint.
        hidden_size (`int`, *optional*, defaults to `256`):
            Width of the text model.

    Returns:
        `Path`: `output_dir`.
    """
    output_dir = Path(output_dir)
    tokenizer = build_tiny_tokenizer(seed=seed)
    processor = build_tiny_processor(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(build_tiny_config(tokenizer, hidden_size=hidden_size))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("Saved tiny Qwen2.5-VL (%.2f M parameters) to %s", n_params / 1e6, output_dir)
    return output_dir


def warm_start_tiny_vlm(
    base_dir: str | Path,
    output_dir: str | Path,
    dataset,
    seed: int = 0,
    max_steps: int = -1,
    num_train_epochs: float = 3.0,
    disable_tqdm: bool | None = None,
) -> Path:
    """SFT of a tiny checkpoint on prompt-completion rows with TRL's `SFTTrainer`, on the CPU: batch 8, learning rate
    2e-3 with a cosine schedule and 10 warm-up steps (far larger than a real model's: the tiny one starts from random
    weights). The policy warm start of `make demo` and of the learning lab's scenes.

    Args:
        base_dir (`str` or `Path`):
            The checkpoint to train (e.g. from [`build_tiny_vlm`]).
        output_dir (`str` or `Path`):
            Where the trained model and processor are saved.
        dataset ([`~datasets.Dataset`]):
            SFT rows (`prompt`, `completion`, and `image` for a vision-language model).
        seed (`int`, *optional*, defaults to `0`):
            Training seed.
        max_steps (`int`, *optional*, defaults to `-1`), num_train_epochs (`float`, *optional*, defaults to `3.0`):
            Length of training, as `SFTConfig` reads them (`max_steps` wins when > 0).
        disable_tqdm (`bool` or `None`, *optional*, defaults to `None`):
            As `SFTConfig`.

    Returns:
        `Path`: `output_dir`.
    """
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=max_steps,
        num_train_epochs=num_train_epochs,
        per_device_train_batch_size=8,
        learning_rate=2e-3,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=25,
        save_strategy="no",
        max_length=None,
        seed=seed,
        disable_tqdm=disable_tqdm,
    )
    trainer = SFTTrainer(model=str(base_dir), args=args, train_dataset=dataset)
    trainer.train()
    trainer.save_model(str(output_dir))
    return Path(output_dir)
