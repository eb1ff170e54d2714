"""MathVerse (testmini): `AI4Math/MathVerse`, config `testmini`, split `testmini`; the five versions the paper
reports: Text Dominant, Text Lite, Vision Intensive, Vision Dominant, Vision Only (788 problems each).

Fields read: `sample_index`, `problem_index`, `problem_version`, `question` (the version's own question text; for a
multiple-choice item it holds the choices), `answer` (an option letter for multiple choice, else the value or
expression), `question_type` (`"multi-choice"` / `"free-form"`), `question_for_eval` (the full question, used only to
count a multiple-choice item's options and to give the judge context), and the image from `image`.

Metrics: accuracy per version, their mean (`average`, the "All" number MathVerse papers report; with equal version
sizes it equals the accuracy over all items, also given as `overall`).

Rule-based scoring: multiple choice compares option letters (an answer that is exactly one option's text, as listed
in the question's `Choices:` block, is that option); free-form compares with `math-verify` (0.5 = 1/2,
60 = 60°) through the training reward's time-bounded `numerical_reward`, after an exact-match check. The official pipeline uses GPT-4 twice, to
extract the answer and to judge it against the reference; with a judge (`--judge_base_url`) the same two steps are
taken for items the rules do not settle (extraction when the answer tag does not hold a clean answer, the equivalence
check when the rule comparison says "wrong"). Each record says which mode decided it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import answer_with_fallback, free_text_answer, parse_choice
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge, JudgedItems
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, accuracy_by, benchmark_result, make_record
from sophia_trl.rewards.scorers import numerical_reward

logger = logging.getLogger(__name__)

NAME = "mathverse"
HUB_ID = "AI4Math/MathVerse"
CONFIG = "testmini"
SPLITS = ["testmini"]
VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
REQUIRED = ("sample_index", "problem_version", "question", "answer", "question_type")
FIELDS = (*REQUIRED, "problem_index", "question_for_eval")

# Vision Only items carry the whole question in the image; their `question` text can be empty.
_VISION_ONLY_QUESTION = "Answer the question shown in the image."


def load(source: str | None = None) -> Any:
    """The rows of the five versions, from the Hub or a local copy (see `load_benchmark`)."""
    rows = load_benchmark(HUB_ID, [CONFIG], SPLITS, source, required=(*REQUIRED, "image"))
    kept = rows.filter(lambda version: version in VERSIONS, input_columns="problem_version")
    if len(kept) < len(rows):
        logger.info("MathVerse: kept %d of %d rows (versions %s).", len(kept), len(rows), ", ".join(VERSIONS))
    return kept


def _is_multiple_choice(row: dict[str, Any]) -> bool:
    return row["question_type"].replace("-", " ").strip().lower() == "multi choice"


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style prompt; the choices are already in the version's question text."""
    problem = row["question"].strip() or _VISION_ONLY_QUESTION
    problem_type = "multiple choice" if _is_multiple_choice(row) else "free-form"
    return r1_prompt(problem, problem_type, [to_image(row.get("image"), base_dir)], system_prompt)


def _choices_block(row: dict[str, Any]) -> str:
    text = row.get("question_for_eval") or row["question"]
    parts = re.split(r"Choices\s*:", text, flags=re.IGNORECASE)
    return parts[-1] if len(parts) > 1 else ""


def _options(row: dict[str, Any]) -> list[str]:
    """The option texts of the question's `Choices:` block (`A:3`, `(B) 4`, `C. 5`, one per line), in letter order;
    `[]` when the block does not list them as A, B, C, ... from A (Vision Only questions show them in the image)."""
    found = re.findall(r"^\s*\(?([A-H])\)?\s*[:.)]\s*(.*?)\s*$", _choices_block(row), flags=re.MULTILINE)
    letters = [letter for letter, _ in found]
    return [text for _, text in found] if letters == [chr(ord("A") + i) for i in range(len(letters))] else []


def _num_options(row: dict[str, Any]) -> int:
    letters = re.findall(r"(?:^|\n|\s)\(?([A-H])\s*[:.)]", _choices_block(row))
    gold = row["answer"].strip()[:1].upper()
    return max([4, *(ord(letter) - ord("A") + 1 for letter in letters + [gold] if letter.isalpha())])


def _math_equal(prediction: str, reference: str) -> bool:
    if _normalize(prediction) == _normalize(reference):
        return True
    try:
        # the training reward's check: math-verify, time-bounded in any thread
        return numerical_reward(prediction, reference) == 1.0
    except ValueError:  # a reference math-verify cannot read (text, intervals): only the exact match above counts
        return False


def _judge_question(row: dict[str, Any]) -> str:
    return row.get("question_for_eval") or row["question"]


def _normalize(text: str) -> str:
    return "".join(text.split()).lower().rstrip(".")


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns metrics (percent) and per-item records."""
    answers = [answer_with_fallback(row["response"]) for row in rows]
    texts = [
        answer.text if _is_multiple_choice(row) else free_text_answer(answer) for row, answer in zip(rows, answers)
    ]
    judged = JudgedItems(judge, len(rows))

    def clean(i: int) -> bool:
        if answers[i].source != "answer_tag":
            return False
        return not _is_multiple_choice(rows[i]) or re.fullmatch(r"\(?[A-Ha-h]\)?\.?", texts[i].strip()) is not None

    ask = [i for i in range(len(rows)) if not clean(i)]
    judged.extract(ask, [_judge_question(rows[i]) for i in ask], [rows[i]["response"] for i in ask], texts)

    predictions: list[str | None] = []
    correct: list[bool] = []
    for row, text in zip(rows, texts):
        if _is_multiple_choice(row):
            prediction = parse_choice(text, _num_options(row), _options(row) or None) if text else None
            correct.append(prediction is not None and prediction == row["answer"].strip().upper())
        else:
            prediction = text.strip() or None
            correct.append(prediction is not None and _math_equal(prediction, str(row["answer"]).strip()))
        predictions.append(prediction)

    # The official second step: the judge decides equivalence where the rule comparison found none.
    recheck = [i for i in range(len(rows)) if predictions[i] is not None and not correct[i]]
    references = [str(rows[i]["answer"]) for i in recheck]
    candidates = [str(predictions[i]) for i in recheck]
    judged.check(recheck, [_judge_question(rows[i]) for i in recheck], references, candidates, correct)

    records = [
        make_record(row, FIELDS, answer, prediction, ok, **judged.record_fields(i))
        for i, (row, answer, prediction, ok) in enumerate(zip(rows, answers, predictions, correct))
    ]
    per_version = accuracy_by(records, lambda r: r["problem_version"])
    present = [version for version in VERSIONS if version in per_version]
    metrics = {"average": sum(per_version[v] for v in present) / len(present) if present else float("nan")}
    metrics.update({version: per_version[version] for version in present})
    metrics["overall"] = accuracy(records)
    return benchmark_result(records, metrics, {"problem_version": per_version}, judge)
