"""MMBench (dev, English) with circular evaluation: `lmms-lab/MMBench`, config `en`, split `dev`.

Fields read: `index`, `question`, `hint` (optional context, shown before the question), the option columns `A`, `B`,
`C`, `D` (absent options are empty, `None` or `"nan"`), `answer` (the letter), `category`, and the image from `image`
(a PIL image, a path, or base64 as in the official TSV files).

Circular evaluation (MMBench paper, VLMEvalKit): each question is asked once per rotation of its options, the copies
having `index + k * 1_000_000` for rotation k; a question counts as right only if every rotation is answered right.
The Hub release already holds the rotated copies; a copy without them (only indices below 1,000,000) is expanded
here. Reported: circular accuracy overall and per category, and the accuracy of the unrotated pass alone
(`single_pass`, what a plain evaluation would give). VLMEvalKit's ChatGPT fallback for answers that name no option
is not used: those rows are unparsable and wrong.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import answer_with_fallback, parse_choice
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import is_missing, load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, benchmark_result, make_record, percent

logger = logging.getLogger(__name__)

NAME = "mmbench"
HUB_ID = "lmms-lab/MMBench"
CONFIG = "en"
SPLITS = ["dev"]
OPTION_COLUMNS = ("A", "B", "C", "D", "E")
REQUIRED = ("index", "question", "answer", "A", "B")
FIELDS = ("index", "question", "hint", "A", "B", "C", "D", "E", "answer", "category")
ROTATION_OFFSET = 1_000_000


def options_of(row: dict[str, Any]) -> list[str]:
    """The texts of the options present, in letter order."""
    options = []
    for column in OPTION_COLUMNS:
        if is_missing(row.get(column)):
            break
        options.append(str(row[column]))
    return options


def rotate(row: dict[str, Any], k: int) -> dict[str, Any]:
    """The k-th circular rotation of a question: option k becomes A, and the answer letter follows its option."""
    options = options_of(row)
    n = len(options)
    rotated = dict(row)
    for j, column in enumerate(OPTION_COLUMNS):
        rotated[column] = options[(j + k) % n] if j < n else None
    answer_position = ord(str(row["answer"]).strip().upper()) - ord("A")
    rotated["answer"] = chr(ord("A") + (answer_position - k) % n)
    rotated["index"] = int(row["index"]) + k * ROTATION_OFFSET
    return rotated


class CircularRows(Sequence):
    """A lazy view that adds the rotated copies of every question (rotation 0 first) to rows that lack them."""

    def __init__(self, rows: Any):
        self.rows = rows
        # Only the option columns are read here, so that no image is decoded before it is needed.
        option_rows = rows.select_columns([column for column in OPTION_COLUMNS if column in rows.column_names])
        self._entries = [(i, k) for i, options in enumerate(option_rows) for k in range(len(options_of(options)))]

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, position: int) -> dict[str, Any]:
        i, k = self._entries[position]
        return rotate(self.rows[i], k)


def load(source: str | None = None) -> Any:
    """The dev rows with every rotation, from the Hub or a local copy (see `load_benchmark`)."""
    rows = load_benchmark(HUB_ID, [CONFIG], SPLITS, source, required=(*REQUIRED, "image"))
    if max(int(index) for index in rows["index"]) < ROTATION_OFFSET:
        logger.info("MMBench: %s holds no rotated copies; adding them for circular evaluation.", source or HUB_ID)
        return CircularRows(rows)
    return rows


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style multiple-choice prompt: the hint (when there is one), the question, the lettered options."""
    problem = row["question"] if is_missing(row.get("hint")) else f"{row['hint']}\n{row['question']}"
    images = [to_image(row.get("image"), base_dir)]
    return r1_prompt(problem, "multiple choice", images, system_prompt, options=options_of(row))


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response` (every rotation of each question); returns circular
    accuracy overall and per category, and per-row records. The scoring is rule-based, so `judge` is not used."""
    records = []
    for row in rows:
        answer = answer_with_fallback(row["response"])
        options = options_of(row)
        prediction = parse_choice(answer.text, len(options), options)
        correct = prediction is not None and prediction == str(row["answer"]).strip().upper()
        question = int(row["index"]) % ROTATION_OFFSET
        records.append(make_record(row, FIELDS, answer, prediction, correct, question_group=question))

    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record["question_group"]].append(record)
    incomplete = sorted(q for q, group in groups.items() if len(group) < len(options_of(group[0])))
    if incomplete:
        logger.warning(
            "MMBench: %d question(s) lack some rotations (e.g. index %d); they are scored on the rotations present.",
            len(incomplete),
            incomplete[0],
        )
    passed = {q: all(record["correct"] for record in group) for q, group in groups.items()}
    categories: dict[str, list[bool]] = defaultdict(list)
    for q, group in groups.items():
        categories[str(group[0].get("category"))].append(passed[q])
    per_category = {name: percent(sum(values), len(values)) for name, values in sorted(categories.items())}
    metrics = {
        "circular": percent(sum(passed.values()), len(passed)),
        "single_pass": accuracy(r for r in records if int(r["index"]) < ROTATION_OFFSET),
    }
    return benchmark_result(
        records,
        metrics,
        {"category": per_category},
        num_questions=len(groups),
        incomplete_questions=len(incomplete),
    )
