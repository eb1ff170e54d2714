"""What the recipe tests share: where the YAMLs are, which script parses each, and the CPU reduction of a GPU recipe."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
ACCELERATE_CONFIGS = ROOT / "accelerate_configs"
GPU_RECIPE_DIRS = sorted(p for p in RECIPES.iterdir() if p.is_dir() and p.name.startswith("Qwen"))

# Settings a CPU reduction may change: hardware (precision, devices, vLLM), scale (models, data, batch, lengths, steps,
# image size) and where things go (output, logging, Hub). Everything else (the Trust-GRPO and GRPO settings, the
# optimizer, LoRA and 4-bit quantisation) must stay as in the GPU recipe.
GPU_ONLY_KEYS = frozenset(
    {
        # models, judge and data swapped for tiny local ones
        "model_name_or_path",
        "judge_model_name_or_path",
        "judge_backend",
        "judge_base_url",
        "judge_batch_size",
        "judge_prompt_template",  # the tiny judge's folder carries its own
        "dataset_name",
        # hardware
        "use_cpu",
        "bf16",
        "fp16",
        "dtype",
        "attn_implementation",
        "use_vllm",
        # scale
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "max_completion_length",
        "min_pixels",
        "max_pixels",
        # outputs
        "output_dir",
        "report_to",
        "logging_steps",
        "save_strategy",
        "push_to_hub",
    }
)
# Fields of the parsed configs that follow from the keys above (TRL/transformers derive them in __post_init__).
DERIVED_FIELDS = frozenset(
    {"generation_batch_size", "steps_per_generation", "logging_dir", "run_name", "eval_steps", "dataloader_pin_memory"}
)


def load_yaml(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def script_of(path: Path) -> str:
    """The entry script a recipe YAML is for: `thinking_reward` for stage-1 configs, `grpo` for the others."""
    return "thinking_reward" if "thinking_reward" in path.name or path.parent.name == "thinking_reward" else "grpo"


def base_of(path: Path) -> Path | None:
    """The base recipe an overriding YAML (under `ablations/`) applies to, `None` for a complete recipe."""
    if path.parent.name != "ablations":
        return None
    return path.parent.parent / "config_trust_grpo.yaml"


def import_recipe(name: str):
    """The module `recipes/<name>.py` (recipes are scripts, not a package)."""
    if str(RECIPES) not in sys.path:
        sys.path.insert(0, str(RECIPES))
    return __import__(name)


def make_parser(script: str, config: dict[str, Any]):
    if script == "thinking_reward":
        return import_recipe("thinking_reward").make_parser(config.get("judge_type", "generative"))
    from trl import ModelConfig, TrlParser

    from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments

    return TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))


def parse_recipe(script: str, config: dict[str, Any], tmp_path: Path, *args: str) -> tuple:
    """Parse `config` (plus command-line `args`) with the script's own parser, as `--config FILE` would."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return make_parser(script, config).parse_args_and_config(
        ["--config", str(path), *args], fail_with_unknown_args=True
    )


def reduce_to_cpu(recipe: dict[str, Any], policy_dir: Path, judge_dir: Path, data_dir: Path, output_dir: Path):
    """
    The CPU run of a GPU Trust-GRPO recipe: tiny local models and data, CPU precision, no vLLM, 2 steps of one prompt
    group, short completions. Only keys of `GPU_ONLY_KEYS` change.
    """
    overrides = {
        "model_name_or_path": str(policy_dir),
        "dataset_name": str(data_dir),
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        "dtype": "float32",
        "attn_implementation": "sdpa",
        "use_vllm": False,
        "max_steps": 2,
        "per_device_train_batch_size": recipe.get("num_generations", 8),  # one prompt group per step
        "gradient_accumulation_steps": 1,
        "max_completion_length": 16,
        "min_pixels": 28 * 28,
        "max_pixels": 56 * 56,  # the synthetic scenes: 4 image tokens
        "output_dir": str(output_dir),
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        "push_to_hub": False,
    }
    if recipe.get("judge_backend", "transformers") != "none":
        # A served judge becomes the tiny judge in-process: same prompt, same parser, no server.
        overrides |= {
            "judge_backend": "transformers",
            "judge_model_name_or_path": str(judge_dir),
            "judge_batch_size": 8,
        }
        overrides["judge_base_url"] = None
        overrides["judge_prompt_template"] = None  # the tiny judge is asked with the prompt its folder carries
    unexpected = set(overrides) - GPU_ONLY_KEYS
    assert not unexpected, f"the reduction changes settings that are not GPU-only: {sorted(unexpected)}"
    return {k: v for k, v in {**recipe, **overrides}.items() if v is not None}


def trl_accepts(train_command: str, monkeypatch) -> tuple[Any, int]:
    """Parse a launch script's training command as recipes/grpo.py would, with TRL's world size set to its number of
    processes, so that GRPOConfig's own start-up checks run; returns the parsed TrustGRPOConfig and that number."""
    import shlex

    import transformers

    launcher, words = (shlex.split(part) for part in train_command.split("recipes/grpo.py", 1))
    processes = int(launcher[launcher.index("--num_processes") + 1]) if "--num_processes" in launcher else 1
    monkeypatch.setattr(transformers.TrainingArguments, "world_size", property(lambda self: processes))
    config = load_yaml(ROOT / words[words.index("--config") + 1])
    _, training_args, _ = make_parser("grpo", config).parse_args_and_config(
        [str(w) for w in words], fail_with_unknown_args=True
    )
    return training_args, processes
