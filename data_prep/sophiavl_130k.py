"""Convert the SophiaVL-R1-130k release (or data in its shape) into the dataset `recipes/grpo.py` trains on.

Input: the release folder, `--input_dir DIR`, as downloaded with
`huggingface-cli download bunny127/SophiaVL-R1-130k --repo-type dataset --local-dir DIR`: JSON (or JSON Lines /
Parquet) files under `DIR/json/`, whose rows have `problem_id`, `problem`, `data_type` ("image"/"text"),
`problem_type` ("multiple choice", "numerical", "OCR", "free-form", "text"), `options` (list of str), `process`,
`solution` ("<answer>X</answer>"), `path` (image path relative to DIR, e.g. `./Math/geo/images/x.png`) and
`data_source`.

Output: `--output_dir OUT`, a `DatasetDict` with one `train` split written by `save_to_disk` (and pushed with
`--push_to_hub REPO`), with columns

- `prompt`: conversational, `[{"role": "system", ...}?, {"role": "user", "content": str}]`, the question, its options
  and the per-type R1 instruction (`sophia_trl.prompts.build_prompt`, the same prompt as the synthetic task);
- `image`: the image (decoded when a row is read, converted to RGB), `None` for text-only rows; with
  `--image_column images`, an `images` list column instead (`[]` for text-only rows);
- `solution` (`"<answer>X</answer>"`), `problem_type`, `problem`, `options`, `data_source`, `problem_id`;

and `OUT/conversion_report.json` (row counts per source and per type, and every skipped row with its reason).

Every selected image is checked (`PIL.Image.verify`, no pixel decoding) and its bytes are copied into the output by
`save_to_disk` in batches, so memory stays bounded on the full 130k rows. A row whose image is missing, unreadable or
larger than `--max_image_pixels` (width x height; no limit by default besides PIL's), whose `problem_type` is
unknown, or whose fields are missing or malformed stops the conversion with an error naming its `problem_id` and
file; `--on_bad_row skip` leaves such rows out and reports how many and which. The `process` field (the reasoning of
the release) is not used for RL and is left out.

```bash
python data_prep/sophiavl_130k.py --input_dir data/SophiaVL-R1-130k --output_dir data/sophiavl-130k
python data_prep/sophiavl_130k.py --input_dir data/SophiaVL-R1-130k --output_dir data/sophiavl-math-5k \\
    --categories Math --max_rows_per_source 1000 --on_bad_row skip
```
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from datasets import Dataset, DatasetDict, Features, Image, List, Value

from sophia_trl.data.conversion import add_conversion_arguments, bad_rows_report, convert_rows, save_dataset
from sophia_trl.data.images import resolve_image
from sophia_trl.data.loading import BadRowError, iter_rows, release_data_files
from sophia_trl.prompts import IMAGE_PLACEHOLDER, POLICY_PROMPTS, build_prompt
from sophia_trl.rewards.problem_types import PROBLEM_TYPES, normalize_problem_type

FEATURES = Features(
    {
        "prompt": [{"role": Value("string"), "content": Value("string")}],
        "image": Image(mode="RGB"),
        "solution": Value("string"),
        "problem_type": Value("string"),
        "problem": Value("string"),
        "options": List(Value("string")),
        "data_source": Value("string"),
        "problem_id": Value("string"),
    }
)


def category_of(row: dict[str, Any], file: Path) -> str:
    """The first folder of the row's image path (`./Math/geo/images/x.png` -> `Math`), or the file's stem without one."""
    path = row.get("path")
    if isinstance(path, str) and path.strip():
        parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in (".", "/")]
        if len(parts) > 1:
            return parts[0]
    return file.stem


def convert_row(
    row: dict[str, Any],
    row_id: str,
    file: Path,
    image_root: Path,
    system_prompt: str | None = None,
    max_image_pixels: int | None = None,
    policy_prompt: str = "sophia_trl",
) -> dict[str, Any]:
    """One release row -> one training row; raises [`BadRowError`] naming the row and file."""

    def bad(reason: str) -> BadRowError:
        return BadRowError(reason, row_id=row_id, file=str(file))

    problem = row.get("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise bad("'problem' is missing or empty.")
    # TRL inserts the image block itself; a literal <image> placeholder in the text would be a stray token.
    problem = IMAGE_PLACEHOLDER.sub("", problem).strip()

    problem_type = normalize_problem_type(row.get("problem_type"))
    if problem_type is None:
        raise bad(
            f"unknown problem_type {row.get('problem_type')!r}; expected one of {list(PROBLEM_TYPES)}. Fix the row, "
            "or pass --on_bad_row skip to leave it out."
        )

    options = row.get("options")
    if options is None:
        options = []
    if not isinstance(options, list) or not all(isinstance(o, str | int | float) for o in options):
        raise bad(f"'options' must be a list of strings, got {options!r}.")
    options = [str(o).strip() for o in options if str(o).strip()]

    solution = row.get("solution")
    if isinstance(solution, int | float) and not isinstance(solution, bool):
        solution = str(solution)
    if not isinstance(solution, str) or not solution.strip():
        raise bad("'solution' is missing or empty.")
    solution = solution.strip()
    if "<answer>" not in solution:
        solution = f"<answer>{solution}</answer>"

    data_type = row.get("data_type")
    path = row.get("path")
    if data_type not in (None, "", "image", "text"):
        raise bad(f"unknown data_type {data_type!r}; expected 'image' or 'text'.")
    if data_type == "text":
        image = None
    elif data_type == "image" and not path:
        raise bad("data_type is 'image' but 'path' is empty.")
    else:
        try:
            image = resolve_image(path, image_root, max_image_pixels)
        except ValueError as err:
            raise bad(str(err)) from err

    return {
        "prompt": build_prompt(problem, problem_type, options, system_prompt, policy_prompt),
        "image": image,
        "solution": solution,
        "problem_type": problem_type,
        "problem": problem,
        "options": options,
        "data_source": str(row.get("data_source") or file.stem),
        "problem_id": row_id,
    }


def convert(
    input_dir: str | Path,
    image_root: str | Path | None = None,
    system_prompt: str | None = None,
    data_sources: list[str] | None = None,
    categories: list[str] | None = None,
    problem_types: list[str] | None = None,
    max_rows_per_source: int | None = None,
    on_bad_row: str = "error",
    seed: int = 0,
    image_column: str = "image",
    max_image_pixels: int | None = None,
    policy_prompt: str = "sophia_trl",
) -> tuple[Dataset, list[BadRowError], dict[str, Any]]:
    """
    Read, select and convert the release rows.

    Selection happens before checking, so unselected rows are never opened. With `max_rows_per_source`, each
    source's rows are visited in a seeded random order until that many good rows are kept (a skipped bad row is
    replaced by the next one); the kept rows stay in file order.

    With `image_column="images"` the image goes into a list column instead (`[image]`, `[]` for a text-only row),
    TRL's other image format. With `max_image_pixels`, a larger image makes its row bad. `policy_prompt` names the
    prompt written (`sophia_trl.prompts.build_prompt`: this project's, or `"sophiavl-r1"`, the released run's).

    Returns:
        The converted `Dataset`, the errors of skipped rows, and summary counts.
    """
    input_dir = Path(input_dir)
    image_root = Path(image_root) if image_root is not None else input_dir
    wanted_types = {normalize_problem_type(t) or t for t in problem_types} if problem_types else None

    selected: dict[str, list[tuple[int, dict[str, Any], str, Path]]] = {}
    order = 0
    for file in release_data_files(input_dir):
        for index, row in enumerate(iter_rows(file)):
            row.pop("process", None)  # long reasoning text, unused here: not kept in memory
            source = str(row.get("data_source") or file.stem)
            if data_sources and source not in data_sources:
                continue
            if categories and category_of(row, file) not in categories:
                continue
            if wanted_types and normalize_problem_type(row.get("problem_type")) not in wanted_types:
                continue
            row_id = str(row["problem_id"]) if row.get("problem_id") not in (None, "") else f"{file.name}:{index}"
            selected.setdefault(source, []).append((order, row, row_id, file))
            order += 1

    rng = random.Random(seed)
    kept: list[tuple[int, dict[str, Any]]] = []
    bad: list[BadRowError] = []
    for items in selected.values():
        if max_rows_per_source is not None:
            items = rng.sample(items, len(items))
        rows, source_bad = convert_rows(
            items,
            lambda item: (
                item[0],
                convert_row(item[1], item[2], item[3], image_root, system_prompt, max_image_pixels, policy_prompt),
            ),
            on_bad_row=on_bad_row,
            max_rows=max_rows_per_source,
        )
        kept += rows
        bad += source_bad
    rows = [row for _, row in sorted(kept, key=lambda pair: pair[0])]
    num_text_only = sum(row["image"] is None for row in rows)
    features = FEATURES
    if image_column == "images":
        rows = [{**row, "image": [] if row["image"] is None else [row["image"]]} for row in rows]
        features = Features({**FEATURES, "image": List(FEATURES["image"])})
    elif image_column != "image":
        raise ValueError(f"image_column must be 'image' or 'images', got {image_column!r}.")
    dataset = Dataset.from_list(rows, features=features)
    if image_column != "image":
        dataset = dataset.rename_column("image", image_column)
    summary = {
        "num_rows": len(rows),
        "num_text_only": num_text_only,
        "by_source": dict(Counter(row["data_source"] for row in rows)),
        "by_problem_type": dict(Counter(row["problem_type"] for row in rows)),
    }
    return dataset, bad, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_dir", required=True, help="Release folder (data files under json/, images below).")
    parser.add_argument("--output_dir", required=True, help="Folder to write the DatasetDict to (save_to_disk).")
    parser.add_argument("--image_root", default=None, help="Folder image paths are relative to (default: input_dir).")
    parser.add_argument("--system_prompt", default=None, help="System message added to every prompt.")
    parser.add_argument(
        "--policy_prompt",
        choices=list(POLICY_PROMPTS),
        default="sophia_trl",
        help="The prompt written: this project's, or 'sophiavl-r1', the released run's (read from the release; see "
        "docs/thinking_reward_model.md). recipes/grpo.py --policy_prompt rebuilds it at training time too.",
    )
    parser.add_argument("--data_sources", nargs="+", default=None, help="Keep only these data_source values.")
    parser.add_argument(
        "--categories", nargs="+", default=None, help="Keep only these top image folders (e.g. Math), or file stems."
    )
    parser.add_argument("--problem_types", nargs="+", default=None, help="Keep only these problem types.")
    parser.add_argument("--max_rows_per_source", type=int, default=None, help="Random cap of rows per data_source.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the per-source sampling.")
    parser.add_argument(
        "--image_column",
        choices=["image", "images"],
        default="image",
        help="'image': one image or None per row; 'images': a list, [] for text-only rows.",
    )
    add_conversion_arguments(parser)
    args = parser.parse_args(argv)
    if args.max_rows_per_source is not None and args.max_rows_per_source < 1:
        parser.error("--max_rows_per_source must be >= 1.")
    return args


def main(argv: list[str] | None = None) -> DatasetDict:
    args = parse_args(argv)
    dataset, bad, summary = convert(
        args.input_dir,
        image_root=args.image_root,
        system_prompt=args.system_prompt,
        data_sources=args.data_sources,
        categories=args.categories,
        problem_types=args.problem_types,
        max_rows_per_source=args.max_rows_per_source,
        on_bad_row=args.on_bad_row,
        seed=args.seed,
        image_column=args.image_column,
        max_image_pixels=args.max_image_pixels,
        policy_prompt=args.policy_prompt,
    )
    if len(dataset) == 0:
        raise SystemExit(f"No rows left after selection in {args.input_dir}: check the selection options.")
    dataset_dict = DatasetDict(train=dataset)
    report = save_dataset(dataset_dict, args.output_dir, summary, bad, args.push_to_hub, args.private)
    print(f"Wrote {summary['num_rows']} rows ({summary['num_text_only']} text-only) to {args.output_dir}")
    print("Per problem type: " + ", ".join(f"{k}: {v}" for k, v in sorted(summary["by_problem_type"].items())))
    print("Per source: " + ", ".join(f"{k}: {v}" for k, v in sorted(summary["by_source"].items())))
    if bad:
        print(bad_rows_report(bad))
    print(f"Report: {report}")
    if args.push_to_hub:
        print(f"Pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return dataset_dict


if __name__ == "__main__":
    main()
