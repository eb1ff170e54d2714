"""Runs benchmarks end to end: load, prompt, generate (or read saved predictions), score, write the report."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm.auto import tqdm

from sophia_trl.evaluation import chartqa, mathverse, mathvista, mmbench, mme, mmmu, mmstar
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.loading import read_predictions, write_jsonl

logger = logging.getLogger(__name__)

# Each module has the same functions: load(source), build_prompt(row, base_dir, system_prompt), score(rows, judge),
# and the constants NAME, HUB_ID, REQUIRED (fields a prediction file must hold) and FIELDS (fields kept per item).
BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module for module in (mathvista, mathverse, mmmu, mme, mmstar, chartqa, mmbench)
}


def get_benchmark(name: str) -> ModuleType:
    """The module of benchmark `name` (case-insensitive), or a `ValueError` listing the known names."""
    module = BENCHMARKS.get(name.strip().lower())
    if module is None:
        raise ValueError(f"Unknown benchmark {name!r}: choose from {', '.join(BENCHMARKS)} (or 'all').")
    return module


def _base_dir(source: str | None) -> Path | None:
    # Relative image paths in a local copy are relative to the data file, or to the dataset folder.
    if source is None:
        return None
    path = Path(source)
    return path.parent if path.is_file() else path


def generate_predictions(
    benchmark: str,
    generator: Any,
    source: str | None = None,
    limit: int | None = None,
    system_prompt: str | None = None,
    chunk_size: int = 256,
) -> list[dict[str, Any]]:
    """Generates a response for every item of a benchmark.

    Args:
        benchmark (`str`):
            A name in `BENCHMARKS`.
        generator (`TransformersGenerator` or `VLLMGenerator`):
            What writes the responses.
        source (`str`, *optional*):
            A local copy of the benchmark (see `load_benchmark`); `None` loads it from the Hub.
        limit (`int`, *optional*):
            Evaluate only the first `limit` items (a quick check; the metrics are then not comparable to the paper).
        system_prompt (`str`, *optional*):
            A system message, when the checkpoint was trained with one.
        chunk_size (`int`, *optional*, defaults to `256`):
            Items whose images are decoded at a time, which bounds memory on large benchmarks.

    Returns:
        `list[dict]`: per item, the benchmark's fields plus `response` and `truncated` (the format
        `--predictions` reads back).
    """
    module = get_benchmark(benchmark)
    rows = module.load(source)
    total = len(rows) if limit is None else min(limit, len(rows))
    base_dir = _base_dir(source)
    predictions = []
    with tqdm(total=total, desc=module.NAME, unit="item") as progress:
        for start in range(0, total, chunk_size):
            chunk = [rows[i] for i in range(start, min(start + chunk_size, total))]
            prompts = [module.build_prompt(row, base_dir, system_prompt) for row in chunk]
            for row, generation in zip(chunk, generator.generate(prompts, progress=progress)):
                fields = {field: row[field] for field in module.FIELDS if field in row}
                predictions.append({**fields, "response": generation.text, "truncated": generation.truncated})
    return predictions


def predictions_path(output: str | Path, benchmark: str) -> Path:
    """Where the responses of `benchmark` are saved next to the report: `<output stem>.<benchmark>.jsonl`."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{benchmark}.jsonl")


def evaluate(
    benchmarks: list[str],
    output: str | Path,
    generator: Any | None = None,
    predictions: list[str] | None = None,
    data: dict[str, str] | None = None,
    judge: ChatJudge | None = None,
    limit: int | None = None,
    system_prompt: str | None = None,
) -> dict[str, Any]:
    """Evaluates a model on benchmarks, or re-scores saved predictions, and writes the JSON report.

    Args:
        benchmarks (`list[str]`):
            Benchmark names (see `BENCHMARKS`).
        output (`str` or `Path`):
            The JSON report to write; generated responses go next to it (see `predictions_path`).
        generator (`TransformersGenerator` or `VLLMGenerator`, *optional*):
            Generates the responses; exactly one of `generator` and `predictions` must be given.
        predictions (`list[str]`, *optional*):
            One `.jsonl` file per benchmark, in the same order, with the benchmark's fields and `response` per line.
        data (`dict[str, str]`, *optional*):
            Local copies of benchmarks, by name; the others are loaded from the Hub.
        judge (`ChatJudge`, *optional*):
            An LLM judge for the benchmarks whose official scoring uses one (MathVista, MathVerse).
        limit (`int`, *optional*):
            Generate for the first `limit` items only.
        system_prompt (`str`, *optional*):
            A system message for generation.

    Returns:
        `dict`: the report, as written to `output`.
    """
    if (generator is None) == (predictions is None):
        raise ValueError("Give either a model to generate with or prediction files to re-score, not both.")
    if predictions is not None and len(predictions) != len(benchmarks):
        raise ValueError(
            f"Got {len(predictions)} prediction file(s) for {len(benchmarks)} benchmark(s) ({', '.join(benchmarks)}); "
            "give one file per benchmark, in the same order."
        )
    data = {name.lower(): path for name, path in (data or {}).items()}
    unknown = sorted(set(data) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"--data names unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}.")
    results = {}
    for position, name in enumerate(benchmarks):
        module = get_benchmark(name)
        if predictions is not None:
            rows = read_predictions(predictions[position], module.REQUIRED, module.NAME)
            origin = {"predictions_file": str(predictions[position])}
        else:
            rows = generate_predictions(module.NAME, generator, data.get(module.NAME), limit, system_prompt)
            path = predictions_path(output, module.NAME)
            write_jsonl(rows, path)
            origin = {"predictions_file": str(path), "data": data.get(module.NAME) or module.HUB_ID}
        result = module.score(rows, judge)
        results[module.NAME] = {**origin, **result}
        logger.info("%s: %s (%s scoring)", module.NAME, _format_metrics(result["metrics"]), result["scoring_mode"])
    report = {
        "generation": generator.settings() if generator is not None else None,
        "judge": judge.settings() if judge is not None else None,
        "benchmarks": results,
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(_finite(report), indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    return report


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())


def _finite(value: Any) -> Any:
    # JSON has no NaN: an undefined metric (an empty group) is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
