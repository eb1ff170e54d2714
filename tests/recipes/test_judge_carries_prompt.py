"""A judge carries its prompt, through the entry points: stage 1 writes it into the judge's folder (both judge types)
and names it in the card, stage 2 reads it from there, a judge whose prompt is not known stops recipes/grpo.py before
anything loads, the launcher and the server check pass the served judge's prompt, and every shipped file that names
the released judge sets `judge_prompt_template: sophiavl-r1` (parsed only: the named template is never resolved)."""

import ast
import json
import os
import subprocess
import sys

import pytest
import yaml
from recipe_helpers import RECIPES, ROOT, import_recipe, load_yaml

from sophia_trl.configs import TrustGRPOScriptArguments
from sophia_trl.judges import JudgePrompt, load_thinking_judge
from sophia_trl.judges.carried_prompt import JUDGE_PROMPT_FILE, UnknownJudgePromptError, save_judge_prompt
from sophia_trl.judges.loopback import LoopbackJudgeServer

RELEASED_JUDGE = "bunny127/SophiaVL-R1-Thinking-Reward-Model-3B"
LAUNCH = ROOT / "scripts" / "launch_trust_grpo.sh"
NOTEBOOK = ROOT / "notebooks" / "trust_grpo_qlora_colab.ipynb"
# A judge trained with another prompt than ours: the image after the text, no system turn.
CUSTOM = JudgePrompt(system=None, user="Grade this.\nQ: {question}\nA: {response}\n{image}")


def shipped_yamls():
    return sorted(RECIPES.rglob("*.yaml"))


# ---------------------------------------------------------------------------------------------------------------------
# Shipped files
# ---------------------------------------------------------------------------------------------------------------------


def test_every_shipped_yaml_that_names_the_released_judge_sets_its_template():
    naming = [path for path in shipped_yamls() if RELEASED_JUDGE in path.read_text()]
    assert len(naming) >= 3  # the paper recipes: 7B Trust-GRPO, 7B QLoRA, 3B LoRA
    for path in naming:
        assert load_yaml(path).get("judge_prompt_template") == "sophiavl-r1", path


def merged(path):
    """The recipe a YAML stands for: an ablation's overrides merged into the paper's run, as the launcher does."""
    config = load_yaml(path)
    if path.parent.name == "ablations":
        config = {**load_yaml(path.parent.parent / "config_trust_grpo.yaml"), **config}
    return config


@pytest.mark.parametrize(
    "path",
    [p for p in shipped_yamls() if "thinking_reward" not in str(p) and p.parent.name != "judge_prompts"],
    ids=lambda p: str(p.relative_to(RECIPES)),
)
def test_every_shipped_grpo_yaml_asks_its_judge_with_a_known_prompt(path):
    config = merged(path)
    if config.get("judge_backend", "transformers") == "none":
        return
    judge = config["judge_model_name_or_path"]
    # Either the template is set, or the judge is a folder that stage 1 writes (it carries its prompt).
    assert config.get("judge_prompt_template") or judge.startswith("outputs/"), path


def test_the_notebook_asks_the_released_judge_with_its_template():
    notebook = json.loads(NOTEBOOK.read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    [parameters] = [cell for cell in cells if cell.startswith("# Parameters")]
    values = {}
    for node in ast.parse(parameters).body:  # plain assignments of constants
        values[node.targets[0].id] = ast.literal_eval(node.value)
    assert values["JUDGE"] == RELEASED_JUDGE and values["JUDGE_PROMPT"] == "sophiavl-r1"
    [judge_cell] = [cell for cell in cells if "load_thinking_judge(" in cell]
    assert "judge_prompt_template=JUDGE_PROMPT" in judge_cell


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1 writes the prompt, stage 2 reads it
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("judge_type", ["generative", "scalar"])
def test_stage1_judge_folder_carries_its_template_and_stage2_reads_it(tmp_path, tiny_judge_dir, judge_type):
    from test_thinking_reward_recipe import run_recipe

    template = save_judge_prompt(CUSTOM, tmp_path / "template")
    extra = ["--max_steps", "1", "--eval_judge_max_rows", "2", "--judge_batch_size", "2", "--save_strategy", "steps"]
    extra += ["--save_steps", "1", "--judge_prompt_template", str(template)]
    _, output_dir = run_recipe(tmp_path, tiny_judge_dir, judge_type, *extra)
    # The final folder and the checkpoint (a judge too) carry it.
    assert JudgePrompt.from_file(output_dir / JUDGE_PROMPT_FILE) == CUSTOM
    assert JudgePrompt.from_file(output_dir / "checkpoint-1" / JUDGE_PROMPT_FILE) == CUSTOM
    card = (output_dir / "README.md").read_text()
    assert f"`{JUDGE_PROMPT_FILE}`" in card and str(template) in card
    backend = "transformers" if judge_type == "generative" else "scalar"
    args = TrustGRPOScriptArguments(
        dataset_name="d", judge_backend=backend, judge_model_name_or_path=str(output_dir), judge_batch_size=2
    )
    assert load_thinking_judge(args).judge_prompt == CUSTOM


def test_grpo_stops_before_loading_anything_when_the_judge_prompt_is_not_known(tmp_path, monkeypatch):
    from trl import ModelConfig, TrlParser

    from sophia_trl.configs import TrustGRPOConfig

    grpo = import_recipe("grpo")

    def must_not_load(*args, **kwargs):
        raise AssertionError("something was loaded before the judge's prompt was known")

    for loader in ("load_train_test_splits", "load_processor", "get_model", "TrustGRPOTrainer", "check_judge"):
        monkeypatch.setattr(grpo, loader, must_not_load)
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    parsed = parser.parse_args_and_config(
        [
            "--config",
            str(RECIPES / "tiny/trust_grpo.yaml"),
            f"--output_dir={tmp_path}",
            f"--model_name_or_path={tmp_path}",
            f"--dataset_name={tmp_path}",
            "--judge_backend=openai",
            "--judge_base_url=http://127.0.0.1:9/v1",
            "--judge_model_name_or_path=judge",
        ]
    )
    with pytest.raises(UnknownJudgePromptError, match="served model 'judge'.*sophiavl-r1"):
        grpo.main(*parsed)


# ---------------------------------------------------------------------------------------------------------------------
# The launcher and the server check
# ---------------------------------------------------------------------------------------------------------------------


def launch(tmp_path, *args, **env):
    environment = {**os.environ, "PYTHON": sys.executable, "LOG_DIR": str(tmp_path / "logs"), **env}
    return subprocess.run(
        ["bash", str(LAUNCH), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def commands(result):
    return [line[2:] for line in result.stderr.splitlines() if line.startswith("+ ")]


def test_launcher_gives_the_released_judge_its_named_template(tmp_path):
    result = launch(tmp_path, NUM_GPUS="9", DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    _, check, train = commands(result)
    assert check.endswith("--judge_prompt_template sophiavl-r1")
    assert "--judge_prompt_template sophiavl-r1" in train


def test_launcher_gives_a_judge_folder_its_own_template(tmp_path):
    folder = tmp_path / "my-judge"
    template = save_judge_prompt(None, folder)
    result = launch(tmp_path, NUM_GPUS="9", DRY_RUN="1", JUDGE_MODEL=str(folder))
    assert result.returncode == 0, result.stderr
    serve, check, train = commands(result)
    assert str(folder) in serve
    assert check.endswith(f"--judge_prompt_template {template}")
    assert f"--judge_prompt_template {template}" in train and "sophiavl-r1" not in train
    # The user's choice wins: JUDGE_PROMPT_TEMPLATE, or the option after --.
    chosen = launch(tmp_path, NUM_GPUS="9", DRY_RUN="1", JUDGE_MODEL=str(folder), JUDGE_PROMPT_TEMPLATE="mine.yaml")
    assert all("--judge_prompt_template mine.yaml" in c for c in commands(chosen)[1:])
    after = launch(
        tmp_path, "--", "--judge_prompt_template", "x.yaml", NUM_GPUS="9", DRY_RUN="1", JUDGE_MODEL=str(folder)
    )
    assert all("--judge_prompt_template x.yaml" in c for c in commands(after)[1:])


def test_launcher_refuses_a_judge_whose_prompt_is_not_known(tmp_path):
    bare = tmp_path / "old-judge"
    bare.mkdir()
    result = launch(tmp_path, NUM_GPUS="9", DRY_RUN="1", JUDGE_MODEL=str(bare))
    assert result.returncode != 0 and not commands(result)
    assert f"JUDGE_MODEL={bare} has no judge_prompt.yaml" in result.stderr and "sophiavl-r1" in result.stderr
    # An external server with a recipe that does not say which prompt it was trained with.
    overrides = tmp_path / "served.yaml"
    overrides.write_text(yaml.safe_dump({"judge_backend": "openai", "judge_model_name_or_path": "judge"}))
    external = launch(
        tmp_path,
        NUM_GPUS="0",
        DRY_RUN="1",
        CONFIG="recipes/tiny/trust_grpo.yaml",
        OVERRIDES=str(overrides),
        JUDGE_URL="http://judge-host:8001/v1",
    )
    assert external.returncode != 0 and not commands(external)
    assert "the judge's prompt is not known: set JUDGE_PROMPT_TEMPLATE" in external.stderr


def test_the_server_check_probes_with_the_judge_prompt(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from check_judge_server import EXIT_BAD_TEMPLATE, JudgeServerCheckError, wait_for_judge_server

    # The loopback judge answers the score a request's text names ("score=0.3"), else the image's red channel: 1.0 for
    # the white probe image. Only the template's text names 0.3, so 0.3 means the probe was asked with it.
    template = save_judge_prompt(JudgePrompt(system="Answer score=0.3 here", user="{question} {response}"), tmp_path)
    with LoopbackJudgeServer() as server:
        assert wait_for_judge_server(server.url, "judge", timeout=10) == 1.0
        assert wait_for_judge_server(server.url, "judge", timeout=10, judge_prompt_template=str(template)) == 0.3
        with pytest.raises(JudgeServerCheckError, match="missing.yaml") as info:
            wait_for_judge_server(
                server.url, "judge", timeout=10, judge_prompt_template=str(tmp_path / "missing.yaml")
            )
        assert info.value.exit_code == EXIT_BAD_TEMPLATE
