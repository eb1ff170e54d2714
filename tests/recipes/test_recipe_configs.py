"""Every recipe YAML parses for its script; typos fail; the GPU recipes hold the paper's settings; accelerate configs."""

import dataclasses
import subprocess
import sys

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from recipe_helpers import (
    ACCELERATE_CONFIGS,
    DERIVED_FIELDS,
    GPU_ONLY_KEYS,
    GPU_RECIPE_DIRS,
    RECIPES,
    ROOT,
    base_of,
    load_yaml,
    parse_recipe,
    reduce_to_cpu,
    script_of,
)

sys.path.insert(0, str(ROOT / "scripts"))
from merge_configs import merge_configs  # noqa: E402

# recipes/judge_prompts/ holds judge prompt templates, not configs (tests/judges/test_prompt_template.py loads them).
ALL_YAMLS = sorted(p for p in RECIPES.rglob("*.yaml") if "judge_prompts" not in p.relative_to(RECIPES).parts)
PAPER_RECIPE = RECIPES / "Qwen2.5-VL-7B-Instruct" / "grpo" / "config_trust_grpo.yaml"
GRPO_GPU_RECIPES = sorted(p for d in GPU_RECIPE_DIRS for p in (d / "grpo").glob("*.yaml"))


def full_config(path):
    base = base_of(path)
    return merge_configs(load_yaml(base), load_yaml(path)) if base else load_yaml(path)


def header(path):
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])


def test_the_recipe_tree_is_complete():
    names = {str(p.relative_to(RECIPES)) for p in ALL_YAMLS}
    assert {
        "Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml",
        "Qwen2.5-VL-7B-Instruct/grpo/config_qlora.yaml",
        "Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml",
        "Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml",
        "Qwen2.5-VL-7B-Instruct/grpo/ablations/no_trust.yaml",
        "Qwen2.5-VL-7B-Instruct/grpo/ablations/no_trust_no_annealing.yaml",
        "Qwen2.5-VL-7B-Instruct/grpo/ablations/grpo.yaml",
        "Qwen2.5-VL-7B-Instruct/grpo/ablations/official_preset.yaml",
    } <= names
    for model_dir in GPU_RECIPE_DIRS:
        assert (model_dir / "README.md").is_file(), f"{model_dir.name} has no README.md"


@pytest.mark.parametrize("path", ALL_YAMLS, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_parses_for_its_script(path, gpu_parsing, tmp_path):
    config = full_config(path)
    script_args, training_args, model_args = parse_recipe(script_of(path), config, tmp_path)
    # Each YAML value reached the dataclass that owns it.
    parsed = {**vars(model_args), **vars(script_args), **vars(training_args)}
    for key, value in config.items():
        if key in ("gradient_checkpointing", "lora_target_modules", "report_to"):
            continue  # normalised by __post_init__ (alias, single pattern, list)
        assert parsed[key] == value, f"{path.name}: {key}={parsed[key]!r} after parsing, {value!r} in the YAML"


@pytest.mark.parametrize("path", ALL_YAMLS, ids=lambda p: str(p.relative_to(RECIPES)))
def test_every_recipe_starts_with_its_launch_command(path):
    text = header(path)
    assert str(path.relative_to(ROOT)) in text, f"{path.name}: the header comment does not give its launch command"
    if path.parent.name == "ablations":
        assert "scripts/launch_trust_grpo.sh" in text and "scripts/merge_configs.py" in text
    else:
        assert f"recipes/{script_of(path)}.py" in text
    if "Qwen" in str(path):
        assert "GPU" in text, f"{path.name}: the header does not say which hardware it was sized for"


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        (PAPER_RECIPE, ("thinking_reward_alpha", "thinking_reward_alfa")),
        (PAPER_RECIPE, ("num_generations", "num_generation")),
        (RECIPES / "Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml", ("max_length", "max_lenght")),
        (RECIPES / "Qwen2.5-VL-7B-Instruct/grpo/ablations/no_trust.yaml", ("trust_weighting", "trust_weigthing")),
    ],
    ids=["trust-key", "grpo-key", "judge-stage-key", "ablation-key"],
)
def test_a_typo_in_a_key_fails(path, typo, gpu_parsing, tmp_path):
    good, bad = typo
    override = {bad if k == good else k: v for k, v in load_yaml(path).items()}
    assert bad in override
    base = base_of(path)
    config = merge_configs(load_yaml(base), override) if base else override
    with pytest.raises(ValueError, match=bad):
        parse_recipe(script_of(path), config, tmp_path)


def test_the_paper_recipe_has_the_paper_settings(gpu_parsing, tmp_path):
    script_args, args, model_args = parse_recipe("grpo", load_yaml(PAPER_RECIPE), tmp_path)
    assert model_args.model_name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    # SophiaVL-R1 sec. 4.1: G = 8, beta = 0.04, lr 5e-7 (not the release's 6e-7), alpha 0.3, temperature 1, 1,500 steps.
    assert (args.num_generations, args.beta, args.learning_rate) == (8, 0.04, 5e-7)
    assert (args.thinking_reward_alpha, args.temperature, args.max_steps) == (0.3, 1.0, 1500)
    assert args.thinking_reward_T is None  # T = the run's total steps, as the paper
    assert (args.thinking_reward_annealing, args.thinking_reward_preset, args.trust_weighting) == (
        "exp",
        "paper",
        True,
    )
    # The release's lengths and pixel bounds: max_response_length 1024, max_prompt_length 8192, 512^2..2048^2 pixels.
    assert args.max_completion_length == 1024 and args.vllm_max_model_length == 8192 + 1024
    assert (script_args.min_pixels, script_args.max_pixels) == (512 * 512, 2048 * 2048)
    # 16 prompts x 8 generations per step on 8 GPUs, one update per batch, vLLM generation, the judge behind a server.
    assert args.per_device_train_batch_size * 8 * args.gradient_accumulation_steps == 16 * 8
    assert args.use_vllm and args.vllm_mode == "colocate"
    assert script_args.judge_backend == "openai" and script_args.judge_base_url.endswith("/v1")
    accelerate = load_config_from_file(str(ACCELERATE_CONFIGS / "zero3.yaml"))
    assert accelerate.deepspeed_config["zero_stage"] == 3 and accelerate.num_processes == 8


def test_lora_recipes_adapt_only_the_language_model(gpu_parsing, tmp_path, tiny_vlm_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText
    from trl import get_peft_config

    names = [n for n, _ in AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir).named_modules()]
    assert any(n.startswith("model.visual.") and n.endswith("mlp.gate_proj") for n in names)  # why a regex is needed
    for recipe in ("Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml", "Qwen2.5-VL-7B-Instruct/grpo/config_qlora.yaml"):
        _, _, model_args = parse_recipe("grpo", load_yaml(RECIPES / recipe), tmp_path)
        peft_config = get_peft_config(model_args)
        assert isinstance(peft_config, LoraConfig)
        model = get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir), peft_config)
        adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_modules() if n.endswith(".lora_A")}
        # The tiny policy has 2 decoder layers x 7 projections (q, k, v, o, gate, up, down) and 2 vision blocks.
        assert len(adapted) == 2 * 7, recipe
        assert not any(".visual." in n for n in adapted), recipe
    _, _, qlora = parse_recipe("grpo", load_yaml(RECIPES / "Qwen2.5-VL-7B-Instruct/grpo/config_qlora.yaml"), tmp_path)
    assert qlora.load_in_4bit and qlora.bnb_4bit_quant_type == "nf4" and qlora.use_peft


ABLATIONS = {
    "no_trust": {"trust_weighting": False},
    "no_trust_no_annealing": {"trust_weighting": False, "thinking_reward_annealing": "none"},
    "grpo": {"judge_backend": "none"},
    "official_preset": {"thinking_reward_preset": "official"},
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_changes_only_its_settings(name, gpu_parsing, tmp_path):
    path = RECIPES / "Qwen2.5-VL-7B-Instruct/grpo/ablations" / f"{name}.yaml"
    base = parse_recipe("grpo", load_yaml(PAPER_RECIPE), tmp_path)
    ablation = parse_recipe("grpo", full_config(path), tmp_path)
    changed = {}
    for before, after in zip(base, ablation):
        for field in dataclasses.fields(before):
            if getattr(before, field.name) != getattr(after, field.name):
                changed[field.name] = getattr(after, field.name)
    assert changed.pop("output_dir") != str(PAPER_RECIPE)
    changed.pop("logging_dir", None)
    assert changed == ABLATIONS[name]


@pytest.mark.parametrize("path", GRPO_GPU_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_the_cpu_reduction_changes_only_gpu_settings(path, gpu_parsing, tmp_path):
    recipe = load_yaml(path)
    reduced = reduce_to_cpu(recipe, tmp_path / "p", tmp_path / "j", tmp_path / "d", tmp_path / "out")
    gpu = parse_recipe("grpo", recipe, tmp_path)
    cpu = parse_recipe("grpo", reduced, tmp_path)
    changed = set()
    for before, after in zip(gpu, cpu):
        for field in dataclasses.fields(before):
            if getattr(before, field.name) != getattr(after, field.name):
                changed.add(field.name)
    assert changed - GPU_ONLY_KEYS - DERIVED_FIELDS - {"judge_base_url"} == set()
    # What the comparison must keep: the method, the optimisation and the adapters.
    kept = {"num_generations", "beta", "learning_rate", "thinking_reward_alpha", "trust_weighting", "use_peft"}
    assert not kept & changed


@pytest.mark.parametrize(
    ("name", "distributed_type", "extra"),
    [
        ("ddp", "MULTI_GPU", {}),
        ("zero2", "DEEPSPEED", {"zero_stage": 2}),
        ("zero3", "DEEPSPEED", {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True}),
        ("fsdp", "FSDP", {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}),
    ],
)
def test_accelerate_configs_load_with_accelerate(name, distributed_type, extra):
    path = ACCELERATE_CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))  # accelerate's own loader: an unknown key is an error
    assert config.distributed_type.name == distributed_type
    assert (config.mixed_precision, config.num_machines, config.num_processes) == ("bf16", 1, 8)
    nested = config.deepspeed_config if distributed_type == "DEEPSPEED" else config.fsdp_config
    assert {k: nested[k] for k in extra} == extra
    assert "--num_processes" in path.read_text()  # the header says how to override the process count


def test_accelerate_loader_rejects_unknown_keys(tmp_path):
    config = load_yaml(ACCELERATE_CONFIGS / "zero3.yaml") | {"num_procesess": 4}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="num_procesess"):
        load_config_from_file(str(path))


def test_merge_configs_cli_replaces_whole_values(tmp_path):
    base, override = tmp_path / "base.yaml", tmp_path / "override.yaml"
    base.write_text("a: 1\nreport_to: [wandb, trackio]\nb: {x: 1}\n")
    override.write_text("# only b and report_to\nreport_to: [trackio]\nb: {y: 2}\nc: new\n")
    out = tmp_path / "merged" / "m.yaml"
    subprocess.run(
        [sys.executable, "scripts/merge_configs.py", str(base), str(override), "-o", str(out)], cwd=ROOT, check=True
    )
    assert load_yaml(out) == {"a": 1, "report_to": ["trackio"], "b": {"y": 2}, "c": "new"}
    override.write_text("- not a mapping\n")
    result = subprocess.run(
        [sys.executable, "scripts/merge_configs.py", str(base), str(override)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "must hold a YAML mapping" in result.stderr
