"""MME (2,374 yes/no questions, two per image): `lmms-lab/MME`, split `test`.

Fields read: `question_id` (the image's file name, shared by its two questions), `question` (ends with "Please
answer yes or no."), `answer` (`"Yes"` / `"No"`), `category`, and the image from `image`.

Scoring follows lmms-eval's MME task (`lmms_eval/tasks/mme/utils.py`, `parse_pred_ans`, which extends MME's
`eval_tool/calculation.py` with one-letter answers): lower-cased and without periods, the answer is "yes" or "no" when
it is exactly that, `y` or `n`, or when its first four characters contain it, else "other" (wrong, counted as
unparsable). Without an answer tag, the fallback text is read so first (lmms-eval reads the whole response, so `Yes`
followed by an explanation is "yes"), then its answer line (`free_text_answer`: a reasoning that ends on `Yes`).

Per category: accuracy over questions and accuracy+ over images (both of an image's questions right), the category's
score being `100 * (acc + acc+)` (max 200). The perception score sums the 10 perception categories (max 2000), the
cognition score the 4 cognition categories (max 800).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import ExtractedAnswer, answer_with_fallback, free_text_answer
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.report import benchmark_result, make_record, percent

logger = logging.getLogger(__name__)

NAME = "mme"
HUB_ID = "lmms-lab/MME"
SPLITS = ["test"]
REQUIRED = ("question_id", "question", "answer", "category")
FIELDS = REQUIRED
PERCEPTION = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def load(source: str | None = None) -> Any:
    """The test rows, from the Hub or a local copy (see `load_benchmark`)."""
    return load_benchmark(HUB_ID, [None], SPLITS, source, required=(*REQUIRED, "image"))


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style prompt for a short answer; the question already asks for yes or no."""
    return r1_prompt(row["question"], "text", [to_image(row.get("image"), base_dir)], system_prompt)


def parse_yes_no(text: str) -> str | None:
    """lmms-eval's `parse_pred_ans`: `"yes"`/`"no"` when the answer (lower-cased, periods removed) is that, `"y"`/`"n"`,
    or starts with it (its first four characters contain it), `None` for MME's "other"."""
    text = text.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text)
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return None


def read_yes_no(answer: ExtractedAnswer) -> str | None:
    """The tag content read by `parse_yes_no`; without a tag, the whole fallback text, then its answer line."""
    prediction = parse_yes_no(answer.text)
    if prediction is None and answer.used_fallback:
        prediction = parse_yes_no(free_text_answer(answer))
    return prediction


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns the perception and cognition scores and per
    category accuracy, accuracy+ and score. MME's official scoring is rule-based, so `judge` is not used."""
    records = []
    for row in rows:
        answer = answer_with_fallback(row["response"])
        prediction = read_yes_no(answer)
        correct = prediction is not None and prediction == str(row["answer"]).strip().lower()
        records.append(make_record(row, FIELDS, answer, prediction, correct))

    by_category: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_category[record["category"]][str(record["question_id"])].append(record["correct"])
    categories = {}
    for category in sorted(by_category):
        images = by_category[category]
        results = [ok for answers in images.values() for ok in answers]
        acc = percent(sum(results), len(results))
        acc_plus = percent(sum(all(answers) for answers in images.values()), len(images))
        categories[category] = {"accuracy": acc, "accuracy_plus": acc_plus, "score": acc + acc_plus}
    unknown = sorted(set(categories) - set(PERCEPTION) - set(COGNITION))
    if unknown:
        raise ValueError(f"MME rows have unknown categories {unknown}; expected {PERCEPTION + COGNITION}.")
    missing = [category for category in PERCEPTION + COGNITION if category not in categories]
    if missing:
        logger.warning("MME: no rows for %s; the sums cover the categories present only.", ", ".join(missing))
    perception = sum(categories[c]["score"] for c in PERCEPTION if c in categories)
    cognition = sum(categories[c]["score"] for c in COGNITION if c in categories)
    metrics = {"perception": perception, "cognition": cognition, "total": perception + cognition}
    return benchmark_result(records, metrics, {"category": categories}, missing_categories=missing)
