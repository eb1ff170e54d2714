"""Evaluation results into a model card's `model-index` metadata, so that the Hub shows them on the model page.

The card is written with huggingface_hub's `ModelCard` / `ModelCardData` / `EvalResult` (the library's own model-index
serialisation), on a local file: nothing is sent anywhere. Push the checkpoint folder as usual (`huggingface-cli
upload`, `push_to_hub`) and the Hub reads the results from its `README.md`. (The `evaluate` package's `push_to_hub`
writes the same metadata, but only to a repository on the Hub, after looking the model and dataset up there.)
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard

logger = logging.getLogger(__name__)

TASK_TYPE = "image-text-to-text"  # the Hub's task for vision-language models
# Per benchmark: the Hub dataset, its configuration and split(s), the name shown, and the metric type of its headline
# numbers (MME's are summed scores, the others accuracies in percent).
DATASETS: dict[str, dict[str, str | None]] = {
    "mathvista": {"id": "AI4Math/MathVista", "name": "MathVista", "config": None, "split": "testmini"},
    "mathverse": {"id": "AI4Math/MathVerse", "name": "MathVerse", "config": "testmini", "split": "testmini"},
    "mmmu": {"id": "MMMU/MMMU", "name": "MMMU", "config": None, "split": "dev+validation"},
    "mme": {"id": "lmms-lab/MME", "name": "MME", "config": None, "split": "test", "metric_type": "score"},
    "mmstar": {"id": "Lin-Chen/MMStar", "name": "MMStar", "config": None, "split": "val"},
    "chartqa": {"id": "HuggingFaceM4/ChartQA", "name": "ChartQA", "config": None, "split": "test"},
    "mmbench": {"id": "lmms-lab/MMBench", "name": "MMBench", "config": "en", "split": "dev"},
}


def eval_results(benchmarks: dict[str, dict[str, Any]]) -> list[EvalResult]:
    """One `EvalResult` per headline metric of each benchmark in a report's `"benchmarks"` section (values rounded to
    two decimals; undefined metrics are skipped)."""
    results = []
    for name, result in benchmarks.items():
        dataset = DATASETS[name]
        for metric, value in result["metrics"].items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            results.append(
                EvalResult(
                    task_type=TASK_TYPE,
                    dataset_type=str(dataset["id"]),
                    dataset_name=str(dataset["name"]),
                    dataset_config=dataset["config"],
                    dataset_split=dataset["split"],
                    metric_type=str(dataset.get("metric_type") or "accuracy"),
                    metric_name=f"{dataset['name']} {metric} ({result['scoring_mode']} scoring)",
                    metric_value=round(float(value), 2),
                )
            )
    return results


def update_model_card(path: str | Path, benchmarks: dict[str, dict[str, Any]], model_name: str | None = None) -> Path:
    """Writes the headline metrics of an evaluation into a local model card as `model-index` results.

    Results of the same benchmark, metric and scoring mode replace the card's earlier values; other results and the
    card's text are kept. A missing card is created.

    Args:
        path (`str` or `Path`):
            The checkpoint folder (its `README.md` is the card) or the card file itself.
        benchmarks (`dict`):
            The `"benchmarks"` section of an evaluation report (see `sophia_trl.evaluation.evaluate`).
        model_name (`str`, *optional*):
            The model's name in the `model-index`, when the card does not name it yet; defaults to the folder's name.

    Returns:
        `Path`: the card file written.
    """
    path = Path(path)
    card_path = path / "README.md" if path.is_dir() or not path.suffix else path
    if card_path.exists():
        card = ModelCard.load(card_path)
    else:
        card_path.parent.mkdir(parents=True, exist_ok=True)
        card = ModelCard(f"---\n---\n\n# {model_name or card_path.parent.name}\n")
    new = eval_results(benchmarks)
    kept = [old for old in card.data.eval_results or [] if not any(old.is_equal_except_value(n) for n in new)]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name or card_path.parent.resolve().name
    card.save(card_path)
    logger.info("Wrote %d evaluation result(s) into the model-index of %s.", len(new), card_path)
    return card_path
