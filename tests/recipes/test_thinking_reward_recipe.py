"""recipes/thinking_reward.py: YAML parsing, the SFT row format, and short end-to-end runs of both judge types."""

import importlib.util
import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from transformers import AutoProcessor
from trl import SFTConfig
from trl.data_utils import apply_chat_template, prepare_multimodal_messages

from sophia_trl.configs import ThinkingRewardConfig
from sophia_trl.judges import (
    DEFAULT_JUDGE_PROMPT,
    JudgePrompt,
    ScalarJudge,
    TransformersJudge,
    build_judge_inputs,
    format_judge_sft_example,
)

ROOT = Path(__file__).resolve().parents[2]
TINY_YAMLS = sorted((ROOT / "recipes" / "tiny").glob("thinking_reward_*.yaml"))


def load_recipe():
    spec = importlib.util.spec_from_file_location("thinking_reward_recipe", ROOT / "recipes" / "thinking_reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = load_recipe()


def judge_rows(num_questions=4):
    rows = []
    for q in range(num_questions):
        image = Image.new("RGB", (56, 56), (60 * q % 256, 120, 30)) if q % 2 == 0 else None
        for response, score in (
            ("<think>1 + 2 = 3</think><answer>3</answer>", 0.9),
            ("<think>so so</think><answer>5</answer>", 0.2),
        ):
            rows.append(
                {"question": f"How many shapes in scene {q}?", "image": image, "response": response, "score": score}
            )
    features = Features(
        {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
    )
    return Dataset.from_list(rows, features=features)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--judge_type", "scalar"], "scalar"),
        (["--judge_type=generative"], "generative"),
        ([], "generative"),
    ],
)
def test_judge_type_from_args(args, expected):
    assert recipe.judge_type_from_args(args) == expected


def test_judge_type_from_yaml_and_command_line_override(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("judge_type: scalar\n")
    assert recipe.judge_type_from_args(["--config", str(config)]) == "scalar"
    assert recipe.judge_type_from_args(["--config", str(config), "--judge_type", "generative"]) == "generative"


@pytest.mark.parametrize("path", TINY_YAMLS, ids=lambda p: p.name)
def test_tiny_yamls_parse_for_their_judge_type(path):
    args = ["--config", str(path)]
    script_args, training_args, model_args = recipe.make_parser(
        recipe.judge_type_from_args(args)
    ).parse_args_and_config(args)
    expected = SFTConfig if script_args.judge_type == "generative" else ThinkingRewardConfig
    assert type(training_args) is expected
    assert training_args.use_cpu and not training_args.bf16
    assert model_args.model_name_or_path and script_args.dataset_name


def test_a_typo_in_a_yaml_fails(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text((ROOT / "recipes/tiny/thinking_reward_scalar.yaml").read_text() + "\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        recipe.make_parser("scalar").parse_args_and_config(["--config", str(config)])


def test_sft_rows_render_exactly_like_the_scoring_prompt(tiny_judge_dir):
    """What SFTTrainer trains on is what TransformersJudge sends at scoring time, plus the target."""
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    for row in judge_rows(2):
        example = format_judge_sft_example(row)
        assert example["completion"] == [{"role": "assistant", "content": f"<answer>{row['score']:.1f}</answer>"}]
        assert example["images"] == ([row["image"]] if row["image"] is not None else [])
        # The steps of TRL 1.16's DataCollatorForVisionLanguageModeling._collate_prompt_completion.
        prompt = prepare_multimodal_messages(example["prompt"], images=example["images"])
        completion = prepare_multimodal_messages(example["completion"])
        rendered = apply_chat_template({"prompt": prompt, "completion": completion}, processor)
        scoring = build_judge_inputs(processor, [row["question"]], [row["response"]], [row["image"]])
        trained_ids = processor(text=[rendered["prompt"]], images=example["images"] or None)["input_ids"][0]
        assert trained_ids == scoring["input_ids"][0].tolist()
        assert rendered["completion"].startswith(f"<answer>{row['score']:.1f}</answer>")


def run_recipe(tmp_path, tiny_judge_dir, judge_type, *extra, test_rows=None):
    data_dir = tmp_path / "data"
    DatasetDict(train=judge_rows(4), test=judge_rows(2) if test_rows is None else test_rows).save_to_disk(
        str(data_dir)
    )
    config = ROOT / "recipes" / "tiny" / f"thinking_reward_{judge_type}.yaml"
    args = [
        "--config",
        str(config),
        "--model_name_or_path",
        str(tiny_judge_dir),
        "--dataset_name",
        str(data_dir),
        "--output_dir",
        str(tmp_path / "judge"),
        "--per_device_train_batch_size",
        "4",
        "--disable_tqdm",
        "true",
        *extra,
    ]
    parsed = recipe.make_parser(recipe.judge_type_from_args(args)).parse_args_and_config(args)
    return recipe.main(*parsed), tmp_path / "judge"


def test_scalar_recipe_end_to_end(tmp_path, tiny_judge_dir):
    metrics, output_dir = run_recipe(tmp_path, tiny_judge_dir, "scalar", "--max_steps", "2")
    assert metrics["judge_eval_num_rows"] == 4 and metrics["judge_eval_failed_fraction"] == 0.0
    assert metrics["judge_eval_num_pairs"] == 2
    saved = json.loads((output_dir / "judge_eval_results.json").read_text())
    assert saved["judge_eval_mae"] == pytest.approx(metrics["judge_eval_mae"])
    card = (output_dir / "README.md").read_text()
    assert "thinking reward model** (scalar)" in card and "2505.17018" in card
    # The judge carries the prompt it was trained with (ours: no template was set), named in the card.
    assert JudgePrompt.from_file(output_dir / "judge_prompt.yaml") == DEFAULT_JUDGE_PROMPT
    assert "`judge_prompt.yaml` beside the weights: this project's prompt" in card
    # The output folder is a complete judge: model, head and processor.
    judge = ScalarJudge(output_dir, device="cpu")
    scores = judge.score(["q"], ["r"], [Image.new("RGB", (56, 56), "red")])
    assert 0.0 <= scores[0] <= 1.0


def strict_json(path):
    """The file's JSON, refusing NaN and infinities (which `json.loads` accepts by default)."""
    return json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{path.name} holds {name}"))


def test_undefined_judge_metrics_are_written_as_null_with_the_reason(tmp_path, tiny_judge_dir):
    # One response per test question: no pair to rank, so the pairwise accuracy has no value.
    unpaired = judge_rows(2).filter(lambda row: row["score"] > 0.5)
    metrics, output_dir = run_recipe(tmp_path, tiny_judge_dir, "scalar", "--max_steps", "1", test_rows=unpaired)
    for name in ("judge_eval_results.json", "all_results.json", "train_results.json"):
        strict_json(output_dir / name)
    saved = strict_json(output_dir / "judge_eval_results.json")
    assert saved["judge_eval_num_pairs"] == 0 and saved["judge_eval_pairwise_accuracy"] is None
    reason = "no pair of responses to one question with different labels"
    assert saved["judge_eval_pairwise_accuracy_undefined_because"] == reason
    assert metrics["judge_eval_pairwise_accuracy"] is None and saved["judge_eval_mae"] == metrics["judge_eval_mae"]


def test_generative_recipe_end_to_end(tmp_path, tiny_judge_dir):
    metrics, output_dir = run_recipe(
        tmp_path, tiny_judge_dir, "generative", "--max_steps", "2", "--judge_batch_size", "4"
    )
    assert metrics["judge_eval_num_rows"] == 4
    # Two steps do not teach the format: whatever the judge wrote, a failure is reported as such, never as 0.
    assert 0.0 <= metrics["judge_eval_failed_fraction"] <= 1.0
    assert (metrics["judge_eval_mae"] is None) == (metrics["judge_eval_failed_fraction"] == 1.0)
    assert JudgePrompt.from_file(output_dir / "judge_prompt.yaml") == DEFAULT_JUDGE_PROMPT
    judge = TransformersJudge(output_dir, device="cpu", max_new_tokens=4)
    assert judge.model.config.get_text_config().use_cache is True
    assert len(judge.score(["q"], ["r"])) == 1
