"""Per-item records, the counts every benchmark reports, and the markdown summary."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sophia_trl.evaluation.answers import ANSWER_SOURCES, ExtractedAnswer

RULE_MODE = "rule"
JUDGE_MODE = "judge"


def make_record(
    row: dict[str, Any],
    fields: tuple[str, ...],
    answer: ExtractedAnswer,
    prediction: Any,
    correct: bool,
    mode: str = RULE_MODE,
    **extra: Any,
) -> dict[str, Any]:
    """One scored item: the benchmark fields it was scored on (those present), the raw response, the extracted answer and its source,
    the parsed prediction (`None` when unparsable), whether it is right, and which mode decided it."""
    record = {field: row[field] for field in fields if field in row}
    record.update(
        response=row.get("response"),
        answer_text=answer.text,
        answer_source=answer.source,
        prediction=prediction,
        correct=bool(correct),
        mode=mode,
    )
    if "truncated" in row:
        record["truncated"] = row["truncated"]
    record.update(extra)
    return record


def answer_counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How answers were found: per source, how many used a fallback (and how many of those were scored right, so that a
    reader sees how much of the accuracy comes from reading cut-off or untagged responses), were unparsable, or were
    cut off."""
    sources = Counter(record["answer_source"] for record in records)
    counts: dict[str, Any] = {
        "answer_sources": {source: sources.get(source, 0) for source in ANSWER_SOURCES},
        "fallback": sum(record["answer_source"] != "answer_tag" for record in records),
        "fallback_correct": sum(record["answer_source"] != "answer_tag" and record["correct"] for record in records),
        "unparsable": sum(record["prediction"] is None for record in records),
    }
    truncated = [record["truncated"] for record in records if record.get("truncated") is not None]
    if truncated:
        counts["truncated"] = sum(truncated)
    return counts


def percent(numerator: float, denominator: int) -> float:
    """`100 * numerator / denominator`, NaN for an empty denominator."""
    return 100.0 * numerator / denominator if denominator else math.nan


def accuracy(records: Iterable[dict[str, Any]]) -> float:
    """Percentage of records marked correct."""
    records = list(records)
    return percent(sum(record["correct"] for record in records), len(records))


def accuracy_by(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[str, float]:
    """Accuracy (percent) per group, groups sorted by name."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[str(key(record))].append(record)
    return {name: accuracy(groups[name]) for name in sorted(groups)}


def scoring_mode(records: list[dict[str, Any]], judge: Any | None) -> str:
    """`"rule"` when no judge took part, `"judge"` when it decided every item, `"rule+judge"` when it decided some."""
    judged = sum(record["mode"] == JUDGE_MODE for record in records)
    if judge is None or judged == 0:
        return RULE_MODE
    return JUDGE_MODE if judged == len(records) else f"{RULE_MODE}+{JUDGE_MODE}"


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per headline metric of each benchmark, with the scoring mode and the answer-extraction counts."""
    lines = [
        "| benchmark | metric | value | scoring | items | fallback | right via fallback | unparsable |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        answers = result["answers"]
        for position, (metric, value) in enumerate(result["metrics"].items()):
            # the counts belong to the benchmark, not to each metric: shown once, on its first row
            counts = (
                f"{result['num_items']} | {answers['fallback']} | {answers['fallback_correct']} | {answers['unparsable']}"
                if position == 0
                else " | | | "
            )
            lines.append(f"| {name} | {metric} | {value:.2f} | {result['scoring_mode']} | {counts} |")
    return "\n".join(lines)


def benchmark_result(
    records: list[dict[str, Any]],
    metrics: dict[str, float],
    breakdown: dict[str, Any] | None = None,
    judge: Any | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What one benchmark contributes to the output JSON: headline metrics (what the markdown table shows), finer
    breakdowns, how the answers were read and scored, and the per-item records the metrics are computed from."""
    result: dict[str, Any] = {
        "scoring_mode": scoring_mode(records, judge),
        "num_items": len(records),
        "metrics": metrics,
        "breakdown": breakdown or {},
        "answers": answer_counts(records),
    }
    if judge is not None:
        result["judge"] = {
            **judge.settings(),
            "asked": sum(bool(record.get("judge_asked")) for record in records),
            "failed": sum(bool(record.get("judge_failed")) for record in records),
        }
    result.update(extra)
    result["records"] = records
    return result
