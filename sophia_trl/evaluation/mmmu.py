"""MMMU (dev + validation, 150 + 900 items): `MMMU/MMMU`, one configuration per subject (30), splits `dev` and
`validation`.

Fields read: `id` (e.g. `"validation_Art_Theory_12"`: split, subject, number), `question` (with `<image i>`
placeholders, kept as written; the images are shown before the text), `options` (a Python-literal list of option
texts, `"[]"` for open questions), `answer` (a letter for multiple choice; the value, or a literal list of accepted
values, for open questions), `question_type` (`"multiple-choice"` / `"open"`), and the images from `image_1` ...
`image_7`.

Scoring follows MMMU's reference code (`parse_multi_choice_response`, `parse_open_response`, `extract_numbers`,
`eval_multi_choice`, `eval_open` in MMMU's `eval/eval_utils.py`), applied to the extracted answer. A multiple-choice
answer inside the answer tag is first read as the other benchmarks read it (`parse_choice`: `B. $7`, `\\boxed{C}`,
`b`, the option's text, the letter stated as the answer), and by MMMU's parser only when that reads nothing (a hedge
such as `(A) or (B)` is then read as the reference reads it); text without the tag is read by MMMU's parser. A whole
number is a
number only when a word boundary follows its digits, as in the reference: `"H2O"`, `"2x"` and `"10cm"` hold no
number. Deliberate differences, each removing a way a wrong answer is counted right:

- when no option can be read, the reference picks a random letter; here the item is unparsable, counted, and scored
  wrong, so two runs of the same predictions give the same number;
- inside the answer tag, the letter the answer states wins over the reference's reading: `The answer is B. Option A is
  wrong` is B (the reference reads " A "), and `B. A` with option B's text "A" is B;
- a Unicode minus (`"−0.5"`) is a minus sign (the reference reads 0.5); `"2.5 × 10^4"` is 25000 (the reference reads
  2.5, 10 and 4);
- no number is also read as one of its parts: `"1,000"` is not also 0, `"1e3"` not also 3, and a fraction `"3/2"`
  is not read as 3 or 2 (the reference reads both; it never reads 1.5).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from sophia_trl.evaluation.answers import answer_with_fallback, option_letters, parse_choice
from sophia_trl.evaluation.generation import EvalPrompt, r1_prompt
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.report import accuracy, accuracy_by, benchmark_result, make_record

NAME = "mmmu"
HUB_ID = "MMMU/MMMU"
SPLITS = ["dev", "validation"]
SUBJECTS = [
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory", "Basic_Medical_Science",
    "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science", "Design", "Diagnostics_and_Laboratory_Medicine",
    "Economics", "Electronics", "Energy_and_Power", "Finance", "Geography", "History", "Literature", "Manage",
    "Marketing", "Materials", "Math", "Mechanical_Engineering", "Music", "Pharmacy", "Physics", "Psychology",
    "Public_Health", "Sociology",
]  # fmt: skip
REQUIRED = ("id", "question", "options", "answer", "question_type")
FIELDS = (*REQUIRED, "subfield")
IMAGE_COLUMNS = tuple(f"image_{i}" for i in range(1, 8))


def load(source: str | None = None) -> Any:
    """Dev and validation rows of every subject, from the Hub or a local copy (see `load_benchmark`); a clone of the
    Hub repository with some subjects or splits only is evaluated on those it holds, with a warning naming the others
    (the `test` split, whose answers are hidden, is never read)."""
    return load_benchmark(HUB_ID, SUBJECTS, SPLITS, source, required=(*REQUIRED, "image_1"))


def parse_options(value: Any) -> list[str]:
    """MMMU stores options as the text of a Python list; read it as a literal (never evaluated as code)."""
    if isinstance(value, list):
        return [str(option) for option in value]
    parsed = ast.literal_eval(value) if isinstance(value, str) and value.strip() else []
    if not isinstance(parsed, list):
        raise ValueError(f"MMMU options must be a list literal, got {value!r}.")
    return [str(option) for option in parsed]


def _split_and_subject(item_id: str) -> tuple[str, str]:
    match = re.fullmatch(r"(dev|validation|test)_(.+)_\d+", str(item_id))
    return (match.group(1), match.group(2)) if match else ("unknown", "unknown")


def _is_multiple_choice(row: dict[str, Any]) -> bool:
    return row["question_type"] == "multiple-choice"


def build_prompt(
    row: dict[str, Any], base_dir: str | Path | None = None, system_prompt: str | None = None
) -> EvalPrompt:
    """The R1-style prompt with lettered options for multiple choice; every image of the item, in order."""
    images = [image for column in IMAGE_COLUMNS if (image := to_image(row.get(column), base_dir)) is not None]
    if _is_multiple_choice(row):
        options = parse_options(row["options"])
        return r1_prompt(row["question"], "multiple choice", images, system_prompt, options=options)
    return r1_prompt(row["question"], "free-form", images, system_prompt)


# ---------------------------------------------------------------------------------------------------------------------
# MMMU reference parsing (eval/utils/eval_utils.py), without the random fallback
# ---------------------------------------------------------------------------------------------------------------------


def parse_multi_choice_response(response: str, all_choices: list[str], index2ans: dict[str, str]) -> str | None:
    """MMMU's multiple-choice parser; returns `None` where the reference code would pick a random letter."""
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "  # spaces so that a letter is not matched inside a word

    index_ans = True
    ans_with_brack = False
    candidates = []
    for choice in all_choices:  # (A) (B) ...
        if f"({choice})" in response:
            candidates.append(choice)
            ans_with_brack = True
    if not candidates:
        for choice in all_choices:  # A B ...
            if f" {choice} " in response:
                candidates.append(choice)
    if not candidates and len(response.split()) > 5:
        for index, ans in index2ans.items():  # the option's text, in a long enough response
            if ans.lower() in response.lower():
                candidates.append(index)
                index_ans = False
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if index_ans:
        pattern = "({})" if ans_with_brack else " {} "
        positions = [response.rfind(pattern.format(can)) for can in candidates]
    else:
        positions = [response.lower().rfind(index2ans[can].lower()) for can in candidates]
    return candidates[max(range(len(candidates)), key=lambda k: positions[k])]


def _check_is_number(string: str) -> bool:
    try:
        float(string.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(string: str) -> list[str | float]:
    """MMMU's normalisation: numbers to floats rounded to 2 places, text lower-cased; one letter padded by a space."""
    string = string.strip()
    if _check_is_number(string):
        return [round(float(string.replace(",", "")), 2)]
    string = string.lower()
    if len(string) == 1:
        return [" " + string, string + " "]  # avoid trivial matches
    return [string]


# MMMU's number patterns (eval_utils.py `extract_numbers`): thousands commas, scientific notation, and simple numbers,
# where a whole number must end at a word boundary ("2" in "H2O", "2x" or "10cm" is not a number; in "CO2" it is).
_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
# Read before MMMU's patterns (deliberate differences, see the module docstring): a Unicode minus is a minus sign,
# "a × 10^b" is the number a e b, and a fraction "a/b" is not a number MMMU reads (its parts are not either).
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})
_TIMES_TEN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\u00d7|\\times|\\cdot|\*)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?")
_FRACTION = re.compile(r"-?\d+(?:\.\d+)?\s*/\s*-?\d+(?:\.\d+)?")


def extract_numbers(string: str) -> list[str]:
    """Every number in the text, as MMMU's `extract_numbers` finds them (with thousands commas, in scientific notation,
    or plain, a whole number ending at a word boundary), except that no number is also read as one of its parts:
    `"1,000"` is not also 0, `"1e3"` not also 3, and the parts of a fraction `"3/2"` are not numbers."""
    found = []
    for pattern in (_FRACTION, _COMMAS, _SCIENTIFIC):
        if pattern is not _FRACTION:
            found.extend(pattern.findall(string))
        string = pattern.sub(" ", string)
    return found + _SIMPLE.findall(string)


def _normalize_numbers(text: str) -> str:
    """A Unicode minus as "-" and "a × 10^b" as "aeb", so that MMMU's patterns read the number written."""
    return _TIMES_TEN.sub(r"\1e\2", text.translate(_MINUS_SIGNS))


def parse_open_response(response: str) -> list[str | float]:
    """MMMU's open-answer parser: the key sub-responses ("so ...", "the answer is ...") and the numbers in them."""

    def get_key_subresponses(response: str) -> list[str]:
        response = response.strip().strip(".").lower()
        sub_responses = re.split(r"\.\s(?=[A-Z])|\n", response)
        indicators_of_keys = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
        key_responses = []
        for index, resp in enumerate(sub_responses):
            if index == len(sub_responses) - 1:
                indicators_of_keys.extend(["="])  # the last sentence may be just an equation
            shortest_key_response = None
            for indicator in indicators_of_keys:
                if indicator in resp:
                    tail = resp.split(indicator)[-1].strip()
                    if not shortest_key_response or len(tail) < len(shortest_key_response):
                        shortest_key_response = tail
            if shortest_key_response and shortest_key_response.strip() not in [":", ",", ".", "!", "?", ";", "'"]:
                key_responses.append(shortest_key_response)
        return key_responses or [response]

    key_responses = get_key_subresponses(_normalize_numbers(response))
    pred_list: list[Any] = list(key_responses)
    for resp in key_responses:
        pred_list.extend(extract_numbers(resp))
    normalized = [value for pred in pred_list for value in normalize_str(pred)]
    return list(dict.fromkeys(normalized))  # remove duplicates, keep a stable order


def _gold(answer: Any) -> str | list[str]:
    if isinstance(answer, list):
        return [str(a) for a in answer]
    text = str(answer)
    if text.strip().startswith("["):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, list):
                return [str(a) for a in parsed]
        except (ValueError, SyntaxError):
            pass
    return text


def eval_multi_choice(gold: str | list[str], prediction: str | None) -> bool:
    """Exact letter match (any of the accepted letters)."""
    if prediction is None:
        return False
    return prediction in gold if isinstance(gold, list) else prediction == gold


def eval_open(gold: str | list[str], predictions: list[str | float]) -> bool:
    """MMMU's open-answer check: a numeric prediction equals a numeric answer, or a text answer is inside a text
    prediction."""
    norm_answers = [
        value for answer in (gold if isinstance(gold, list) else [gold]) for value in normalize_str(answer)
    ]
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(answer, str) and answer in prediction for answer in norm_answers):
                return True
        elif prediction in norm_answers:
            return True
    return False


def score(rows: list[dict[str, Any]], judge: ChatJudge | None = None) -> dict[str, Any]:
    """Scores rows holding the benchmark fields and `response`; returns metrics (percent) and per-item records.
    MMMU's official scoring is rule-based, so `judge` is not used."""
    records = []
    for row in rows:
        answer = answer_with_fallback(row["response"])
        gold = _gold(row["answer"])
        split, subject = _split_and_subject(row["id"])
        if _is_multiple_choice(row):
            options = parse_options(row["options"])
            letters = option_letters(len(options))
            prediction = parse_choice(answer.text, len(letters), options) if answer.source == "answer_tag" else None
            if prediction is None:
                prediction = parse_multi_choice_response(answer.text, letters, dict(zip(letters, options)))
            correct = eval_multi_choice(gold, prediction)
        else:
            prediction = parse_open_response(answer.text) if answer.text.strip() else None
            correct = prediction is not None and eval_open(gold, prediction)
        records.append(make_record(row, FIELDS, answer, prediction, correct, split=split, subject=subject))
    metrics = {"accuracy": accuracy(records)}
    metrics.update({f"accuracy_{split}": value for split, value in accuracy_by(records, lambda r: r["split"]).items()})
    breakdown = {"subject": accuracy_by(records, lambda r: r["subject"])}
    # A partial copy (or --limit) evaluates some subjects only: the report names them and the others.
    evaluated = sorted({record["subject"] for record in records})
    coverage = {
        "subjects": evaluated,
        "subjects_not_evaluated": [subject for subject in SUBJECTS if subject not in evaluated],
        "splits": sorted({record["split"] for record in records}),
    }
    return benchmark_result(records, metrics, breakdown, coverage=coverage)
