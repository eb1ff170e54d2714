"""data_prep/thinking_156k.py on small judge-data folders with the column names such data is likely to use."""

import json

import numpy as np
import pytest
from datasets import load_from_disk
from PIL import Image

from sophia_trl.data.loading import BadRowError


def write_judge_release(root, rows_a=None, rows_b=None):
    """json/a.json with problem/response/score/path columns, json/b.jsonl with question/process/reward/image."""
    (root / "json").mkdir(parents=True)
    (root / "images").mkdir()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(root / "images" / "red.png")
    Image.new("RGBA", (5, 5), (0, 0, 255, 255)).save(root / "images" / "blue.png")
    rows_a = rows_a if rows_a is not None else [
        {"id": "a0", "problem": "<image>How many?", "response": "<think>one</think><answer>1</answer>", "score": 0.9,
         "path": "./images/red.png", "problem_type": "numerical"},
        {"id": "a1", "problem": "What is 1+1?", "response": "<think>guess</think><answer>3</answer>", "score": "0.1",
         "path": "", "problem_type": "multiple_choice"},
    ]  # fmt: skip
    rows_b = rows_b if rows_b is not None else [
        {"question": "Color?", "process": "<think>It is blue.</think><answer>blue</answer>",
         "reward": "<answer>1.0</answer>", "image": "images/blue.png"},
    ]  # fmt: skip
    (root / "json" / "a.json").write_text(json.dumps(rows_a))
    (root / "json" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    return root


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("thinking_156k")


def test_roundtrip(tmp_path, script, capsys):
    release = write_judge_release(tmp_path / "release")
    out = tmp_path / "out"
    script.main(["--input_dir", str(release), "--output_dir", str(out)])
    assert "Score histogram over [0, 0.1) ... [0.9, 1.0]: 0 1 0 0 0 0 0 0 0 2" in capsys.readouterr().out
    train = load_from_disk(str(out))["train"]
    assert train.column_names == ["question", "image", "response", "score", "problem_type"]
    assert train["question"] == ["How many?", "What is 1+1?", "Color?"]
    assert train["response"][2] == "<think>It is blue.</think><answer>blue</answer>"
    assert train["score"] == [0.9, 0.1, 1.0]
    assert train["problem_type"] == ["numerical", "multiple choice", None]
    assert train[1]["image"] is None
    assert (np.asarray(train[0]["image"]) == (255, 0, 0)).all()
    assert train[2]["image"].mode == "RGB" and (np.asarray(train[2]["image"]) == (0, 0, 255)).all()
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["score_histogram"] == [0, 1, 0, 0, 0, 0, 0, 0, 0, 2] and report["num_text_only"] == 1


def test_column_mapping_scale_and_test_split(tmp_path, script):
    rows = [
        {"query": f"Q{i}?", "trajectory": f"<think>t{i}</think><answer>{i}</answer>", "grade": i} for i in range(11)
    ]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    script.main(
        ["--input_dir", str(data), "--output_dir", str(out), "--score_scale", "10", "--test_size", "0.2",
         "--columns", "question=query,response=trajectory,score=grade"]
    )  # fmt: skip
    loaded = load_from_disk(str(out))
    assert (len(loaded["train"]), len(loaded["test"])) == (9, 2)  # round(0.2 * 11) = 2
    by_question = {row["question"]: row["score"] for split in loaded.values() for row in split}
    assert by_question == {f"Q{i}?": pytest.approx(i / 10) for i in range(11)}


BAD_CASES = {
    "no score column": ({"problem": "Q?", "response": "R"}, r"no 'score': none of the columns \['score', 'reward'"),
    "score above 1": ({"problem": "Q?", "response": "R", "score": 1.5}, r"outside \[0, 1\]"),
    "score not a number": ({"problem": "Q?", "response": "R", "score": "high"}, "score 'high' is not a number"),
    "empty response": ({"problem": "Q?", "response": "  ", "score": 0.5}, "the response .* is empty"),
    "missing image": ({"problem": "Q?", "response": "R", "score": 0.5, "path": "images/none.png"}, "not found"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_rows(tmp_path, script, case):
    row, message = BAD_CASES[case]
    release = write_judge_release(tmp_path / "release", rows_a=[{"id": "bad1", **row}])
    with pytest.raises(BadRowError, match=message) as info:
        script.main(["--input_dir", str(release), "--output_dir", str(tmp_path / "out")])
    assert info.value.row_id == "bad1" and info.value.file.endswith("a.json")


def test_skip_bad_rows(tmp_path, script, capsys):
    rows_a = [{"id": "ok", "problem": "Q?", "response": "R", "score": 0.5}, {"id": "bad", "problem": "Q?"}]
    release = write_judge_release(tmp_path / "release", rows_a=rows_a)
    dataset, bad, summary = script.convert(release, on_bad_row="skip")
    assert dataset["question"] == ["Q?", "Color?"] and [err.row_id for err in bad] == ["bad"]
    assert summary["num_rows"] == 2


def test_bad_columns_option(script):
    with pytest.raises(SystemExit):
        script.parse_args(["--input_dir", "x", "--output_dir", "y", "--columns", "answer_text=foo"])
