"""Evaluation on the benchmarks of the SophiaVL-R1 paper, with each benchmark's own scoring rules.

One module per benchmark (`mathvista`, `mathverse`, `mmmu`, `mme`, `mmstar`, `chartqa`, `mmbench`), each with
`load(source)`, `build_prompt(row, base_dir, system_prompt)` and `score(rows, judge)`; shared answer extraction
(`answers`), generation (`generation`), the optional LLM judge (`judge`) and reports (`report`). `eval/evaluate.py` is
the command line; `eval/README.md` documents the fields, rules and fallbacks.
"""

from sophia_trl.evaluation.answers import ExtractedAnswer, answer_with_fallback, parse_choice, parse_number
from sophia_trl.evaluation.generation import EvalPrompt, Generation, TransformersGenerator, VLLMGenerator
from sophia_trl.evaluation.judge import ChatJudge
from sophia_trl.evaluation.runner import BENCHMARKS, evaluate, generate_predictions, get_benchmark

__all__ = [
    "BENCHMARKS",
    "ChatJudge",
    "EvalPrompt",
    "ExtractedAnswer",
    "Generation",
    "TransformersGenerator",
    "VLLMGenerator",
    "answer_with_fallback",
    "evaluate",
    "generate_predictions",
    "get_benchmark",
    "parse_choice",
    "parse_number",
]
