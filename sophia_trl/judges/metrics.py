"""How well a thinking judge agrees with labelled judge data: error, pairwise ranking accuracy within a question."""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import torch
from PIL import Image

from .base import ThinkingJudge, image_hash
from .messages import judge_inputs

logger = logging.getLogger(__name__)


def question_group_id(question: str, image: Image.Image | None) -> int:
    """A 63-bit id shared by rows with the same question text and the same image (pairwise accuracy groups)."""
    key = f"{question}\x00{image_hash(image)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1


def pairwise_accuracy(predictions: torch.Tensor, targets: torch.Tensor, group_ids: torch.Tensor) -> tuple[float, int]:
    """
    Fraction of pairs from the same group with different targets that the predictions order the same way (a tie in
    the predictions counts as wrong).

    Args:
        predictions (`torch.Tensor` of shape `(N,)`):
            Predicted scores.
        targets (`torch.Tensor` of shape `(N,)`):
            Target scores.
        group_ids (`torch.Tensor` of shape `(N,)`):
            Group of each row; only pairs within a group count.

    Returns:
        `tuple[float, int]`: The accuracy (NaN when there is no such pair) and the number of pairs.
    """
    same_group = group_ids[:, None] == group_ids[None, :]  # (N, N)
    target_diff = targets[:, None] - targets[None, :]
    pred_diff = predictions[:, None] - predictions[None, :]
    # Each unordered pair once: the ordered pair with the larger target first.
    pairs = same_group & (target_diff > 0)
    num_pairs = int(pairs.sum())
    if num_pairs == 0:
        return math.nan, 0
    return float((pred_diff[pairs] > 0).float().mean()), num_pairs


def evaluate_judge(judge: ThinkingJudge, dataset: Any, batch_size: int = 64) -> dict[str, float]:
    """Scores labelled judge data with a judge and compares with the labels.

    Args:
        judge ([`ThinkingJudge`]):
            Any backend.
        dataset ([`~datasets.Dataset`] or `list[dict]`):
            Rows with `question`, `response`, `score` and optionally `image`.
        batch_size (`int`, *optional*, defaults to `64`):
            Rows per `judge.score` call.

    Returns:
        `dict[str, float]`: `mae` (mean absolute error over the rows the judge scored), `failed_fraction` (rows it
        gave no score for; they are not counted as 0 in `mae`), `pairwise_accuracy` and `num_pairs` (pairs of rows with
        the same question and image and different labels, ordered like the labels), `mean_score`, `num_rows`.
    """
    predictions, targets, groups = [], [], []
    num_rows = len(dataset)
    for start in range(0, num_rows, batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, num_rows))]
        questions, responses, images = (list(column) for column in zip(*(judge_inputs(row) for row in rows)))
        scores = judge.score(questions, responses, images)
        for row, question, image, score in zip(rows, questions, images, scores):
            predictions.append(math.nan if score is None else score)
            targets.append(float(row["score"]))
            groups.append(question_group_id(question, image))
    pred, target = torch.tensor(predictions, dtype=torch.float64), torch.tensor(targets, dtype=torch.float64)
    scored = ~torch.isnan(pred)
    accuracy, num_pairs = pairwise_accuracy(pred[scored], target[scored], torch.tensor(groups)[scored])
    return {
        "mae": float((pred[scored] - target[scored]).abs().mean()) if scored.any() else math.nan,
        "failed_fraction": float((~scored).double().mean()) if num_rows else math.nan,
        "pairwise_accuracy": accuracy,
        "num_pairs": num_pairs,
        "mean_score": float(pred[scored].mean()) if scored.any() else math.nan,
        "num_rows": num_rows,
    }


# Why a metric of `evaluate_judge` has no value (NaN), by metric name.
UNDEFINED_BECAUSE = {
    "pairwise_accuracy": "no pair of responses to one question with different labels",
    "mae": "the judge scored no row",
    "mean_score": "the judge scored no row",
    "failed_fraction": "no rows",
}


def metrics_for_json(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics as JSON can hold them: an undefined (NaN or infinite) metric becomes `null`, with a companion field
    `<name>_undefined_because` and a logged warning saying why (`UNDEFINED_BECAUSE`, matched by the name's ending so
    that prefixed names such as `judge_eval_pairwise_accuracy` are explained too)."""
    result: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            reason = next((why for key, why in UNDEFINED_BECAUSE.items() if name.endswith(key)), "it is undefined")
            logger.warning("%s has no value (written as null): %s.", name, reason)
            result[name] = None
            result[f"{name}_undefined_because"] = reason
        else:
            result[name] = value
    return result
