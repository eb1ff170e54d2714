"""Reading datasets (a `save_to_disk` folder, a data file or a Hub id) and the rows of data files one by one."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

logger = logging.getLogger(__name__)

DATA_FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
# What a bad row does (`on_bad_row`): "error" stops and names it, "skip" leaves it out and reports it.
BAD_ROW_POLICIES = ("error", "skip")


def load_dataset_from_name_or_path(name_or_path: str, config: str | None = None) -> DatasetDict | Dataset:
    """
    Load a dataset the same way whatever form it comes in.

    - a folder written by `save_to_disk` -> `datasets.load_from_disk`;
    - any other local folder or a data file (`.json`, `.jsonl`, `.parquet`, `.csv`, `.arrow`) -> `datasets.load_dataset`
      (a file gives a `train` split);
    - anything else is taken as a Hub id -> `datasets.load_dataset(name_or_path, config)`.

    Args:
        name_or_path (`str`):
            Local folder, local data file, or Hub dataset id.
        config (`str` or `None`, *optional*, defaults to `None`):
            Dataset configuration (subset) name, for Hub datasets and folders with several configurations.

    Returns:
        [`~datasets.DatasetDict`] or [`~datasets.Dataset`]: What the source holds (a `save_to_disk` folder of a single
        `Dataset` gives a `Dataset`).

    Raises:
        `FileNotFoundError`: The path looks local (it starts with `/`, `./`, `../` or `~`) but does not exist.
        `ValueError`: Nothing could load it; the message says what was tried.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        logger.info("Loading %s with load_from_disk", path)
        return load_from_disk(str(path))
    if path.is_dir():
        args, kwargs = (str(path),), {"name": config}
        tried = f"load_dataset({str(path)!r}) on the folder's data files (it was not written by save_to_disk)"
    elif path.is_file():
        builder = DATA_FILE_FORMATS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(
                f"Cannot load {str(path)!r}: unknown file type {path.suffix!r}. Use one of "
                f"{sorted(DATA_FILE_FORMATS)}, or a folder written by save_to_disk."
            )
        args, kwargs = (builder,), {"data_files": str(path)}
        tried = f"load_dataset({builder!r}, data_files={str(path)!r})"
    elif name_or_path.startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(
            f"Dataset path {name_or_path!r} does not exist. Pass a folder written by save_to_disk, a data file, a "
            "folder of data files, or a Hugging Face Hub dataset id."
        )
    else:
        args, kwargs = (name_or_path,), {"name": config}
        tried = (
            f"load_dataset({name_or_path!r}, name={config!r}) from the Hugging Face Hub, as no local file or folder "
            "has that name"
        )
    try:
        return load_dataset(*args, **kwargs)
    except Exception as err:
        raise ValueError(f"Could not load dataset {name_or_path!r}: tried {tried}, which failed with: {err}") from err


def load_train_test_splits(
    name_or_path: str,
    config: str | None = None,
    train_split: str = "train",
    test_split: str = "test",
    required_columns: Sequence[str] = (),
    converter: str | None = None,
) -> tuple[Dataset, Dataset | None]:
    """
    The train split (required) and the test split (None when absent) of a dataset, loaded as
    [`load_dataset_from_name_or_path`] does; a dataset without splits is the train split.

    Args:
        name_or_path (`str`):
            Local folder, local data file, or Hub dataset id.
        config (`str` or `None`, *optional*, defaults to `None`):
            Dataset configuration (subset) name.
        train_split (`str`, *optional*, defaults to `"train"`):
            The split to train on.
        test_split (`str`, *optional*, defaults to `"test"`):
            The split to evaluate on, when present.
        required_columns (`Sequence[str]`, *optional*, defaults to `()`):
            Columns the recipe reads; a split without them stops with an error naming them (before any model loads).
        converter (`str` or `None`, *optional*, defaults to `None`):
            The command that writes such a dataset from a release's download, with `{input_dir}` for the folder; it is
            named in the errors, and a release folder in its download layout (`json/` beside the image folders) is
            refused before anything is read from it.

    Example:
        >>> train, test = load_train_test_splits("data/synthetic")  # a DatasetDict written by data_prep/synthetic.py
    """
    check_not_release_layout(name_or_path, converter)
    dataset = load_dataset_from_name_or_path(name_or_path, config)
    if isinstance(dataset, Dataset):
        dataset = DatasetDict({train_split: dataset})
    if train_split not in dataset:
        raise ValueError(
            f"Split {train_split!r} not in {name_or_path} (splits: {list(dataset)}); set dataset_train_split."
        )
    splits = [train_split, *([test_split] if test_split in dataset else [])]
    for split in splits:
        missing = [column for column in required_columns if column not in dataset[split].column_names]
        if missing:
            hint = f" Convert the source data first: {converter.format(input_dir=name_or_path)}." if converter else ""
            raise ValueError(
                f"Split {split!r} of {name_or_path} lacks the column(s) {missing} this recipe reads (it has "
                f"{dataset[split].column_names}).{hint} Then pass the converted folder as dataset_name."
            )
    return dataset[train_split], dataset.get(test_split)


def check_not_release_layout(name_or_path: str, converter: str | None = None) -> None:
    """
    Raises a `ValueError` when `name_or_path` is a dataset release as downloaded (a `json/` folder of raw rows beside
    the image folders, as SophiaVL-R1-130k and SophiaVL-R1-Thinking-156k ship), not a dataset written by a converter:
    `load_dataset` would read such a folder as an image folder, with none of the columns a recipe reads.

    Args:
        name_or_path (`str`):
            The dataset setting.
        converter (`str` or `None`, *optional*, defaults to `None`):
            The command that converts the release, with `{input_dir}` for the folder.
    """
    path = Path(name_or_path).expanduser()
    if not (path / "json").is_dir() or (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return
    if not any(child.is_dir() and child.name != "json" for child in path.iterdir()):
        return  # data files under json/ alone, no image folders: a folder of data files, loaded as such
    hint = converter.format(input_dir=name_or_path) if converter else "the converter in data_prep/ for this dataset"
    raise ValueError(
        f"{name_or_path} is a dataset release as downloaded (json/ beside the image folders), which the recipes do not "
        f"read directly. Convert it first: {hint}. Then pass the converted folder as dataset_name."
    )


class BadRowError(ValueError):
    """
    A row that cannot be converted; the message names the row, its file and what to do.

    Args:
        reason (`str`):
            What is wrong with the row.
        row_id (`str` or `None`, *optional*, defaults to `None`):
            The row's id (`problem_id`, or `file:index` when the row has none).
        file (`str` or `None`, *optional*, defaults to `None`):
            The file the row comes from.
    """

    def __init__(self, reason: str, row_id: str | None = None, file: str | None = None):
        self.reason = reason
        self.row_id = row_id
        self.file = file
        where = ", ".join(part for part in (f"row {row_id}" if row_id else "", f"file {file}" if file else "") if part)
        super().__init__(f"{where}: {reason}" if where else reason)


def list_data_files(path: str | os.PathLike) -> list[Path]:
    """
    The JSON, JSON Lines and Parquet files at `path` (the file itself, or the files under a folder, recursively), in
    sorted order.

    Args:
        path (`str` or `os.PathLike`):
            A data file or a folder.

    Returns:
        `list[Path]`: The data files.
    """
    path = Path(path)
    suffixes = (".json", ".jsonl", ".parquet")
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            raise ValueError(f"{path}: expected a {', '.join(suffixes)} file.")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist.")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise FileNotFoundError(f"No {', '.join(suffixes)} files under {path}.")
    return files


def release_data_files(input_dir: str | os.PathLike) -> list[Path]:
    """
    The data files of a dataset release: those under `input_dir/json/` when that folder exists (the SophiaVL-R1
    layout), else those under `input_dir` (or `input_dir` itself when it is a file).

    Args:
        input_dir (`str` or `os.PathLike`):
            The release folder, or a data file.

    Returns:
        `list[Path]`: JSON, JSON Lines and Parquet files, sorted.
    """
    input_dir = Path(input_dir)
    return list_data_files(input_dir / "json" if (input_dir / "json").is_dir() else input_dir)


def iter_rows(file: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """
    The rows of a data file as dicts: a JSON list (or an object holding one list), JSON Lines, or Parquet (read in
    batches, so a large file is never loaded whole).

    Args:
        file (`str` or `os.PathLike`):
            The file.

    Yields:
        `dict[str, Any]`: One row.
    """
    file = Path(file)
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(file).iter_batches(batch_size=256):
            yield from batch.to_pylist()
    elif suffix == ".jsonl":
        with open(file, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise BadRowError(f"line {line_number} is not valid JSON ({err}).", file=str(file)) from err
                if not isinstance(row, dict):
                    raise BadRowError(f"line {line_number} is not a JSON object.", file=str(file))
                yield row
    else:
        with open(file, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise BadRowError(f"not valid JSON ({err}).", file=str(file)) from err
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise BadRowError(
                    "expected a JSON list of rows (or an object holding exactly one list).", file=str(file)
                )
            data = lists[0]
        if not isinstance(data, list):
            raise BadRowError("expected a JSON list of rows.", file=str(file))
        for index, row in enumerate(data):
            if not isinstance(row, dict):
                raise BadRowError(f"item {index} is not a JSON object.", file=str(file))
            yield row
