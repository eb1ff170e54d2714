"""Evaluation results written into a local model card's model-index (offline), read back with huggingface_hub."""

from pathlib import Path

import pytest
from evaluation_helpers import load_cli
from huggingface_hub import EvalResult, ModelCard

from sophia_trl.evaluation.model_card import update_model_card

PREDICTIONS = Path(__file__).parent / "fixtures" / "predictions"
evaluate_cli = load_cli()


def benchmarks(accuracy: float, total: float) -> dict:
    return {
        "mmstar": {"metrics": {"accuracy": accuracy, "math": float("nan")}, "scoring_mode": "rule"},
        "mme": {"metrics": {"total": total}, "scoring_mode": "rule"},
    }


def test_results_replace_their_old_values_and_keep_the_rest(tmp_path):
    card_path = tmp_path / "README.md"
    other = EvalResult(task_type="text-generation", dataset_type="gsm8k", dataset_name="GSM8K", metric_type="accuracy",
                       metric_value=50.0)  # fmt: skip
    card = ModelCard("---\nlicense: apache-2.0\n---\n\n# My model\n\nTrained with Trust-GRPO.\n")
    card.data.model_name, card.data.eval_results = "my-model", [other]
    card.save(card_path)

    update_model_card(tmp_path, benchmarks(60.0, 1500.5))
    update_model_card(tmp_path, benchmarks(61.234, 1501.0))  # a second evaluation replaces, never duplicates

    reloaded = ModelCard.load(card_path)
    assert reloaded.data.model_name == "my-model" and reloaded.data.license == "apache-2.0"
    assert "Trained with Trust-GRPO." in reloaded.text
    values = {(r.dataset_type, r.metric_type, r.metric_name): r.metric_value for r in reloaded.data.eval_results}
    # MMStar's NaN category is left out; the values are rounded to two decimals; GSM8K is kept as it was
    assert values == {
        ("gsm8k", "accuracy", None): 50.0,
        ("Lin-Chen/MMStar", "accuracy", "MMStar accuracy (rule scoring)"): 61.23,
        ("lmms-lab/MME", "score", "MME total (rule scoring)"): 1501.0,
    }
    mmstar = next(r for r in reloaded.data.eval_results if r.dataset_type == "Lin-Chen/MMStar")
    assert (mmstar.task_type, mmstar.dataset_split) == ("image-text-to-text", "val")
    assert "model-index:" in card_path.read_text()


def test_missing_card_is_created_named_after_the_folder(tmp_path):
    path = update_model_card(tmp_path / "trust-grpo", benchmarks(40.0, 1200.0))
    assert path == tmp_path / "trust-grpo" / "README.md"
    card = ModelCard.load(path)
    assert card.data.model_name == "trust-grpo"
    assert len(card.data.eval_results) == 2


def test_cli_writes_the_rescored_metrics_into_the_card(tmp_path):
    evaluate_cli.main(
        ["--benchmark", "chartqa", "--predictions", str(PREDICTIONS / "chartqa.jsonl"), "--output",
         str(tmp_path / "report.json"), "--model_card", str(tmp_path / "ckpt")]
    )  # fmt: skip
    results = ModelCard.load(tmp_path / "ckpt" / "README.md").data.eval_results
    # the fixture's ChartQA numbers (see test_rescoring.py): human 2/3, augmented 1/3, overall 1/2
    assert {r.metric_name: r.metric_value for r in results} == pytest.approx(
        {"ChartQA human (rule scoring)": 66.67, "ChartQA augmented (rule scoring)": 33.33,
         "ChartQA overall (rule scoring)": 50.0}
    )  # fmt: skip
