"""Evaluate a checkpoint on the SophiaVL-R1 paper's benchmarks, or re-score saved predictions.

```bash
# generate (greedy) and score; responses are saved next to the report as results.<benchmark>.jsonl
python eval/evaluate.py --model outputs/trust-grpo --benchmark mathvista,mmstar --output results.json

# write the scores into the checkpoint's model card (model-index metadata, shown by the Hub once pushed)
python eval/evaluate.py --model outputs/trust-grpo --benchmark all --output results.json --model_card outputs/trust-grpo

# re-score saved responses (no model), e.g. with an LLM judge for MathVista
python eval/evaluate.py --benchmark mathvista --predictions results.mathvista.jsonl --output rescored.json \
    --judge_base_url http://localhost:8000/v1 --judge_model Qwen/Qwen2.5-72B-Instruct
```

Writes a JSON report (metrics, how answers were read, per-item records) to `--output` and prints a markdown table.
See eval/README.md for the benchmarks, their fields and scoring rules.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sophia_trl.evaluation import BENCHMARKS, ChatJudge, TransformersGenerator, VLLMGenerator, evaluate
from sophia_trl.evaluation.generation import DEFAULT_MAX_NEW_TOKENS
from sophia_trl.evaluation.model_card import update_model_card
from sophia_trl.evaluation.report import markdown_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmark", required=True, help=f"Comma-separated names from {', '.join(BENCHMARKS)}, or all."
    )
    parser.add_argument("--output", required=True, help="The JSON report to write.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="Checkpoint to evaluate: a Hub id or a local folder.")
    source.add_argument(
        "--predictions",
        nargs="+",
        help="Re-score these .jsonl files (benchmark fields + `response` per line), one per benchmark, same order.",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="A local copy of a benchmark (save_to_disk folder, clone of the Hub repo, or data file); repeatable.",
    )
    parser.add_argument("--limit", type=int, default=None, help="Only the first N items per benchmark (quick check).")
    parser.add_argument("--system_prompt", default=None, help="System message, if the model was trained with one.")
    parser.add_argument(
        "--model_card",
        default=None,
        metavar="PATH",
        help="Write the headline metrics into this local model card (a checkpoint folder or its README.md) as "
        "model-index results, which the Hub shows once the folder is pushed.",
    )

    generation = parser.add_argument_group("generation")
    generation.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    generation.add_argument("--batch_size", type=int, default=8, help="Prompts per generate call (transformers).")
    generation.add_argument(
        "--max_new_tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help="Long on purpose: R1-style reasoning cut off before <answer> scores as wrong.",
    )
    generation.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32 (transformers).")
    generation.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available).")
    generation.add_argument("--min_pixels", type=int, default=None, help="Image pixel lower bound (Qwen-VL).")
    generation.add_argument("--max_pixels", type=int, default=None, help="Image pixel upper bound (Qwen-VL).")
    generation.add_argument("--tensor_parallel_size", type=int, default=1, help="GPUs per model (vllm).")

    judge = parser.add_argument_group("LLM judge (MathVista, MathVerse; optional)")
    judge.add_argument("--judge_base_url", default=None, help="OpenAI-compatible API root, e.g. http://host:8000/v1.")
    judge.add_argument("--judge_model", default=None, help="Model name on the judge server.")
    judge.add_argument("--judge_timeout", type=float, default=60.0, help="Seconds per request attempt.")
    judge.add_argument("--judge_max_retries", type=int, default=2, help="Retries per request before giving up.")
    judge.add_argument("--judge_max_concurrency", type=int, default=8, help="Requests in flight at once.")
    args = parser.parse_args(argv)
    if (args.judge_base_url is None) != (args.judge_model is None):
        parser.error("--judge_base_url and --judge_model go together.")
    if args.predictions is not None and (args.limit is not None or args.data):
        parser.error("--limit and --data choose what to generate for; they do not apply to --predictions.")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    names = list(BENCHMARKS) if args.benchmark.strip().lower() == "all" else args.benchmark.split(",")
    data = {}
    for item in args.data:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise SystemExit(f"--data expects NAME=PATH, got {item!r}.")
        data[name.strip()] = path.strip()

    generator = None
    if args.model is not None:
        if args.backend == "vllm":
            llm_kwargs = {"tensor_parallel_size": args.tensor_parallel_size}
            pixels = {"min_pixels": args.min_pixels, "max_pixels": args.max_pixels}
            if any(value is not None for value in pixels.values()):
                llm_kwargs["mm_processor_kwargs"] = {k: v for k, v in pixels.items() if v is not None}
            generator = VLLMGenerator(args.model, args.max_new_tokens, llm_kwargs=llm_kwargs)
        else:
            generator = TransformersGenerator(
                args.model,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                device=args.device,
                dtype=args.dtype,
                min_pixels=args.min_pixels,
                max_pixels=args.max_pixels,
            )
    judge = None
    if args.judge_base_url is not None:
        judge = ChatJudge(
            args.judge_base_url,
            args.judge_model,
            timeout=args.judge_timeout,
            max_retries=args.judge_max_retries,
            max_concurrency=args.judge_max_concurrency,
        )
    report = evaluate(
        [name.strip() for name in names if name.strip()],
        args.output,
        generator=generator,
        predictions=args.predictions,
        data=data,
        judge=judge,
        limit=args.limit,
        system_prompt=args.system_prompt,
    )
    print(markdown_table(report["benchmarks"]))
    print(f"\nReport written to {args.output}")
    if args.model_card is not None:
        card = update_model_card(
            args.model_card, report["benchmarks"], model_name=args.model and Path(args.model).name
        )
        print(f"Model card updated: {card}")
    return report


if __name__ == "__main__":
    main()
