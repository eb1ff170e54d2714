"""recipes/grpo.py: runs from the tiny YAML on the CPU and writes a checkpoint that loads again as a VLM."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

ROOT = Path(__file__).resolve().parents[2]


def run_recipe(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "recipes/grpo.py", "--config", "recipes/tiny/trust_grpo.yaml", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_recipe_trains_two_steps_and_saves_a_loadable_vlm(tiny_vlm_dir, tiny_judge_dir, synthetic_data_dir, tmp_path):
    out = tmp_path / "run"
    result = run_recipe(
        f"--model_name_or_path={tiny_vlm_dir}",
        f"--judge_model_name_or_path={tiny_judge_dir}",
        f"--dataset_name={synthetic_data_dir}",
        f"--output_dir={out}",
        "--max_steps=2",
        "--per_device_train_batch_size=8",
        "--max_completion_length=16",
        "--logging_steps=1",
        "--thinking_reward_preset=official",  # a command-line override of a YAML key
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "preset=official" in result.stdout + result.stderr

    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert processor.image_processor is not None, "the saved processor lost its image processor"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    batch = processor(text=[text], images=[Image.new("RGB", (56, 56), "blue")], return_tensors="pt")
    assert batch["pixel_values"].shape[0] > 0
    assert (batch["input_ids"] == processor.image_token_id).sum() == batch["image_grid_thw"].prod() // 4


def test_recipe_rejects_unknown_yaml_key(tmp_path):
    result = run_recipe(f"--output_dir={tmp_path}", "--thinking_reward_alfa=0.2")
    assert result.returncode != 0
    assert "thinking_reward_alfa" in result.stderr


def test_processor_without_image_processor_is_an_error(tiny_vlm_dir, monkeypatch):
    from trl import ModelConfig

    from sophia_trl import model_utils

    tokenizer_only = AutoProcessor.from_pretrained(tiny_vlm_dir).tokenizer
    monkeypatch.setattr(model_utils.AutoProcessor, "from_pretrained", lambda *a, **k: tokenizer_only)
    with pytest.raises(RuntimeError, match="torchvision"):
        model_utils.load_processor(ModelConfig(model_name_or_path=str(tiny_vlm_dir)))


def test_load_processor_passes_pixel_bounds(tiny_vlm_dir):
    from trl import ModelConfig

    from sophia_trl.model_utils import load_processor

    processor = load_processor(
        ModelConfig(model_name_or_path=str(tiny_vlm_dir)), min_pixels=28 * 28, max_pixels=28 * 28
    )
    batch = processor.image_processor(images=[Image.new("RGB", (112, 112), "red")], return_tensors="pt")
    assert batch["image_grid_thw"][0].tolist() == [1, 2, 2]  # 112x112 resized down to 28x28: 2x2 patches of 14 px


def test_stock_processor_is_multimodal(tiny_vlm_dir):
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert processor.image_processor is not None and processor.video_processor is not None
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    batch = processor(text=[text], images=[Image.new("RGB", (56, 56), "red")], return_tensors="pt")
    assert tuple(batch["image_grid_thw"][0].tolist()) == (1, 4, 4)  # 56 px / 14 px patches
    assert batch["pixel_values"].shape == (16, 3 * 2 * 14 * 14)
