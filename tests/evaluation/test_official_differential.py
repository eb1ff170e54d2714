"""Differential suite: several hundred generated responses per benchmark, each scored by the benchmark's `score` (the
path `eval/evaluate.py` takes) and by the official scoring rules restated in `official_scorers.py` (MMMU's
`eval_utils`, MathVista's `extract_answer` + `calculate_score`, VLMEvalKit's `can_infer` for MMStar and MMBench,
lmms-eval's MME and ChartQA rules).

Both sides read the same answer text: the `<answer>` tag's content, else the fallback text (see
`sophia_trl.evaluation.answers`). Each response carries what it means (`Case.meant`: the letter, value or yes/no a
careful reader takes from it; `None` for a hedge or no answer). Where the official pipeline leaves its rules (VLMEvalKit
asks ChatGPT, MathVista asks GPT-4 to extract), that meaning stands in for the model's answer and goes through the rest
of the official scoring; where it picks at random (MMMU's letter, MathVista's nearest option), no verdict is compared.

Every difference left is listed in `KNOWN_DIFFERENCES` with its reason, and `eval/README.md` holds the agreement table
and the list rendered from this suite (`test_readme_reports_this_suite` fails with the text to paste when they drift).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import official_scorers as official
import pytest

from sophia_trl.evaluation import chartqa, mathvista, mmbench, mme, mmmu, mmstar
from sophia_trl.evaluation.answers import answer_with_fallback

SEED = 25
README = Path(__file__).parents[2] / "eval" / "README.md"


@dataclass(frozen=True)
class Case:
    form: str  # how the response is written, e.g. "option text in a sentence"
    response: str
    row: dict
    meant: object = None  # the letter / value / "yes" / "no" the response gives; None for no answer or a hedge


def tag(answer: str) -> str:
    return f"<think>Let me look at the image.</think><answer>{answer}</answer>"


def answer_text(case: Case) -> str:
    """The text both sides read: the tag's content, else the fallback text."""
    return answer_with_fallback(case.response).text


# ---------------------------------------------------------------------------------------------------------------------
# Multiple choice (MMStar, MMBench, MMMU, MathVista): the forms of the issue and their variants
# ---------------------------------------------------------------------------------------------------------------------

OPTION_SETS = [
    ["30°", "40°", "50°", "60°"],
    ["-3", "3", "0", "6"],
    ["2", "4", "6", "8"],
    ["$5", "$7", "$9", "$11"],
    ["China", "Japan", "India", "Korea"],
    ["South China", "China", "Japan", "India"],
    ["I", "II", "III", "IV"],
    ["B", "A", "D", "C"],  # options that are letters: only the forms that name a letter
    ["A circle", "A triangle", "A line", "A square"],
    ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"],
    ["The cat is sleeping", "The dog is running", "The bird is singing", "The fish is swimming"],
    ["red", "green", "blue"],
    ["1.5", "2.5", "3.5", "4.5", "5.5"],
]

# form -> the answer tag's content, or (forms starting "no tags") the whole response; fields: the letter meant and its
# text, two other letters (`other`, `third`) and their texts
MC_FORMS: dict[str, str] = {
    "letter": "{letter}",
    "letter with a period": "{letter}.",
    "bracketed letter": "({letter})",
    "lower-case letter": "{lower}",
    "boxed letter": "\\boxed{{{letter}}}",
    "bold letter": "**{letter}**",
    "letter and its text": "{letter}. {text}",
    "bracketed letter and its text": "({letter}) {text}",
    "stated letter": "The answer is {letter}.",
    "stated bracketed letter": "The correct option is ({letter}).",
    "option text": "{text}",
    "option text in a sentence": "It is {text}.",
    "option text after 'I think'": "I think it is {text}",
    "option text ending a longer sentence": "After simplifying, the final value is {text}",
    "final letter after a discussion": "Option {other} gives {other_text} and option {third} gives {third_text}, so {letter}.",
    "letter said correct, another wrong": "{letter} is correct; {other} is wrong.",
    "letter, not another": "{letter}, not {other}.",
    "stated letter, then a rejected option": "The answer is {letter}. Option {other} would give {other_text}, which does not fit.",
    "hedge between two letters": "{letter} or {other}",
    "no tags: reasoning cut off after the stated letter": "<think>Option {other} gives {other_text}, which is too small. So the answer is {letter}",
    "no tags: letter after the reasoning": "<think>Comparing the options.</think> The answer is {letter}.",
    "no tags: the letter alone": "{letter}",
    "no tags: the letter, then a reason": "{letter}\nOption {other} does not match the figure.",
    "empty answer": "",
}  # fmt: skip
NO_ANSWER = {"hedge between two letters", "empty answer"}
# With options that are themselves letters, an answer written as an option's text cannot be told from a letter.
TEXT_FORMS = {
    "option text",
    "option text in a sentence",
    "option text after 'I think'",
    "option text ending a longer sentence",
    "lower-case letter",
}


def multiple_choice_cases(rng: random.Random) -> list[tuple[Case, list[str], str]]:
    """(case, options, gold letter) triples: every form over every option set, once answering the gold option and once
    another one (a hedge or an empty answer answers nothing)."""
    triples = []
    for form, options, right in itertools.product(MC_FORMS, OPTION_SETS, (True, False)):
        if options == ["B", "A", "D", "C"] and form in TEXT_FORMS:
            form = "letter and its text"
        letters = [chr(ord("A") + i) for i in range(len(options))]
        gold = rng.choice(letters)
        meant = gold if right else rng.choice([letter for letter in letters if letter != gold])
        other, third = rng.sample([letter for letter in letters if letter != meant], 2)
        text = dict(zip(letters, options))
        fields = {"letter": meant, "lower": meant.lower(), "text": text[meant], "other": other,
                  "other_text": text[other], "third": third, "third_text": text[third]}  # fmt: skip
        response = MC_FORMS[form].format(**fields)
        response = response if form.startswith("no tags") else tag(response)
        triples.append((Case(form, response, {}, None if form in NO_ANSWER else meant), options, gold))
    return triples


def mmstar_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i, (case, options, gold) in enumerate(multiple_choice_cases(rng)):
        listed = ", ".join(f"{chr(ord('A') + j)}: {text}" for j, text in enumerate(options))
        row = {"index": i, "question": f"Which one?\nOptions: {listed}", "answer": gold, "category": "math"}
        cases.append(Case(case.form, case.response, row, case.meant))
    return cases


def mmbench_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i, (case, options, gold) in enumerate(multiple_choice_cases(rng)):
        row = {"index": i, "question": "Which one?", "hint": None, "answer": gold, "category": "math"}
        row.update({chr(ord("A") + j): text for j, text in enumerate(options)})
        cases.append(Case(case.form, case.response, row, case.meant))
    return cases


def letter_meaning(case: Case) -> bool:
    return case.meant is not None and case.meant == case.row["answer"]


def vlmevalkit_verdict(case: Case, options: list[str]) -> tuple[str, bool | None]:
    text = answer_text(case)
    choices = {chr(ord("A") + j): option for j, option in enumerate(options)}
    reading = official.vlmevalkit_choice(text, choices)
    letter = reading.value if reading.how == official.RULE else case.meant  # ChatGPT reads what the answer means
    return reading.how, letter == case.row["answer"]


# ---------------------------------------------------------------------------------------------------------------------
# MMMU: multiple choice (the forms above) and open questions
# ---------------------------------------------------------------------------------------------------------------------

# form -> response from the value it writes; the gold is that value or another one
MMMU_OPEN_FORMS: dict[str, Callable[[str], str]] = {
    "number": lambda v: tag(v),
    "equation": lambda v: tag(f"x = {v}"),
    "stated number": lambda v: tag(f"The answer is {v}."),
    "number with a unit": lambda v: tag(f"{v} cm"),
    "number with a unit's exponent": lambda v: tag(f"{v} cm^2"),
    "number in a sentence": lambda v: tag(f"So the area is {v} square units"),
    "Unicode minus": lambda v: tag(v.replace("-", "\u2212")),
    "no tags: reasoning cut off after the number": lambda v: f"<think>Adding the two parts gives {v}",
}
MMMU_OPEN_VALUES = ["4", "62.8", "-0.5", "1000", "12", "-3", "0.25", "7"]


def mmmu_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i, (case, options, gold) in enumerate(multiple_choice_cases(rng)):
        row = {"id": f"validation_Math_{i}", "question": "q", "question_type": "multiple-choice", "answer": gold,
               "options": repr(options)}  # fmt: skip
        cases.append(Case(case.form, case.response, row, case.meant))
    for i in range(150):
        form = list(MMMU_OPEN_FORMS)[i % len(MMMU_OPEN_FORMS)]
        value = rng.choice(MMMU_OPEN_VALUES)
        if form == "Unicode minus" and not value.startswith("-"):
            value = "-" + value
        gold = value if rng.random() < 0.5 else rng.choice([v for v in MMMU_OPEN_VALUES if v != value] + ["2"])
        row = {"id": f"validation_Math_open_{i}", "question": "q", "question_type": "open", "answer": gold,
               "options": "[]"}  # fmt: skip
        cases.append(Case(f"open: {form}", MMMU_OPEN_FORMS[form](value), row, value))
    return cases


def mmmu_meaning(case: Case) -> bool:
    if case.row["question_type"] == "open":
        return official.mmmu_eval_open(case.row["answer"], official.mmmu_normalize(case.meant))
    return letter_meaning(case)


def mmmu_verdict(case: Case) -> tuple[str, bool | None]:
    text = answer_text(case)
    row = case.row
    if row["question_type"] == "open":
        return official.RULE, official.mmmu_eval_open(row["answer"], official.mmmu_open(text))
    reading = official.mmmu_multi_choice(text, mmmu.parse_options(row["options"]))
    return reading.how, None if reading.how == official.GUESS else reading.value == row["answer"]


# ---------------------------------------------------------------------------------------------------------------------
# MathVista: multiple choice (the forms above), integers, floats and lists
# ---------------------------------------------------------------------------------------------------------------------

# form -> response from the value as written; integers and floats
MATHVISTA_NUMBER_FORMS: dict[str, Callable[[str], str]] = {
    "number": lambda v: tag(v),
    "number with a trailing zero": lambda v: tag(v + ("0" if "." in v else ".0")),
    "number with a unit": lambda v: tag(f"{v} cm"),
    "number with a unit's exponent": lambda v: tag(f"{v} cm^2"),
    "number with a LaTeX unit's exponent": lambda v: tag(f"{v} \\text{{cm}}^{{2}}"),
    "number in a sentence with a unit's exponent": lambda v: tag(f"The area is {v} cm^2."),
    "boxed number": lambda v: tag(f"\\boxed{{{v}}}"),
    "equation": lambda v: tag(f"x = {v}"),
    "no tags: reasoning cut off after the number": lambda v: f"<think>So the area is {v} cm^2",
    "no tags: the number, then a reason": lambda v: f"{v}\nThe shaded part covers {v} square units.",
}
# form -> response from the list's items
MATHVISTA_LIST_FORMS: dict[str, Callable[[list[str]], str]] = {
    "list in brackets": lambda items: tag("[" + ", ".join(items) + "]"),
    "list in brackets without spaces": lambda items: tag("[" + ",".join(items) + "]"),
    "list without brackets": lambda items: tag(", ".join(items)),
    "list joined by 'and'": lambda items: tag(", ".join(items[:-1]) + " and " + items[-1]),
    "list in a sentence": lambda items: tag(f"The peak is between {' and '.join(items)}."),
    "no tags: list in the last line": lambda items: f"<think>Reading the chart.\nThe years are {' and '.join(items)}",
}
INTEGERS = ["4", "12", "25000", "-3", "7", "1990"]
FLOATS = [("62.8", 1), ("1.75", 2), ("-0.5", 1), ("3.14", 2), ("0.6", 1)]
LISTS = [["2007", "2008"], ["1", "2", "3"], ["0.5", "1.5"], ["2010", "2012", "2014"]]


def mathvista_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i, (case, options, gold) in enumerate(multiple_choice_cases(rng)):
        row = {"pid": str(i), "question": "q", "precision": None, "unit": None, "question_type": "multi_choice",
               "answer_type": "text", "choices": options, "answer": options[ord(gold) - ord("A")]}  # fmt: skip
        cases.append(Case(case.form, case.response, row, case.meant))
    for i in range(200):
        form = list(MATHVISTA_NUMBER_FORMS)[i % len(MATHVISTA_NUMBER_FORMS)]
        if i % 2:
            value, precision = rng.choice(FLOATS)
            answer_type, others = "float", [v for v, p in FLOATS if p == precision]
        else:
            value, precision, answer_type, others = rng.choice(INTEGERS), None, "integer", INTEGERS
        gold = value if rng.random() < 0.5 else rng.choice([v for v in others if v != value] or [value])
        row = {"pid": f"number_{i}", "question": "q", "precision": precision, "unit": None,
               "question_type": "free_form", "answer_type": answer_type, "choices": None, "answer": gold}  # fmt: skip
        cases.append(Case(form, MATHVISTA_NUMBER_FORMS[form](value), row, value))
    for i in range(100):
        form = list(MATHVISTA_LIST_FORMS)[i % len(MATHVISTA_LIST_FORMS)]
        items = rng.choice(LISTS)
        gold = items if rng.random() < 0.5 else rng.choice([other for other in LISTS if other != items])
        row = {"pid": f"list_{i}", "question": "q", "precision": None, "unit": None, "question_type": "free_form",
               "answer_type": "list", "choices": None, "answer": "[" + ", ".join(gold) + "]"}  # fmt: skip
        cases.append(Case(form, MATHVISTA_LIST_FORMS[form](items), row, "[" + ", ".join(items) + "]"))
    return cases


def mathvista_meaning(case: Case) -> bool:
    if case.meant is None:
        return False
    if case.row["question_type"] == "multi_choice":
        return case.row["choices"][ord(case.meant) - ord("A")] == case.row["answer"]
    return official.mathvista_normalize(str(case.meant), case.row).value == case.row["answer"]


def mathvista_verdict(case: Case) -> tuple[str, bool | None]:
    row = case.row
    extraction = official.mathvista_extract(answer_text(case), row)
    how = extraction.how
    if how == official.MODEL:  # GPT-4 extracts what the response means; a letter for multiple choice
        extraction = official.Reading("" if case.meant is None else str(case.meant))
    normalized = official.mathvista_normalize(extraction.value, row)
    if normalized.how == official.GUESS:
        return official.GUESS, None
    return how, normalized.value == row["answer"]


# ---------------------------------------------------------------------------------------------------------------------
# MME (lmms-eval) and ChartQA (lmms-eval)
# ---------------------------------------------------------------------------------------------------------------------

MME_FORMS: dict[str, Callable[[str], str]] = {
    "yes/no": lambda a: tag(a.capitalize()),
    "yes/no, lower case with a period": lambda a: tag(f"{a}."),
    "one letter": lambda a: tag(a[0].upper()),
    "one lower-case letter with a period": lambda a: tag(f"{a[0]}."),
    "yes/no and a reason": lambda a: tag(f"{a.capitalize()}, there {'is' if a == 'yes' else 'is no'} dog."),
    "stated yes/no": lambda a: tag(f"The answer is {a}."),
    "boxed yes/no": lambda a: tag(f"\\boxed{{{a.capitalize()}}}"),
    "no tags: yes/no, then an explanation": lambda a: f"{a.capitalize()}\nThe image shows a brown dog on the grass.",
    "no tags: yes/no after the reasoning": lambda a: f"<think>x</think>\n{a.capitalize()}. The dog is on the left.",
    "no tags: reasoning cut off, yes/no last": lambda a: f"<think>Let me look at the image.\n{a.capitalize()}",
}


def mme_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(400):
        form = list(MME_FORMS)[i % len(MME_FORMS)]
        meant, gold = rng.choice(["yes", "no"]), rng.choice(["Yes", "No"])
        row = {"question_id": f"{i}.png", "question": "Is there a dog?", "answer": gold, "category": "existence"}
        cases.append(Case(form, MME_FORMS[form](meant), row, meant))
    return cases


def mme_meaning(case: Case) -> bool:
    return case.meant == case.row["answer"].lower()


def mme_verdict(case: Case) -> tuple[str, bool | None]:
    return official.RULE, official.lmms_eval_mme(answer_text(case)) == case.row["answer"].lower()


def _numeric(value: str) -> bool:
    return value[-1].isdigit()


# form -> (the answer it writes for a label value, the response around that answer)
CHARTQA_FORMS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "value": (lambda v: v, tag),
    "value with a trailing zero": (lambda v: v + ("0" if "." in v else ".0") if _numeric(v) else v, tag),
    "value 3 % off": (lambda v: f"{float(v) * 1.03:g}" if _numeric(v) else v.upper(), tag),
    "value 8 % off": (lambda v: f"{float(v) * 1.08:g}" if _numeric(v) else v.lower(), tag),
    "percentage": (lambda v: f"{v}%" if _numeric(v) else v, tag),
    "stated value": (lambda v: v, lambda w: tag(f"The answer is {w}")),
    "no tags: value, then an explanation": (lambda v: v, lambda w: f"{w}\nThe tallest bar is labelled {w}."),
    "no tags: reasoning cut off, value last": (lambda v: v, lambda w: f"<think>Reading the chart\n{w}"),
}
CHARTQA_LABELS = ["25", "0.25", "1200", "17.5", "-3", "Yes", "No", "Brazil", "0"]


def chartqa_cases(rng: random.Random) -> list[Case]:
    cases = []
    for i in range(400):
        form = list(CHARTQA_FORMS)[i % len(CHARTQA_FORMS)]
        write, respond = CHARTQA_FORMS[form]
        value = rng.choice(CHARTQA_LABELS)
        label = value if rng.random() < 0.6 else rng.choice(CHARTQA_LABELS)
        written = write(value)
        meant = None if form == "stated value" else written  # "The answer is 25" is not an answer ChartQA accepts
        row = {"query": "q", "label": [label], "human_or_machine": 0}
        cases.append(Case(form, respond(written), row, meant))
    return cases


def chartqa_meaning(case: Case) -> bool:
    return case.meant is not None and official.lmms_eval_chartqa(case.meant, case.row["label"][0])


def chartqa_verdict(case: Case) -> tuple[str, bool | None]:
    return official.RULE, official.lmms_eval_chartqa(answer_text(case), case.row["label"][0])


# ---------------------------------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------------------------------


# name -> (our module, the generated cases, the official verdict (how, correct), the verdict on what the response means)
BENCHMARKS = {
    "MMStar": (mmstar, mmstar_cases, lambda case: vlmevalkit_verdict(case, mmstar.options_of(case.row)), letter_meaning),
    "MMBench": (mmbench, mmbench_cases, lambda case: vlmevalkit_verdict(case, mmbench.options_of(case.row)),
                letter_meaning),
    "MMMU": (mmmu, mmmu_cases, mmmu_verdict, mmmu_meaning),
    "MathVista": (mathvista, mathvista_cases, mathvista_verdict, mathvista_meaning),
    "MME": (mme, mme_cases, mme_verdict, mme_meaning),
    "ChartQA": (chartqa, chartqa_cases, chartqa_verdict, chartqa_meaning),
}  # fmt: skip
REFERENCES = {
    "MMStar": "VLMEvalKit `can_infer`",
    "MMBench": "VLMEvalKit `can_infer`",
    "MMMU": "MMMU `eval_utils`",
    "MathVista": "MathVista `extract_answer` + `calculate_score`",
    "MME": "lmms-eval `parse_pred_ans`",
    "ChartQA": "lmms-eval `relaxed_correctness`",
}

# Why our verdict differs from the official rule's, where it does: a short name -> the explanation.
REASONS = {
    "a letter inside an option's text": (
        "the reference reads a capital letter inside an option's text (`A square`, `Vitamin D`, an option that is the "
        "letter `C`) as that letter; here the answer names the option whose text it writes"
    ),
    "the rejected option's text": (
        "two letters are written, so VLMEvalKit's text rule runs and finds the text of the option the response "
        "rejects (`The answer is D. Option A would give the cat ...`); here the letter stated as the answer"
    ),
    "the last letter written": (
        "MMMU takes the letter written last, here the one the response rejects (`B is correct; A is wrong`, `B, not "
        "A`); here the letter it states or keeps"
    ),
    "an option's text inside a word": (
        "MMMU's text search (answers of more than five words) finds an option's text inside a word or inside another "
        "option's text (`I` in `IV`, `3` in `-3`) and takes the one found last; here the option whose text is "
        "written whole"
    ),
    "Unicode minus": "a Unicode minus is a minus sign; MMMU's number pattern knows only `-` and reads `\u22120.5` as 0.5",
    "the answer line of an untagged response": (
        "without an answer tag, lmms-eval reads the whole response (reasoning cut off before `Yes` is no answer, a "
        "value followed by an explanation is not the label); here the answer line: a bare first line followed by an "
        "explanation, else the last line"
    ),
}
# (benchmark, how the official pipeline decided, form) -> the reason(s) our verdict differs (keys of REASONS)
KNOWN_DIFFERENCES: dict[tuple[str, str, str], str | tuple[str, ...]] = {
    **{
        (benchmark, official.RULE, form): "a letter inside an option's text"
        for benchmark in ("MMStar", "MMBench", "MMMU")
        for form in (
            "option text",
            "option text in a sentence",
            "option text after 'I think'",
            "option text ending a longer sentence",
        )
    },
    ("MMMU", official.RULE, "option text ending a longer sentence"): (
        "a letter inside an option's text",
        "an option's text inside a word",
    ),
    ("MMMU", official.RULE, "letter and its text"): "a letter inside an option's text",
    **{
        (benchmark, official.RULE, form): "the rejected option's text"
        for benchmark in ("MMStar", "MMBench")
        for form in ("no tags: reasoning cut off after the stated letter", "stated letter, then a rejected option")
    },
    **{
        ("MMMU", official.RULE, form): "the last letter written"
        for form in (
            "letter said correct, another wrong",
            "letter, not another",
            "stated letter, then a rejected option",
        )
    },
    ("MMMU", official.RULE, "open: Unicode minus"): "Unicode minus",
    ("MME", official.RULE, "no tags: reasoning cut off, yes/no last"): "the answer line of an untagged response",
    ("ChartQA", official.RULE, "no tags: reasoning cut off, value last"): "the answer line of an untagged response",
    ("ChartQA", official.RULE, "no tags: value, then an explanation"): "the answer line of an untagged response",
}


@dataclass(frozen=True)
class Outcome:
    case: Case
    how: str  # official.RULE / MODEL / GUESS
    official: bool | None  # None for a guess
    ours: bool
    meaning: bool  # the verdict on what the response means


@cache
def outcomes(benchmark: str) -> tuple[Outcome, ...]:
    module, make_cases, verdict, meaning = BENCHMARKS[benchmark]
    cases = make_cases(random.Random(f"{SEED}-{benchmark}"))
    records = module.score([{**case.row, "response": case.response} for case in cases])["records"]
    return tuple(
        Outcome(case, *verdict(case), record["correct"], meaning(case)) for case, record in zip(cases, records)
    )


def differences(benchmark: str) -> Counter:
    return Counter(
        (benchmark, o.how, o.case.form)
        for o in outcomes(benchmark)
        if o.how != official.GUESS and o.ours != o.official
    )


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_every_difference_from_the_official_scorer_is_known(benchmark):
    found = differences(benchmark)
    known = {key for key in KNOWN_DIFFERENCES if key[0] == benchmark}
    unexplained = {key: found[key] for key in set(found) - known}
    assert not unexplained, f"differences without a reason in KNOWN_DIFFERENCES: {unexplained}"
    assert not known - set(found), f"KNOWN_DIFFERENCES lists differences that no longer occur: {known - set(found)}"


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_where_the_official_pipeline_asks_a_model_we_read_what_the_response_means(benchmark):
    asked = [o for o in outcomes(benchmark) if o.how == official.MODEL]
    assert all(o.ours == o.official for o in asked), [o.case.response for o in asked if o.ours != o.official][:5]


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_where_we_differ_we_score_what_the_response_means(benchmark):
    wrong = [
        o for o in outcomes(benchmark) if o.how != official.GUESS and o.ours != o.official and o.ours != o.meaning
    ]
    assert not wrong, [(o.case.form, o.case.response, o.case.row) for o in wrong[:5]]


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_where_the_official_scorer_guesses_we_score_what_the_response_means_or_nothing(benchmark):
    guesses = [o for o in outcomes(benchmark) if o.how == official.GUESS]
    assert all(o.ours in (o.meaning, False) for o in guesses)


@pytest.mark.parametrize("benchmark", list(BENCHMARKS))
def test_suite_is_several_hundred_responses_of_every_form(benchmark):
    forms = Counter(o.case.form for o in outcomes(benchmark))
    assert sum(forms.values()) >= 400
    assert min(forms.values()) >= 10, forms


def _agreement(group: list[Outcome]) -> str:
    if not group:
        return "-"
    same = sum(o.ours == o.official for o in group)
    return f"{same}/{len(group)} ({100 * same / len(group):.1f} %)"


def agreement_table() -> str:
    lines = [
        "| benchmark | reference | responses | official rules decide: agree | official asks a model: agree with "
        "the meaning | official guesses |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for benchmark in BENCHMARKS:
        by_how = defaultdict(list)
        for o in outcomes(benchmark):
            by_how[o.how].append(o)
        lines.append(
            f"| {benchmark} | {REFERENCES[benchmark]} | {len(outcomes(benchmark))} | "
            f"{_agreement(by_how[official.RULE])} | {_agreement(by_how[official.MODEL])} | "
            f"{len(by_how[official.GUESS])} |"
        )
    return "\n".join(lines)


def differences_table() -> str:
    lines = ["| benchmark | official step | difference | forms (responses) |", "|---|---|---|---|"]
    for benchmark in BENCHMARKS:
        found = differences(benchmark)
        grouped = defaultdict(list)
        for key in sorted(found):
            _, how, form = key
            reasons = KNOWN_DIFFERENCES.get(key, "?")
            grouped[how, reasons if isinstance(reasons, str) else "; ".join(reasons)].append(f"{form} ({found[key]})")
        for (how, reason), forms in grouped.items():
            lines.append(f"| {benchmark} | {how} | {reason} | {'; '.join(forms)} |")
    lines.append("")
    lines.extend(f"- **{name}**: {text}." for name, text in REASONS.items())
    return "\n".join(lines)


def test_readme_reports_this_suite():
    readme = README.read_text()
    for table in (agreement_table(), differences_table()):
        assert table in readme, f"eval/README.md should hold this table (from {Path(__file__).name}):\n\n{table}\n"
