"""data_prep/sophiavl_130k.py on a small folder in the layout of the SophiaVL-R1-130k release."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from datasets import Image as ImageFeature
from datasets import load_from_disk
from PIL import Image

from sophia_trl.data.loading import BadRowError
from sophia_trl.prompts import build_prompt

# (problem_id, problem, data_type, problem_type, options, solution, path, data_source), as in the release.
MATH_ROWS = [
    ("m1", "<image>What is the area of the square?", "image", "numerical", [], "<answer>16</answer>",
     "./Math/geo/images/a.png", "geoqa"),
    ("m2", "Which angle is the largest?", "image", "multiple choice", ["A. 30", "B. 60", "C. 90", "D. 45"],
     "<answer>C</answer>", "./Math/geo/images/b.png", "geoqa"),
    ("m3", "What is 2 + 3?", "text", "numerical", None, "<answer>5</answer>", "", "textmath"),
    ("m4", "What shape is shown?", "image", "free-form", [], "<answer>A red square.</answer>",
     "Math/clevr/images/c.png", "clevr"),
]  # fmt: skip
GENERAL_ROWS = [
    ("g1", "What is written on the sign?", "image", "OCR", [], "<answer>STOP</answer>",
     "./General/ocr/images/d.png", "textvqa"),
    ("g2", "What color is the car?", "image", "text", [], "<answer>blue</answer>", "./General/vqa/images/e.png",
     "vqa"),
]  # fmt: skip
KEYS = ("problem_id", "problem", "data_type", "problem_type", "options", "solution", "path", "data_source")
IMAGE_COLORS = {
    "a": (255, 0, 0),
    "b": (0, 255, 0),
    "c": (0, 0, 255),
    "d": (10, 20, 30),
    "e": (204, 102, 0),
}  # web-safe: exact in a palette image


def _rows(table):
    return [dict(zip(KEYS, values)) | {"process": "<think>long reasoning</think>"} for values in table]


def write_release(root, math_rows=MATH_ROWS, general_rows=GENERAL_ROWS):
    """A release folder: json/math.json (a JSON list), json/general.jsonl, images under their relative paths."""
    (root / "json").mkdir(parents=True)
    (root / "json" / "math.json").write_text(json.dumps(_rows(math_rows)))
    (root / "json" / "general.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(general_rows)) + "\n")
    for row in _rows(math_rows) + _rows(general_rows):
        if row["path"] and (root / row["path"]).stem in IMAGE_COLORS:  # other paths are left missing on purpose
            path = root / row["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            name = path.stem
            # "e" is a palette image: the output must still decode it as RGB.
            image = Image.new("RGB", (20 + len(name), 16), IMAGE_COLORS[name])
            (image.convert("P") if name == "e" else image).save(path)
    return root


@pytest.fixture
def release(tmp_path):
    return write_release(tmp_path / "release")


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("sophiavl_130k")


def test_roundtrip(release, tmp_path, script, capsys):
    out = tmp_path / "out"
    script.main(["--input_dir", str(release), "--output_dir", str(out), "--system_prompt", "You are careful."])
    captured = capsys.readouterr().out
    assert "Wrote 6 rows (1 text-only)" in captured

    # The input folder can go: the output holds the image bytes.
    shutil.rmtree(release)
    train = load_from_disk(str(out))["train"]
    assert train.column_names == [
        "prompt", "image", "solution", "problem_type", "problem", "options", "data_source", "problem_id"
    ]  # fmt: skip
    by_id = {row["problem_id"]: row for row in train}
    assert list(by_id) == ["g1", "g2", "m1", "m2", "m3", "m4"]  # files in sorted order, rows in file order

    for values in MATH_ROWS + GENERAL_ROWS:
        source = dict(zip(KEYS, values))
        row = by_id[source["problem_id"]]
        problem = source["problem"].removeprefix("<image>")
        assert row["problem"] == problem
        assert row["prompt"] == build_prompt(problem, source["problem_type"], source["options"], "You are careful.")
        assert row["solution"] == source["solution"]
        assert row["problem_type"] == source["problem_type"]
        assert row["options"] == (source["options"] or [])
        assert row["data_source"] == source["data_source"]
        if source["data_type"] == "text":
            assert row["image"] is None
        else:
            name = source["path"].rsplit("/", 1)[-1][0]
            assert row["image"].mode == "RGB" and row["image"].size == (21, 16)
            assert (np.asarray(row["image"]) == IMAGE_COLORS[name]).all()

    assert "Options:\nA. 30\nB. 60\nC. 90\nD. 45\n" in by_id["m2"]["prompt"][1]["content"]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["num_rows"] == 6 and report["num_skipped"] == 0
    assert report["by_problem_type"] == {"numerical": 2, "multiple choice": 1, "free-form": 1, "OCR": 1, "text": 1}


def test_images_are_paths_until_saved(release, script):
    dataset, _, _ = script.convert(release)
    raw = dataset.cast_column("image", ImageFeature(decode=False))
    stored = [value for value in raw["image"] if value is not None]
    assert len(stored) == 5
    assert all(value["bytes"] is None and value["path"].startswith(str(release)) for value in stored)


def _with_row(table, problem_id, **changes):
    return [
        tuple(changes.get(k, v) for k, v in zip(KEYS, values)) if values[0] == problem_id else values
        for values in table
    ]


BAD_CASES = {
    "missing image": (dict(path="./Math/geo/images/missing.png"), "image './Math/geo/images/missing.png' not found"),
    "unknown type": (dict(problem_type="essay"), "unknown problem_type 'essay'"),
    "no solution": (dict(solution=""), "'solution' is missing or empty"),
    "bad options": (dict(options="A. 1; B. 2"), "'options' must be a list"),
    "image row without path": (dict(path=""), "data_type is 'image' but 'path' is empty"),
    "unknown data_type": (dict(data_type="video"), "unknown data_type 'video'"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_row_stops_with_named_error(tmp_path, script, case):
    changes, message = BAD_CASES[case]
    release = write_release(tmp_path / "release", math_rows=_with_row(MATH_ROWS, "m2", **changes))
    with pytest.raises(BadRowError, match=message) as info:
        script.main(["--input_dir", str(release), "--output_dir", str(tmp_path / "out")])
    assert info.value.row_id == "m2" and info.value.file.endswith("json/math.json")
    assert "row m2" in str(info.value) and "math.json" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unreadable_image(release, tmp_path, script):
    (release / "Math/geo/images/b.png").write_bytes(b"not a png at all")
    with pytest.raises(BadRowError, match=r"row m2.*cannot be opened as an image"):
        script.convert(release)


def test_skip_reports_how_many_and_which(tmp_path, script, capsys):
    math_rows = _with_row(_with_row(MATH_ROWS, "m2", problem_type="essay"), "m4", path="./nowhere.png")
    release = write_release(tmp_path / "release", math_rows=math_rows)
    out = tmp_path / "out"
    script.main(["--input_dir", str(release), "--output_dir", str(out), "--on_bad_row", "skip"])
    printed = capsys.readouterr().out
    assert "Skipped 2 bad row(s):" in printed and "row m2" in printed and "row m4" in printed
    assert load_from_disk(str(out))["train"]["problem_id"] == ["g1", "g2", "m1", "m3"]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["num_skipped"] == 2
    assert [(r["row"], r["file"].rsplit("/", 1)[-1]) for r in report["skipped"]] == [
        ("m2", "math.json"), ("m4", "math.json")
    ]  # fmt: skip


@pytest.mark.parametrize(
    "option, values, expected",
    [
        ("--data_sources", ["geoqa", "vqa"], ["g2", "m1", "m2"]),
        ("--categories", ["General"], ["g1", "g2"]),
        ("--categories", ["math"], ["m3"]),  # a text-only row's category is its file's stem
        ("--problem_types", ["numerical", "multiple_choice"], ["m1", "m2", "m3"]),
    ],
)
def test_selection(release, script, option, values, expected):
    args = script.parse_args(["--input_dir", "x", "--output_dir", "y", option, *values])
    dataset, _, _ = script.convert(
        release, data_sources=args.data_sources, categories=args.categories, problem_types=args.problem_types
    )
    assert dataset["problem_id"] == expected


def test_cap_per_source_replaces_skipped_rows(tmp_path, script):
    rows = [
        (f"s{i}", f"Question {i}?", "text", "numerical", [], f"<answer>{i}</answer>", "", "big") for i in range(10)
    ] + [("t0", "Other?", "text", "text", [], "<answer>x</answer>", "", "small")]
    rows = _with_row(rows, "s3", problem_type="essay")
    release = write_release(tmp_path / "release", math_rows=rows, general_rows=[])
    first, _, summary = script.convert(release, max_rows_per_source=4, on_bad_row="skip", seed=1)
    again, _, _ = script.convert(release, max_rows_per_source=4, on_bad_row="skip", seed=1)
    other, _, _ = script.convert(release, max_rows_per_source=4, on_bad_row="skip", seed=2)
    assert summary["by_source"] == {"big": 4, "small": 1}
    assert first["problem_id"] == again["problem_id"] != other["problem_id"]
    kept = [pid for pid in first["problem_id"] if pid.startswith("s")]
    assert kept == sorted(kept, key=lambda pid: int(pid[1:]))  # file order is kept
    # 9 good rows of 10: every row is visited, the bad one is skipped and does not cost a slot.
    full, bad, summary = script.convert(release, max_rows_per_source=9, on_bad_row="skip", seed=1)
    assert summary["by_source"] == {"big": 9, "small": 1} and [err.row_id for err in bad] == ["s3"]
    assert full["problem_id"] == [f"s{i}" for i in range(10) if i != 3] + ["t0"]


def test_problem_type_aliases_and_unwrapped_solution(tmp_path, script):
    rows = [("x1", "How many?", "text", "Multiple_Choice", ["A. 1", "B. 2"], "B", "", "mine")]
    release = write_release(tmp_path / "release", math_rows=rows, general_rows=[])
    dataset, _, _ = script.convert(release)
    assert dataset[0]["problem_type"] == "multiple choice" and dataset[0]["solution"] == "<answer>B</answer>"


def test_push_to_hub_is_called_with_the_repo(release, tmp_path, script, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "datasets.DatasetDict.push_to_hub", lambda self, repo_id, **kw: calls.append((repo_id, kw, len(self["train"])))
    )
    script.main(["--input_dir", str(release), "--output_dir", str(tmp_path / "out"), "--push_to_hub", "me/sophia"])
    assert calls == [("me/sophia", {"private": False}, 6)]


def test_images_list_column(release, tmp_path, script):
    out = tmp_path / "out"
    script.main(["--input_dir", str(release), "--output_dir", str(out), "--image_column", "images"])
    shutil.rmtree(release)  # the image bytes are in the output
    train = load_from_disk(str(out))["train"]
    assert "image" not in train.column_names and "images" in train.column_names
    by_id = {row["problem_id"]: row["images"] for row in train}
    assert by_id["m3"] == []  # text-only
    assert len(by_id["m1"]) == 1 and (np.asarray(by_id["m1"][0]) == IMAGE_COLORS["a"]).all()


def test_the_released_policy_prompt_can_be_written(release, tmp_path, script, monkeypatch):
    import hashlib

    from sophia_trl import prompts
    from sophia_trl import release as released

    checkout = Path(__file__).parents[1] / "release" / "checkout"  # a stand-in of the release's files
    stand_in = (checkout / released.POLICY_FILE).read_bytes()
    monkeypatch.setitem(released.RELEASE_SHA256, released.POLICY_FILE, hashlib.sha256(stand_in).hexdigest())
    monkeypatch.setenv(released.SOURCE_ENV, str(checkout))
    prompts._release_policy_prompt.cache_clear()
    out = tmp_path / "out"
    script.main(["--input_dir", str(release), "--output_dir", str(out), "--policy_prompt", "sophiavl-r1"])
    by_id = {row["problem_id"]: row for row in load_from_disk(str(out))["train"]}
    expected = build_prompt("Which angle is the largest?", "multiple choice", ["A. 30", "B. 60", "C. 90", "D. 45"],
                            policy_prompt="sophiavl-r1")  # fmt: skip
    assert by_id["m2"]["prompt"] == expected
    assert expected[0]["content"].startswith("Which angle is the largest?A. 30; B. 60; C. 90; D. 45\nStand-in")
    prompts._release_policy_prompt.cache_clear()
