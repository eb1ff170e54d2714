"""Learning lab: toy-scale evidence on the CPU of what Trust-GRPO's thinking reward and trust weight do.

A 0.8 M-parameter policy is warm-started by SFT on "a ± b ± c ± d" with sound and flawed step-by-step reasoning, then
trained with the project's TrustGRPOTrainer in several arms (plain GRPO, naive thinking reward, annealing only, trust
only, Trust-GRPO with the paper's and the released code's preset) against judges whose reliability is set
(reliable, adversarial, misleading, gamed), over several seeds. Writes `table.md`, `curves.png` and `results.json` to
`--output_dir` and prints the table; a rerun with the same `--output_dir` reuses finished runs. See docs/learning_lab.md.
`--task scenes` runs the same experiment on the synthetic multimodal scenes with the tiny VLM (`benchmarks/lab/scenes.py`,
its own sizes `SCENES`; the options given override them).

```bash
python benchmarks/learning_lab.py --output_dir outputs/learning_lab            # default lab (~10 min on 2 idle cores)
python benchmarks/learning_lab.py --quick --output_dir outputs/learning_lab_quick   # end-to-end check, ~1 min
python benchmarks/learning_lab.py --task scenes --output_dir outputs/lab_scenes     # the multimodal check
```
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

# The lab is a package beside this script, not part of the installed sophia_trl: with the repository root on the path
# it imports as `benchmarks.lab`, here as in the tests, whichever folder the script is started from.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lab.experiment import (
    ARMS,
    QUICK,
    SCENES,
    SCENES_QUICK,
    SCENES_TASK,
    TASK_NAMES,
    LabConfig,
    format_sft_check,
    run_lab,
)
from benchmarks.lab.judges import JUDGE_KINDS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/learning_lab", help="Folder for models, results and plots.")
    parser.add_argument("--quick", action="store_true", help="A one-minute end-to-end run (2 arms, 1 judge, 4 steps).")
    defaults = LabConfig()
    parser.add_argument("--grpo_steps", type=int, help=f"GRPO steps per run (default {defaults.grpo_steps}).")
    parser.add_argument("--eval_every", type=int, help=f"Steps between evaluations (default {defaults.eval_every}).")
    parser.add_argument("--eval_prompts", type=int, help=f"Held-out prompts (default {defaults.eval_prompts}).")
    parser.add_argument("--seeds", type=int, help=f"GRPO seeds per arm (default {defaults.seeds}).")
    parser.add_argument(
        "--first_seed", type=int, help="First GRPO seed (default 0): --first_seed 5 --seeds 5 runs seeds 5-9."
    )
    parser.add_argument("--sft_seeds", type=int, help=f"SFT warm starts (default {defaults.sft_seeds}).")
    parser.add_argument("--sft_examples", type=int, help=f"SFT examples (default {defaults.sft_examples}).")
    parser.add_argument("--sft_epochs", type=float, help=f"SFT epochs (default {defaults.sft_epochs}).")
    parser.add_argument(
        "--judges", nargs="+", choices=JUDGE_KINDS, help=f"Judges (default: {' '.join(defaults.judges)})."
    )
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), help=f"Arms (default: {' '.join(defaults.arms)}).")
    parser.add_argument("--workers", type=int, help=f"Runs in parallel (default {defaults.workers}).")
    parser.add_argument(
        "--task",
        choices=list(TASK_NAMES),
        help="Task (default 'default', 4 operands; 'sparse': 5 operands of 0-9, few right answers at the start; "
        "'scenes': the synthetic multimodal scenes with the tiny VLM, the multimodal check).",
    )
    parser.add_argument("--max_completion_length", type=int, help="Tokens per completion (default: the task's).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.task == SCENES_TASK:
        base = SCENES_QUICK if args.quick else SCENES
    else:
        base = QUICK if args.quick else LabConfig()
    overrides = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(LabConfig) if getattr(args, f.name, None) is not None
    }
    if "task" in overrides and "max_completion_length" not in overrides and args.task != SCENES_TASK:
        overrides["max_completion_length"] = None  # the new task's own length, not the base config's
    config = dataclasses.replace(base, **overrides)
    print(f"Learning lab: {config}")
    report = run_lab(config, args.output_dir)
    for sft_seed, check in report["sft_checks"].items():
        print(
            f"SFT init {sft_seed} ({check['seconds']:.0f} s), sampled on held-out prompts: {format_sft_check(check)}"
        )
    print(report["table"])
    print(f"Wrote {args.output_dir}/table.md, curves.png, results.json in {report['seconds']:.0f} s.")
    return report


if __name__ == "__main__":
    main()
