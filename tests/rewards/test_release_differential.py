"""
The outcome reward against the released SophiaVL-R1 scorers, over generated responses per problem type.

The release is github.com/kxfan2002/SophiaVL-R1 at commit a8184947bf3ba215c511225a739789bdfce44930. In training it
scores each response with the scorer of its row's problem type (`verl/trainer/main.py`, `reward_fn_dict`: numerical
-> "math", multiple choice -> "choice", OCR -> "ocr", free-form -> "caption", text -> "text"; an unknown type falls back
to numerical), after removing `$` from the decoded response and the solution (`verl/workers/reward/custom.py`, sha256
d58f974335099ec66002426c40f4d4edd3ca148b7f3ebb4b85138b980b87acbb). The scorers are in
`verl/utils/reward_score/math.py`: one format check for every type, then mathruler's `grade_answer` (numerical), a
comma-split letter rule (multiple choice), exp(-WER) (OCR), and the mean ROUGE-1/2/L F-measure (free-form and text).
mathruler 0.1.0 is called for real; the other rules are written again below, from reading the release.

Every generated case carries its class and both sides' expected scores, worked out by hand from the rule that made the
case (a WER of k/n, ROUGE of a prefix, a number written another way). In the class "agree" the two sides give the same
score. Every other class is a difference listed in docs/outcome_rewards.md ("Differences from the released code"), and
the test checks both sides' verdicts for it.
"""

import math
import random
import re
from collections import Counter
from dataclasses import dataclass

import jiwer
import pytest
from mathruler.grader import grade_answer
from rouge_score import rouge_scorer

from sophia_trl.rewards import outcome_reward

AGREE = "agree"
SEED = 2505_17018
CASES_PER_TYPE = {"numerical": 300, "multiple choice": 300, "OCR": 200, "free-form": 200, "text": 200}

# ---------------------------------------------------------------------------------------------------------------------
# The release's scoring, rewritten from verl/workers/reward/custom.py and verl/utils/reward_score/math.py
# ---------------------------------------------------------------------------------------------------------------------

# math.py's format check is a full match: the response must start with <think>, and any text may follow each block.
_RELEASE_FORMAT = re.compile(r"<think>.*?</think>.*<answer>.*?</answer>.*", re.DOTALL)
_RELEASE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)  # the first answer block
_RELEASE_ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
_RELEASE_TYPES = ("numerical", "multiple choice", "OCR", "free-form", "text")


def release_score(response: str, solution: str, problem_type: str) -> float:
    """The release's outcome score of one training response."""
    # custom.py removes "$$" and "$" from the response and from the solution (after unwrapping its answer tags).
    response = response.replace("$", "")
    tagged = _RELEASE_ANSWER.search(solution)
    truth = (tagged.group(1) if tagged else solution).replace("$", "")
    if not _RELEASE_FORMAT.fullmatch(response):
        return 0.0
    answer = _RELEASE_ANSWER.search(response).group(1)
    kind = problem_type if problem_type in _RELEASE_TYPES else "numerical"
    if kind == "numerical":
        return 1.0 if grade_answer(answer, truth) else 0.0
    if kind == "multiple choice":
        # As many comma-separated parts as the solution string has characters, each part found inside that string.
        parts = [part.strip() for part in answer.split(",")]
        return 1.0 if len(parts) == len(truth) and all(part in truth for part in parts) else 0.0
    if kind == "OCR":
        return math.exp(-jiwer.wer(reference=truth.strip(), hypothesis=answer.strip()))
    scores = _RELEASE_ROUGE.score(answer.replace("\n", " ").strip(), truth.replace("\n", " ").strip())
    return sum(score.fmeasure for score in scores.values()) / 3


# ---------------------------------------------------------------------------------------------------------------------
# Generated cases
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One response to score, its class, and the score each side must give it."""

    problem_type: str
    response: str
    solution: str
    klass: str
    ours: float
    release: float
    options: tuple[str, ...] | None = None


THOUGHTS = (
    "Read the figure, then compute.",
    "The two sides are equal, so the angle is known.",
    "Counting the objects one by one gives the total.",
    "Cost: $3 each, so multiply.",
    "Step 1: read the labels.\nStep 2: compare them.",
)


def respond(rng: random.Random, answer: str) -> str:
    """A response in the format both sides accept: whitespace may stand between and after the blocks."""
    between, after = rng.choice(["", " ", "\n", "\n\n"]), rng.choice(["", "", "\n", " "])
    return f"<think>{rng.choice(THOUGHTS)}</think>{between}<answer>{answer}</answer>{after}"


def wrap_solution(rng: random.Random, solution: str) -> str:
    """The solution as the released data writes it (`<answer>X</answer>`) or plain: both sides unwrap it."""
    return f"<answer>{solution}</answer>" if rng.random() < 0.5 else solution


def format_cases(rng: random.Random, case: Case) -> list[Case]:
    """Variants of a well-formed case with a positive score on both sides, one per format rule."""
    answer = _RELEASE_ANSWER.search(case.response).group(1)
    think = f"<think>{rng.choice(THOUGHTS)}</think>"
    variants = [
        ("leading whitespace", rng.choice([" ", "\n", "\n\n"]) + respond(rng, answer), case.ours, 0.0),
        ("text between the blocks", f"{think} So the answer is: <answer>{answer}</answer>", 0.0, case.release),
        ("text after the answer", f"{think}<answer>{answer}</answer> I hope this helps.", 0.0, case.release),
        ("a second answer block", f"{think}<answer>{answer}</answer><answer>none</answer>", 0.0, case.release),
        (AGREE, f"<answer>{answer}</answer>", 0.0, 0.0),  # no reasoning block
        (AGREE, f"{think} The answer is {answer}.", 0.0, 0.0),  # no answer block
    ]
    return [
        Case(case.problem_type, response, case.solution, klass, ours, release, case.options)
        for klass, response, ours, release in variants
    ]


# (class, answer, solution, our score, the release's score), filled in with the numbers of `draw_numbers`.
NUMERICAL_FORMS = [
    (AGREE, "{v}", "{v}", 1, 1),
    (AGREE, "-{v}", "-{v}", 1, 1),
    (AGREE, "{v}.0", "{v}", 1, 1),
    (AGREE, "{hundredths}", "{hundredths}", 1, 1),
    (AGREE, "{tenths:.3f}", "{tenths}", 1, 1),  # trailing zeros
    (AGREE, "{big:,}", "{big}", 1, 1),  # comma thousands
    (AGREE, "{spaced}", "{big}", 1, 1),  # spaced thousands
    (AGREE, "-{spaced}", "-{big}", 1, 1),
    (AGREE, "{m}{e}{k}", "{m_k}", 1, 1),  # e-notation
    (AGREE, "{m:.2f}e{k}", "{m_k}", 1, 1),
    (AGREE, "{m}e-{k}", "{m_minus_k}", 1, 1),
    (AGREE, "\\boxed{{{v}}}", "{v}", 1, 1),
    (AGREE, "x = {v}", "{v}", 1, 1),
    (AGREE, "${v}$", "{v}", 1, 1),
    (AGREE, "{v} {mathruler_unit}", "{v}", 1, 1),
    (AGREE, "{p}^\\circ", "{p}", 1, 1),
    (AGREE, "{v}\\text{{ cm}}", "{v}", 1, 1),
    (AGREE, "{p}%", "{p}", 1, 1),
    (AGREE, "\\frac{{{a}}}{{{b}}}", "{a}/{b}", 1, 1),
    (AGREE, "\\frac{{{c}}}{{{d}}}", "{c_over_d}", 1, 1),
    (AGREE, "{v_next}", "{v}", 0, 0),
    (AGREE, "{spaced_next}", "{big}", 0, 0),
    (AGREE, "{zero_with_words}", "0", 0, 0),  # 10 000 or a product of letters and 0
    (AGREE, "{v} {product_word}", "{v}", 0, 0),
    (AGREE, "There are {v} birds", "{v}", 0, 0),
    (AGREE, "{p} million", "{p}000000", 0, 0),
    (AGREE, "{seven}", "7", 0, 0),
    ("unit outside mathruler's list", "{v} {other_unit}", "{v}", 1, 0),
    ("number in a sentence", "{sentence}", "{v}", 1, 0),
    ("power of ten", "{m} \\times 10^{{{k}}}", "{m_k}", 1, 0),
    ("percentage against its fraction", "{p}{percent}", "{p_fraction}", 1, 0),
    ("integer written as a fraction", "{v_as_fraction}", "{v}", 1, 0),
    ("unreduced fraction", "{qa}/{qb}", "{a}/{b}", 1, 0),
    ("rounded to six decimals", "{k_root_2:.6f}", "{k}\\sqrt{{2}}", 1, 0),
    ("Unicode minus", "\u2212{v}", "-{v}", 1, 0),
    ("thousands grouped by a no-break or thin space", "{thin_spaced}", "{big}", 1, 0),
    ("digits spaced other than in thousands", "{t} {o}", "{t}{o}", 0, 1),
]


def draw_numbers(rng: random.Random) -> dict:
    """The numbers that fill one `NUMERICAL_FORMS` entry."""
    v = rng.choice([rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 10**7)])
    big = rng.randint(1000, 10**7)
    m, k = rng.randint(11, 99) / 10, rng.randint(1, 6)  # 1.1 to 9.9, times 10^1 to 10^6
    p = rng.randint(1, 99)
    a, b = rng.choice([(1, 2), (3, 4), (2, 3), (5, 7), (4, 9), (7, 8)])
    c, d = rng.choice([(1, 2), (1, 4), (3, 4), (2, 5), (3, 8), (7, 8)])
    q = rng.randint(2, 5)
    return {
        "v": v,
        "v_next": v + rng.choice([1, -1, 10]),
        "hundredths": v / 100,
        "tenths": p / 10,
        "big": big,
        "spaced": f"{big:,}".replace(",", " "),
        "spaced_next": f"{big + 1:,}".replace(",", " "),
        "thin_spaced": f"{big:,}".replace(",", rng.choice("\u00a0\u2009\u202f")),
        "m": m,
        "k": k,
        "e": rng.choice("eE"),
        "m_k": round(m * 10**k),
        "m_minus_k": f"{m / 10**k:.{k + 1}f}",
        "p": p,
        "p_fraction": p / 100,
        "percent": rng.choice(["%", "\\%"]),
        "a": a,
        "b": b,
        "qa": q * a,
        "qb": q * b,
        "c": c,
        "d": d,
        "c_over_d": c / d,
        "k_root_2": k * math.sqrt(2),
        "v_as_fraction": rng.choice([f"\\frac{{{2 * v}}}{{2}}", f"{2 * v}/2"]),
        "t": rng.randint(1, 9),
        "o": rng.randint(1, 9),
        "mathruler_unit": rng.choice(["cm", "meters", "hours", "degrees"]),  # units mathruler removes
        "other_unit": rng.choice(["kg", "km", "m", "apples"]),  # units math-verify reads and mathruler does not
        "product_word": rng.choice(["dollars", "people"]),  # words math-verify multiplies with the number
        "zero_with_words": rng.choice(["10 000", "it is 0", "no 0", "x 0", "I think 0", "The value is 0 m"]),
        "sentence": rng.choice(["The answer is {}", "So the total is {}."]).format(v),
        "seven": rng.choice(["seven", "Seven", "7 or 8"]),
    }


def numerical_cases(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(CASES_PER_TYPE["numerical"]):
        klass, answer, solution, ours, release = rng.choice(NUMERICAL_FORMS)
        numbers = draw_numbers(rng)
        answer, solution = answer.format(**numbers), solution.format(**numbers)
        cases.append(Case("numerical", respond(rng, answer), wrap_solution(rng, solution), klass, ours, release))
    return cases


def multiple_choice_cases(rng: random.Random) -> list[Case]:
    texts_by_kind = {
        "numbers": lambda: [str(n) for n in rng.sample(range(10, 100), 4)],
        "dollars": lambda: [f"${n}" for n in rng.sample(range(1, 50), 4)],
        "words": lambda: rng.sample(["red", "blue", "green", "yellow", "purple", "circle", "square", "tower"], 4),
    }
    cases = []
    for _ in range(CASES_PER_TYPE["multiple choice"]):
        texts = texts_by_kind[rng.choice(list(texts_by_kind))]()
        letters = "ABCD"
        labelled = rng.random() < 0.5
        options = tuple(f"{letter}. {text}" if labelled else text for letter, text in zip(letters, texts))
        right = rng.choice(letters)
        wrong = rng.choice([letter for letter in letters if letter != right])
        text = texts[letters.index(right)]
        pair = sorted(rng.sample(letters, 2))
        templates = [
            (AGREE, right, right, 1.0, 1.0),
            (AGREE, f" {right} ", right, 1.0, 1.0),
            (AGREE, f"${right}$", right, 1.0, 1.0),
            (AGREE, wrong, right, 0.0, 0.0),
            (AGREE, f"{wrong}. {texts[letters.index(wrong)]}", right, 0.0, 0.0),
            (AGREE, f"{right} or {wrong}", right, 0.0, 0.0),
            (AGREE, pair[0], ",".join(pair), 0.0, 0.0),  # one of two right options
            (AGREE, "", ",".join(pair), 0.0, 0.0),
            ("lower-case letter", right.lower(), right, 1.0, 0.0),
            (
                "letter written with more than the letter",
                rng.choice(
                    [
                        f"({right})",
                        f"{right}.",
                        f"{right})",
                        f"{right}. {text}",
                        f"({right}) {text}",
                        f"\\boxed{{{right}}}",
                        f"**{right}**",
                        f"The answer is {right}",
                        f"Answer: {right}",
                        f"Option {right}",
                    ]
                ),
                right,
                1.0,
                0.0,
            ),
            ("option text", text, right, 1.0, 0.0),
            ("several letters", rng.choice([", ", ","]).join(rng.sample(pair, 2)), ",".join(pair), 1.0, 0.0),
            ("empty answer", rng.choice(["", " "]), right, 0.0, 1.0),
        ]
        klass, answer, solution, ours, release = rng.choice(templates)
        cases.append(
            Case("multiple choice", respond(rng, answer), wrap_solution(rng, solution), klass, ours, release, options)
        )
    return cases


# Words of signs and labels (a "$" is removed from both sides before scoring, as the release does).
OCR_WORDS = tuple(
    "EXIT Open daily 9am-5pm No Parking SALE 50% off Main St. Bakery $4.99 fresh bread Route 66 CAUTION: wet floor".split()
)


def ocr_cases(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(CASES_PER_TYPE["OCR"]):
        n = rng.randint(2, 8)
        words = rng.sample(OCR_WORDS, n)
        solution = " ".join(words)
        k = rng.randint(1, n - 1)  # an empty transcription is a class of its own
        edited = list(words)
        operation = rng.choice(["exact", "substitute", "delete", "insert", "case", "empty"])
        if operation == "substitute":  # k words replaced by words the reference does not have: WER k/n
            for i in rng.sample(range(n), k):
                edited[i] = f"zz{i}"
        elif operation == "delete":  # k words missing: WER k/n
            for i in sorted(rng.sample(range(n), k), reverse=True):
                del edited[i]
        elif operation == "insert":  # k words added: WER k/n
            for i in range(k):
                edited.insert(rng.randint(0, len(edited)), f"qq{i}")
        elif operation == "case":  # one word in another case is a wrong word: WER 1/n
            k = 1
            i = rng.randrange(n)
            edited[i] = edited[i].swapcase() if edited[i].swapcase() != edited[i] else f"zz{i}"
        if operation == "empty":
            klass, answer, ours, release = "empty transcription", rng.choice(["", " "]), 0.0, math.exp(-1)
        else:
            wer = 0.0 if operation == "exact" else k / n
            klass, answer, ours, release = AGREE, " ".join(edited), math.exp(-wer), math.exp(-wer)
        cases.append(Case("OCR", respond(rng, answer), wrap_solution(rng, solution), klass, ours, release))
    return cases


# Distinct words with distinct Porter stems and no articles: ROUGE counts of a prefix are then worked out by hand.
PHRASE_WORDS = tuple(
    "red blue green circle square triangle above below left right small large dog cat bird tree house car boat river "
    "window bridge tower".split()
)


def prefix_rouge_mean(m: int, n: int) -> float:
    """Mean ROUGE-1/2/L F-measure of the first m of n distinct words against all n: R1 = RL = 2m/(m+n), R2 = 2(m-1)/(m+n-2)."""
    unigram = 2 * m / (m + n)
    bigram = 2 * (m - 1) / (m + n - 2) if m > 1 else 0.0
    return (2 * unigram + bigram) / 3


def free_form_cases(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(CASES_PER_TYPE["free-form"]):
        n = rng.randint(2, 10)
        words = rng.sample(PHRASE_WORDS, n)
        solution = " ".join(words)
        m = rng.randint(1, n)
        other = [w for w in PHRASE_WORDS if w not in words]
        chinese = rng.choice(["红色的圆在左边", "一只猫坐在垫子上", "桥在河的上方"])
        templates = [
            (AGREE, solution, solution, 1.0, 1.0),
            (AGREE, solution.capitalize() + ".", solution, 1.0, 1.0),  # case and punctuation are not counted
            (AGREE, " ".join(words[:2]) + "\n" + " ".join(words[2:]), solution, 1.0, 1.0),
            (AGREE, " ".join(words[:m]), solution, prefix_rouge_mean(m, n), prefix_rouge_mean(m, n)),
            (AGREE, " ".join(rng.sample(other, min(3, len(other)))), solution, 0.0, 0.0),
            ("solution without ASCII letters or digits", chinese, chinese, 1.0, 0.0),
        ]
        klass, answer, solution, ours, release = rng.choice(templates)
        cases.append(Case("free-form", respond(rng, answer), wrap_solution(rng, solution), klass, ours, release))
    return cases


def text_cases(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(CASES_PER_TYPE["text"]):
        n = rng.randint(2, 3)
        words = rng.sample(PHRASE_WORDS, n + 2)
        phrase, others = words[:n], words[n:]
        solution = " ".join(phrase)
        # One article more: R1 = RL = 2n/(2n+1), R2 = 2(n-1)/(2n-1); this project drops articles and scores 1.
        article = (4 * n / (2 * n + 1) + 2 * (n - 1) / (2 * n - 1)) / 3
        templates = [
            (AGREE, solution, solution, 1.0, 1.0),
            (AGREE, solution.upper(), solution, 1.0, 1.0),
            (AGREE, " ".join(others), solution, 0.0, 0.0),
            (AGREE, others[0], phrase[0], 0.0, 0.0),
            ("one-word answer", phrase[0], phrase[0], 1.0, 2 / 3),  # ROUGE-2 of one word is 0
            ("article or punctuation added", f"The {solution}.", solution, 1.0, article),
            # Three words, one wrong: R1 = RL = 2/3, R2 = 1/2 (mean 11/18) against 0.5 x ROUGE-L 2/3 here.
            ("one word of three wrong", " ".join([others[0], *words[1:3]]), " ".join(words[:3]), 1 / 3, 11 / 18),
        ]
        klass, answer, solution, ours, release = rng.choice(templates)
        cases.append(Case("text", respond(rng, answer), wrap_solution(rng, solution), klass, ours, release))
    return cases


GENERATORS = {
    "numerical": numerical_cases,
    "multiple choice": multiple_choice_cases,
    "OCR": ocr_cases,
    "free-form": free_form_cases,
    "text": text_cases,
}


def generate(problem_type: str) -> list[Case]:
    """The cases of one problem type, fixed by the seed, with format variants of some well-scored cases added."""
    rng = random.Random(f"{SEED}-{problem_type}")
    cases = GENERATORS[problem_type](rng)
    positive = [case for case in cases if case.klass == AGREE and case.ours > 0]
    for case in rng.sample(positive, min(8, len(positive))):
        cases.extend(format_cases(rng, case))
    return cases


def score_both(cases: list[Case]) -> tuple[list[float], list[float]]:
    ours = outcome_reward(
        [case.response for case in cases],
        solution=[case.solution for case in cases],
        problem_type=[case.problem_type for case in cases],
        options=[list(case.options) if case.options else None for case in cases],
    )
    return ours, [release_score(case.response, case.solution, case.problem_type) for case in cases]


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------


def test_release_rules_as_read():
    """The release's rules as rewritten here, on cases worked out by hand from the released math.py."""
    think = "<think>r</think>"
    assert release_score(f"{think}<answer>5 cm</answer>", "5", "numerical") == 1.0
    assert release_score(f" {think}<answer>5</answer>", "5", "numerical") == 0.0  # leading whitespace
    assert release_score(f"{think}<answer>5</answer><answer>6</answer>", "6", "numerical") == 0.0  # first block
    assert release_score(f"{think}<answer>A,B</answer>", "A,B", "multiple choice") == 0.0  # 2 parts, 3 characters
    assert release_score(f"{think}<answer></answer>", "A", "multiple choice") == 1.0  # "" is in "A"
    assert release_score(f"{think}<answer>b</answer>", "B", "multiple choice") == 0.0
    assert release_score(f"{think}<answer>hello</answer>", "hello world", "OCR") == pytest.approx(math.exp(-0.5))
    assert release_score(f"{think}<answer></answer>", "hello world", "OCR") == pytest.approx(math.exp(-1))
    assert release_score(f"{think}<answer>Paris</answer>", "Paris", "text") == pytest.approx(2 / 3)
    assert release_score(f"{think}<answer>5</answer>", "5", "unknown type") == 1.0  # numerical by default


@pytest.mark.parametrize("problem_type", list(GENERATORS))
def test_outcome_reward_against_the_release(problem_type):
    cases = generate(problem_type)
    ours, release = score_both(cases)
    wrong = [
        f"{case.klass}: {case.response!r} vs {case.solution!r} (options {case.options}): "
        f"ours {got_ours:.4f} (expected {case.ours:.4f}), release {got_release:.4f} (expected {case.release:.4f})"
        for case, got_ours, got_release in zip(cases, ours, release)
        if got_ours != pytest.approx(case.ours, abs=1e-9) or got_release != pytest.approx(case.release, abs=1e-9)
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} cases:\n" + "\n".join(wrong[:30])
    # Each class is what it says: the sides agree in "agree" and differ in every other class.
    for case in cases:
        assert (case.ours == pytest.approx(case.release)) == (case.klass == AGREE), case
    counts = Counter(case.klass for case in cases)
    agreeing = sum(o == pytest.approx(r, abs=1e-9) for o, r in zip(ours, release))
    print(
        f"\n{problem_type}: {agreeing}/{len(cases)} scored alike; differences by class: "
        f"{ {klass: n for klass, n in sorted(counts.items()) if klass != AGREE} }"
    )


def test_every_difference_class_is_generated():
    """Each documented difference class occurs at least once, so none is asserted vacuously."""
    classes = {case.klass for problem_type in GENERATORS for case in generate(problem_type)}
    assert classes >= {
        "leading whitespace",
        "text between the blocks",
        "text after the answer",
        "a second answer block",
        "unit outside mathruler's list",
        "number in a sentence",
        "power of ten",
        "percentage against its fraction",
        "integer written as a fraction",
        "unreduced fraction",
        "rounded to six decimals",
        "Unicode minus",
        "thousands grouped by a no-break or thin space",
        "digits spaced other than in thousands",
        "lower-case letter",
        "letter written with more than the letter",
        "option text",
        "several letters",
        "empty answer",
        "empty transcription",
        "solution without ASCII letters or digits",
        "one-word answer",
        "article or punctuation added",
        "one word of three wrong",
    }
