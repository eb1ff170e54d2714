"""Build your own thinking-reward data: label (question, response) pairs with a teacher judge, then balance the labels.

This is how the paper built SophiaVL-R1-Thinking-156k: responses sampled from a policy, scored by a strong judge,
filtered and balanced over the score range so the reward model does not learn to answer "0.9" to everything.

1. Read pairs from `--input` files or folders (JSON, JSON Lines, Parquet). Column names are found as in
   `data_prep/thinking_156k.py` (`--columns` overrides); conversations are read as their last user / assistant
   message, so the completion logs TRL writes during GRPO (`<output_dir>/completions/completions_*.parquet`, with
   `log_completions=True`) are read directly, and the instruction `build_prompt` adds is removed from the question.
   Those logs hold no images: `--image_dataset` (the GRPO training dataset) gives each pair the image of the row whose
   prompt it was. Exact duplicate pairs are labelled once.
2. Score each pair with the teacher judge, through the project's judge backends (`sophia_trl.judges`):
   an OpenAI-compatible server (`--judge_base_url`, `--judge_model`; `vllm serve`, `transformers serve`, or a hosted
   API with its key in `OPENAI_API_KEY`) or a local checkpoint (`--judge_backend transformers`), with the judge
   prompt of `--judge_prompt_template` (a YAML template, see docs/thinking_reward_model.md), else the one a judge
   folder carries (`judge_prompt.yaml`, written by `recipes/thinking_reward.py`), else this project's.
3. Drop unparsable labels (a judge reply without a score, a failed request) and noisy ones: with `--num_votes K`
   (and `--judge_temperature` > 0) each pair is scored K times and dropped when the votes differ by more than
   `--max_spread`; the label is the votes' mean rounded to the nearest tenth.
4. Balance over the ten bins [0, 0.1), ..., [0.9, 1.0]: a bin with more than `--max_per_bin` labels keeps a seeded
   random `--max_per_bin` of them. The histogram is printed before and after.

Output: `--output_dir OUT`, a `DatasetDict` (`save_to_disk`) with a `train` split (and `test` with `--test_size`) and
columns `question`, `image`, `response`, `score`, `problem_type`, the rows the stage-1 trainers read, plus
`OUT/conversion_report.json` (counts, dropped labels, histograms, skipped input rows).

```bash
python data_prep/label_thinking.py --input outputs/grpo-run/completions --image_dataset data/synthetic \\
    --judge_base_url http://localhost:8001/v1 --judge_model Qwen/Qwen2.5-VL-72B-Instruct \\
    --num_votes 3 --judge_temperature 0.7 --max_per_bin 2000 --output_dir data/my-thinking-data
```
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Image
from PIL import Image as PILImage

from sophia_trl.data.conversion import (
    add_conversion_arguments,
    bad_rows_report,
    convert_rows,
    save_dataset,
    split_off_test,
)
from sophia_trl.data.judge_rows import (
    JUDGE_DATA_FEATURES,
    image_like_columns,
    parse_column_mapping,
    read_judge_row,
    score_bin,
    score_histogram,
)
from sophia_trl.data.loading import BadRowError, iter_rows, list_data_files, load_dataset_from_name_or_path
from sophia_trl.prompts import last_message_text

BIN_LABELS = [f"[{i / 10:.1f}, {(i + 1) / 10:.1f}{']' if i == 9 else ')'}" for i in range(10)]


def _image_key(image: Any) -> str | None:
    if image is None:
        return None
    if isinstance(image, dict):
        return hashlib.sha1(image["bytes"]).hexdigest()
    if isinstance(image, PILImage.Image):
        return hashlib.sha1(image.tobytes()).hexdigest()
    return str(image)


def read_pairs(
    inputs: list[str | Path],
    columns: dict[str, str] | None = None,
    image_root: str | Path | None = None,
    on_bad_row: str = "error",
    max_image_pixels: int | None = None,
) -> tuple[list[dict[str, Any]], list[BadRowError], int]:
    """
    Read (question, response, image, problem_type) pairs and drop exact duplicates; an image over `max_image_pixels`
    makes its row bad.

    Returns:
        The pairs, the errors of skipped rows, and the number of duplicates dropped.
    """

    def items():
        for source in inputs:
            source = Path(source)
            root = Path(image_root) if image_root is not None else (source if source.is_dir() else source.parent)
            for file in list_data_files(source):
                for index, row in enumerate(iter_rows(file)):
                    yield row, f"{file.name}:{index}", file, root

    def convert(item):
        row, row_id, file, root = item
        try:
            pair = read_judge_row(row, columns, root, need_score=False, max_image_pixels=max_image_pixels)
        except ValueError as err:
            raise BadRowError(str(err), row_id=row_id, file=str(file)) from err
        # An image under a column name that is neither mapped nor a known one: the pair would be judged without it.
        unmapped = image_like_columns(row, skip=(columns or {}).values()) if pair["image"] is None else []
        return {**pair, "unmapped_image_columns": unmapped}

    rows, bad = convert_rows(items(), convert, on_bad_row=on_bad_row)
    pairs, seen = [], set()
    for row in rows:
        key = (row["question"], row["response"], _image_key(row["image"]))
        if key not in seen:
            seen.add(key)
            pairs.append(row)
    return pairs, bad, len(rows) - len(pairs)


def attach_images(pairs: list[dict[str, Any]], dataset: Dataset) -> tuple[int, int]:
    """
    Give each pair without an image the image of the `dataset` row whose user prompt it answers, matched on the full
    user message text. A prompt text that several rows share with different images is ambiguous: its pairs get no
    image (a wrong image would give a wrong label).

    Returns:
        The number of pairs that got an image, and the number left without one because their prompt is ambiguous.
    """
    # Hash the stored image bytes (or path) without decoding the images.
    raw = dataset.cast_column("image", Image(decode=False))["image"]
    by_prompt: dict[str, tuple[int, set[str | None]]] = {}
    for index, (prompt, image) in enumerate(zip(dataset["prompt"], raw)):
        text = last_message_text(prompt, role="user")
        if text is None:
            continue
        key = None if image is None else (_image_key(image) if image.get("bytes") else image.get("path"))
        first, keys = by_prompt.setdefault(text, (index, set()))
        keys.add(key)
    found = ambiguous = 0
    for pair in pairs:
        if pair["image"] is not None or pair["user_text"] not in by_prompt:
            continue
        index, keys = by_prompt[pair["user_text"]]
        if len(keys) > 1:
            ambiguous += 1
        elif keys != {None}:
            pair["image"] = dataset[index]["image"]
            found += 1
    return found, ambiguous


def _open_image(image: Any) -> PILImage.Image | None:
    if image is None or isinstance(image, PILImage.Image):
        return image
    if isinstance(image, dict):
        return PILImage.open(io.BytesIO(image["bytes"])).convert("RGB")
    return PILImage.open(image).convert("RGB")


def round_tenth(x: float) -> float:
    """Round to the nearest tenth, halves up (the judge's scores are tenths)."""
    return int(x * 10 + 0.5 + 1e-9) / 10


def label_pairs(
    pairs: list[dict[str, Any]], judge: Any, num_votes: int = 1, max_spread: float = 0.2, batch_size: int = 64
) -> tuple[list[dict[str, Any]], Counter]:
    """
    Score the pairs with `judge` (`score(questions, responses, images) -> list[float | None]`), `num_votes` times
    each, and keep the pairs with a usable label.

    A pair is dropped as `"unparsable"` when any vote is missing (`None`), not a number, or outside [0, 1], and as
    `"noisy"` when its votes differ by more than `max_spread`. Its label is the mean vote rounded to the nearest tenth.

    Returns:
        The labelled rows (with `score`) and the counts of dropped pairs per reason.
    """
    from sophia_trl.judges import judge_inputs  # here, as the judges: this module loads without the judge code

    labelled, dropped = [], Counter()
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        # What the judge reads from a pair, built as on every other judge path (stage-1 training, Trust-GRPO).
        questions, responses, images = (list(column) for column in zip(*(judge_inputs(p) for p in batch)))
        images = [_open_image(image) for image in images]
        images = images if any(img is not None for img in images) else None
        votes = [judge.score(questions, responses, images) for _ in range(num_votes)]
        for i, pair in enumerate(batch):
            pair_votes = [vote[i] for vote in votes]
            if any(not isinstance(v, int | float) or not 0.0 <= v <= 1.0 for v in pair_votes):
                dropped["unparsable"] += 1
            elif max(pair_votes) - min(pair_votes) > max_spread + 1e-9:
                dropped["noisy"] += 1
            else:
                labelled.append({**pair, "score": round_tenth(statistics.fmean(pair_votes))})
    return labelled, dropped


def balance_bins(rows: list[dict[str, Any]], max_per_bin: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """
    Keep at most `max_per_bin` rows per score bin ([0, 0.1), ..., [0.9, 1.0]), a seeded random choice in the bins
    that have more; the kept rows stay in their order.
    """
    if max_per_bin is None:
        return list(rows)
    by_bin: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_bin.setdefault(score_bin(row["score"]), []).append(index)
    rng = random.Random(seed)
    keep = set()
    for b in sorted(by_bin):
        indices = by_bin[b]
        keep.update(indices if len(indices) <= max_per_bin else rng.sample(indices, max_per_bin))
    return [row for index, row in enumerate(rows) if index in keep]


def format_histogram(before: list[int], after: list[int]) -> str:
    """A text table of the per-bin counts before and after balancing."""
    lines = [f"{'score bin':<12}{'before':>9}{'after':>9}"]
    lines += [f"{label:<12}{b:>9}{a:>9}" for label, b, a in zip(BIN_LABELS, before, after)]
    lines.append(f"{'total':<12}{sum(before):>9}{sum(after):>9}")
    return "\n".join(lines)


def build_judge(args: argparse.Namespace) -> Any:
    """The teacher judge named by the command line (imported here so this module loads without the judge code)."""
    from sophia_trl.judges import OpenAIJudge, TransformersJudge
    from sophia_trl.judges.carried_prompt import resolve_judge_prompt

    # Votes must be independent samples, so repeated pairs must not come from the judge's cache.
    cache_size = 0 if args.num_votes > 1 else 4096
    # Checked before the judge is built: the template set, else the one a judge folder carries, else ours (a teacher
    # VLM is asked with this project's prompt on purpose).
    served = args.judge_backend == "openai"
    judge_prompt = resolve_judge_prompt(args.judge_prompt_template, args.judge_model, served=served, required=False)
    if args.judge_backend == "openai":
        return OpenAIJudge(
            base_url=args.judge_base_url,
            model=args.judge_model,
            timeout=args.judge_timeout,
            max_retries=args.judge_max_retries,
            max_concurrency=args.judge_max_concurrency,
            temperature=args.judge_temperature,
            cache_size=cache_size,
            judge_prompt=judge_prompt,
        )
    return TransformersJudge(args.judge_model, cache_size=cache_size, judge_prompt=judge_prompt)


def run(args: argparse.Namespace, judge: Any) -> DatasetDict:
    """Read, label, filter, balance and write; prints the histograms."""
    pairs, bad, num_duplicates = read_pairs(
        args.input, args.columns, args.image_root, args.on_bad_row, args.max_image_pixels
    )
    if bad:
        print(bad_rows_report(bad))
    if args.image_dataset:
        dataset = load_dataset_from_name_or_path(args.image_dataset)
        if isinstance(dataset, DatasetDict):
            dataset = dataset[args.image_dataset_split]
        found, ambiguous = attach_images(pairs, dataset)
        print(
            f"Images from {args.image_dataset}: {found} of {len(pairs)} pairs matched; {ambiguous} left without an "
            "image because several rows share their prompt text with different images"
        )
    unmapped = Counter(column for pair in pairs if pair["image"] is None for column in pair["unmapped_image_columns"])
    num_unmapped = sum(bool(pair["image"] is None and pair["unmapped_image_columns"]) for pair in pairs)
    if num_unmapped:
        print(
            f"Warning: {num_unmapped} of {len(pairs)} pairs are read without an image although they have a column that "
            f"looks like one ({', '.join(f'{name}: {count} rows' for name, count in unmapped.most_common())}); they "
            "are judged and written as text-only. Name the column with --columns image=<column> to keep the images."
        )
    print(f"Read {len(pairs)} pairs ({num_duplicates} duplicates dropped); labelling with {judge!r}")

    labelled, dropped = label_pairs(pairs, judge, args.num_votes, args.max_spread, args.batch_size)
    print(f"Labelled {len(labelled)}; dropped {dropped['unparsable']} unparsable and {dropped['noisy']} noisy")
    balanced = balance_bins(labelled, args.max_per_bin, args.seed)
    before = score_histogram(row["score"] for row in labelled)
    after = score_histogram(row["score"] for row in balanced)
    print(format_histogram(before, after))
    if not balanced:
        raise SystemExit("No labelled pairs left: check the judge (every label was unparsable or noisy).")

    dataset = Dataset.from_list(
        [{k: row[k] for k in JUDGE_DATA_FEATURES} for row in balanced], features=JUDGE_DATA_FEATURES
    )
    dataset_dict = split_off_test(dataset, args.test_size, args.seed)
    summary = {
        "num_pairs": len(pairs),
        "num_duplicates": num_duplicates,
        "num_unmapped_image_rows": num_unmapped,
        "unmapped_image_columns": dict(unmapped),
        "num_labelled": len(labelled),
        "num_dropped": dict(dropped),
        "num_rows": len(balanced),
        "histogram_before": before,
        "histogram_after": after,
    }
    report = save_dataset(dataset_dict, args.output_dir, summary, bad, args.push_to_hub, args.private)
    print(f"Wrote {len(balanced)} rows to {args.output_dir} (report: {report})")
    return dataset_dict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", nargs="+", required=True, help="Files or folders of (question, response) rows.")
    parser.add_argument("--output_dir", required=True, help="Folder to write the DatasetDict to (save_to_disk).")
    parser.add_argument("--columns", default=None, help="Input column names, e.g. question=query,response=output.")
    parser.add_argument("--image_root", default=None, help="Folder image paths are relative to (default: the input).")
    parser.add_argument("--image_dataset", default=None, help="Dataset whose prompts give the pairs their images.")
    parser.add_argument("--image_dataset_split", default="train", help="Split of --image_dataset.")
    parser.add_argument("--judge_backend", choices=["openai", "transformers"], default="openai")
    parser.add_argument("--judge_base_url", default=None, help="OpenAI-compatible API root, e.g. http://host:8001/v1.")
    parser.add_argument("--judge_model", required=True, help="Served model name, or a checkpoint (transformers).")
    parser.add_argument("--judge_timeout", type=float, default=120.0, help="Seconds per judge request.")
    parser.add_argument("--judge_max_retries", type=int, default=3, help="Retries of a failed judge request.")
    parser.add_argument("--judge_max_concurrency", type=int, default=32, help="Judge requests in flight.")
    parser.add_argument("--judge_temperature", type=float, default=0.0, help="Judge sampling temperature.")
    parser.add_argument(
        "--judge_prompt_template",
        default=None,
        help="The teacher's prompt: a YAML template ('system', 'user' with {question}, {response}, {image}) or a "
        "named template (sophiavl-r1). Unset: the judge_prompt.yaml a local judge folder carries, else this "
        "project's judge prompt.",
    )
    parser.add_argument("--num_votes", type=int, default=1, help="Judge scores per pair (needs temperature > 0).")
    parser.add_argument("--max_spread", type=float, default=0.2, help="Largest accepted max - min of the votes.")
    parser.add_argument("--max_per_bin", type=int, default=None, help="Cap of labels per score bin (no cap: None).")
    parser.add_argument("--batch_size", type=int, default=64, help="Pairs sent to the judge per call.")
    parser.add_argument("--test_size", type=float, default=0.0, help="Fraction of rows held out as a test split.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the balancing and of the split.")
    add_conversion_arguments(parser)
    args = parser.parse_args(argv)
    if args.judge_backend == "openai" and not args.judge_base_url:
        parser.error("--judge_base_url is required with --judge_backend openai.")
    if args.num_votes < 1:
        parser.error("--num_votes must be >= 1.")
    if args.num_votes > 1 and (args.judge_temperature <= 0 or args.judge_backend != "openai"):
        parser.error("--num_votes > 1 needs a sampling judge (--judge_backend openai, --judge_temperature > 0).")
    if args.max_per_bin is not None and args.max_per_bin < 1:
        parser.error("--max_per_bin must be >= 1.")
    if args.batch_size < 1:
        parser.error("--batch_size must be >= 1.")
    if not 0.0 <= args.test_size < 1.0:
        parser.error("--test_size must be in [0, 1).")
    try:
        args.columns = parse_column_mapping(args.columns)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> DatasetDict:
    args = parse_args(argv)
    return run(args, build_judge(args))


if __name__ == "__main__":
    main()
