"""Write the synthetic multimodal task (or judge data built from it) as a `datasets.DatasetDict` on disk.

Writes `OUTPUT_DIR` with `save_to_disk`, holding two splits: `train` (rows 0 .. N-1 of the seed) and `test` (rows
N .. N+M-1 of the same seed, so no row is in both splits; small scenes can still repeat by chance). Load it with
`datasets.load_from_disk(OUTPUT_DIR)` or pass `OUTPUT_DIR` as `--dataset_name` to the recipes.

- `--kind task` (default): the RL task read by `recipes/grpo.py`, with columns `prompt`, `image`, `solution`,
  `problem_type`, `problem`, `data_source` (see `sophia_trl.tiny.scenes.make_synthetic_dataset`).
- `--kind thinking`: judge data read by the thinking-reward trainers, with columns `question`, `image`, `response`,
  `score`, `problem_type`: responses with sound and deliberately flawed reasoning, scored by the fraction of correct
  steps (see `sophia_trl.tiny.responses.make_thinking_dataset`).

```bash
python data_prep/synthetic.py --output_dir data/synthetic --num_train 512 --num_test 64 --seed 0
python data_prep/synthetic.py --kind thinking --output_dir data/synthetic-thinking --num_train 2000 --num_test 200
```
"""

from __future__ import annotations

import argparse
from collections import Counter

from datasets import DatasetDict

from sophia_trl.tiny.responses import make_thinking_dataset
from sophia_trl.tiny.scenes import SYNTHETIC_PROBLEM_TYPES, make_synthetic_dataset


def build(args: argparse.Namespace) -> DatasetDict:
    kwargs = {
        "seed": args.seed,
        "image_size": args.image_size,
        "problem_types": args.problem_types,
        "text_only_fraction": args.text_only_fraction,
    }
    if args.kind == "task":
        make, kwargs = make_synthetic_dataset, {**kwargs, "system_prompt": args.system_prompt}
    else:
        make, kwargs = make_thinking_dataset, {**kwargs, "flawed_fraction": args.flawed_fraction}
    return DatasetDict(
        train=make(args.num_train, start_index=0, **kwargs),
        test=make(args.num_test, start_index=args.num_train, **kwargs),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="Folder to write the DatasetDict to (save_to_disk).")
    parser.add_argument("--num_train", type=int, default=512, help="Rows in the train split.")
    parser.add_argument("--num_test", type=int, default=64, help="Rows in the test split.")
    parser.add_argument("--seed", type=int, default=0, help="Seed; the output is a function of the arguments.")
    parser.add_argument("--kind", choices=["task", "thinking"], default="task", help="RL task or judge data.")
    parser.add_argument("--image_size", type=int, default=56, help="Image width and height (56 = 4 tiny-VLM tokens).")
    parser.add_argument(
        "--problem_types",
        nargs="+",
        choices=SYNTHETIC_PROBLEM_TYPES,
        default=None,
        help="Problem types to cycle through (default: all five). Quote the ones with a space.",
    )
    parser.add_argument(
        "--text_only_fraction", type=float, default=0.0, help="Share of non-OCR rows without an image."
    )
    parser.add_argument("--system_prompt", default=None, help="System message for every prompt (--kind task).")
    parser.add_argument(
        "--flawed_fraction", type=float, default=0.5, help="Share of flawed responses (--kind thinking)."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> DatasetDict:
    args = parse_args(argv)
    dataset = build(args)
    dataset.save_to_disk(args.output_dir)
    for split, rows in dataset.items():
        types = ", ".join(f"{t}: {n}" for t, n in sorted(Counter(rows["problem_type"]).items()))
        print(f"{split}: {len(rows)} rows ({types})")
    print(f"Wrote {args.output_dir}")
    return dataset


if __name__ == "__main__":
    main()
