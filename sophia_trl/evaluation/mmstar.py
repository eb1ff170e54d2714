"""MMStar (1,500 multiple-choice items, 6 categories): `Lin-Chen/MMStar`, split `val`.

Fields read: `index`, `question` (the question followed by `"Options: A: ..., B: ..., C: ..., D: ..."`), `answer`
(the option letter), `category`, `l2_category` (optional), and the image from `image`. VLMEvalKit's `MMStar.tsv`
(options in columns `A`-`D`, `l2-category`, base64 images) is read as it is.

Scoring: the option letter read from the answer (a letter, or an option's text, see `parse_choice`) must equal the
answer; accuracy overall and per category (and per `l2_category` when present). VLMEvalKit's fallback of asking
ChatGPT which option a free-form answer means is not used: such answers are counted as unparsable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import answer_with_fallback, parse_choice
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import is_missing, load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, accuracy_by, benchmark_result, make_record

NAME = "mmstar"
HUB_ID = "Lin-Chen/MMStar"
SPLITS = ["val"]
REQUIRED = ("index", "question", "answer", "category")
FIELDS = (*REQUIRED, "l2_category", "A", "B", "C", "D")
# VLMEvalKit's MMStar.tsv: options in columns A-D (the question without them), `l2-category`, base64 `image`.
LAYOUTS = {"VLMEvalKit": {"l2_category": "l2-category", "A": "A", "B": "B"}}
OPTION_COLUMNS = ("A", "B", "C", "D")


def load(source: str | None = None) -> Any:
    """The val rows, from the Hub or a local copy (see `load_benchmark`)."""
    return load_benchmark(HUB_ID, [None], SPLITS, source, required=(*REQUIRED, "image"), layouts=LAYOUTS)


def parse_options(question: str) -> list[str]:
    """The option texts of `"... Options: A: x, B: y, ..."`, in letter order; `[]` when there is no options list."""
    match = re.search(r"Options:\s*(.*)\Z", question, re.DOTALL)
    if match is None:
        return []
    parts = re.split(r"(?:^|,\s*|\n)([A-H]):\s*", match.group(1).strip())
    return [text.strip() for text in parts[2::2]]


def options_of(row: dict[str, Any]) -> list[str]:
    """The option texts: from the question's options list (the Hub release), else from columns A-D (VLMEvalKit)."""
    options = parse_options(row["question"])
    if options:
        return options
    return [str(row[column]) for column in OPTION_COLUMNS if not is_missing(row.get(column))]


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style multiple-choice prompt; the options are in the question text, or lettered from columns A-D."""
    images = [to_image(row.get("image"), base_dir)]
    if parse_options(row["question"]):
        return r1_prompt(row["question"], "multiple choice", images, system_prompt)
    return r1_prompt(row["question"], "multiple choice", images, system_prompt, options=options_of(row))


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns metrics (percent) and per-item records.
    The scoring is rule-based, so `judge` is not used."""
    records = []
    for row in rows:
        answer = answer_with_fallback(row["response"])
        options = options_of(row)
        prediction = parse_choice(answer.text, len(options) or 4, options)
        correct = prediction is not None and prediction == str(row["answer"]).strip().upper()
        records.append(make_record(row, FIELDS, answer, prediction, correct))
    breakdown = {"category": accuracy_by(records, lambda r: r["category"])}
    if all(record.get("l2_category") for record in records):
        breakdown["l2_category"] = accuracy_by(records, lambda r: r["l2_category"])
    metrics = {"accuracy": accuracy(records), **breakdown["category"]}
    return benchmark_result(records, metrics, breakdown)
