"""The official benchmarks' rule-based answer reading, restated here as the reference of the differential suite
(`test_official_differential.py`). Each function gives the behaviour of the named function in the named file, written
afresh from reading it (the facts, not the code); where the official pipeline stops applying rules (it asks a language
model, or picks at random), the function says so instead of answering.

- MMMU: github.com/MMMU-Benchmark/MMMU, eval/eval_utils.py: `parse_multi_choice_response`, `check_is_number`,
  `normalize_str`, `extract_numbers`, `parse_open_response`, `eval_multi_choice`, `eval_open`; options lettered as in
  eval/data_utils.py `get_multi_choice_info`.
- MathVista: github.com/lupantech/MathVista, evaluation/extract_answer.py `extract_answer` (the rules tried before the
  GPT call; `quick_extract` is off by default) and evaluation/calculate_score.py `get_most_similar`,
  `normalize_extracted_answer`, `safe_equal`.
- VLMEvalKit (MMStar, MMBench): github.com/open-compass/VLMEvalKit, vlmeval/utils/matching_util.py `can_infer_option`,
  `can_infer_text`, `can_infer`, as called by vlmeval/dataset/utils/multiple_choice.py `extract_answer_from_item`
  (a rule-based result is used as is; otherwise ChatGPT is asked).
- lmms-eval: github.com/EvolvingLMMs-Lab/lmms-eval, lmms_eval/tasks/mme/utils.py `parse_pred_ans` and
  `mme_process_results`; lmms_eval/tasks/chartqa/utils.py `relaxed_correctness`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE, MODEL, GUESS = "rule", "model", "guess"


@dataclass(frozen=True)
class Reading:
    """What the official pipeline makes of an answer: a value read by its rules (`how="rule"`), or the step it takes
    instead: ask a model (`"model"`) or pick at random (`"guess"`), `value` then being `None`."""

    value: object
    how: str = RULE


# ---------------------------------------------------------------------------------------------------------------------
# MMMU eval/eval_utils.py
# ---------------------------------------------------------------------------------------------------------------------


def mmmu_multi_choice(response: str, options: list[str]) -> Reading:
    """`parse_multi_choice_response`: the ends stripped of `, . ! ? ; : '` (one character kind after the other), the
    text padded with a space on each side; candidates are the letters written `(X)`, else ` X `, else (for more than
    five words) the options whose text is inside the lower-cased response; several candidates -> the one found last
    (`rfind`; the largest index, the first candidate on a tie); none -> `random.choice` (a guess)."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    for char in ",.!?;:'":
        response = response.strip(char)
    padded = f" {response} "
    bracketed = [letter for letter in letters if f"({letter})" in padded]
    if bracketed:
        return Reading(_last_found(bracketed, [padded.rfind(f"({letter})") for letter in bracketed]))
    spaced = [letter for letter in letters if f" {letter} " in padded]
    if spaced:
        return Reading(_last_found(spaced, [padded.rfind(f" {letter} ") for letter in spaced]))
    if len(padded.split()) > 5:
        lowered = padded.lower()
        by_text = [letter for letter, option in zip(letters, options) if option.lower() in lowered]
        if by_text:
            positions = [lowered.rfind(options[letters.index(letter)].lower()) for letter in by_text]
            return Reading(_last_found(by_text, positions))
    return Reading(None, GUESS)


def _last_found(candidates: list[str], positions: list[int]) -> str:
    best = max(positions)  # numpy's argmax: the first of the largest
    return candidates[positions.index(best)]


def _mmmu_is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def mmmu_normalize(text: str) -> list[object]:
    """`normalize_str`: a number (commas removed) as a float rounded to 2 places; other text lower-cased, a single
    character padded with a space before, and separately after."""
    text = text.strip()
    if _mmmu_is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def mmmu_numbers(text: str) -> list[str]:
    """`extract_numbers`: the matches of three patterns, each run over the whole text (so a number may also be found as
    its parts): thousands with commas, scientific notation, and plain numbers whose whole part ends at `\\b`."""
    with_commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", text)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", text)
    plain = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", text)
    return with_commas + scientific + plain


def mmmu_open(response: str) -> list[object]:
    """`parse_open_response`: the key sub-responses (per sentence or line of the lower-cased response, the shortest
    text after one of the indicator phrases, "=" counting in the last one; the whole response if none), plus the
    numbers in them, each normalised."""
    text = response.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", text)
    indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
    keys = []
    for index, sentence in enumerate(sentences):
        if index == len(sentences) - 1:
            indicators = [*indicators, "="]
        tails = [sentence.split(indicator)[-1].strip() for indicator in indicators if indicator in sentence]
        shortest = None
        for tail in tails:  # the first of the shortest, and an empty tail never replaces an earlier one
            if not shortest or len(tail) < len(shortest):
                shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    keys = keys or [text]
    found = list(keys)
    for key in keys:
        found.extend(mmmu_numbers(key))
    return list({value for item in found for value in mmmu_normalize(item)})


def mmmu_eval_open(gold: str | list[str], predictions: list[object]) -> bool:
    """`eval_open`: a string prediction is right if a normalised text answer is inside it, a number if it is one of the
    normalised answers."""
    answers = [value for answer in (gold if isinstance(gold, list) else [gold]) for value in mmmu_normalize(answer)]
    for prediction in predictions:
        if isinstance(prediction, str):
            if any(isinstance(answer, str) and answer in prediction for answer in answers):
                return True
        elif prediction in answers:
            return True
    return False


# ---------------------------------------------------------------------------------------------------------------------
# MathVista evaluation/extract_answer.py and evaluation/calculate_score.py
# ---------------------------------------------------------------------------------------------------------------------


def mathvista_extract(response: str, row: dict) -> Reading:
    """`extract_answer` before its GPT call: `""` for an empty response; the response itself when it is one of the
    choices; `str(int(response))` for an integer answer, `str(float(response))` for a float answer, when Python reads
    it so. Anything else goes to GPT."""
    if response == "":
        return Reading("")
    if row["question_type"] == "multi_choice" and response in row["choices"]:
        return Reading(response)
    for answer_type, convert in (("integer", int), ("float", float)):
        if row["answer_type"] == answer_type:
            try:
                return Reading(str(convert(response)))
            except ValueError:
                pass
    return Reading(None, MODEL)


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def mathvista_normalize(extraction: str, row: dict) -> Reading:
    """`normalize_extracted_answer`: for multiple choice, the first `(x)` letter if any (upper-cased), a letter in range
    becomes its choice, any other text the choice nearest in edit distance (a guess unless it is that choice); an
    integer answer `str(int(float(x)))`, a float answer `str(round(float(x), precision))` (None when float() fails); a
    list `str(x)`."""
    if row["question_type"] == "multi_choice":
        extraction = extraction.strip()
        letters = re.findall(r"\(([a-zA-Z])\)", extraction)
        if letters:
            extraction = letters[0].upper()
        choices = row["choices"]
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            return Reading(choices[options.index(extraction)])
        distances = [levenshtein(extraction, choice) for choice in choices]
        nearest = choices[distances.index(min(distances))]
        return Reading(nearest, RULE if min(distances) == 0 else GUESS)
    try:
        if row["answer_type"] == "integer":
            return Reading(str(int(float(extraction))))
        if row["answer_type"] == "float":
            return Reading(str(round(float(extraction), int(row["precision"]))))
    except ValueError:
        return Reading(None)
    return Reading(str(extraction))


# ---------------------------------------------------------------------------------------------------------------------
# VLMEvalKit vlmeval/utils/matching_util.py
# ---------------------------------------------------------------------------------------------------------------------

_VLMEVALKIT_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


def vlmevalkit_option(answer: str, choices: dict[str, str]) -> str | None:
    """`can_infer_option` (VERBOSE unset): a known refusal is "Z"; with `.()[],:;!*#{}` replaced by spaces, exactly one
    choice letter among the words, and that word within the last five (`index > len - 5`), is the letter; no choice
    letter but a word "Z" is "Z"; otherwise nothing."""
    if "Failed to obtain answer via API" in answer:
        return None
    if any(refusal in answer for refusal in _VLMEVALKIT_REFUSALS):
        return "Z"
    words = answer.translate(str.maketrans({c: " " for c in ".()[],:;!*#{}"})).split()
    present = [letter for letter in choices if letter in words]
    if len(present) == 1:
        letter = present[0]
        return letter if words.index(letter) > len(words) - 5 else None
    if not present and "Z" in words:
        return "Z"
    return None


def vlmevalkit_text(answer: str, choices: dict[str, str]) -> str | None:
    """`can_infer_text`: for an answer at most twice as long as the choices' texts together, the one choice whose
    lower-cased text is a substring of the lower-cased answer."""
    if len(answer) > 2 * sum(len(str(text)) for text in choices.values()):
        return None
    inside = [letter for letter, text in choices.items() if str(text).lower() in answer.lower()]
    return inside[0] if len(inside) == 1 else None


def vlmevalkit_choice(answer: str, choices: dict[str, str]) -> Reading:
    """`can_infer`, as `extract_answer_from_item` uses it: the option reading, else the text reading, else ChatGPT."""
    letter = vlmevalkit_option(answer, choices) or vlmevalkit_text(answer, choices)
    return Reading(letter) if letter else Reading(None, MODEL)


# ---------------------------------------------------------------------------------------------------------------------
# lmms-eval lmms_eval/tasks/mme/utils.py and lmms_eval/tasks/chartqa/utils.py
# ---------------------------------------------------------------------------------------------------------------------


def lmms_eval_mme(prediction: str) -> str:
    """`parse_pred_ans`: lower-cased, stripped, periods removed; "yes"/"no" as is; one character: "y" -> yes, "n" -> no,
    else other; otherwise "yes" if the first four characters hold it, else "no" if they do, else "other"."""
    text = prediction.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def lmms_eval_chartqa(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    """`relaxed_correctness`: when float() reads both (a trailing "%" divides by 100) and the target is not zero, right
    within `max_relative_change`; otherwise a case-insensitive exact match."""

    def to_float(text: str) -> float | None:
        try:
            return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            return None

    prediction_value, target_value = to_float(prediction), to_float(target)
    if prediction_value is not None and target_value:
        return abs(prediction_value - target_value) / abs(target_value) <= max_relative_change
    return prediction.lower() == target.lower()
