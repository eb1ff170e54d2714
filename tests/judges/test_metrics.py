"""Judge metrics (`sophia_trl.judges.metrics`): pairwise accuracy within a question, and evaluate_judge."""

import math

import pytest
import torch
from PIL import Image

from sophia_trl.judges import ThinkingJudge, evaluate_judge, pairwise_accuracy, question_group_id


def test_pairwise_accuracy_by_hand():
    # Group 0: targets 0.9 > 0.5 > 0.1, predictions order (0.9, 0.5) right, (0.9, 0.1) right, (0.5, 0.1) wrong.
    # Group 1: targets 0.2 < 0.8 with predictions tied: wrong. Equal targets (group 2) make no pair.
    predictions = torch.tensor([0.8, 0.2, 0.3, 0.5, 0.5, 0.1, 0.9])
    targets = torch.tensor([0.9, 0.5, 0.1, 0.2, 0.8, 0.4, 0.4])
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    accuracy, num_pairs = pairwise_accuracy(predictions, targets, groups)
    assert num_pairs == 4
    assert accuracy == pytest.approx(2 / 4)
    assert math.isnan(pairwise_accuracy(predictions[5:], targets[5:], groups[5:])[0])


class TableJudge(ThinkingJudge):
    """Scores from a dict keyed by response; `None` for a response it does not know (a failed judgement)."""

    def __init__(self, table):
        super().__init__(cache_size=0)
        self.table = table

    def _score_uncached(self, questions, responses, images):
        return [self.table.get(r) for r in responses]


def test_question_group_id_keys_on_question_and_pixels():
    red = Image.new("RGB", (8, 8), "red")
    assert question_group_id("q", red) == question_group_id("q", red.copy())
    ids = {
        question_group_id(*key) for key in [("q", red), ("q", None), ("other", red), ("q", Image.new("RGB", (8, 8)))]
    }
    assert len(ids) == 4
    assert all(0 <= i < 2**63 for i in ids)


def test_evaluate_judge_by_hand():
    red = Image.new("RGB", (8, 8), "red")
    rows = [  # (question, image, response, label); the judge's prediction is in `table`
        ("A", red, "r1", 0.9),
        ("A", red.copy(), "r2", 0.1),  # same pixels: same group as r1
        ("A", red, "r3", 0.5),  # the judge fails on r3
        ("A", None, "r4", 0.2),  # no image: another group
        ("A", None, "r5", 0.8),
        ("B", None, "r6", 0.7),
    ]
    table = {"r1": 0.8, "r2": 0.3, "r4": 0.6, "r5": 0.4, "r6": 0.7}
    dataset = [{"question": q, "image": img, "response": r, "score": s} for q, img, r, s in rows]
    metrics = evaluate_judge(TableJudge(table), dataset, batch_size=4)
    # Scored rows r1, r2, r4, r5, r6: errors 0.1, 0.2, 0.4, 0.4, 0.0; r3 is failed, not counted as 0.
    assert metrics["mae"] == pytest.approx(1.1 / 5)
    assert metrics["failed_fraction"] == pytest.approx(1 / 6)
    # Pairs: (r1, r2) ordered right, (r5, r4) ordered wrong; r6 is alone and r3 has no prediction.
    assert metrics["num_pairs"] == 2
    assert metrics["pairwise_accuracy"] == pytest.approx(0.5)
    assert metrics["mean_score"] == pytest.approx(2.8 / 5)
    assert metrics["num_rows"] == 6


def test_evaluate_judge_when_every_judgement_fails():
    metrics = evaluate_judge(TableJudge({}), [{"question": "q", "response": "r", "score": 0.5}])
    assert (
        math.isnan(metrics["mae"]) and math.isnan(metrics["mean_score"]) and math.isnan(metrics["pairwise_accuracy"])
    )
    assert (metrics["failed_fraction"], metrics["num_pairs"], metrics["num_rows"]) == (1.0, 0, 1)
