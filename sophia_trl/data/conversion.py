"""The steps every converter in `data_prep/` shares: convert rows, report the bad ones, split off a test set, save."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from .loading import BAD_ROW_POLICIES, BadRowError

logger = logging.getLogger(__name__)


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
    if on_bad_row not in BAD_ROW_POLICIES:
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
        "--on_bad_row", choices=BAD_ROW_POLICIES, default="error", help="Stop at a bad row, or skip and report it."
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
