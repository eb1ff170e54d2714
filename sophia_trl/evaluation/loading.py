"""Loading benchmark data from the Hub or from a local copy, and reading prediction files."""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import DatasetCard
from PIL import Image

from sophia_trl.data.loading import DATA_FILE_FORMATS, iter_rows

logger = logging.getLogger(__name__)

# VLMEvalKit ships MMBench as TSV with base64 images, hence TSV besides the project's data formats.
_DATA_FILE_BUILDERS = {**DATA_FILE_FORMATS, ".tsv": "csv"}


def load_benchmark(
    hub_id: str,
    configs: list[str | None],
    splits: list[str],
    source: str | None = None,
    required: tuple[str, ...] = (),
    layouts: dict[str, dict[str, str]] | None = None,
) -> datasets.Dataset:
    """Loads the rows of a benchmark, from the Hub or from a local copy, as one `datasets.Dataset`.

    Args:
        hub_id (`str`):
            The dataset's Hub id, e.g. `"AI4Math/MathVista"`.
        configs (`list[str | None]`):
            Dataset configurations to concatenate (e.g. MMMU's 30 subjects); `[None]` for the default one.
        splits (`list[str]`):
            Splits to concatenate, e.g. `["dev", "validation"]`.
        source (`str`, *optional*):
            A local copy instead of the Hub: a folder written by `save_to_disk` (a `Dataset`, or a `DatasetDict`
            holding the splits above), a clone of the Hub repository (`huggingface-cli download --repo-type dataset
            <hub_id> --local-dir <folder>`, read from the files its README.md lists for `configs` and `splits`; a
            partial clone gives the parts it holds, with a warning naming the others), or a single data file
            (`.parquet`, `.json`, `.jsonl`, `.csv`, `.tsv`) holding the rows to evaluate.
        required (`tuple[str, ...]`, *optional*, defaults to `()`):
            Columns the benchmark reads; a copy without them stops with an error naming it and them.
        layouts (`dict[str, dict[str, str]]`, *optional*):
            Other evaluation suites' layouts of the same benchmark (e.g. lmms-eval's, VLMEvalKit's), by name: our
            field -> their column. A copy whose columns include all of a layout's is read in that layout, without
            renaming anything on disk.

    Returns:
        `datasets.Dataset`: the rows, images decoded lazily.
    """
    rows = _load_rows(hub_id, configs, splits, source)
    rows = apply_layout(rows, layouts or {}, required, source or hub_id, hub_id)
    require_columns(rows.column_names, required, source or hub_id, hub_id, layouts)
    return rows


def apply_layout(
    rows: datasets.Dataset, layouts: dict[str, dict[str, str]], required: tuple[str, ...], where: str, benchmark: str
) -> datasets.Dataset:
    """Reads rows stored in another suite's layout: the first layout whose columns are all present gives the fields
    it maps (in memory; columns already named as the field are kept)."""
    if all(column in rows.column_names for column in required):
        present = [name for name, mapping in layouts.items() if set(mapping.values()) <= set(rows.column_names)]
        if not present:
            return rows
    for name, mapping in layouts.items():
        if set(mapping.values()) <= set(rows.column_names):
            renames = {
                theirs: ours for ours, theirs in mapping.items() if theirs != ours and ours not in rows.column_names
            }
            logger.info("%s: reading %s in %s's layout (%s).", benchmark, where, name, renames or "same names")
            return rows.rename_columns(renames) if renames else rows
    return rows


def _load_rows(hub_id: str, configs: list[str | None], splits: list[str], source: str | None) -> datasets.Dataset:
    if source is None:
        return _concatenate([_load_hub_split(hub_id, config, split, hub_id) for config in configs for split in splits])
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"Local copy of {hub_id} not found: {path} does not exist.")
    if path.is_file():
        builder = _DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(
                f"Cannot read {path}: expected one of {sorted(_DATA_FILE_BUILDERS)} or a dataset folder for {hub_id}."
            )
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    if (path / "dataset_dict.json").exists():
        dataset_dict = datasets.load_from_disk(str(path))
        present = [split for split in splits if split in dataset_dict]
        if not present:
            raise ValueError(
                f"{path} holds the splits {sorted(dataset_dict)}, none of the expected {splits} for {hub_id}. "
                "Save the benchmark's splits under their Hub names, or save the rows to evaluate as one Dataset."
            )
        return _concatenate([dataset_dict[split] for split in present])
    if (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
    card_files = _card_data_files(path)
    if card_files is not None:
        return _load_clone(path, card_files, configs, splits, hub_id)
    return _concatenate([_load_hub_split(str(path), config, split, hub_id) for config in configs for split in splits])


def _card_data_files(path: Path) -> dict[str | None, dict[str, list[str]]] | None:
    """The data files a clone's dataset card (README.md's `configs:`) lists, by configuration and split; `None` when the
    card lists none (the folder is then loaded as `datasets` infers it)."""
    readme = path / "README.md"
    if not readme.is_file():
        return None
    configs = DatasetCard.load(readme).data.to_dict().get("configs")
    if not isinstance(configs, list) or not configs:
        return None
    files: dict[str | None, dict[str, list[str]]] = {}
    for config in configs:
        data_files = config.get("data_files")
        entries = data_files if isinstance(data_files, list) else [data_files]
        splits: dict[str, list[str]] = {}
        for entry in entries:
            if isinstance(entry, dict):
                patterns = entry.get("path")
                splits.setdefault(entry.get("split", "train"), []).extend(
                    [patterns] if isinstance(patterns, str) else patterns or []
                )
            elif isinstance(entry, str):
                splits.setdefault("train", []).append(entry)
        files[config.get("config_name", "default")] = splits
        if config.get("default") or len(configs) == 1:
            files[None] = splits  # the configuration `load_dataset` picks when none is named
    return files


def _load_clone(
    path: Path,
    card_files: dict[str | None, dict[str, list[str]]],
    configs: list[str | None],
    splits: list[str],
    hub_id: str,
) -> datasets.Dataset:
    """The rows of the configurations and splits to evaluate that a clone holds, read from the files its card lists.

    A partial clone (some subjects of MMMU, or no `test` split, which the evaluation does not read) is evaluated on
    what is there: the missing configurations and splits are named in a warning, and only a clone holding none of them
    is an error. `datasets.load_dataset` on such a clone fails as a whole, since it resolves every file the card lists.
    """
    parts, missing = [], {}
    for config in configs:
        for split in splits:
            patterns = card_files.get(config, {}).get(split, [])
            files = sorted({str(file) for pattern in patterns for file in path.glob(pattern) if file.is_file()})
            builder = _DATA_FILE_BUILDERS.get(Path(files[0]).suffix.lower()) if files else None
            if builder is None:
                missing.setdefault(config, []).append(split)
            else:
                parts.append(datasets.load_dataset(builder, data_files=files, split="train"))
    download = f"huggingface-cli download --repo-type dataset {hub_id} --local-dir {path}"
    if not parts:
        raise ValueError(
            f"{path} holds none of the data {hub_id} is evaluated on (configurations {configs}, splits {splits}, "
            f"looked for with the file patterns of its README.md). Download them: {download}"
        )
    if missing:
        absent = [config for config, lacking in missing.items() if config is not None and len(lacking) == len(splits)]
        partial = [
            f"{config}/{split}" if config is not None else split
            for config, lacking in missing.items()
            if config not in absent
            for split in lacking
        ]
        what = [f"{len(absent)} of its {len(configs)} configurations ({', '.join(absent)})"] if absent else []
        what += [f"the split(s) {', '.join(partial)}"] if partial else []
        logger.warning(
            "%s: %s lacks %s; evaluating the %d part(s) it holds. To evaluate the whole benchmark, download the rest: %s",
            hub_id,
            path,
            " and ".join(what),
            len(parts),
            download,
        )
    return _concatenate(parts)


def _load_hub_split(name_or_path: str, config: str | None, split: str, hub_id: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(name_or_path, config, split=split)
    except Exception as error:  # the datasets library raises many types here; re-raise with what to do
        raise RuntimeError(
            f"Could not load {name_or_path} (config={config!r}, split={split!r}) for {hub_id}: {error}. "
            f"Pass a local copy with --data (a save_to_disk folder, a clone of {hub_id}, or a data file)."
        ) from error


def _concatenate(parts: list[datasets.Dataset]) -> datasets.Dataset:
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def require_columns(
    columns: list[str],
    required: tuple[str, ...],
    where: str,
    benchmark: str,
    layouts: dict[str, dict[str, str]] | None = None,
) -> None:
    """Raises a `ValueError` naming the missing columns, the file and the benchmark when `required` are not all in
    `columns`; with `layouts`, it also names the columns each known layout needs."""
    missing = [column for column in required if column not in columns]
    if missing:
        known = "".join(f"; {name}'s layout: {sorted(set(m.values()))}" for name, m in (layouts or {}).items())
        raise ValueError(
            f"{where} lacks the column(s) {missing} that {benchmark} needs (found: {sorted(columns)}). "
            f"Layouts read: {benchmark}'s own: {sorted(required)}{known}. "
            f"See eval/README.md for the fields each benchmark reads."
        )


def read_predictions(path: str | Path, required: tuple[str, ...], benchmark: str) -> list[dict[str, Any]]:
    """Reads a prediction file: one JSON object per line (`.jsonl`; a JSON list or Parquet file works too) with the
    benchmark's fields plus `response`.

    Args:
        path (`str` or `Path`):
            The file.
        required (`tuple[str, ...]`):
            The fields the benchmark's scoring reads; `response` is always required.
        benchmark (`str`):
            The benchmark's name, for error messages.

    Returns:
        `list[dict]`: the rows, in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Prediction file {path} does not exist.")
    rows = list(iter_rows(path))
    for number, row in enumerate(rows, start=1):
        require_columns(list(row), (*required, "response"), f"{path}, row {number}", benchmark)
    if not rows:
        raise ValueError(f"Prediction file {path} holds no rows.")
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Writes one JSON object per line (UTF-8, non-ASCII kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and other number-likes from datasets rows
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def to_image(value: Any, base_dir: str | Path | None = None) -> Image.Image | None:
    """Turns the ways benchmarks store an image into an RGB `PIL.Image`.

    Accepts a `PIL.Image`, a `datasets` image dict (`{"bytes": ..., "path": ...}`), a file path (relative paths are
    resolved against `base_dir`) or a base64 string (MMBench's TSV files). Returns `None` for a missing image.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        if value.get("bytes"):
            return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
        if value.get("path"):
            return to_image(value["path"], base_dir)
        return None
    if isinstance(value, str):
        if not value:
            return None
        candidate = Path(base_dir) / value if base_dir is not None else Path(value)
        if len(value) < 4096 and candidate.exists():
            return Image.open(candidate).convert("RGB")
        try:
            return Image.open(io.BytesIO(base64.b64decode(value, validate=True))).convert("RGB")
        except (binascii.Error, OSError) as error:
            raise ValueError(
                f"Image {value[:80]!r} is neither an existing file (looked at {candidate}) nor base64 image data."
            ) from error
    raise TypeError(f"Unsupported image value of type {type(value).__name__}.")


def is_missing(value: Any) -> bool:
    """True for `None`, NaN and empty or `"nan"` strings (how TSV/CSV copies store absent options)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none")
