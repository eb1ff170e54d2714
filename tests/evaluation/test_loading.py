"""Local copies in each benchmark's layout, prompts, and the errors bad data gives."""

import base64
import io
import json
from pathlib import Path

import datasets
import pytest
from evaluation_helpers import NUM_ITEMS, square

from sophia_trl.evaluation import get_benchmark, mmbench, mmstar
from sophia_trl.evaluation.loading import load_benchmark, to_image
from sophia_trl.evaluation.runner import _base_dir
from sophia_trl.prompts import build_prompt

PREDICTIONS = Path(__file__).parent / "fixtures" / "predictions"


@pytest.mark.parametrize("name", list(NUM_ITEMS))
def test_local_copy_loads_and_prompts(name, benchmark_copies):
    module = get_benchmark(name)
    source = str(benchmark_copies[name])
    rows = module.load(source)
    assert len(rows) == NUM_ITEMS[name]
    for i in range(len(rows)):
        prompt = module.build_prompt(rows[i], _base_dir(source))
        assert prompt.messages[-1]["role"] == "user"
        assert "<answer>" in prompt.messages[-1]["content"]
        assert all(image.mode == "RGB" for image in prompt.images)
        # every item of these copies has at least one image; MMMU's dev item has two
        assert len(prompt.images) == (2 if name == "mmmu" and i == 0 else 1)


def test_prompts_are_the_training_prompts(benchmark_copies):
    source = str(benchmark_copies["mathvista"])
    rows = get_benchmark("mathvista").load(source)
    prompt = get_benchmark("mathvista").build_prompt(rows[0], _base_dir(source), system_prompt="You reason.")
    expected = build_prompt("How many squares?", "multiple choice", ["A. 1", "B. 2", "C. 3"], "You reason.")
    assert prompt.messages == expected
    integer = get_benchmark("mathvista").build_prompt(rows[1], _base_dir(source))
    assert integer.messages == build_prompt("What is the side length? (Unit: cm)", "numerical")


def test_mmbench_expands_missing_rotations(benchmark_copies):
    rows = mmbench.load(str(benchmark_copies["mmbench"]))
    # options red, yellow, blue with answer B (yellow): rotation k moves option k to A, the answer follows its option
    assert [(row["A"], row["B"], row["C"], row["answer"]) for row in rows] == [
        ("red", "yellow", "blue", "B"),
        ("yellow", "blue", "red", "A"),
        ("blue", "red", "yellow", "C"),
    ]
    assert all(row["D"] is None for row in rows)


def test_rotate_reproduces_the_hand_written_rotations():
    rows = [json.loads(line) for line in (PREDICTIONS / "mmbench.jsonl").read_text().splitlines()]
    by_index = {row["index"]: row for row in rows}
    for base in (1, 2, 3):
        num_options = len(mmbench.options_of(by_index[base]))
        for k in range(num_options):
            rotated = mmbench.rotate(by_index[base], k)
            expected = by_index[base + k * mmbench.ROTATION_OFFSET]
            letters = "ABCD"[:num_options]
            assert [rotated[c] for c in letters] == [expected[c] for c in letters]
            assert rotated["answer"] == expected["answer"]


def test_mmstar_options_are_read_from_the_question():
    question = "Which is true?\nOptions: A: The cup is red., B: The cup, or the mug, is blue., C: 3, D: 4"
    assert mmstar.parse_options(question) == ["The cup is red.", "The cup, or the mug, is blue.", "3", "4"]
    assert mmstar.parse_options("No options here") == []


def test_missing_column_names_the_file_and_the_columns(tmp_path):
    path = tmp_path / "chartqa.jsonl"
    path.write_text(json.dumps({"query": "q", "image": None}) + "\n")
    with pytest.raises(ValueError, match=r"chartqa\.jsonl lacks the column\(s\) \['label', 'human_or_machine'\]"):
        get_benchmark("chartqa").load(str(path))


def test_load_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark("MMMU/MMMU", [None], ["dev"], str(tmp_path / "nowhere"))
    (tmp_path / "rows.xlsx").write_text("")
    with pytest.raises(ValueError, match=r"expected one of .*\.parquet"):
        load_benchmark("MMMU/MMMU", [None], ["dev"], str(tmp_path / "rows.xlsx"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"id": ["1"]})}).save_to_disk(tmp_path / "dd")
    with pytest.raises(
        ValueError, match=r"holds the splits \['train'\], none of the expected \['dev', 'validation'\]"
    ):
        load_benchmark("MMMU/MMMU", [None], ["dev", "validation"], str(tmp_path / "dd"))


def test_to_image_accepts_each_storage(tmp_path):
    image = square("red", size=8)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    image.save(tmp_path / "red.png")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    for value, base_dir in [
        (image, None),
        ({"bytes": buffer.getvalue(), "path": None}, None),
        ("red.png", tmp_path),
        (str(tmp_path / "red.png"), None),
        (encoded, None),
    ]:
        loaded = to_image(value, base_dir)
        assert loaded.size == (8, 8) and loaded.getpixel((0, 0)) == (255, 0, 0)
    assert to_image(None) is None and to_image(float("nan")) is None and to_image("") is None
    with pytest.raises(ValueError, match="neither an existing file"):
        to_image("images/missing.png", tmp_path)
