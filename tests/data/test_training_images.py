"""A training split's bad images (undecodable, missing, or over `max_image_pixels`) stop data loading with the split,
row, id and column named, or are skipped and counted with `on_bad_row: skip`: in `check_images`, in the tiny GRPO
recipe itself, and in the converters' `--max_image_pixels`."""

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict, Features, Image, List, Value
from PIL import Image as PILImage

from sophia_trl.data import check_images
from sophia_trl.tiny.scenes import make_synthetic_dataset

ROOT = Path(__file__).resolve().parents[2]


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), "blue").save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.effect_noise((width, height), 64).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def image_rows(tmp_path):
    """Six rows: fine PNG bytes, a PNG cut after 40 bytes, a fine path, a missing path, no image, a 100x50 PNG."""
    (tmp_path / "ok.png").write_bytes(png_bytes(8, 8))
    images = [
        {"bytes": png_bytes(8, 8), "path": None},
        {"bytes": png_bytes(8, 8)[:40], "path": None},
        {"bytes": None, "path": str(tmp_path / "ok.png")},
        {"bytes": None, "path": str(tmp_path / "gone.png")},
        None,
        {"bytes": png_bytes(100, 50), "path": None},
    ]
    features = Features({"image": Image(), "problem_id": Value("string")})
    return Dataset.from_dict({"image": images, "problem_id": [f"p{i}" for i in range(6)]}, features=features)


def test_error_names_split_row_id_column_and_what_to_do(tmp_path):
    with pytest.raises(ValueError) as info:
        check_images(image_rows(tmp_path), "train", dataset_name="data/x")
    message = str(info.value)
    assert message.startswith("Bad image in the 'train' split of data/x, row 1 (problem_id 'p1'), column 'image': ")
    assert "cannot be opened as an image" in message
    assert "Fix or remove the row, raise max_image_pixels" in message and "--on_bad_row skip" in message


def test_skip_drops_the_undecodable_missing_and_oversized_rows_and_logs_them(tmp_path, caplog):
    dataset = image_rows(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sophia_trl.data.images"):
        kept, skipped = check_images(dataset, "train", max_pixels=100 * 50 - 1, on_bad_row="skip")
    # Rows 1 (cut), 3 (missing) and 5 (5000 pixels > 4999) are bad; 0, 2 (path) and 4 (no image) stay.
    assert kept["problem_id"] == ["p0", "p2", "p4"]
    assert [err.row_id for err in skipped] == ["1 (problem_id 'p1')", "3 (problem_id 'p3')", "5 (problem_id 'p5')"]
    assert "does not exist" in skipped[1].reason
    assert "is 100x50 = 5000 pixels, more than the limit of 4999" in skipped[2].reason
    [record] = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 3 of 6 rows with a bad image" in record.getMessage()
    assert "1 (problem_id 'p1'), 3 (problem_id 'p3'), 5 (problem_id 'p5')" in record.getMessage()


def test_at_the_limit_is_accepted_and_a_clean_split_is_returned_as_is(tmp_path):
    dataset = image_rows(tmp_path).select([0, 2, 4, 5])
    kept, skipped = check_images(dataset, max_pixels=100 * 50)
    assert kept is dataset and skipped == []


def test_images_list_column_names_the_image_in_the_list(tmp_path):
    features = Features({"images": List(Image())})
    dataset = Dataset.from_dict(
        {"images": [[{"bytes": png_bytes(8, 8), "path": None}], [], [{"bytes": png_bytes(8, 8), "path": None}] * 2]},
        features=features,
    )
    dataset = dataset.add_item(
        {"images": [{"bytes": png_bytes(8, 8), "path": None}, {"bytes": b"junk", "path": None}]}
    )
    with pytest.raises(
        ValueError, match=r"row 3, column 'images': the embedded image of images\[1\] cannot be opened"
    ):
        check_images(dataset)
    kept, skipped = check_images(dataset, on_bad_row="skip")
    assert len(kept) == 3 and [err.row_id for err in skipped] == ["3"]


def test_a_cut_jpeg_is_caught_although_pil_verify_accepts_it(tmp_path):
    data = jpeg_bytes(64, 64)
    with PILImage.open(io.BytesIO(data[: len(data) // 2])) as image:
        image.verify()  # PIL's verify() does not read JPEG data: a cut file passes it
    (tmp_path / "whole.jpg").write_bytes(data)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "padded.jpg").write_bytes(data + b"\0" * 4096)  # trailing bytes after the end marker are valid
    paths = [str(tmp_path / name) for name in ("whole.jpg", "cut.jpg", "padded.jpg")]
    dataset = Dataset.from_dict({"image": paths}, features=Features({"image": Image()}))
    kept, skipped = check_images(dataset, on_bad_row="skip")
    assert [err.row_id for err in skipped] == ["1"] and "truncated" in skipped[0].reason
    assert len(kept) == 2


def test_a_split_with_only_bad_images_is_an_error_even_when_skipping(tmp_path):
    dataset = image_rows(tmp_path).select([1, 3])
    with pytest.raises(ValueError, match="Every one of the 2 rows of the 'train' split has a bad image"):
        check_images(dataset, on_bad_row="skip")


# The tiny GRPO recipe, run as a user runs it.


def save_with_one_bad_row(path: Path, row: int, image: bytes) -> Path:
    """8 synthetic rows with `problem_id` shape-0 ... shape-7, row `row` holding `image` instead of its 56x56 PNG."""
    rows = make_synthetic_dataset(8, seed=0).cast_column("image", Image(decode=False)).to_list()
    rows[row]["image"] = {"bytes": image, "path": None}
    for index, item in enumerate(rows):
        item["problem_id"] = f"shape-{index}"
    DatasetDict(train=Dataset.from_list(rows).cast_column("image", Image())).save_to_disk(path)
    return path


@pytest.fixture(scope="module")
def corrupt_dataset(tmp_path_factory):
    return save_with_one_bad_row(tmp_path_factory.mktemp("corrupt"), 2, png_bytes(56, 56)[:40])


@pytest.fixture(scope="module")
def oversized_dataset(tmp_path_factory):
    # 56 * 56 = 3136 <= 5000 < 112 * 112 = 12544: with --max_image_pixels=5000, only row 5 is over the limit.
    return save_with_one_bad_row(tmp_path_factory.mktemp("oversized"), 5, png_bytes(112, 112))


def recipe_args(tiny_vlm_dir, dataset_dir, output_dir, *overrides: str) -> list[str]:
    """The tiny recipe's command line: one step of plain GRPO (no judge) on `dataset_dir`."""
    return [
        "--config",
        str(ROOT / "recipes/tiny/trust_grpo.yaml"),
        f"--model_name_or_path={tiny_vlm_dir}",
        "--judge_backend=none",
        f"--dataset_name={dataset_dir}",
        f"--output_dir={output_dir}",
        "--max_steps=1",
        "--per_device_train_batch_size=4",
        "--max_completion_length=8",
        "--logging_steps=1",
        *overrides,
    ]


def run_recipe(tiny_vlm_dir, dataset_dir, output_dir, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "recipes/grpo.py", *recipe_args(tiny_vlm_dir, dataset_dir, output_dir, *overrides)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("dataset", "overrides", "row", "reason"),
    [
        ("corrupt_dataset", [], "row 2 (problem_id 'shape-2')", "cannot be opened as an image"),
        (
            "oversized_dataset",
            ["--max_image_pixels=5000"],
            "row 5 (problem_id 'shape-5')",
            "is 112x112 = 12544 pixels, more than the limit of 5000",
        ),
    ],
)
def test_recipe_stops_before_training_naming_the_bad_row(
    tiny_vlm_dir, request, tmp_path, monkeypatch, dataset, overrides, row, reason
):
    # The recipe's own parser and main, in this process: the check runs before the policy loads, so no model is built.
    from trl import ModelConfig, TrlParser

    from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import grpo

    path = request.getfixturevalue(dataset)
    args = recipe_args(tiny_vlm_dir, path, tmp_path / "out", *overrides)
    parsed = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig)).parse_args_and_config(args)
    with pytest.raises(ValueError) as info:
        grpo.main(*parsed)
    assert str(info.value).startswith(f"Bad image in the 'train' split of {path}, {row}, column 'image': ")
    assert reason in str(info.value) and "--on_bad_row skip" in str(info.value)
    assert not (tmp_path / "out").exists()  # stopped before the trainer was built


@pytest.mark.parametrize(
    ("dataset", "overrides", "row"),
    [
        ("corrupt_dataset", [], "2 (problem_id 'shape-2')"),
        ("oversized_dataset", ["--max_image_pixels=5000"], "5 (problem_id 'shape-5')"),
    ],
)
def test_recipe_skips_the_bad_row_and_trains(tiny_vlm_dir, request, tmp_path, dataset, overrides, row):
    path = request.getfixturevalue(dataset)
    result = run_recipe(tiny_vlm_dir, path, tmp_path / "out", "--on_bad_row=skip", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    [line] = [line for line in output.splitlines() if "rows with a bad image" in line]
    assert f"skipped 1 of 8 rows with a bad image (on_bad_row=skip): {row}; first reason: " in line
    assert "'train_runtime'" in output  # the step ran


# The converters' --max_image_pixels.


def test_sophiavl_converter_skips_and_reports_an_image_over_max_image_pixels(load_script, tmp_path, capsys):
    import json

    from datasets import load_from_disk

    release = tmp_path / "release"
    (release / "json").mkdir(parents=True)
    rows = [
        {"problem_id": "small", "problem": "How many?", "data_type": "image", "problem_type": "numerical",
         "solution": "<answer>1</answer>", "path": "small.png"},
        {"problem_id": "large", "problem": "How many?", "data_type": "image", "problem_type": "numerical",
         "solution": "<answer>2</answer>", "path": "large.png"},
    ]  # fmt: skip
    (release / "json" / "rows.json").write_text(json.dumps(rows))
    PILImage.new("RGB", (10, 10)).save(release / "small.png")  # 100 pixels: at the limit, kept
    PILImage.new("RGB", (11, 10)).save(release / "large.png")  # 110 pixels: over it
    out = tmp_path / "out"
    args = ["--input_dir", str(release), "--output_dir", str(out), "--max_image_pixels", "100"]
    script = load_script("sophiavl_130k")
    with pytest.raises(ValueError, match=r"row large, .*is 11x10 = 110 pixels, more than the limit of 100"):
        script.main(args)
    script.main([*args, "--on_bad_row", "skip"])
    assert "Skipped 1 bad row(s):" in capsys.readouterr().out
    assert load_from_disk(str(out))["train"]["problem_id"] == ["small"]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["num_skipped"] == 1 and report["skipped"][0]["row"] == "large"
    assert "110 pixels, more than the limit of 100" in report["skipped"][0]["reason"]


def test_thinking_converter_passes_max_image_pixels(load_script, tmp_path):
    import json

    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"question": "Q", "response": "R", "score": 0.5, "image": "a.png"})
    )
    PILImage.new("RGB", (11, 10)).save(tmp_path / "a.png")
    script = load_script("thinking_156k")
    args = ["--input_dir", str(tmp_path / "rows.jsonl"), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"rows.jsonl:0, .*110 pixels, more than the limit of 109"):
        script.main([*args, "--max_image_pixels", "109"])
    assert len(script.main([*args, "--max_image_pixels", "110"])["train"]) == 1


def test_rows_with_more_images_than_max_images_are_bad_rows():
    image = {"bytes": png_bytes(8, 8), "path": None}
    counts = [1, 3, 0, 2]
    features = Features({"images": List(Image()), "problem_id": Value("string")})
    dataset = Dataset.from_dict(
        {"images": [[image] * n for n in counts], "problem_id": [f"p{i}" for i in range(4)]}, features=features
    )
    with pytest.raises(ValueError) as info:
        check_images(dataset, "train", max_images=2)
    message = str(info.value)
    assert message.startswith("Bad image in the 'train' split, row 1 (problem_id 'p1'), column 'images': ")
    assert "images holds 3 images, more than the 2 per row" in message and "judge_max_images_per_row" in message
    kept, skipped = check_images(dataset, "train", max_images=2, on_bad_row="skip")
    assert kept["problem_id"] == ["p0", "p2", "p3"] and [err.row_id for err in skipped] == ["1 (problem_id 'p1')"]
    assert check_images(dataset, "train", max_images=3)[1] == []  # at the limit
    assert check_images(dataset, "train")[1] == []  # no limit
    with pytest.raises(ValueError, match="max_images must be >= 1 or None, got 0"):
        check_images(dataset, "train", max_images=0)
