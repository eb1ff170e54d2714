"""A recipe or script run before the step that writes its inputs stops at once with an error that names the missing
setting and the command that writes it, not a loader's traceback from deep inside datasets or transformers."""

import os
import subprocess
import sys

import pytest
from recipe_helpers import RECIPES, ROOT, import_recipe, make_parser

SCRIPTS = ROOT / "scripts"


def run(args, cwd, **env):
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
    }
    return subprocess.run(args, cwd=cwd, env={**environment, **env}, capture_output=True, text=True, timeout=300)


def test_tiny_recipe_before_make_demo_says_make_demo_writes_it(tmp_path):
    # From an empty folder, as on a fresh clone before `make demo`: outputs/demo/... does not exist.
    result = run(
        [sys.executable, str(RECIPES / "grpo.py"), "--config", str(RECIPES / "tiny/trust_grpo.yaml")], tmp_path
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("FileNotFoundError: model_name_or_path=outputs/demo/policy does not exist")
    assert "`make demo` (scripts/demo.py) writes the tiny models and data under outputs/demo/" in last


@pytest.mark.parametrize(
    ("recipe", "script", "message"),
    [
        ("tiny/thinking_reward_generative.yaml", "thinking_reward", "model_name_or_path=outputs/demo/judge-base"),
        ("tiny/thinking_reward_scalar.yaml", "thinking_reward", "model_name_or_path=outputs/demo/judge-base"),
        ("Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml", "grpo", "data_prep/sophiavl_130k.py"),
        ("Qwen2.5-VL-7B-Instruct/grpo/config_qlora.yaml", "grpo", "data_prep/sophiavl_130k.py"),
        ("Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml", "grpo", "data_prep/sophiavl_130k.py"),
        ("Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml", "thinking_reward", "thinking_156k.py"),
        ("Qwen2.5-VL-3B-Instruct/thinking_reward/config_scalar.yaml", "thinking_reward", "thinking_156k.py"),
    ],
)
def test_every_recipe_names_its_missing_input(recipe, script, message, tmp_path, monkeypatch, gpu_parsing):
    import yaml

    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((RECIPES / recipe).read_text())
    parsed = make_parser(script, config).parse_args_and_config(
        ["--config", str(RECIPES / recipe), "--output_dir", str(tmp_path / "out")], fail_with_unknown_args=True
    )
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        import_recipe(script).main(*parsed)
    assert message in str(info.value)


def test_scripts_name_a_missing_input(tmp_path):
    infer = run([sys.executable, str(SCRIPTS / "infer.py"), "--model", "outputs/run/x", "--question", "Q"], tmp_path)
    assert infer.returncode == 2 and "model=outputs/run/x does not exist" in infer.stderr
    assert "Train a policy first (recipes/grpo.py)" in infer.stderr
    merge = run([sys.executable, str(SCRIPTS / "merge_configs.py"), "base.yaml", "over.yaml"], tmp_path)
    assert merge.returncode == 2 and "the base YAML base.yaml does not exist" in merge.stderr
    serve = run(["bash", str(SCRIPTS / "serve_judge.sh"), "transformers", "outputs/judge-3b"], tmp_path)
    assert serve.returncode == 1 and "MODEL=outputs/judge-3b does not exist. Train a judge first" in serve.stderr
    launch = run(["bash", str(SCRIPTS / "launch_trust_grpo.sh")], tmp_path, CONFIG="missing.yaml", NUM_GPUS="0")
    assert launch.returncode == 1 and "CONFIG=missing.yaml does not exist" in launch.stderr
