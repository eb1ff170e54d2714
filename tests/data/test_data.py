"""sophia_trl.data: dataset loading and the row readers of the converters."""

import io
import json

import pytest
from datasets import Dataset, DatasetDict
from PIL import Image

from sophia_trl.data.conversion import convert_rows
from sophia_trl.data.images import resolve_image
from sophia_trl.data.loading import BadRowError, iter_rows, load_dataset_from_name_or_path

# --- load_dataset_from_name_or_path --------------------------------------------------------------------------------


def _rows():
    return {
        "problem": ["a?", "b?", "c?"],
        "solution": ["<answer>1</answer>", "<answer>2</answer>", "<answer>3</answer>"],
    }


def test_load_save_to_disk_folder(tmp_path):
    DatasetDict(train=Dataset.from_dict(_rows())).save_to_disk(str(tmp_path / "dict"))
    Dataset.from_dict(_rows()).save_to_disk(str(tmp_path / "single"))
    loaded = load_dataset_from_name_or_path(str(tmp_path / "dict"))
    assert isinstance(loaded, DatasetDict) and loaded["train"]["problem"] == ["a?", "b?", "c?"]
    single = load_dataset_from_name_or_path(str(tmp_path / "single"))
    assert isinstance(single, Dataset) and single["solution"][2] == "<answer>3</answer>"


def test_load_data_file_and_folder(tmp_path):
    rows = [dict(zip(_rows(), values)) for values in zip(*_rows().values())]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    loaded = load_dataset_from_name_or_path(str(tmp_path / "rows.jsonl"))
    assert loaded["train"]["problem"] == ["a?", "b?", "c?"]

    folder = tmp_path / "parquet"
    folder.mkdir()
    Dataset.from_dict(_rows()).to_parquet(str(folder / "train-00000.parquet"))
    assert load_dataset_from_name_or_path(str(folder))["train"]["solution"] == _rows()["solution"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="'./no/such/folder' does not exist"):
        load_dataset_from_name_or_path("./no/such/folder")
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(ValueError, match=r"unknown file type '\.txt'"):
        load_dataset_from_name_or_path(str(tmp_path / "rows.txt"))
    # Offline (tests/conftest.py): a Hub id cannot load, and the error says what was tried.
    with pytest.raises(ValueError, match=r"Could not load dataset 'someone/not-here': tried load_dataset.*Hub"):
        load_dataset_from_name_or_path("someone/not-here")
    (tmp_path / "bad.jsonl").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.jsonl.*load_dataset\('json'"):
        load_dataset_from_name_or_path(str(tmp_path / "bad.jsonl"))


# --- Row readers ---------------------------------------------------------------------------------------------------


def test_iter_rows_formats(tmp_path):
    rows = [{"a": 1}, {"a": 2}]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": "1", "data": rows}))
    (tmp_path / "lines.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    Dataset.from_list(rows).to_parquet(str(tmp_path / "table.parquet"))
    for name in ("list.json", "wrapped.json", "lines.jsonl", "table.parquet"):
        assert list(iter_rows(tmp_path / name)) == rows


def test_iter_rows_bad_files(tmp_path):
    (tmp_path / "lines.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(BadRowError, match=r"file .*lines\.jsonl: line 2 is not valid JSON"):
        list(iter_rows(tmp_path / "lines.jsonl"))
    (tmp_path / "two.json").write_text(json.dumps({"x": [], "y": []}))
    with pytest.raises(BadRowError, match="exactly one list"):
        list(iter_rows(tmp_path / "two.json"))
    (tmp_path / "scalars.json").write_text("[1, 2]")
    with pytest.raises(BadRowError, match="item 0 is not a JSON object"):
        list(iter_rows(tmp_path / "scalars.json"))


def test_resolve_image(tmp_path):
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "x.png")
    assert resolve_image("x.png", tmp_path) == str((tmp_path / "x.png").resolve())
    assert resolve_image(["./x.png"], tmp_path) == str((tmp_path / "x.png").resolve())
    assert resolve_image(str(tmp_path / "x.png"), "/elsewhere") == str((tmp_path / "x.png").resolve())
    assert resolve_image(None, tmp_path) is None and resolve_image("", tmp_path) is None
    buffer = io.BytesIO()
    Image.new("L", (3, 3)).save(buffer, format="PNG")
    assert resolve_image({"bytes": buffer.getvalue(), "path": None}, tmp_path)["bytes"] == buffer.getvalue()
    with pytest.raises(ValueError, match="not found"):
        resolve_image("y.png", tmp_path)
    with pytest.raises(ValueError, match="2 images given"):
        resolve_image(["x.png", "x.png"], tmp_path)
    with pytest.raises(ValueError, match="cannot be opened"):
        resolve_image({"bytes": b"garbage", "path": None}, tmp_path)


def test_convert_rows_policies():
    def convert(x):
        if x % 3 == 0:
            raise BadRowError("divisible by 3", row_id=str(x))
        return {"x": x}

    with pytest.raises(BadRowError, match="row 3: divisible by 3"):
        convert_rows(range(1, 10), convert)
    rows, bad = convert_rows(range(1, 10), convert, on_bad_row="skip")
    assert [r["x"] for r in rows] == [1, 2, 4, 5, 7, 8] and [e.row_id for e in bad] == ["3", "6", "9"]
    rows, bad = convert_rows(range(1, 10), convert, on_bad_row="skip", max_rows=3)
    assert [r["x"] for r in rows] == [1, 2, 4] and [e.row_id for e in bad] == ["3"]
    with pytest.raises(ValueError, match="on_bad_row"):
        convert_rows([], convert, on_bad_row="ignore")


def test_load_train_test_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    from sophia_trl.data.loading import load_train_test_splits

    DatasetDict({"train": Dataset.from_dict({"x": [1, 2, 3]}), "test": Dataset.from_dict({"x": [4]})}).save_to_disk(
        tmp_path / "both"
    )
    train, test = load_train_test_splits(str(tmp_path / "both"))
    assert train["x"] == [1, 2, 3] and test["x"] == [4]

    Dataset.from_dict({"x": [5, 6]}).save_to_disk(tmp_path / "single")
    train, test = load_train_test_splits(str(tmp_path / "single"))
    assert train["x"] == [5, 6] and test is None

    with pytest.raises(ValueError, match="'validation' not in .*set dataset_train_split"):
        load_train_test_splits(str(tmp_path / "both"), train_split="validation")
