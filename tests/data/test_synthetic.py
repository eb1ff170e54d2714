"""The synthetic task: schema, determinism, and answers checked from the pixels, independently of the generator."""

import random
import re
from collections import Counter, deque

import numpy as np
import pytest
from datasets import Dataset
from PIL import Image, ImageDraw

from sophia_trl.rewards.problem_types import PROBLEM_TYPES
from sophia_trl.tiny.responses import FILLER_SENTENCES, make_thinking_dataset, score_steps, write_response
from sophia_trl.tiny.scenes import (
    BACKGROUND,
    COLORS,
    QUESTION_KINDS,
    SYNTHETIC_PROBLEM_TYPES,
    Shape,
    SyntheticProblem,
    make_synthetic_dataset,
    ocr_font,
)

TEXT_RGB = (0, 0, 0)


def test_the_task_draws_every_built_in_problem_type():
    # The types come from the registry, in its order (the round robin of the datasets below).
    assert SYNTHETIC_PROBLEM_TYPES == PROBLEM_TYPES
    assert set(QUESTION_KINDS) == set(PROBLEM_TYPES)


# --- An independent reading of a rendered scene --------------------------------------------------------------------


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, each as an array of (y, x) pixels."""
    seen = np.zeros_like(mask, dtype=bool)
    components = []
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        queue, pixels = deque([(y, x)]), []
        seen[y, x] = True
        while queue:
            cy, cx = queue.popleft()
            pixels.append((cy, cx))
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        components.append(np.array(pixels))
    return components


def _kind_from_fill(pixels: np.ndarray) -> str:
    # Fill ratio of the bounding box: 1 for a square, ~pi/4 for a disc, ~1/2 for a triangle.
    height = pixels[:, 0].max() - pixels[:, 0].min() + 1
    width = pixels[:, 1].max() - pixels[:, 1].min() + 1
    ratio = len(pixels) / (height * width)
    return "triangle" if ratio < 0.65 else "circle" if ratio < 0.95 else "square"


def read_scene(image: Image.Image) -> list[tuple[str, str]]:
    """(color, kind) of every shape in the image, from its pixels only."""
    pixels = np.asarray(image.convert("RGB"))
    known = np.zeros(pixels.shape[:2], dtype=bool)
    shapes = []
    for color, rgb in COLORS.items():
        mask = (pixels == rgb).all(-1)
        known |= mask
        shapes += [(color, _kind_from_fill(c)) for c in _components(mask)]
    known |= (pixels == BACKGROUND).all(-1) | (pixels == TEXT_RGB).all(-1)
    assert known.all(), "the image has pixels that are neither background, text nor a palette color"
    return shapes


def read_description(problem: str) -> list[tuple[str, str]]:
    """(color, kind) of every shape listed in a text-only problem's description."""
    listing = re.match(r"A box holds these shapes: (.*?)\. ", problem).group(1)
    return re.findall(r"a (\w+) (circle|square|triangle)", listing)


def expected_answer(problem: str, scene: list[tuple[str, str]]):
    """Answer the question from the scene, parsing the question text."""

    def count(word):
        return sum(1 for color, kind in scene if word in (color, kind))

    if m := re.search(r"How many more (\w+) shapes than (\w+) shapes", problem):
        return count(m[1]) - count(m[2])
    if m := re.search(r"How many (\w+) shapes and (\w+) shapes are there .* altogether", problem):
        return count(m[1]) + count(m[2])
    if m := re.search(r"say how many (\w+) shapes and how many (\w+) shapes", problem):
        return (m[1], count(m[1]), m[2], count(m[2]))
    if re.search(r"How many shapes are there .* in total", problem):
        return len(scene)
    if m := re.search(r"How many (circle|square|triangle)s are there", problem):
        return count(m[1])
    if m := re.search(r"How many (\w+) shapes are there", problem):
        return count(m[1])
    if "Which color has the most shapes" in problem:
        counts = Counter(color for color, _ in scene).most_common()
        assert len(counts) == 1 or counts[0][1] > counts[1][1], "the most frequent color is not unique"
        return counts[0][0]
    if "Which kind of shape" in problem:
        counts = Counter(kind for _, kind in scene).most_common()
        assert len(counts) == 1 or counts[0][1] > counts[1][1], "the most frequent kind is not unique"
        return counts[0][0]
    raise AssertionError(f"unexpected question: {problem}")


def ink_mask(image: Image.Image) -> np.ndarray:
    """Text pixels cropped to their bounding box."""
    mask = (np.asarray(image.convert("RGB")) == TEXT_RGB).all(-1)
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def rendered_text_mask(text: str, size: int) -> np.ndarray:
    canvas = Image.new("RGB", (size * 2, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.fontmode = "1"
    draw.text((5, 5), text, fill=TEXT_RGB, font=ocr_font(size))
    return ink_mask(canvas)


def check_row_answer(row: dict, answer: str) -> None:
    """Assert that `answer` (what goes between the answer tags) is right for the row, read from pixels/text."""
    problem, problem_type, image = row["problem"], row["problem_type"], row["image"]
    if problem_type == "OCR":
        assert not read_scene(image)  # only text in OCR images
        assert np.array_equal(ink_mask(image), rendered_text_mask(answer, image.width))
        return
    scene = read_scene(image) if image is not None else read_description(problem)
    expected = expected_answer(problem, scene)
    if problem_type == "multiple choice":
        options = dict(re.findall(r"^([A-D])\. (.+)$", row["options_text"], flags=re.M))
        assert sorted(options) == ["A", "B", "C", "D"]
        assert len(set(options.values())) == 4
        assert options[answer] == str(expected)
    elif problem_type == "free-form":
        c1, n1, c2, n2 = expected
        assert re.fullmatch(rf"There (is|are) {n1} {c1} shapes? and {n2} {c2} shapes?\.", answer)
        assert ("is" in answer.split()[1]) == (n1 == 1)
    else:
        assert answer == str(expected)


def _answer_of(text: str) -> str:
    return re.fullmatch(r"<answer>(.*)</answer>", text, flags=re.S).group(1)


# --- The RL task ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic_dataset(200, seed=3, text_only_fraction=0.25)


def test_columns_and_types(dataset):
    assert dataset.column_names == ["prompt", "image", "solution", "problem_type", "problem", "data_source"]
    assert Counter(dataset["problem_type"]) == dict.fromkeys(PROBLEM_TYPES, 40)  # round robin over the 5 types
    assert set(dataset["data_source"]) == {"synthetic"}
    num_text_only = 0
    for row in dataset:
        assert [m["role"] for m in row["prompt"]] == ["user"]
        content = row["prompt"][0]["content"]
        assert isinstance(content, str) and content.startswith(row["problem"])
        assert "<think> </think>" in content and "<answer> </answer>" in content
        assert re.fullmatch(r"<answer>[^<>]+</answer>", row["solution"])
        if row["image"] is None:
            num_text_only += 1
            assert row["problem"].startswith("A box holds these shapes:")
            assert row["problem_type"] != "OCR"
        else:
            assert row["image"].size == (56, 56) and row["image"].mode == "RGB"
    # text_only_fraction=0.25 of the 160 non-OCR rows: 40 expected, binomial std ~5.5
    assert 20 <= num_text_only <= 60


def test_answers_are_right_from_the_pixels(dataset):
    for row in dataset:
        content = row["prompt"][0]["content"]
        row["options_text"] = content  # options are listed in the user message, one per line
        check_row_answer(row, _answer_of(row["solution"]))


def test_answers_cover_each_question_kind(dataset):
    problems = " ".join(dataset["problem"])
    for phrase in ("How many more", "altogether", "in total", "Which color", "Which kind", "say how many", "text in"):
        assert phrase in problems


def test_deterministic_by_seed_and_prefix_stable():
    a = make_synthetic_dataset(12, seed=7)
    b = make_synthetic_dataset(12, seed=7)
    c = make_synthetic_dataset(12, seed=8)
    prefix = make_synthetic_dataset(5, seed=7)
    for key in ("prompt", "solution", "problem", "problem_type"):
        assert a[key] == b[key]
        assert a[key][:5] == prefix[key]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"]))
    assert a["problem"] != c["problem"] or a["solution"] != c["solution"]


def test_options(dataset):
    mc = dataset.filter(lambda r: r["problem_type"] == "multiple choice")
    letters = Counter(_answer_of(s) for s in mc["solution"])
    assert set(letters) <= set("ABCD") and len(letters) >= 3  # the right option is not always in one place


def test_system_prompt_image_size_and_types():
    ds = make_synthetic_dataset(
        4, seed=1, image_size=84, problem_types=["numerical", "OCR"], system_prompt="Be brief."
    )
    assert ds["problem_type"] == ["numerical", "OCR", "numerical", "OCR"]
    assert ds[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in ds[0]["prompt"]] == ["system", "user"]
    for row in ds:
        assert row["image"].size == (84, 84)
        row["options_text"] = ""
        check_row_answer(row, _answer_of(row["solution"]))


def test_save_and_load_roundtrip(tmp_path):
    ds = make_synthetic_dataset(6, seed=2, text_only_fraction=0.5)
    ds.save_to_disk(str(tmp_path / "ds"))
    loaded = Dataset.load_from_disk(str(tmp_path / "ds"))
    assert loaded["prompt"] == ds["prompt"] and loaded["solution"] == ds["solution"]
    assert [im is None for im in loaded["image"]] == [im is None for im in ds["image"]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"problem_types": ["essay"]}, "problem_types"),
        ({"text_only_fraction": 1.5}, "text_only_fraction"),
        ({"image_size": 12}, "image_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_dataset(3, **kwargs)


# --- The judge data ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_correct, num_steps, expected",
    [(0, 5, 0.0), (5, 5, 1.0), (1, 4, 0.3), (3, 8, 0.4), (5, 8, 0.6), (2, 3, 0.7), (1, 20, 0.1), (5, 7, 0.7)],
)
def test_score_steps_rounds_half_up(num_correct, num_steps, expected):
    assert score_steps(num_correct, num_steps) == expected


def _hand_problem() -> SyntheticProblem:
    # red circle, blue square, red triangle: red + blue = 2 + 1 = 3
    shapes = [
        Shape("circle", "red", 0, (1, 1, 12, 12)),
        Shape("square", "blue", 1, (19, 1, 30, 12)),
        Shape("triangle", "red", 4, (19, 19, 30, 30)),
    ]
    return SyntheticProblem(
        problem_type="numerical",
        kind="sum_colors",
        targets=("red", "blue"),
        problem="How many red shapes and blue shapes are there in the image altogether?",
        options=[],
        answer="3",
        value=3,
        shapes=shapes,
    )


def _think_lines(response: str) -> list[str]:
    return re.search(r"<think>\n(.*)\n</think>", response, flags=re.S).group(1).split("\n")


def test_sound_response_by_hand():
    response, score = write_response(_hand_problem(), random.Random(0))
    assert response == (
        "<think>\n"
        "Shape 1 is a red circle, so the count of red shapes is now 1.\n"
        "Shape 2 is a blue square, so the count of blue shapes is now 1.\n"
        "Shape 3 is a red triangle, so the count of red shapes is now 2.\n"
        "Adding them up: 2 + 1 = 3.\n"
        "</think>\n<answer>3</answer>"
    )
    assert score == 1.0


@pytest.mark.parametrize("seed", range(8))
def test_flawed_responses_by_hand(seed):
    # 3 shape steps + 1 sum + 1 answer = 5 steps when sound.
    problem = _hand_problem()
    sound_lines = _think_lines(write_response(problem, random.Random(0))[0])

    response, score = write_response(problem, random.Random(seed), "wrong_answer")
    assert _think_lines(response) == sound_lines and _answer_of(response.split("\n")[-1]) != "3"
    assert score == 0.8  # 4 / 5

    response, score = write_response(problem, random.Random(seed), "filler")
    num_filler = sum(line in FILLER_SENTENCES for line in _think_lines(response))
    assert 1 <= num_filler <= 3
    assert score == {1: 0.8, 2: 0.7, 3: 0.6}[num_filler]  # 5/6, 5/7, 5/8

    response, score = write_response(problem, random.Random(seed), "repetition")
    lines = _think_lines(response)
    num_extra = len(lines) - len(set(lines))
    assert set(lines) == set(sound_lines) and num_extra in (2, 3)
    assert score == {2: 0.7, 3: 0.6}[num_extra]  # 5/7, 5/8

    response, score = write_response(problem, random.Random(seed), "slip")
    lines = _think_lines(response)
    assert sum(a != b for a, b in zip(lines, sound_lines)) == 1 and lines[-1] == sound_lines[-1]
    assert response.endswith("<answer>3</answer>") and score == 0.8  # one wrong step out of 5

    response, score = write_response(problem, random.Random(seed), "miscount")
    assert not response.endswith("<answer>3</answer>")
    # The wrong count is carried to the sum and the answer. Miscounting shape 1 (red) also makes shape 3's red
    # count wrong: 1/5 right; miscounting shape 2 or 3 leaves the two other shape steps right: 2/5.
    first_wrong = next(i for i, (a, b) in enumerate(zip(_think_lines(response), sound_lines)) if a != b)
    assert score == (0.2 if first_wrong == 0 else 0.4)

    response, score = write_response(problem, random.Random(seed), "guess")
    assert _think_lines(response) == ["I will just guess."]
    assert score == (0.5 if response.endswith("<answer>3</answer>") else 0.0)  # 1 or 0 of 2 steps


def test_miscount_carried_to_the_answer():
    # Recount what a miscounted response states for each shape, step by step, and check the sum follows it.
    problem = _hand_problem()
    for seed in range(10):
        response, _ = write_response(problem, random.Random(seed), "miscount")
        stated = {}
        for line in _think_lines(response)[:3]:
            color, n = re.search(r"count of (\w+) shapes is now (\d+)", line).groups()
            stated[color] = int(n)
        n1, n2 = stated.get("red", 0), stated.get("blue", 0)
        assert f"Adding them up: {n1} + {n2} = {n1 + n2}." in response
        assert response.endswith(f"<answer>{n1 + n2}</answer>") and n1 + n2 != 3


@pytest.fixture(scope="module")
def thinking():
    return make_thinking_dataset(150, seed=5, text_only_fraction=0.2)


def test_thinking_columns_and_scores(thinking):
    assert thinking.column_names == ["question", "image", "response", "score", "problem_type"]
    assert set(thinking["problem_type"]) == set(PROBLEM_TYPES)
    for row in thinking:
        assert re.fullmatch(r"<think>\n.+\n</think>\n<answer>[^<>]+</answer>", row["response"], flags=re.S)
        assert 0.0 <= row["score"] <= 1.0 and round(row["score"] * 10) == pytest.approx(row["score"] * 10)
        assert "<answer>" not in row["question"]  # the question holds no instructions
    scores = np.array(thinking["score"])
    # flawed_fraction=0.5: about half the responses are sound, and flaws spread over several score bins
    assert 0.35 < (scores == 1.0).mean() < 0.8
    assert len(set(np.floor(scores[scores < 1] * 10))) >= 4


def test_thinking_sound_answers_are_right(thinking):
    for row in thinking:
        if row["score"] == 1.0:
            row = {**row, "problem": row["question"].split("\nOptions:\n")[0], "options_text": row["question"]}
            check_row_answer(row, _answer_of(row["response"].split("\n")[-1]))


def test_thinking_deterministic():
    a, b = make_thinking_dataset(20, seed=1), make_thinking_dataset(20, seed=1)
    assert a["response"] == b["response"] and a["score"] == b["score"]
    assert make_thinking_dataset(20, seed=2)["response"] != a["response"]


# --- The command line ----------------------------------------------------------------------------------------------


def test_cli_writes_train_and_test_splits(tmp_path, load_script, capsys):
    from datasets import load_from_disk

    script = load_script("synthetic")
    out = tmp_path / "synthetic"
    script.main(["--output_dir", str(out), "--num_train", "7", "--num_test", "3", "--seed", "4"])
    loaded = load_from_disk(str(out))
    assert {split: len(rows) for split, rows in loaded.items()} == {"train": 7, "test": 3}
    assert loaded["train"]["problem"] == make_synthetic_dataset(7, seed=4)["problem"]
    assert loaded["test"]["solution"] == make_synthetic_dataset(10, seed=4)["solution"][7:]
    assert "train: 7 rows" in capsys.readouterr().out


def test_cli_thinking_kind(tmp_path, load_script):
    from datasets import load_from_disk

    script = load_script("synthetic")
    out = tmp_path / "thinking"
    script.main(["--output_dir", str(out), "--kind", "thinking", "--num_train", "5", "--num_test", "2"])
    loaded = load_from_disk(str(out))
    assert loaded["train"].column_names == ["question", "image", "response", "score", "problem_type"]
    assert loaded["test"]["response"] == make_thinking_dataset(7, seed=0)["response"][5:]
