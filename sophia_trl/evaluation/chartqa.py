"""ChartQA (test, 2,500 items: 1,250 human-written, 1,250 augmented): `HuggingFaceM4/ChartQA`, split `test`.

Fields read: `query` (the question), `label` (a list of accepted answers, or one string), `human_or_machine` (`0` or
`"human"` for the human split, `1` or `"machine"` for the augmented split), and the image from `image`. lmms-eval's
copy (`lmms-lab/ChartQA`: `question`, `answer`, `type` = `"human_test"` / `"augmented_test"`) is read as it is.

Scoring is the relaxed accuracy of the ChartQA paper, as in pix2struct's `relaxed_correctness`: when both answer and
prediction are numbers (a trailing `%` divides by 100) and the answer is non-zero, the prediction is right within 5 %
relative error; otherwise the two strings must match ignoring case. An item is right if it matches any accepted
answer. Without an answer tag, the prediction is the response's answer line (`free_text_answer`: a bare first line
followed by an explanation, else the last line). Reported: the human and augmented splits and their union (`overall`;
the splits are the same size, so it is also their mean).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import answer_with_fallback, free_text_answer
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, benchmark_result, make_record

NAME = "chartqa"
HUB_ID = "HuggingFaceM4/ChartQA"
SPLITS = ["test"]
REQUIRED = ("query", "label", "human_or_machine")
FIELDS = REQUIRED
MAX_RELATIVE_CHANGE = 0.05  # the ChartQA paper's relaxed accuracy
# lmms-eval's copy (`lmms-lab/ChartQA`): `question`, `answer` (one string), `type` ("human_test"/"augmented_test").
LAYOUTS = {"lmms-eval": {"query": "question", "label": "answer", "human_or_machine": "type"}}


def load(source: str | None = None) -> Any:
    """The test rows, from the Hub or a local copy (see `load_benchmark`)."""
    return load_benchmark(HUB_ID, [None], SPLITS, source, required=(*REQUIRED, "image"), layouts=LAYOUTS)


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style prompt for a short answer (a word or a number)."""
    return r1_prompt(row["query"], "text", [to_image(row.get("image"), base_dir)], system_prompt)


def _to_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = MAX_RELATIVE_CHANGE) -> bool:
    """pix2struct's relaxed correctness: numbers within `max_relative_change` of a non-zero target, else a
    case-insensitive exact match.

    Example:
    ```python
    >>> relaxed_correctness("25", "26")  # 4 % off
    True
    >>> relaxed_correctness("25", "27")  # 8 % off
    False
    ```
    """
    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        return abs(prediction_float - target_float) / abs(target_float) <= max_relative_change
    return prediction.lower() == target.lower()


def split_name(value: Any) -> str:
    """`"human"` or `"augmented"` from the `human_or_machine` value (a class index or its name)."""
    if value in (0, "0", "human", "human_test"):
        return "human"
    if value in (1, "1", "machine", "augmented", "augmented_test"):
        return "augmented"
    raise ValueError(
        f"ChartQA human_or_machine must be 0/'human' or 1/'machine' (lmms-eval's type: 'human_test' or "
        f"'augmented_test'), got {value!r}."
    )


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns metrics (percent) and per-item records.
    The scoring is rule-based, so `judge` is not used."""
    records = []
    for row in rows:
        answer = answer_with_fallback(row["response"])
        prediction = free_text_answer(answer).strip() or None
        labels = row["label"] if isinstance(row["label"], list) else [row["label"]]
        correct = prediction is not None and any(
            relaxed_correctness(str(label).strip(), prediction) for label in labels
        )
        records.append(
            make_record(row, FIELDS, answer, prediction, correct, split=split_name(row["human_or_machine"]))
        )
    metrics = {
        "human": accuracy(r for r in records if r["split"] == "human"),
        "augmented": accuracy(r for r in records if r["split"] == "augmented"),
        "overall": accuracy(records),
    }
    return benchmark_result(records, metrics)
