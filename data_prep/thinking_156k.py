"""Convert SophiaVL-R1-Thinking-156k (or judge data in a similar shape) into the rows the stage-1 trainers read.

Input: `--input_dir DIR`, a folder (data files under `DIR/json/` when it exists, else anywhere under `DIR`) or a
single file, of JSON, JSON Lines or Parquet rows; image paths are relative to `DIR` (or `--image_root`). The exact
column names of the release are not fixed here, so each output column is taken from the first of these input
columns a row has, unless `--columns` names it:

| output         | input columns tried, in order                       |
|----------------|-----------------------------------------------------|
| `question`     | question, problem, prompt, query, instruction       |
| `response`     | response, process, output, completion, answer       |
| `score`        | score, reward, label, rating                        |
| `image`        | image, images, path, image_path                     |
| `problem_type` | problem_type                                        |

`question` and `response` may be strings or conversations (the last user / assistant message is used); `score` may
be a number, a numeric string, or a judge output such as `<answer>0.7</answer>`, and is divided by `--score_scale`
(e.g. 10 for 0-10 labels); it must then lie in [0, 1]. `image` may be a path, a `{"bytes", "path"}` dict or a
one-element list of those.

Output: `--output_dir OUT`, a `DatasetDict` written by `save_to_disk` with a `train` split (and a `test` split with
`--test_size`), columns `question` (str), `image` (RGB image or `None`), `response` (str), `score` (float in [0, 1]),
`problem_type` (str or `None`), plus `OUT/conversion_report.json`. Bad rows (missing column, unreadable image, image
over `--max_image_pixels`, score out of range...) stop the conversion with an error naming the row and file, or are
skipped with `--on_bad_row skip`.

```bash
python data_prep/thinking_156k.py --input_dir data/SophiaVL-R1-Thinking-156k --output_dir data/thinking-156k \\
    --test_size 0.02
python data_prep/thinking_156k.py --input_dir my_judge_data.jsonl --output_dir data/my-judge \\
    --columns question=query,response=trajectory,score=grade --score_scale 10
```
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict

from sophia_trl.data.conversion import (
    add_conversion_arguments,
    bad_rows_report,
    convert_rows,
    save_dataset,
    split_off_test,
)
from sophia_trl.data.judge_rows import JUDGE_DATA_FEATURES, parse_column_mapping, read_judge_row, score_histogram
from sophia_trl.data.loading import BadRowError, iter_rows, release_data_files


def convert_row(
    row: dict[str, Any],
    row_id: str,
    file: Path,
    image_root: Path,
    columns: dict[str, str],
    score_scale: float,
    max_image_pixels: int | None = None,
) -> dict[str, Any]:
    """One input row -> one judge-data row; raises [`BadRowError`] naming the row and file."""
    try:
        fields = read_judge_row(row, columns, image_root, score_scale=score_scale, max_image_pixels=max_image_pixels)
    except ValueError as err:
        raise BadRowError(str(err), row_id=row_id, file=str(file)) from err
    return {key: fields[key] for key in JUDGE_DATA_FEATURES}


def convert(
    input_dir: str | Path,
    image_root: str | Path | None = None,
    columns: dict[str, str] | None = None,
    score_scale: float = 1.0,
    on_bad_row: str = "error",
    max_image_pixels: int | None = None,
) -> tuple[Dataset, list[BadRowError], dict[str, Any]]:
    """Read and convert every row; returns the dataset, the errors of skipped rows and summary counts."""
    input_dir = Path(input_dir)
    image_root = (
        Path(image_root) if image_root is not None else (input_dir if input_dir.is_dir() else input_dir.parent)
    )
    columns = columns or {}

    def items():
        for file in release_data_files(input_dir):
            for index, row in enumerate(iter_rows(file)):
                row_id = next((str(row[k]) for k in ("id", "problem_id") if row.get(k) not in (None, "")), None)
                yield row, row_id or f"{file.name}:{index}", file

    rows, bad = convert_rows(
        items(),
        lambda item: convert_row(item[0], item[1], item[2], image_root, columns, score_scale, max_image_pixels),
        on_bad_row=on_bad_row,
    )
    dataset = Dataset.from_list(rows, features=JUDGE_DATA_FEATURES)
    summary = {
        "num_rows": len(rows),
        "num_text_only": sum(row["image"] is None for row in rows),
        "score_histogram": score_histogram([row["score"] for row in rows]),
        "by_problem_type": dict(Counter(str(row["problem_type"]) for row in rows)),
    }
    return dataset, bad, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_dir", required=True, help="Release folder, a folder of data files, or one file.")
    parser.add_argument("--output_dir", required=True, help="Folder to write the DatasetDict to (save_to_disk).")
    parser.add_argument("--image_root", default=None, help="Folder image paths are relative to (default: input_dir).")
    parser.add_argument("--columns", default=None, help="Input column names, e.g. question=query,score=grade.")
    parser.add_argument("--score_scale", type=float, default=1.0, help="Divide scores by this (10 for 0-10 labels).")
    parser.add_argument("--test_size", type=float, default=0.0, help="Fraction of rows held out as a test split.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the train/test split.")
    add_conversion_arguments(parser)
    args = parser.parse_args(argv)
    if args.score_scale <= 0:
        parser.error("--score_scale must be > 0.")
    if not 0.0 <= args.test_size < 1.0:
        parser.error("--test_size must be in [0, 1).")
    try:
        args.columns = parse_column_mapping(args.columns)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> DatasetDict:
    args = parse_args(argv)
    dataset, bad, summary = convert(
        args.input_dir,
        image_root=args.image_root,
        columns=args.columns,
        score_scale=args.score_scale,
        on_bad_row=args.on_bad_row,
        max_image_pixels=args.max_image_pixels,
    )
    if len(dataset) == 0:
        raise SystemExit(f"No rows converted from {args.input_dir}.")
    dataset_dict = split_off_test(dataset, args.test_size, args.seed)
    report = save_dataset(dataset_dict, args.output_dir, summary, bad, args.push_to_hub, args.private)
    splits = ", ".join(f"{name}: {len(split)}" for name, split in dataset_dict.items())
    print(f"Wrote {summary['num_rows']} rows ({splits}; {summary['num_text_only']} text-only) to {args.output_dir}")
    print("Score histogram over [0, 0.1) ... [0.9, 1.0]: " + " ".join(map(str, summary["score_histogram"])))
    if bad:
        print(bad_rows_report(bad))
    print(f"Report: {report}")
    return dataset_dict


if __name__ == "__main__":
    main()
