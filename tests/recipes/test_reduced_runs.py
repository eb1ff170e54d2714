"""The 3B LoRA and 7B QLoRA recipes, reduced to tiny models on the CPU (only GPU-only settings changed), train 2 steps
through recipes/grpo.py; the saved LoRA policy answers through scripts/infer.py."""

import json
import math
import sys

import pytest
import torch
from recipe_helpers import RECIPES, ROOT, import_recipe, load_yaml, parse_recipe, reduce_to_cpu


def run_reduced(recipe_path, tiny_vlm_dir, tiny_judge_dir, data_dir, output_dir, tmp_path, monkeypatch):
    """Train the CPU reduction of a recipe with recipes/grpo.py's main; returns the policy model it built."""
    grpo = import_recipe("grpo")
    reduced = reduce_to_cpu(load_yaml(recipe_path), tiny_vlm_dir, tiny_judge_dir, data_dir, output_dir)
    built = {}

    def get_model(model_args, training_args):
        built["model"] = original(model_args, training_args)
        return built["model"]

    original = grpo.get_model
    monkeypatch.setattr(grpo, "get_model", get_model)
    grpo.main(*parse_recipe("grpo", reduced, tmp_path))
    return built["model"]


def train_logs(output_dir):
    with open(output_dir / "trainer_state.json") as f:
        return [entry for entry in json.load(f)["log_history"] if "trust/alpha" in entry]


def check_trust_logs(output_dir, num_generations):
    logs = train_logs(output_dir)
    assert [entry["step"] for entry in logs] == [1, 2]
    # T unset = the run's total steps (2); the reward of step k is computed at global_step k - 1.
    assert logs[0]["trust/alpha"] == pytest.approx(0.3)
    assert logs[1]["trust/alpha"] == pytest.approx(0.3 * math.exp(-1 / 2))
    for entry in logs:
        # Paper preset: the judge is asked about every completion of the step's one prompt group.
        assert entry["trust/judge_calls"] == num_generations and entry["trust/judge_skipped"] == 0
        assert math.isfinite(entry["loss"])


def check_adapter(output_dir):
    with open(output_dir / "adapter_config.json") as f:
        adapter = json.load(f)
    assert (
        adapter["target_modules"]
        == load_yaml(RECIPES / "Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml")["lora_target_modules"]
    )
    assert (output_dir / "adapter_model.safetensors").is_file()
    assert not (output_dir / "model.safetensors").exists()  # only the adapter is saved
    card = (output_dir / "README.md").read_text()
    assert "Trust-GRPO" in card and "2505.17018" in card


@pytest.fixture(scope="module")
def lora_run(tiny_vlm_dir, tiny_judge_dir, synthetic_data_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("lora-run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        model = run_reduced(
            RECIPES / "Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml",
            tiny_vlm_dir,
            tiny_judge_dir,
            synthetic_data_dir,
            output_dir,
            tmp_path_factory.mktemp("lora-config"),
            monkeypatch,
        )
    return model, output_dir


def test_3b_lora_recipe_trains_two_steps(lora_run):
    model, output_dir = lora_run
    check_trust_logs(output_dir, num_generations=8)
    check_adapter(output_dir)
    assert model.dtype == torch.float32


def test_7b_qlora_recipe_trains_two_steps_in_4bit(
    tiny_vlm_dir, tiny_judge_dir, synthetic_data_dir, tmp_path, monkeypatch
):
    import bitsandbytes as bnb

    output_dir = tmp_path / "qlora-run"
    model = run_reduced(
        RECIPES / "Qwen2.5-VL-7B-Instruct/grpo/config_qlora.yaml",
        tiny_vlm_dir,
        tiny_judge_dir,
        synthetic_data_dir,
        output_dir,
        tmp_path,
        monkeypatch,
    )
    check_trust_logs(output_dir, num_generations=8)
    check_adapter(output_dir)
    four_bit = {name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)}
    # LoRA wraps the 4-bit layers of the language model; the vision tower is 4-bit too, and frozen.
    assert "model.language_model.layers.0.self_attn.q_proj.base_layer" in four_bit
    assert "model.visual.blocks.0.attn.qkv" in four_bit
    assert model.config.quantization_config.bnb_4bit_quant_type == "nf4"
    assert model.config.quantization_config.bnb_4bit_use_double_quant


def test_infer_script_answers_with_the_trained_lora_policy(lora_run, tmp_path, capsys):
    from PIL import Image

    sys.path.insert(0, str(ROOT / "scripts"))
    import infer

    _, output_dir = lora_run
    image = tmp_path / "scene.png"
    Image.new("RGB", (56, 56), "blue").save(image)
    result = infer.main(
        ["--model", str(output_dir), "--image", str(image), "--question", "How many circles?", "--max_new_tokens", "8"]
    )
    printed = capsys.readouterr().out
    assert printed.startswith("Thinking:\n") and f"Answer: {result.answer}" in printed
    policy = infer.load_policy(str(output_dir), max_new_tokens=8)
    assert any("lora_A" in name for name, _ in policy.model.named_parameters()), "the adapter was not loaded"
    # A tiny random policy does not stop by itself within 8 tokens: the script must say the answer was cut.
    assert result.truncated and "--max_new_tokens 8" in printed
