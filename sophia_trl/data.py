"""Dataset loading for the recipes, and the helpers of the converters in `data_prep/`.

Loading: [`load_dataset_from_name_or_path`] and [`load_train_test_splits`] read a `save_to_disk` folder, a data file
or a Hub id the same way, and [`check_images`] finds the bad images of a split before training. Converting:
[`iter_rows`], [`resolve_image`], [`convert_rows`] and [`save_dataset`] turn release files into datasets, with bad
rows named by [`BadRowError`]; [`read_judge_row`] reads the judge data of the thinking reward whatever its column
names. The prompt of each training row is built by `sophia_trl.prompts`.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, Value, load_dataset, load_from_disk
from datasets import Image as ImageFeature
from PIL import Image

from .prompts import IMAGE_PLACEHOLDER, message_text, strip_instruction
from .rewards.problem_types import normalize_problem_type

logger = logging.getLogger(__name__)

DATA_FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


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
    name_or_path: str, config: str | None = None, train_split: str = "train", test_split: str = "test"
) -> tuple[Dataset, Dataset | None]:
    """
    The train split (required) and the test split (None when absent) of a dataset, loaded as
    [`load_dataset_from_name_or_path`] does; a dataset without splits is the train split.

    Example:
        >>> train, test = load_train_test_splits("data/synthetic")  # a DatasetDict written by data_prep/synthetic.py
    """
    dataset = load_dataset_from_name_or_path(name_or_path, config)
    if isinstance(dataset, Dataset):
        dataset = DatasetDict({train_split: dataset})
    if train_split not in dataset:
        raise ValueError(
            f"Split {train_split!r} not in {name_or_path} (splits: {list(dataset)}); set dataset_train_split."
        )
    return dataset[train_split], dataset.get(test_split)


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


def resolve_image(
    value: Any, image_root: str | os.PathLike, max_pixels: int | None = None
) -> str | dict[str, Any] | None:
    """
    Check that a row's image exists and opens, without keeping it in memory, and return it in a form the `datasets`
    `Image()` feature stores: an absolute path (decoded lazily when the row is read) or `{"bytes": ..., "path": ...}`.

    Args:
        value (`Any`):
            The row's image: a path (relative to `image_root`, or absolute), a `{"bytes", "path"}` dict (Parquet
            exports), a one-element list of those, or `None`/`""` for no image.
        image_root (`str` or `os.PathLike`):
            Folder that relative paths start from.
        max_pixels (`int` or `None`, *optional*, defaults to `None`):
            Largest image (width x height) accepted; `None` for no limit besides PIL's decompression-bomb guard.

    Returns:
        `str`, `dict` or `None`: The image for the `Image()` feature, `None` when the row has none.

    Raises:
        `ValueError`: The image is missing, cannot be opened, is larger than `max_pixels`, or is not one image (the
            message says which).
    """
    if isinstance(value, list):
        if len(value) > 1:
            raise ValueError(f"{len(value)} images given; this format holds one image per row.")
        value = value[0] if value else None
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            _verify_image(io.BytesIO(value["bytes"]), "the embedded image bytes", max_pixels)
            return {"bytes": value["bytes"], "path": value.get("path")}
        value = value.get("path")
        if not value:
            raise ValueError("the image entry has neither bytes nor a path.")
    if not isinstance(value, str):
        raise ValueError(f"the image must be a path string, got {type(value).__name__}.")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(image_root) / path
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"image {value!r} not found (looked for {path}). Check the image root folder.")
    _verify_image(path, f"image {value!r} ({path})", max_pixels)
    return str(path)


def _verify_image(source: Any, name: str, max_pixels: int | None = None) -> None:
    try:
        # verify() checks the file's structure without decoding the pixels, so memory stays small on large images.
        with Image.open(source) as image:
            size, image_format = image.size, image.format
            image.verify()
        if image_format == "JPEG" and not _ends_with_jpeg_eoi(source):
            _decode_jpeg_draft(source)
    except Exception as err:
        raise ValueError(f"{name} cannot be opened as an image ({type(err).__name__}: {err}).") from err
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise ValueError(
            f"{name} is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, more than the limit of {max_pixels}: "
            "shrink it or raise the limit."
        )


def _ends_with_jpeg_eoi(source: Any) -> bool:
    """Whether a JPEG file ends with its end-of-image marker (within its last KiB, which allows trailing padding)."""
    if isinstance(source, io.BytesIO):
        return b"\xff\xd9" in source.getbuffer()[-1024:].tobytes()
    with open(source, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 1024))
        return b"\xff\xd9" in f.read()


def _decode_jpeg_draft(source: Any) -> None:
    """Decode a JPEG at 1/8 scale: PIL's verify() does not read JPEG data, and a cut file only fails on decoding."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    with Image.open(source) as image:
        image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
        image.load()


# The columns TRL's GRPOTrainer reads images from, and the columns that name a row in messages.
IMAGE_COLUMNS = ("image", "images")
ROW_ID_COLUMNS = ("problem_id", "id")


def check_images(
    dataset: Dataset,
    split: str = "train",
    max_pixels: int | None = None,
    on_bad_row: str = "error",
    dataset_name: str | None = None,
    batch_size: int = 256,
) -> tuple[Dataset, list[BadRowError]]:
    """
    Check every image of a training split before training, so that a corrupt or oversized image stops the run at
    once with its row named (or is left out), rather than killing it hours later when the row is drawn.

    The `image` and `images` columns (TRL's two image formats) are read undecoded: each image's header and structure
    are checked with PIL (`Image.open`, `.size`, `.verify()`), never its pixels, except JPEG files that do not end
    with their end-of-image marker, which are decoded at 1/8 scale to tell a cut file from one with trailing data. An
    image is bad when it cannot be opened, is larger than `max_pixels` (or PIL's decompression-bomb limit), or is a
    local path that does not exist; relative paths are taken from the working directory, as `datasets` and the
    processor open them, and remote ones (`scheme://...`) are not checked.

    Args:
        dataset ([`~datasets.Dataset`]):
            The split to check.
        split (`str`, *optional*, defaults to `"train"`):
            The split's name, for messages.
        max_pixels (`int` or `None`, *optional*, defaults to `None`):
            Largest image (width x height) accepted; `None` for no limit besides PIL's decompression-bomb guard.
        on_bad_row (`str`, *optional*, defaults to `"error"`):
            `"error"` raises at the first bad row; `"skip"` leaves bad rows out and logs how many and which.
        dataset_name (`str` or `None`, *optional*, defaults to `None`):
            The dataset's name or path, for messages.
        batch_size (`int`, *optional*, defaults to `256`):
            Rows read from the Arrow table at a time.

    Returns:
        `tuple[Dataset, list[BadRowError]]`: The split without its bad rows (the same object when none is bad), and
        the errors of the rows left out (`row_id` is the row index, with its `problem_id`/`id` when the split has one).

    Raises:
        `ValueError`: With `on_bad_row="error"`, a bad image; the message names the split, row, id and column, and
        what to do.

    Example:
        >>> train, skipped = check_images(train, "train", max_pixels=4096 * 4096, on_bad_row="skip")
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}.")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_image_pixels must be a positive number of pixels or None, got {max_pixels}.")
    columns = [column for column in IMAGE_COLUMNS if column in dataset.column_names]
    if not columns:
        return dataset, []
    id_column = next((column for column in ROW_ID_COLUMNS if column in dataset.column_names), None)
    # The Arrow format returns images as stored ({"bytes", "path"} or a path string), so nothing is decoded here.
    raw = dataset.select_columns(columns + ([id_column] if id_column else [])).with_format("arrow")
    where = f"the {split!r} split" + (f" of {dataset_name}" if dataset_name else "")
    bad: dict[int, BadRowError] = {}
    for start in range(0, len(raw), batch_size):
        batch = raw[start : start + batch_size]
        ids = batch[id_column].to_pylist() if id_column else [None] * batch.num_rows
        for column in columns:
            for offset, value in enumerate(batch[column].to_pylist()):
                index = start + offset
                if index in bad:
                    continue
                reason = _image_problem(value, column, max_pixels)
                if reason is None:
                    continue
                row = f"{index}" + (f" ({id_column} {ids[offset]!r})" if ids[offset] not in (None, "") else "")
                if on_bad_row == "error":
                    raise ValueError(
                        f"Bad image in {where}, row {row}, column {column!r}: {reason} Fix or remove the row, raise "
                        "max_image_pixels if the image is only too large, or pass --on_bad_row skip to leave such "
                        "rows out."
                    )
                bad[index] = BadRowError(f"column {column!r}: {reason}", row_id=row)
    if not bad:
        return dataset, []
    if len(bad) == len(dataset):
        raise ValueError(
            f"Every one of the {len(dataset)} rows of {where} has a bad image (row {bad[0].row_id}: {bad[0].reason}): "
            "nothing is left to train on. Check the images' paths (relative paths start from the working directory) "
            "and max_image_pixels."
        )
    skipped = [bad[index] for index in sorted(bad)]
    shown = ", ".join(err.row_id for err in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
    logger.warning(
        "%s: skipped %d of %d rows with a bad image (on_bad_row=skip): %s; first reason: %s",
        where[0].upper() + where[1:],
        len(skipped),
        len(dataset),
        shown,
        skipped[0].reason,
    )
    return dataset.select([index for index in range(len(dataset)) if index not in bad]), skipped


def _image_problem(value: Any, column: str, max_pixels: int | None) -> str | None:
    """What is wrong with one row's stored image value (one image, or a list of them), or `None` when it is fine."""
    items = value if isinstance(value, list) else [value]
    for position, item in enumerate(items):
        name = f"{column}[{position}]" if isinstance(value, list) else column
        if isinstance(item, dict) and item.get("bytes"):
            try:
                _verify_image(io.BytesIO(item["bytes"]), f"the embedded image of {name}", max_pixels)
            except ValueError as err:
                return str(err)
            continue
        path = item.get("path") if isinstance(item, dict) else item
        if path is None or path == "":
            continue
        if not isinstance(path, str):
            return f"{name} holds a {type(path).__name__}, not an image or a path."
        if "://" in path:
            continue
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            return f"image {path!r} of {name} does not exist (looked for {resolved})."
        try:
            _verify_image(resolved, f"image {path!r} ({resolved})", max_pixels)
        except ValueError as err:
            return str(err)
    return None


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


def convert_rows(
    items: Iterable[Any],
    convert: Callable[[Any], dict[str, Any]],
    on_bad_row: str = "error",
    max_rows: int | None = None,
) -> tuple[list[dict[str, Any]], list[BadRowError]]:
    """
    Convert rows one by one, stopping at the first bad one or skipping bad ones.

    Args:
        items (`Iterable`):
            What `convert` takes, one per row.
        convert (`Callable`):
            Returns the converted row, or raises [`BadRowError`].
        on_bad_row (`str`, *optional*, defaults to `"error"`):
            `"error"` re-raises the first [`BadRowError`]; `"skip"` leaves the row out and records the error.
        max_rows (`int` or `None`, *optional*, defaults to `None`):
            Stop once this many rows are converted (bad rows do not count).

    Returns:
        `tuple[list[dict], list[BadRowError]]`: The converted rows and the errors of the skipped ones.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}.")
    rows, bad = [], []
    for item in items:
        if max_rows is not None and len(rows) >= max_rows:
            break
        try:
            rows.append(convert(item))
        except BadRowError as err:
            if on_bad_row == "error":
                raise
            bad.append(err)
    return rows, bad


def bad_rows_report(bad: list[BadRowError], max_listed: int = 20) -> str:
    """
    A short text report of skipped rows: how many, and which (row, file, reason), the first `max_listed` of them.

    Args:
        bad (`list[BadRowError]`):
            The errors of the skipped rows.
        max_listed (`int`, *optional*, defaults to `20`):
            How many rows to list.

    Returns:
        `str`: The report; empty when nothing was skipped.
    """
    if not bad:
        return ""
    lines = [f"Skipped {len(bad)} bad row(s):"]
    lines += [f"  - {err}" for err in bad[:max_listed]]
    if len(bad) > max_listed:
        lines.append(f"  ... and {len(bad) - max_listed} more (all are listed in the conversion report file).")
    return "\n".join(lines)


def write_conversion_report(output_dir: str | os.PathLike, summary: dict[str, Any], bad: list[BadRowError]) -> Path:
    """
    Write `conversion_report.json` into `output_dir`: the summary counts and every skipped row with its reason.

    Args:
        output_dir (`str` or `os.PathLike`):
            The converted dataset's folder.
        summary (`dict`):
            Counts to record (rows, per source, per type, ...).
        bad (`list[BadRowError]`):
            The errors of the skipped rows.

    Returns:
        `Path`: The report file.
    """
    path = Path(output_dir) / "conversion_report.json"
    skipped = [{"row": err.row_id, "file": err.file, "reason": err.reason} for err in bad]
    path.write_text(json.dumps({**summary, "num_skipped": len(bad), "skipped": skipped}, indent=2) + "\n")
    return path


# The rows the thinking-reward (stage-1) trainers read.
JUDGE_DATA_FEATURES = Features(
    {
        "question": Value("string"),
        "image": ImageFeature(mode="RGB"),
        "response": Value("string"),
        "score": Value("float64"),
        "problem_type": Value("string"),
    }
)

# Judge data (question, response, score, image) comes with varied column names; each field is read from the first of
# these columns a row has, unless the caller names the column.
JUDGE_COLUMN_CANDIDATES = {
    "question": ("question", "problem", "prompt", "query", "instruction"),
    "response": ("response", "process", "output", "completion", "answer"),
    "score": ("score", "reward", "label", "rating"),
    "image": ("image", "images", "path", "image_path"),
    "problem_type": ("problem_type",),
}
_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S)


def parse_column_mapping(spec: str | None) -> dict[str, str]:
    """
    Parse a column mapping such as `"question=query,score=grade"` (output field = input column).

    Args:
        spec (`str` or `None`):
            Comma-separated `field=column` pairs; fields are the keys of `JUDGE_COLUMN_CANDIDATES`.

    Returns:
        `dict[str, str]`: Field -> input column.
    """
    if not spec:
        return {}
    mapping = {}
    for item in spec.split(","):
        target, sep, source = (part.strip() for part in item.partition("="))
        if not sep or not target or not source:
            raise ValueError(f"columns: {item!r} is not of the form field=column (e.g. question=query).")
        if target not in JUDGE_COLUMN_CANDIDATES:
            raise ValueError(f"columns: unknown field {target!r}; expected one of {list(JUDGE_COLUMN_CANDIDATES)}.")
        mapping[target] = source
    return mapping


def to_score(value: Any, scale: float = 1.0) -> float:
    """
    A judge label as a float in [0, 1].

    Args:
        value (`Any`):
            A number, a numeric string, or a judge output holding `<answer>x</answer>`.
        scale (`float`, *optional*, defaults to `1.0`):
            The labels' maximum (10 for 0-10 labels): the value is divided by it.

    Returns:
        `float`: The score.

    Raises:
        `ValueError`: Not a number, NaN, or outside [0, 1] after scaling.
    """
    if isinstance(value, str):
        match = _ANSWER_TAG.search(value)
        text = (match.group(1) if match else value).strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"score {text!r} is not a number.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"score must be a number, got {type(value).__name__}.")
    score = float(value) / scale
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise ValueError(
            f"score {value!r} / {scale:g} = {score:g} is outside [0, 1]; set the score scale to the labels' maximum."
        )
    return score


def read_judge_row(
    row: dict[str, Any],
    columns: dict[str, str] | None = None,
    image_root: str | os.PathLike = ".",
    score_scale: float = 1.0,
    need_score: bool = True,
    max_image_pixels: int | None = None,
) -> dict[str, Any]:
    """
    Read the judge-data fields of one row, whatever its column names (see `JUDGE_COLUMN_CANDIDATES`).

    `question` and `response` may be strings or conversations (TRL's completion logs): the last user message gives the
    question (with the instruction added by `sophia_trl.prompts.build_prompt` removed) and the last assistant message
    the response.

    Args:
        row (`dict`):
            The input row.
        columns (`dict[str, str]` or `None`, *optional*, defaults to `None`):
            Field -> input column, overriding the candidates.
        image_root (`str` or `os.PathLike`, *optional*, defaults to `"."`):
            Folder that relative image paths start from.
        score_scale (`float`, *optional*, defaults to `1.0`):
            See [`to_score`].
        need_score (`bool`, *optional*, defaults to `True`):
            Whether a missing score is an error (`False` when the rows are still to be labelled).
        max_image_pixels (`int` or `None`, *optional*, defaults to `None`):
            Largest image accepted, see [`resolve_image`].

    Returns:
        `dict`: `question`, `image` (for the `Image()` feature, or `None`), `response`, `score` (or `None`),
        `problem_type` (or `None`) and `user_text` (the full user message, to match the row to its prompt).

    Raises:
        `ValueError`: A required field is missing or malformed; the message says which and how to name the column.
    """
    columns = columns or {}

    def pick(field: str) -> tuple[str | None, Any]:
        if field in columns:
            return columns[field], row.get(columns[field])
        for name in JUDGE_COLUMN_CANDIDATES[field]:
            if row.get(name) is not None:
                return name, row[name]
        return None, None

    fields = {}
    for field in ("question", "response") + (("score",) if need_score else ()):
        name, value = pick(field)
        if value is None:
            tried = [columns[field]] if field in columns else list(JUDGE_COLUMN_CANDIDATES[field])
            raise ValueError(
                f"no {field!r}: none of the columns {tried} is set (row keys: {sorted(row)}). Name the input column "
                f"with the column mapping ({field}=<column>)."
            )
        fields[field] = (name, value)

    user_text = message_text(fields["question"][1], role="user")
    response = message_text(fields["response"][1], role="assistant")
    if not user_text or not user_text.strip():
        raise ValueError(f"the question (column {fields['question'][0]!r}) is empty or not text.")
    if not response or not response.strip():
        raise ValueError(f"the response (column {fields['response'][0]!r}) is empty or not text.")
    score = to_score(fields["score"][1], score_scale) if need_score else None
    problem_type = pick("problem_type")[1]
    return {
        "question": strip_instruction(IMAGE_PLACEHOLDER.sub("", user_text)),
        "image": resolve_image(pick("image")[1], image_root, max_image_pixels),
        "response": response.strip(),
        "score": score,
        "problem_type": normalize_problem_type(problem_type) or (str(problem_type) if problem_type else None),
        "user_text": user_text,
    }


def score_bin(score: float) -> int:
    """
    The bin of a score among [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (1.0 is in the last bin).

    Args:
        score (`float`):
            A score in [0, 1].

    Returns:
        `int`: The bin index, 0 to 9.
    """
    # The epsilon keeps scores written in tenths in their own bin (0.3 * 10 is 2.9999999999999996 in floating point).
    return min(math.floor(score * 10 + 1e-9), 9)


def score_histogram(scores: Iterable[float]) -> list[int]:
    """
    Counts of scores in the ten bins of [`score_bin`].

    Args:
        scores (`Iterable[float]`):
            Scores in [0, 1].

    Returns:
        `list[int]`: Ten counts.
    """
    counts = [0] * 10
    for score in scores:
        counts[score_bin(score)] += 1
    return counts


def save_dataset(
    dataset_dict: DatasetDict,
    output_dir: str | os.PathLike,
    summary: dict[str, Any],
    bad: list[BadRowError],
    push_to_hub: str | None = None,
    private: bool = False,
) -> Path:
    """
    Write a converted dataset (`save_to_disk`, which copies image files into the output in batches), its
    `conversion_report.json`, and optionally push it to the Hub.

    Args:
        dataset_dict ([`~datasets.DatasetDict`]):
            The converted splits.
        output_dir (`str` or `os.PathLike`):
            Output folder.
        summary (`dict`):
            Counts for the report.
        bad (`list[BadRowError]`):
            Errors of the skipped rows.
        push_to_hub (`str` or `None`, *optional*, defaults to `None`):
            Hub dataset repo to push to; no push when `None`.
        private (`bool`, *optional*, defaults to `False`):
            Whether a pushed repo is private.

    Returns:
        `Path`: The report file.
    """
    dataset_dict.save_to_disk(str(output_dir))
    report = write_conversion_report(output_dir, summary, bad)
    if push_to_hub:
        dataset_dict.push_to_hub(push_to_hub, private=private)
        logger.info("Pushed %s to the Hub dataset repo %s", output_dir, push_to_hub)
    return report


def split_off_test(dataset: Dataset, test_size: float, seed: int = 0) -> DatasetDict:
    """
    A `train` split and, when `test_size > 0`, a seeded random `test` split of `round(test_size * len(dataset))`
    rows, at least one (so a small fraction of a small dataset still gives a test split) and leaving one for training.

    Args:
        dataset ([`~datasets.Dataset`]):
            All rows.
        test_size (`float`):
            Fraction of rows in the test split, in [0, 1).
        seed (`int`, *optional*, defaults to `0`):
            Seed of the split.

    Returns:
        [`~datasets.DatasetDict`]: `train` (and `test`).
    """
    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"test_size must be in [0, 1), got {test_size}.")
    if test_size == 0 or len(dataset) < 2:
        if test_size > 0:
            logger.warning("Only %d row(s): no test split.", len(dataset))
        return DatasetDict(train=dataset)
    num_test = min(max(1, round(test_size * len(dataset))), len(dataset) - 1)
    return dataset.train_test_split(test_size=num_test, seed=seed)


def add_conversion_arguments(parser: argparse.ArgumentParser) -> None:
    """
    Add the options every converter in `data_prep/` shares: `--on_bad_row`, `--max_image_pixels`, `--push_to_hub`,
    `--private`.

    Args:
        parser (`argparse.ArgumentParser`):
            The script's parser.
    """
    parser.add_argument(
        "--on_bad_row", choices=["error", "skip"], default="error", help="Stop at a bad row, or skip and report it."
    )
    parser.add_argument(
        "--max_image_pixels",
        type=_positive_int,
        default=None,
        metavar="N",
        help="A larger image (width x height) makes its row bad (default: no limit besides PIL's own).",
    )
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="Also push the dataset to this repo.")
    parser.add_argument("--private", action="store_true", help="Make the pushed dataset private.")


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
