"""Differential tables: per benchmark, (response, gold, verdict) cases whose verdict is worked out from the official
scorer's published rule (file and function named above each table). Each case runs through the benchmark's `score`,
the same path `eval/evaluate.py` takes.

Where the official pipeline has no rule for a case (MathVista's and MathVerse's GPT extraction, VLMEvalKit's ChatGPT
fallback) or guesses (MMMU's random letter, MathVista's nearest option), the verdict is the one our documented rules
give (eval/README.md, "Where we differ"): the value the answer writes, else unparsable and wrong, never a guess.
"""

from __future__ import annotations

import pytest

from sophia_trl.evaluation import chartqa, mathverse, mathvista, mmbench, mme, mmmu, mmstar


def tag(answer: str) -> str:
    return f"<think>reasoning</think><answer>{answer}</answer>"


def verdict(module, row: dict) -> bool:
    return module.score([row])["records"][0]["correct"]


# ---------------------------------------------------------------------------------------------------------------------
# MathVista: lupantech/MathVista evaluation/calculate_score.py, `normalize_extracted_answer` + `safe_equal`. A letter
# (or "(X)") maps to its choice text; a choice text is kept as is; an integer answer compares str(int(float(x))); a float
# answer str(round(float(x), precision)); the comparison is exact string equality. The extraction step
# (evaluation/extract_answer.py) is a GPT call; the rule-based reading stands in for it and reads the value written.
# ---------------------------------------------------------------------------------------------------------------------

SIGNED = {"question_type": "multi_choice", "answer_type": "text", "choices": ["-3", "3", "0", "6"], "answer": "-3"}
EVEN = {"question_type": "multi_choice", "answer_type": "text", "choices": ["2", "4", "6", "8"], "answer": "4"}
SHAPES = {"question_type": "multi_choice", "answer_type": "text", "answer": "A square",
          "choices": ["A circle", "A triangle", "A line", "A square"]}  # fmt: skip
INTEGER_4 = {"question_type": "free_form", "answer_type": "integer", "choices": None, "answer": "4"}
INTEGER_25000 = {"question_type": "free_form", "answer_type": "integer", "choices": None, "answer": "25000"}
FLOAT_HALF = {"question_type": "free_form", "answer_type": "float", "choices": None, "answer": "-0.5", "precision": 1}
FLOAT_175 = {"question_type": "free_form", "answer_type": "float", "choices": None, "answer": "1.75", "precision": 2}
LIST = {"question_type": "free_form", "answer_type": "list", "choices": None, "answer": "[1, 2]"}
YEARS = {"question_type": "free_form", "answer_type": "list", "choices": None, "answer": "[2007, 2008]"}
AREA = {"question_type": "free_form", "answer_type": "float", "choices": None, "answer": "62.8", "precision": 1}
COUNTRIES = {"question_type": "multi_choice", "answer_type": "text", "choices": ["China", "Japan", "India", "Korea"],
             "answer": "China"}  # fmt: skip
ROMAN = {"question_type": "multi_choice", "answer_type": "text", "choices": ["I", "II", "III", "IV"], "answer": "I"}

MATHVISTA_CASES = [
    # negative and numeric options: "-3" is exactly choice "-3" (the official nearest-option step finds it at distance 0)
    (tag("-3"), SIGNED, True),
    (tag("3"), SIGNED, False),
    (tag("\u22123"), SIGNED, True),  # Unicode minus: the value -3
    (tag("A"), SIGNED, True),
    (tag("(A) -3"), SIGNED, True),  # "(A)" is read as the letter first
    (tag("B"), SIGNED, False),
    (tag("B. 3"), SIGNED, False),
    (tag("4.0"), EVEN, True),  # 4.0 is the choice 4
    (tag("4"), EVEN, True),
    (tag("C"), EVEN, False),
    # articles are not option letters: the letter stated as the answer (D) wins over "A square"
    (tag("The correct option is D, A square."), SHAPES, True),
    (tag("A square"), SHAPES, True),  # exactly a choice text
    (tag("A"), SHAPES, False),  # the letter A is "A circle"
    (tag("D"), SHAPES, True),
    (tag("A or D"), SHAPES, False),  # two options named: unparsable
    # integers: str(int(float(x)))
    (tag("4"), INTEGER_4, True),
    (tag("4.0"), INTEGER_4, True),
    (tag("4 cm"), INTEGER_4, True),
    (tag("7/4"), INTEGER_4, False),  # 1.75 -> 1, never the denominator 4
    (tag("\u22124"), INTEGER_4, False),  # -4, not 4
    (tag("2.5 \u00d7 10^4"), INTEGER_4, False),  # 25000, never the exponent 4
    (tag("2.5 \u00d7 10^4"), INTEGER_25000, True),
    (tag("2.5 \\times 10^{4}"), INTEGER_25000, True),
    # floats: rounded to the item's precision
    (tag("\u22120.5"), FLOAT_HALF, True),
    (tag("0.5"), FLOAT_HALF, False),
    (tag("-1/2"), FLOAT_HALF, True),
    (tag("\\frac{-1}{2}"), FLOAT_HALF, True),
    (tag("-0.50"), FLOAT_HALF, True),
    (tag("7/4"), FLOAT_175, True),
    (tag("4"), FLOAT_175, False),
    (tag("[1,2]"), LIST, True),  # lists ignore spaces (documented difference)
    # lists as the official GPT extraction writes them ("Extracted answer: [2007, 2008]" in its demo prompt)
    (tag("[2007, 2008]"), YEARS, True),
    (tag("2007, 2008"), YEARS, True),
    (tag("2007 and 2008"), YEARS, True),
    (tag("The peak is between 2007 and 2008."), YEARS, True),
    (tag("[2008, 2007]"), YEARS, False),  # the order is the answer's
    (tag("2007"), YEARS, False),
    # a unit's exponent is not the number: 62.8, never 2
    (tag("62.8 cm^2"), AREA, True),
    (tag("62.8 \\text{cm}^{2}"), AREA, True),
    (tag("The area is 62.8 cm^2."), AREA, True),
    # an option's text inside a sentence is that option; options that are themselves Roman numerals
    (tag("It is China."), COUNTRIES, True),
    (tag("It is Japan."), COUNTRIES, False),
    (tag("A. I"), ROMAN, True),
    (tag("I"), ROMAN, True),
    (tag("IV"), ROMAN, False),
    # the final letter after a discussion of the other options, not the rejected option mentioned last
    (tag("Option B gives 3 and option C gives 0, so A."), SIGNED, True),
    (tag("A is correct; B is wrong."), SIGNED, True),
    # cut-off responses and fallbacks: the last number of the reasoning is read (documented fallback)
    ("<think>The side is 12 / 3, so the side is 4", INTEGER_4, True),
    ("<think>Let me compute 7/4", INTEGER_4, False),  # the last number is 7/4 = 1.75
    ("<think>x</think> The answer is 4.", INTEGER_4, True),
    ("", INTEGER_4, False),
]


@pytest.mark.parametrize("response, gold, expected", MATHVISTA_CASES)
def test_mathvista(response, gold, expected):
    row = {"pid": "1", "question": "q", "precision": None, "unit": None, **gold, "response": response}
    assert verdict(mathvista, row) is expected


# ---------------------------------------------------------------------------------------------------------------------
# MathVerse: ZrrSkywalker/MathVerse evaluation/extract_answer_s1.py (GPT extraction) and score_answer_s2.py (exact
# match of the extraction, else GPT judging equivalence). Rule-based reading: multiple choice compares letters (a
# letter, or exactly one option's text from the question's "Choices:" block); free-form compares values (math-verify).
# ---------------------------------------------------------------------------------------------------------------------

SIGNED_CHOICES = "Which value?\nChoices:\nA:-3\nB:3\nC:0\nD:6"
EVEN_CHOICES = "Which value?\nChoices:\nA:2\nB:4\nC:6\nD:8"
SHAPE_CHOICES = "Which shape?\nChoices:\nA:A circle\nB:A triangle\nC:A line\nD:A square"


def verse_mc(answer: str, question: str = SIGNED_CHOICES) -> dict:
    return {"question_type": "multi-choice", "answer": answer, "question": question, "question_for_eval": question}


def verse_free(answer: str) -> dict:
    return {"question_type": "free-form", "answer": answer, "question": "Find x.", "question_for_eval": "Find x."}


MATHVERSE_CASES = [
    (tag("B"), verse_mc("B"), True),
    (tag("(B)"), verse_mc("B"), True),
    (tag("B. 3"), verse_mc("B"), True),
    (tag("3"), verse_mc("B"), True),  # exactly option B's text
    (tag("-3"), verse_mc("A"), True),  # the minus sign is kept: "-3" is A, not B
    (tag("-3"), verse_mc("B"), False),
    (tag("\u22123"), verse_mc("A"), True),
    (tag("4.0"), verse_mc("B", EVEN_CHOICES), True),
    (tag("The correct option is D, A square."), verse_mc("D", SHAPE_CHOICES), True),
    (tag("A square"), verse_mc("D", SHAPE_CHOICES), True),
    (tag("A"), verse_mc("D", SHAPE_CHOICES), False),
    (tag("A and D"), verse_mc("D", SHAPE_CHOICES), False),  # several options: unparsable
    (tag("E"), verse_mc("A"), False),  # out of range
    (tag(""), verse_mc("A"), False),
    ("<think>I think the answer is B", verse_mc("B"), True),  # cut off: the last letter in range
    ("<think>A triangle has three angles, so C", verse_mc("C", SHAPE_CHOICES), True),
    (tag("\u22120.5"), verse_free("-0.5"), True),
    (tag("0.5"), verse_free("-0.5"), False),
    (tag("-\\frac{1}{2}"), verse_free("-0.5"), True),
    (tag("-1/2"), verse_free("-0.5"), True),
    (tag("7/4"), verse_free("1.75"), True),
    (tag("7/4"), verse_free("4"), False),
    (tag("4"), verse_free("1.75"), False),
    (tag("2.5 \\times 10^{4}"), verse_free("25000"), True),
    (tag("2.5 \\times 10^{4}"), verse_free("4"), False),
    (tag("x = 4"), verse_free("4"), True),
    (tag("4.0"), verse_free("4"), True),
    (tag("\u22124"), verse_free("4"), False),
    (tag("\u22123"), verse_free("-3"), True),
    (tag("isosceles"), verse_free("Isosceles"), True),
    (tag("60"), verse_free("60^\\circ"), True),
]


@pytest.mark.parametrize("response, gold, expected", MATHVERSE_CASES)
def test_mathverse(response, gold, expected):
    row = {"sample_index": "1", "problem_version": "Text Lite", **gold, "response": response}
    assert verdict(mathverse, row) is expected


# ---------------------------------------------------------------------------------------------------------------------
# MMMU: MMMU-Benchmark/MMMU eval/eval_utils.py. Multiple choice: `parse_multi_choice_response` ("(X)" first, then " X ",
# then, for responses of more than 5 words, option texts; several -> the last; none -> random, here unparsable) and
# `eval_multi_choice`. Open: `parse_open_response` (key sub-responses and `extract_numbers`, whose simple-number
# pattern ends with `\b`: digits followed by a letter, as in "H2O", "2x", "10cm", are not numbers) and `eval_open`
# (a number equals a numeric answer rounded to 2 places; a text answer must be inside a text prediction).
# Deliberate differences (eval/README.md): inside the answer tag, a multiple-choice answer is first read as the other
# benchmarks read it (`parse_choice`), MMMU's parser taking over only when that reads nothing; a Unicode minus is a minus
# sign (the reference regex knows only "-" and reads "−0.5" as 0.5); a fraction "a/b" is not read as its parts;
# "a × 10^b" is read as the number it writes.
# ---------------------------------------------------------------------------------------------------------------------

DEGREES = "['30°', '40°', '50°', '60°']"
SIGNED_OPTIONS = "['-3', '3', '0', '6']"
DOLLARS = "['$5', '$7', '$9', '$11']"
COUNTRY_OPTIONS = "['China', 'Japan', 'India', 'Korea']"
ROMAN_OPTIONS = "['I', 'II', 'III', 'IV']"


def mmmu_mc(answer: str, options: str = DEGREES) -> dict:
    return {"question_type": "multiple-choice", "answer": answer, "options": options}


def mmmu_open(answer: str) -> dict:
    return {"question_type": "open", "answer": answer, "options": "[]"}


MMMU_CASES = [
    (tag("B"), mmmu_mc("B"), True),
    (tag("(B)"), mmmu_mc("B"), True),
    (tag("B."), mmmu_mc("B"), True),  # "." is stripped from the ends
    # inside the answer tag, the forms the other benchmarks read (the reference finds no candidate: a random letter)
    (tag("b"), mmmu_mc("B"), True),
    (tag("\\boxed{C}"), mmmu_mc("C"), True),
    (tag("B. $7"), mmmu_mc("B", DOLLARS), True),
    (tag("It is China."), mmmu_mc("A", COUNTRY_OPTIONS), True),
    (tag("A. I"), mmmu_mc("A", ROMAN_OPTIONS), True),
    # the stated letter wins: the reference reads " A " in "The answer is B. Option A is wrong ..."
    (tag("The answer is B. Option A is wrong because it is too small."), mmmu_mc("B"), True),
    ("<think>so it is b", mmmu_mc("B"), False),  # without the tag, MMMU's parser: no candidate
    (tag("(A) or (B)"), mmmu_mc("B"), True),  # two bracketed letters: the last one
    (tag("The angle is 40 degrees which matches option B"), mmmu_mc("B"), True),
    (tag("The angle must therefore be 40° in this figure"), mmmu_mc("B"), True),  # > 5 words: option text
    (tag("40°"), mmmu_mc("B"), True),  # the option's text (the reference searches option texts after 5 words only)
    (tag("A"), mmmu_mc("A", SIGNED_OPTIONS), True),
    (tag("-3"), mmmu_mc("A", SIGNED_OPTIONS), True),  # option A's text
    # option A's text in a short answer ("3" inside "-3" is not option B); the reference finds both "-3" and "3" (> 5
    # words) and takes the one found last, "3"
    (tag("After simplifying, the final value is -3"), mmmu_mc("A", SIGNED_OPTIONS), True),
    ("<think>After simplifying, the final value is -3", mmmu_mc("A", SIGNED_OPTIONS), False),  # untagged: MMMU's
    ("<think>Looking at (C) first, but", mmmu_mc("B"), False),  # cut off: (C) is read
    (tag(""), mmmu_mc("B"), False),
    (tag("H2O"), mmmu_open("2"), False),  # "2" is followed by a letter: not a number
    (tag("CO2"), mmmu_open("2"), True),  # "2" ends the text: a word boundary, a number
    (tag("10cm"), mmmu_open("10"), False),
    (tag("10 cm"), mmmu_open("10"), True),
    (tag("3rd"), mmmu_open("3"), False),
    (tag("2x"), mmmu_open("2"), False),
    (tag("x = 4"), mmmu_open("4"), True),
    (tag("The answer is 1.5."), mmmu_open("1.5"), True),
    (tag("1,000"), mmmu_open("1,000"), True),
    (tag("1e3"), mmmu_open("1000"), True),
    (tag("1e3"), mmmu_open("3"), False),  # never its exponent (the reference's simple pattern also finds "3")
    (tag("1,000"), mmmu_open("0"), False),  # never its last group (the reference's simple pattern also finds "000")
    (tag("3.14159"), mmmu_open("3.14"), True),  # both rounded to 2 places
    (tag("\u22120.5"), mmmu_open("0.5"), False),  # Unicode minus: -0.5
    (tag("\u22120.5"), mmmu_open("-0.5"), True),
    (tag("3/2"), mmmu_open("1.5"), False),  # the reference reads 3 and 2, never 1.5
    (tag("3/2"), mmmu_open("2"), False),  # and never one of its parts here
    (tag("2.5 \u00d7 10^4"), mmmu_open("25000"), True),
    (tag("2.5 \u00d7 10^4"), mmmu_open("4"), False),
    (tag("two"), mmmu_open("['2', 'two']"), True),  # a list of accepted answers
    (tag("It is dark blue"), mmmu_open("blue"), True),  # text answer inside the prediction
    ("<think>x = 2 so y = 9", mmmu_open("9"), True),  # cut off: the key sub-response "9"
]


@pytest.mark.parametrize("response, gold, expected", MMMU_CASES)
def test_mmmu(response, gold, expected):
    row = {"id": "validation_Math_1", "question": "q", **gold, "response": response}
    assert verdict(mmmu, row) is expected


# ---------------------------------------------------------------------------------------------------------------------
# MME: EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/mme/utils.py `parse_pred_ans` (MME's eval_tool/calculation.py rule
# extended with one-letter answers), on the lower-cased answer without periods: "yes"/"no" as is, "y"/"n", else "yes"
# if the first four characters contain it, else "no" if they contain it, else "other" (wrong). lmms-eval reads the
# whole response, so an untagged "Yes" followed by an explanation is "yes".
# ---------------------------------------------------------------------------------------------------------------------

MME_CASES = [
    (tag("Yes"), "Yes", True),
    (tag("yes"), "Yes", True),
    (tag("YES"), "Yes", True),
    (tag("yes."), "Yes", True),
    (tag("No"), "No", True),
    (tag("No"), "Yes", False),
    (tag("No."), "No", True),
    (tag("Yes, there is a dog."), "Yes", True),
    (tag("no, it is not"), "No", True),
    (tag("Not sure"), "No", True),  # "not " contains "no"
    (tag("Nope"), "No", True),
    (tag("None"), "No", True),
    (tag("Nothing"), "No", True),
    (tag("Noted: yes"), "Yes", False),  # "note" contains "no"
    (tag("Yesterday"), "Yes", True),  # "yest" contains "yes"
    (tag("Yes and no"), "Yes", True),
    (tag("Yes and no"), "No", False),
    (tag("maybe"), "Yes", False),
    (tag("There is no dog"), "No", False),  # "ther": other
    (tag("The answer is yes"), "Yes", False),
    (tag("It is yes"), "Yes", False),
    (tag("Y"), "Yes", True),
    (tag("y."), "Yes", True),
    (tag("N"), "No", True),
    (tag("N"), "Yes", False),
    (tag("X"), "Yes", False),  # one letter, neither y nor n: other
    ("Yes\nThe image shows a dog on the grass.", "Yes", True),  # no tags: the whole response starts with "yes"
    ("<think>x</think>\nNo. There is no cat in the picture.\nIt shows a dog.", "No", True),
    (tag("\\boxed{Yes}"), "Yes", False),  # "\box": other
    (tag(" yes"), "Yes", True),
    ("<think>x</think>\nYes", "Yes", True),  # after </think>
    ("<think>x</think>\n\nNo", "Yes", False),
    ("<think>Let me look. Is there a cat? Yes", "Yes", False),  # cut off: the last line starts "let "
    ("<think>Let me look.\nYes", "Yes", True),  # cut off: the last line is "Yes"
    ("<answer>No</answer> wait <answer>Yes</answer>", "Yes", True),  # the last tag
    ("", "Yes", False),
]


@pytest.mark.parametrize("response, gold, expected", MME_CASES)
def test_mme(response, gold, expected):
    row = {"question_id": "1.png", "question": "Is there a dog?", "answer": gold, "category": "existence"}
    assert verdict(mme, {**row, "response": response}) is expected


# ---------------------------------------------------------------------------------------------------------------------
# MMStar and MMBench: VLMEvalKit vlmeval/utils/matching_util.py `can_infer` (`can_infer_option`: exactly one option
# letter among the words, after replacing ".()[],:;!*#{}" by spaces, within the last five words; else `can_infer_text`:
# exactly one option text inside the answer, for an answer at most twice as long as the options), called from vlmeval/dataset/utils/multiple_choice.py `extract_answer_from_item`, which otherwise
# asks ChatGPT (here unparsable). Where `can_infer_option` would count an article "A" as a second letter, or read
# "A square" or "Vitamin C" as the capital letter inside the option's text, the verdict is the option the answer names:
# the letter stated as the answer, or the one option whose text it writes.
# ---------------------------------------------------------------------------------------------------------------------

SIGNED_MC = (["-3", "3", "0", "6"], "A")
EVEN_MC = (["2", "4", "6", "8"], "B")
SHAPES_MC = (["A circle", "A triangle", "A line", "A square"], "D")
COUNTRIES_MC = (["China", "Japan", "India", "Korea"], "A")
REGIONS_MC = (["South China", "China", "Japan", "India"], "B")
ROMAN_MC = (["I", "II", "III", "IV"], "A")
VITAMINS_MC = (["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"], "B")

VLMEVALKIT_CASES = [
    (tag("A"), SIGNED_MC, True),
    (tag("(A)"), SIGNED_MC, True),
    (tag("A. -3"), SIGNED_MC, True),
    (tag("(A) -3"), SIGNED_MC, True),
    (tag("It is A, -3"), SIGNED_MC, True),
    (tag("The correct option is A."), SIGNED_MC, True),
    (tag("-3"), SIGNED_MC, True),  # exactly option A's text; "-3" is not option B's "3"
    (tag("\u22123"), SIGNED_MC, True),
    (tag("3"), SIGNED_MC, False),  # option B
    (tag("C. 0"), (SIGNED_MC[0], "C"), True),
    (tag("0"), (SIGNED_MC[0], "C"), True),
    (tag("6.0"), (SIGNED_MC[0], "D"), True),  # 6.0 is option D's 6
    (tag("A, B"), SIGNED_MC, False),  # two options: unparsable
    (tag("4.0"), EVEN_MC, True),
    (tag("4"), EVEN_MC, True),
    (tag("The correct option is D, A square."), SHAPES_MC, True),
    (tag("D, A square"), SHAPES_MC, True),
    (tag("D. A square"), SHAPES_MC, True),
    (tag("A square"), SHAPES_MC, True),  # option D's whole text, article included
    (tag("square"), SHAPES_MC, True),  # option D's text without its article
    (tag("A circle"), SHAPES_MC, False),
    (tag("A or D"), SHAPES_MC, False),
    (tag("I choose D"), SHAPES_MC, True),
    (tag("Answer: D"), SHAPES_MC, True),
    (tag("**D**"), SHAPES_MC, True),
    (tag("\\boxed{D}"), SHAPES_MC, True),
    (tag("D."), SHAPES_MC, True),
    (tag("B"), SHAPES_MC, False),
    (tag("The answer is C"), SHAPES_MC, False),
    (tag(""), SHAPES_MC, False),
    ("<think>Option D shows a square", SHAPES_MC, True),  # cut off: the one letter in range
    ("<think>x</think> So the answer is (D).", SHAPES_MC, True),
    # an option's text inside a sentence (can_infer_text); "China" inside "South China" is not a second option
    (tag("It is China."), COUNTRIES_MC, True),
    (tag("I think it is China"), COUNTRIES_MC, True),
    (tag("It is Japan."), COUNTRIES_MC, False),
    (tag("China or Japan"), COUNTRIES_MC, False),
    (tag("It is China."), REGIONS_MC, True),
    (tag("It is South China."), REGIONS_MC, False),
    # options that are themselves Roman numerals: the letter followed by its own text, or the text alone
    (tag("A. I"), ROMAN_MC, True),
    (tag("(A) I"), ROMAN_MC, True),
    (tag("I"), ROMAN_MC, True),
    (tag("B. II"), ROMAN_MC, False),
    (tag("IV"), ROMAN_MC, False),
    # an option's text holding a capital letter is not that letter (can_infer_option reads C)
    (tag("It is Vitamin C"), VITAMINS_MC, True),
    # the final letter after reasoning that discussed other options: the rejected options do not win
    (tag("Option A gives 30, option C gives 50, so D."), SHAPES_MC, True),
    (tag("Checking each option: A: too small, B: too large. So D"), SHAPES_MC, True),
    (tag("D is correct; B is wrong."), SHAPES_MC, True),
    (tag("D, not B."), SHAPES_MC, True),
]


@pytest.mark.parametrize("response, gold, expected", VLMEVALKIT_CASES)
def test_mmstar(response, gold, expected):
    options, answer = gold
    listed = ", ".join(f"{letter}: {text}" for letter, text in zip("ABCD", options))
    row = {"index": 1, "question": f"Which one?\nOptions: {listed}", "answer": answer, "category": "math"}
    assert verdict(mmstar, {**row, "response": response}) is expected


@pytest.mark.parametrize("response, gold, expected", VLMEVALKIT_CASES)
def test_mmbench(response, gold, expected):
    options, answer = gold
    row = {"index": 1, "question": "Which one?", "hint": None, "answer": answer, "category": "math"}
    row.update(dict(zip("ABCD", options)))
    assert verdict(mmbench, {**row, "response": response}) is expected


# ---------------------------------------------------------------------------------------------------------------------
# ChartQA: relaxed accuracy, pix2struct's `relaxed_correctness` (as in lmms-eval lmms_eval/tasks/chartqa/utils.py):
# when float() reads both (a trailing "%" divides by 100) and the target is non-zero, within 5 % relative error;
# otherwise exact match ignoring case. float() does not read a Unicode minus, "7/4", "1,200" or "2.5 × 10^4": those
# answers are compared as strings.
# ---------------------------------------------------------------------------------------------------------------------

CHARTQA_CASES = [
    (tag("25"), "25", True),
    (tag("25.0"), "25", True),
    (tag("26"), "25", True),  # 4 %
    (tag("24"), "25", True),
    (tag("23.75"), "25", True),  # exactly 5 %
    (tag("23.7"), "25", False),  # 5.2 %
    (tag("27"), "25", False),  # 8 %
    (tag("25%"), "0.25", True),
    (tag("25%"), "25", False),  # 0.25 vs 25
    (tag("1.2e3"), "1200", True),
    (tag("1,200"), "1200", False),  # float() fails: string comparison
    (tag("$25"), "25", False),
    (tag("4.0"), "4", True),
    (tag("-25"), "-25", True),
    (tag("-26"), "-25", True),
    (tag("25"), "-25", False),
    (tag("\u22120.5"), "-0.5", False),  # float() fails on the Unicode minus: string comparison
    (tag("\u22120.5"), "0.5", False),  # never read as 0.5
    (tag("7/4"), "1.75", False),
    (tag("7/4"), "4", False),  # never read as its denominator
    (tag("2.5 \u00d7 10^4"), "4", False),
    (tag("0"), "0", True),  # a zero target: exact match
    (tag("0.0"), "0", False),
    (tag("0.01"), "0", False),
    (tag("yes"), "Yes", True),
    (tag("Brazil"), "brazil", True),
    (tag("The answer is 25"), "25", False),
    ("<think>x</think>\n25", "25", True),  # after </think>
    ("<think>Reading the chart\n25", "25", True),  # cut off: the last line is "25"
    ("<think>the bar for 2019 is 25", "25", False),  # cut off: the last line is a sentence
    ("25\nThe bar for 2019 reaches 25.", "25", True),  # no tags: a bare first line followed by an explanation
    ("Yes\nThe red bar is the tallest one.", "Yes", True),
    ("", "25", False),
]


@pytest.mark.parametrize("response, label, expected", CHARTQA_CASES)
def test_chartqa(response, label, expected):
    row = {"query": "q", "label": [label], "human_or_machine": 0, "response": response}
    assert verdict(chartqa, row) is expected


TABLES = {
    mathvista: [{"pid": "1", "question": "q", "precision": None, "unit": None, **gold, "response": response}
                for response, gold, _ in MATHVISTA_CASES],
    mmmu: [{"id": "validation_Math_1", "question": "q", **gold, "response": response} for response, gold, _ in MMMU_CASES],
    chartqa: [{"query": "q", "label": [label], "human_or_machine": 0, "response": response}
              for response, label, _ in CHARTQA_CASES],
}  # fmt: skip


@pytest.mark.parametrize("module", list(TABLES), ids=lambda module: module.NAME)
def test_rescoring_a_table_twice_gives_the_same_numbers(module):
    first, second = module.score(TABLES[module]), module.score(TABLES[module])
    assert [r["correct"] for r in first["records"]] == [r["correct"] for r in second["records"]]
    assert [r["prediction"] for r in first["records"]] == [r["prediction"] for r in second["records"]]
    assert first["metrics"] == second["metrics"]
