"""`--use_peft` without `lora_target_modules` (the README's LoRA command) trains an adapter on the language model's
attention and MLP projections with the vision tower frozen and saves it as an adapter; in-process judges load in 4/8-bit."""

import json
import re
import subprocess
import sys

import pytest
from recipe_helpers import ROOT
from safetensors import safe_open
from trl import ModelConfig

from sophia_trl.model_utils import default_lora_target_modules, get_peft_config

LANGUAGE_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def test_default_targets_are_the_language_models_projections(tiny_vlm_dir):
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    config = get_peft_config(ModelConfig(model_name_or_path=str(tiny_vlm_dir), use_peft=True, lora_r=4))
    assert config.target_modules == default_lora_target_modules("qwen2_5_vl")
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir), config)
    adapted = {name.rsplit(".", 1)[0] for name, _ in model.named_modules() if name.endswith(".lora_A")}
    # 2 text layers x 7 projections; the vision tower's own gate/up/down_proj layers are left alone.
    assert len(adapted) == 2 * 7
    assert all(".language_model." in name and name.rsplit(".", 1)[1] in LANGUAGE_PROJECTIONS for name in adapted)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name and ".visual." not in name for name in trainable)


def test_explicit_targets_win_and_unknown_families_say_what_to_set(tiny_vlm_dir):
    config = get_peft_config(
        ModelConfig(model_name_or_path=str(tiny_vlm_dir), use_peft=True, lora_target_modules=["all-linear"])
    )
    assert config.target_modules == "all-linear"  # ModelConfig turns a one-element list into the string
    assert get_peft_config(ModelConfig(model_name_or_path=str(tiny_vlm_dir))) is None
    assert default_lora_target_modules("qwen2") == ["q_proj", "v_proj"]  # PEFT's own default for text models
    with pytest.raises(ValueError, match="lora_target_modules"):
        default_lora_target_modules("no_such_model")


def test_readme_lora_command_trains_and_saves_an_adapter(tiny_vlm_dir, tiny_judge_dir, synthetic_data_dir, tmp_path):
    out = tmp_path / "lora"
    # The README's command, with the folders `make demo` would write replaced by the test's tiny ones.
    cmd = [
        sys.executable,
        "recipes/grpo.py",
        "--config",
        "recipes/tiny/trust_grpo.yaml",
        "--use_peft",
        "--lora_r",
        "16",
    ]
    cmd += [
        f"--model_name_or_path={tiny_vlm_dir}",
        f"--judge_model_name_or_path={tiny_judge_dir}",
        f"--dataset_name={synthetic_data_dir}",
        f"--output_dir={out}",
        "--max_steps=2",
        "--max_completion_length=8",
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 16 and adapter["target_modules"] == default_lora_target_modules("qwen2_5_vl")
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    with safe_open(out / "adapter_model.safetensors", "pt") as weights:
        names = list(weights.keys())
    assert len(names) == 2 * 2 * 7  # lora_A and lora_B of 2 layers x 7 projections
    assert all(".language_model." in name for name in names)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    card = (out / "README.md").read_text()
    assert re.search(r"LoRA adapter", card) and "peft" in card


@pytest.mark.parametrize(
    ("option", "layer"), [("judge_load_in_4bit", "Linear4bit"), ("judge_load_in_8bit", "Linear8bitLt")]
)
def test_recipe_loads_the_in_process_judge_quantised(tiny_judge_dir, option, layer):
    from sophia_trl.configs import TrustGRPOScriptArguments
    from sophia_trl.judges import load_thinking_judge

    args = TrustGRPOScriptArguments(
        dataset_name="unused", judge_model_name_or_path=str(tiny_judge_dir), judge_batch_size=4, **{option: True}
    )
    judge = load_thinking_judge(args)
    q_proj = judge.model.model.language_model.layers[0].self_attn.q_proj
    assert type(q_proj).__name__ == layer
    scores = judge.score(["How many circles?"] * 2, ["<think>two</think><answer>2</answer>", "3"], [None, None])
    assert len(scores) == 2 and all(s is None or 0.0 <= s <= 1.0 for s in scores)


def test_quantised_judge_options_are_checked():
    from sophia_trl.configs import TrustGRPOScriptArguments

    with pytest.raises(ValueError, match="at most one"):
        TrustGRPOScriptArguments(
            dataset_name="d", judge_model_name_or_path="j", judge_load_in_4bit=True, judge_load_in_8bit=True
        )
    with pytest.raises(ValueError, match="quantise a served judge in its server"):
        TrustGRPOScriptArguments(
            dataset_name="d",
            judge_backend="openai",
            judge_model_name_or_path="judge",
            judge_base_url="http://h/v1",
            judge_load_in_4bit=True,
        )
