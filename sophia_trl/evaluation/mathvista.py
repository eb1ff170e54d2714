"""MathVista (testmini, 1,000 items): `AI4Math/MathVista`, split `testmini`.

Fields read: `pid`, `question`, `choices` (list of option texts, `None` for free-form), `answer` (the option text for
multiple choice, else the value as a string), `question_type` (`"multi_choice"` / `"free_form"`), `answer_type`
(`"text"`, `"integer"`, `"float"`, `"list"`), `precision` (decimal places of a float answer), `unit` (optional),
`metadata` (optional; its `task` gives the per-task breakdown), and the image from `decoded_image` (a PIL image) or
`image` (a path relative to the local copy).

Scoring follows the official `normalize_extracted_answer` + `safe_equal`: a letter (or the text of an option) is
mapped to the option's text and compared with the answer; an integer answer compares `int(float(x))` (the official
code truncates); a float answer compares both values rounded to the item's `precision`; a list answer
(`"[2007, 2008]"`) compares item by item, the answer read as the official extraction writes it (`[2007, 2008]`,
`2007, 2008`, `between 2007 and 2008`: with a numeric answer, the numbers written, by value); text compares as a
string (case and spaces ignored). One deliberate difference: when the answer names no option, the official code
picks the option with the smallest edit distance, a guess; here the item is unparsable, counted and scored wrong.

The official pipeline extracts answers with GPT-4 first. With a judge (`--judge_base_url`), responses whose answer is
not already a clean option or number are read by the judge, as the official quick checks do; without one, the
rule-based extraction of `sophia_trl.evaluation.answers` is used. Each record says which mode decided it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import (
    ExtractedAnswer,
    answer_with_fallback,
    free_text_answer,
    option_letters,
    parse_choice,
    parse_number,
)
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge, JudgedItems
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, accuracy_by, benchmark_result, make_record

NAME = "mathvista"
HUB_ID = "AI4Math/MathVista"
SPLITS = ["testmini"]
REQUIRED = ("pid", "question", "choices", "answer", "question_type", "answer_type", "precision")
FIELDS = (*REQUIRED, "unit", "metadata")


def load(source: str | None = None) -> Any:
    """The testmini rows, from the Hub or a local copy (see `load_benchmark`)."""
    rows = load_benchmark(HUB_ID, [None], SPLITS, source, required=REQUIRED)
    if "decoded_image" not in rows.column_names and "image" not in rows.column_names:
        raise ValueError(f"{source or HUB_ID} has neither `decoded_image` nor `image`: {NAME} needs the images.")
    return rows


def _options(row: dict[str, Any]) -> list[str]:
    return [str(choice) for choice in (row.get("choices") or [])]


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style prompt: the question (with its unit), the lettered options for multiple choice."""
    image = to_image(row.get("decoded_image"))
    if image is None:
        image = to_image(row.get("image"), base_dir)
    problem = row["question"] + (f" (Unit: {row['unit']})" if row.get("unit") else "")
    if row["question_type"] == "multi_choice":
        return r1_prompt(problem, "multiple choice", [image], system_prompt, options=_options(row))
    problem_type = "numerical" if row["answer_type"] in ("integer", "float") else "free-form"
    return r1_prompt(problem, problem_type, [image], system_prompt)


def _precision(row: dict[str, Any]) -> int:
    value = row.get("precision")
    return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def normalize_prediction(text: str, row: dict[str, Any]) -> str | None:
    """The official normalisation of an extracted answer (without the nearest-option guess); `None` if unparsable."""
    if row["question_type"] == "multi_choice":
        options = _options(row)
        letter = parse_choice(text, len(options), options)
        return None if letter is None else options[ord(letter) - ord("A")]
    if row["answer_type"] == "integer":
        number = parse_number(text)
        return None if number is None else str(int(number))
    if row["answer_type"] == "float":
        number = parse_number(text)
        return None if number is None else str(round(number, _precision(row)))
    if row["answer_type"] == "list":
        items = parse_list(text, numeric=_is_numeric_list(str(row["answer"])))
        return None if not items else "[" + ", ".join(items) + "]"
    return text.strip() or None


# One number of a list, as written ("2007", "-0.5", "−3"); a list of thousands with separators cannot be told apart
# from a list of small numbers, so "1,000" is two items.
_LIST_NUMBER = re.compile(r"(?<![\d.])[-\u2212]?\d+(?:\.\d+)?(?!\.?\d)")


def parse_list(text: str, numeric: bool) -> list[str]:
    """The items of a list answer, from its last `[...]` or else the whole text: the numbers written when `numeric`
    (`"between 2007 and 2008"`; each as its value, `"2008.0"` is `"2008"`), else the items separated by commas,
    semicolons or "and", lower-cased and without quotes."""
    brackets = re.findall(r"\[([^\[\]]*)\]", text)
    body = brackets[-1] if brackets else text
    if numeric:
        return [_number_item(float(n.replace("\u2212", "-"))) for n in _LIST_NUMBER.findall(body)]
    items = re.split(r"\s*(?:[,;]|\band\b)\s*", body.strip().rstrip("."))
    return [" ".join(item.strip("'\" ").lower().split()) for item in items if item.strip("'\" ")]


def _number_item(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _is_numeric_list(answer: str) -> bool:
    items = parse_list(answer, numeric=False)
    return bool(items) and all(_LIST_NUMBER.fullmatch(item) for item in items)


def is_correct(prediction: str | None, row: dict[str, Any]) -> bool:
    """Compares a normalised prediction with the item's answer as described in the module docstring."""
    if prediction is None:
        return False
    answer = str(row["answer"]).strip()
    if row["question_type"] != "multi_choice" and row["answer_type"] in ("integer", "float"):
        try:
            reference = float(answer)
        except ValueError:
            return prediction == answer
        if row["answer_type"] == "integer":
            return int(float(prediction)) == int(reference)
        return round(float(prediction), _precision(row)) == round(reference, _precision(row))
    if row["question_type"] == "multi_choice":
        return prediction == answer
    if row["answer_type"] == "list":
        return prediction == normalize_prediction(answer, row)
    return "".join(prediction.split()).lower() == "".join(answer.split()).lower()


def _is_clean(answer: ExtractedAnswer, row: dict[str, Any]) -> bool:
    """The official quick checks: an answer tag holding exactly an option (letter or text) or a plain number."""
    if answer.source != "answer_tag":
        return False
    text = answer.text.strip()
    if row["question_type"] == "multi_choice":
        options = _options(row)
        return text in option_letters(len(options)) or text in options
    if row["answer_type"] in ("integer", "float"):
        try:
            float(text)
            return True
        except ValueError:
            return False
    return True


def _judge_question(row: dict[str, Any]) -> str:
    options = _options(row)
    if not options:
        return row["question"]
    lettered = "\n".join(f"({letter}) {text}" for letter, text in zip(option_letters(len(options)), options))
    return f"{row['question']}\nChoices:\n{lettered}"


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns metrics (percent) and per-item records."""
    answers = [answer_with_fallback(row["response"]) for row in rows]
    texts = [
        answer.text
        if row["question_type"] == "multi_choice" or row["answer_type"] in ("integer", "float")
        # free text: the tag content, else the last line, not a whole paragraph of reasoning
        else free_text_answer(answer)
        for row, answer in zip(rows, answers)
    ]
    judged = JudgedItems(judge, len(rows))
    ask = [i for i, (row, answer) in enumerate(zip(rows, answers)) if not _is_clean(answer, row)]
    judged.extract(ask, [_judge_question(rows[i]) for i in ask], [rows[i]["response"] for i in ask], texts)
    records = []
    for i, (row, answer) in enumerate(zip(rows, answers)):
        prediction = normalize_prediction(texts[i], row) if texts[i] else None
        correct = is_correct(prediction, row)
        records.append(make_record(row, FIELDS, answer, prediction, correct, **judged.record_fields(i)))
    breakdown = {"question_type": accuracy_by(records, lambda r: r["question_type"])}
    if all(isinstance(record.get("metadata"), dict) for record in records):
        breakdown["task"] = accuracy_by(records, lambda r: r["metadata"].get("task"))
    return benchmark_result(records, {"accuracy": accuracy(records)}, breakdown, judge)
