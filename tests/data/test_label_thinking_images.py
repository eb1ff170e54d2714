"""data_prep/label_thinking.py with `--columns` that leave out an image column the rows have: the pairs are judged
without their image, so the script warns and the report counts them; naming the column keeps the images."""

import json

import pytest
from datasets import load_from_disk
from PIL import Image

from sophia_trl.data.judge_rows import image_like_columns


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("label_thinking")


class ConstantJudge:
    """Scores every response 0.5; records whether it was shown images."""

    def __init__(self):
        self.images = []

    def score(self, questions, responses, images=None):
        self.images.extend(images or [None] * len(questions))
        return [0.5] * len(questions)


def write_pairs(root):
    """Two rows with an image path under a column name no reader knows (`img`), one text-only row."""
    (root / "scenes").mkdir(parents=True)
    rows = []
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (56, 56), colour).save(root / "scenes" / f"{i}.png")
        rows.append({"query": f"What colour is scene {i}?", "output": f"<answer>{colour}</answer>",
                     "img": f"scenes/{i}.png"})  # fmt: skip
    rows.append({"query": "What is 2 + 2?", "output": "<answer>4</answer>", "img": None})
    (root / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root / "pairs.jsonl"


def run(script, tmp_path, columns):
    args = script.parse_args(
        ["--input", str(write_pairs(tmp_path / "in")), "--output_dir", str(tmp_path / "out"), "--judge_model", "m", "--judge_base_url", "http://localhost:1/v1",
         "--columns", columns]
    )  # fmt: skip
    judge = ConstantJudge()
    script.run(args, judge)
    report = json.loads((tmp_path / "out" / "conversion_report.json").read_text())
    return judge, report, load_from_disk(str(tmp_path / "out"))["train"]


def test_an_unmapped_image_column_is_warned_about_and_counted(script, tmp_path, capsys):
    judge, report, train = run(script, tmp_path, "question=query,response=output")
    printed = capsys.readouterr().out
    assert "Warning: 2 of 3 pairs are read without an image" in printed and "img: 2 rows" in printed
    assert "--columns image=<column>" in printed
    assert report["num_unmapped_image_rows"] == 2 and report["unmapped_image_columns"] == {"img": 2}
    assert judge.images == [None, None, None] and train["image"] == [None, None, None]


def test_a_mapped_image_column_keeps_the_images(script, tmp_path, capsys):
    judge, report, train = run(script, tmp_path, "question=query,response=output,image=img")
    assert "Warning" not in capsys.readouterr().out
    assert report["num_unmapped_image_rows"] == 0 and report["unmapped_image_columns"] == {}
    assert sum(image is not None for image in judge.images) == 2
    assert sum(image is not None for image in train["image"]) == 2


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"q": "How many?", "img": "a/b.PNG"}, ["img"]),
        ({"q": "How many?", "pic": {"bytes": b"\x89PNG", "path": None}}, ["pic"]),
        ({"q": "How many?", "pics": ["1.jpg", "2.webp"]}, ["pics"]),
        ({"q": "How many?", "pic": Image.new("RGB", (2, 2))}, ["pic"]),
        ({"q": "Is report.pdf an image?", "file": "report.pdf", "pics": [], "n": 3}, []),
    ],
)
def test_image_like_columns(row, expected):
    assert image_like_columns(row) == expected
    assert image_like_columns(row, skip=expected) == []
