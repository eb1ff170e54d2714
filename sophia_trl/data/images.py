"""Image checks: a row's image exists, opens and is within the pixel limit, at conversion and before training."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

from datasets import Dataset
from PIL import Image

from .loading import BAD_ROW_POLICIES, BadRowError

logger = logging.getLogger(__name__)


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
    max_images: int | None = None,
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
        max_images (`int` or `None`, *optional*, defaults to `None`):
            Most images a row may have (the in-process vLLM judge's `judge_max_images_per_row`); a row with more is a
            bad row. `None` for no limit.

    Returns:
        `tuple[Dataset, list[BadRowError]]`: The split without its bad rows (the same object when none is bad), and
        the errors of the rows left out (`row_id` is the row index, with its `problem_id`/`id` when the split has one).

    Raises:
        `ValueError`: With `on_bad_row="error"`, a bad image; the message names the split, row, id and column, and
        what to do.

    Example:
        >>> train, skipped = check_images(train, "train", max_pixels=4096 * 4096, on_bad_row="skip")
    """
    if on_bad_row not in BAD_ROW_POLICIES:
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}.")
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_image_pixels must be a positive number of pixels or None, got {max_pixels}.")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}.")
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
                reason = _too_many_images(value, column, max_images) or _image_problem(value, column, max_pixels)
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


def _too_many_images(value: Any, column: str, max_images: int | None) -> str | None:
    """Why a row's images are more than `max_images`, or `None`."""
    if max_images is None:
        return None
    items = value if isinstance(value, list) else [value]
    count = sum(1 for item in items if (item.get("bytes") or item.get("path") if isinstance(item, dict) else item))
    if count <= max_images:
        return None
    return (
        f"{column} holds {count} images, more than the {max_images} per row the in-process vLLM judge is started "
        f"for (judge_max_images_per_row): raise it to {count} or more."
    )


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
