# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""The whole SophiaVL-R1 method at toy scale on the CPU, in a few minutes: `make demo`.

Step 1 - build a tiny Qwen2.5-VL policy and a tiny judge, offline (`sophia_trl.tiny`).
Step 2 - generate the synthetic multimodal task and judge data with sound and flawed reasoning (`data_prep/synthetic.py`).
Step 3 - warm-start the policy with SFT on responses in the `<think>...</think><answer>...</answer>` format, so that
         it writes answers the outcome reward can check (the paper starts from an instruction-tuned model).
Step 4 - stage 1: train the thinking reward model (`recipes/thinking_reward.py`).
Step 5 - stage 2: Trust-GRPO with that judge (`recipes/grpo.py`), on counting questions, where the tiny policy is
         sometimes right and sometimes wrong, so that groups are mixed and the trust weight has something to measure
         (2 prompts x 16 completions per step, 256 completion tokens).
Step 6 - report: the judge's ranking of responses to the same held-out question (what GRPO uses) and its error, the
         trust weight per step (mixed groups, gamma where the judge disagrees with the outcome), what the thinking
         reward added, and the policy's held-out reward before and after stage 2 with a paired bootstrap interval of
         the change; figures beside the report (training curves, the judge's calibration).

Every stage runs as its own command, exactly as a user would run it; the report is written to OUTPUT_DIR/report.md.
"""

import argparse
import json
import logging
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset, DatasetDict, load_from_disk
from demo_figures import change_line, plot_judge_calibration, plot_training_curves

from sophia_trl.data.judge_rows import JUDGE_DATA_FEATURES
from sophia_trl.rewards import PROBLEM_TYPES, format_reward, outcome_reward
from sophia_trl.tiny.models import build_tiny_vlm, warm_start_tiny_vlm
from sophia_trl.tiny.responses import FLAWS, judge_row, make_thinking_dataset, policy_sft_row, write_response
from sophia_trl.tiny.scenes import make_synthetic_dataset, sample_problem

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("demo")

# The warm start draws these types in turn, twice as many multiple-choice and colour/shape ("text") questions as the
# others: after it the policy writes a well-formed answer of the right kind (a letter, a colour, a shape) almost always.
WARM_START_PROBLEM_TYPES = ["multiple choice", "text", "multiple choice", "text", "numerical", "free-form", "OCR"]
WARM_START_ROWS = 1024
# Stage 2 asks counting questions with a number for an answer. After the warm start the policy's most likely answer
# there is right far more often than a sampled one (0.44 greedy against 0.24 sampled, 32 held-out prompts), so GRPO has
# answers to reinforce; most groups hold right and wrong answers, so the trust weight acts too. The colour and shape
# questions are answered at chance: the tiny VLM does not read colours (docs/testing.md).
GRPO_PROBLEM_TYPES = ["numerical"]
GRPO_NUM_GENERATIONS = 16
GRPO_PROMPTS_PER_STEP = 2
GRPO_MAX_COMPLETION_LENGTH = (
    256  # the warm-started policy writes ~125 tokens and often more: at 128 most answers are cut
)
TRAINING_FIGURE = "training_curves.png"
JUDGE_FIGURE = "judge_calibration.png"


def run(cmd: list[str], log_file: Path) -> None:
    """Runs one stage as a subprocess, its output in a log file; on failure shows the log's tail and stops."""
    logger.info("$ %s", " ".join(cmd))
    with open(log_file, "w") as f:
        result = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log_file.read_text().splitlines()[-40:]
        raise SystemExit(f"Stage failed (exit {result.returncode}); last lines of {log_file}:\n" + "\n".join(tail))


def warm_start_data(num_rows: int, seed: int, flawed_fraction: float) -> Dataset:
    """Prompt-completion rows for SFT: the task's prompts with written responses, some with flawed reasoning."""
    rows = []
    for i in range(num_rows):
        rng = random.Random(f"demo-warm-start/{seed}/{i}")
        problem = sample_problem(rng, WARM_START_PROBLEM_TYPES[i % len(WARM_START_PROBLEM_TYPES)])
        flaw = rng.choice(FLAWS) if rng.random() < flawed_fraction else None
        response, _ = write_response(problem, rng, flaw)
        rows.append(policy_sft_row(problem, response))
    return Dataset.from_list(rows)


def judge_test_groups(num_questions: int, seed: int) -> Dataset:
    """Held-out judge data in question groups: a sound response and three flawed ones to each question, so that the
    judge's ranking of responses to the same question, what GRPO's group normalisation uses, can be measured."""
    rows = []
    for i in range(num_questions):
        rng = random.Random(f"demo-judge-test/{seed}/{i}")
        problem = sample_problem(rng, PROBLEM_TYPES[i % len(PROBLEM_TYPES)])
        for flaw in [None, *rng.sample(FLAWS, 3)]:
            rows.append(judge_row(problem, *write_response(problem, rng, flaw)))
    return Dataset.from_list(rows, features=JUDGE_DATA_FEATURES)


@torch.no_grad()
def sampled_rewards(
    model_dir: Path, dataset: Dataset, num_samples: int, max_new_tokens: int, prompts_per_batch: int = 16
) -> dict[str, list[float]]:
    """Per held-out prompt, the mean outcome and format rewards of its sampled completions (temperature 1), as GRPO
    sees the policy."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    processor = AutoProcessor.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    torch.manual_seed(0)
    per_prompt = {"outcome_reward": [], "format_reward": []}
    for start in range(0, len(dataset), prompts_per_batch):
        rows = [row for row in dataset.select(range(start, min(start + prompts_per_batch, len(dataset))))]
        rows = [row for row in rows for _ in range(num_samples)]
        texts = [
            processor.apply_chat_template(
                prepare_multimodal_messages(row["prompt"], images=[row["image"]]),
                add_generation_prompt=True,
                tokenize=False,
            )
            for row in rows
        ]
        inputs = processor(text=texts, images=[[row["image"]] for row in rows], padding=True, return_tensors="pt")
        out = model.generate(**inputs, do_sample=True, temperature=1.0, max_new_tokens=max_new_tokens)
        decoded = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": t}] for t in decoded]
        rewards = {
            "outcome_reward": outcome_reward(
                completions, solution=[r["solution"] for r in rows], problem_type=[r["problem_type"] for r in rows]
            ),
            "format_reward": format_reward(completions),
        }
        for name, values in rewards.items():
            per_prompt[name] += [
                statistics.fmean(values[i : i + num_samples]) for i in range(0, len(values), num_samples)
            ]
    return per_prompt


@torch.no_grad()
def judge_calibration(judge_dir: Path, judge_type: str, dataset: Dataset, batch_size: int = 16) -> dict:
    """The trained judge's score of each held-out judge row beside its label, and its pairwise ranking accuracy
    (pairs of responses to the same question, as `evaluate_judge` counts them)."""
    from sophia_trl.judges import ScalarJudge, TransformersJudge
    from sophia_trl.judges.messages import judge_inputs
    from sophia_trl.judges.metrics import pairwise_accuracy, question_group_id

    judge = (TransformersJudge if judge_type == "generative" else ScalarJudge)(
        str(judge_dir), batch_size=batch_size, device="cpu"
    )
    questions, responses, images = (list(column) for column in zip(*(judge_inputs(row) for row in dataset)))
    scores = judge.score(questions, responses, images)
    kept = [i for i, score in enumerate(scores) if score is not None]
    scored = [float(scores[i]) for i in kept]
    labels = [float(dataset[i]["score"]) for i in kept]
    groups = [question_group_id(questions[i], images[i]) for i in kept]
    accuracy, num_pairs = pairwise_accuracy(torch.tensor(scored), torch.tensor(labels), torch.tensor(groups))
    return {"scores": scored, "labels": labels, "pairwise_accuracy": accuracy, "num_pairs": num_pairs}


TRUST_COLUMNS = {
    "trust/mixed_group_frac": "mixed groups",
    "trust/untrusted_frac": "groups with gamma < 1",
    "trust/gamma_mean": "gamma (mean over groups)",
    "trust/alpha": "alpha_t",
    "trust/outcome_reward_mean": "outcome reward",
    "trust/thinking_reward_mean": "judge score (raw)",
    "rewards/thinking_reward/mean": "thinking term added (gamma * alpha_t * score)",
}


def trust_summary(log_history: list[dict]) -> dict[str, float]:
    """Mean over the logged steps of the trust metrics (and the judge calls)."""
    entries = [e for e in log_history if "trust/alpha" in e]
    summary = {}
    for key in [*TRUST_COLUMNS, "trust/judge_calls", "trust/judge_failed"]:
        values = [e[key] for e in entries if e.get(key) is not None]
        summary[key] = statistics.fmean(values) if values else float("nan")
    return summary


def trust_counts(log_history: list[dict], groups_per_step: int) -> str:
    """How many groups were mixed over the run, and in how many of them the judge's ranking lowered gamma."""
    entries = [e for e in log_history if "trust/alpha" in e]
    mixed = sum(round(e["trust/mixed_group_frac"] * groups_per_step) for e in entries)
    # A step whose groups got no thinking term logs no gamma.
    untrusted = sum(round(e.get("trust/untrusted_frac", 0.0) * groups_per_step) for e in entries)
    gammas = [e["trust/gamma_mean"] for e in entries if e.get("trust/untrusted_frac", 0.0) > 0]
    lowest = f"; the lowest step mean of gamma was {min(gammas):.3f}" if gammas else ""
    return (
        f"{mixed} of {len(entries) * groups_per_step} groups were mixed; in {untrusted} of them the judge scored the "
        f"wrong answers higher on average, so gamma fell below 1{lowest}."
    )


def trust_table(log_history: list[dict]) -> list[str]:
    """One row per logged step: how many groups were mixed, where gamma fell below 1, and what the judge added."""
    entries = [e for e in log_history if "trust/alpha" in e]
    lines = ["| step | " + " | ".join(TRUST_COLUMNS.values()) + " |", "|---" * (len(TRUST_COLUMNS) + 1) + "|"]
    for e in entries:
        lines.append(f"| {e['step']} | " + " | ".join(f"{e.get(k, float('nan')):.3f}" for k in TRUST_COLUMNS) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="outputs/demo", help="Where every stage writes (YAML paths match).")
    parser.add_argument("--judge_type", choices=["generative", "scalar"], default="generative")
    parser.add_argument("--grpo_steps", type=int, default=32, help="Trust-GRPO steps (stage 2).")
    parser.add_argument("--judge_steps", type=int, default=None, help="Judge training steps (default: the YAML's).")
    parser.add_argument("--warm_start_steps", type=int, default=600, help="SFT steps of the policy warm start.")
    parser.add_argument("--eval_prompts", type=int, default=192, help="Held-out prompts for the before/after report.")
    parser.add_argument("--eval_samples", type=int, default=8, help="Sampled completions per held-out prompt.")
    parser.add_argument(
        "--report_only", action="store_true", help="Only write the report (step 6), from a finished demo's output_dir."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = (ROOT / args.output_dir).resolve() if not Path(args.output_dir).is_absolute() else Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    start = time.time()
    timings = {}
    if not args.report_only:
        run_stages(out, args, timings)
    write_report(out, args, timings, start)


def run_stages(out: Path, args: argparse.Namespace, timings: dict[str, float]) -> None:
    """Steps 1-5, each stage's time in `timings`."""
    start = time.time()
    logs = out / "logs"
    logger.info("Step 1 - tiny policy and judge models")
    build_tiny_vlm(out / "policy-base", seed=0)
    build_tiny_vlm(out / "judge-base", seed=1)

    logger.info("Step 2 - synthetic task and judge data")
    DatasetDict(
        {
            "train": make_synthetic_dataset(256, seed=0, problem_types=GRPO_PROBLEM_TYPES),
            "test": make_synthetic_dataset(
                max(64, args.eval_prompts), seed=0, start_index=256, problem_types=GRPO_PROBLEM_TYPES
            ),
        }
    ).save_to_disk(out / "data" / "synthetic")
    DatasetDict({"train": make_thinking_dataset(512, seed=0), "test": judge_test_groups(16, seed=0)}).save_to_disk(
        out / "data" / "thinking"
    )
    timings["models and data"] = time.time() - start

    t = time.time()
    logger.info("Step 3 - warm-start the policy (SFT, %d steps)", args.warm_start_steps)
    warm_start_tiny_vlm(
        out / "policy-base",
        out / "policy",
        warm_start_data(WARM_START_ROWS, seed=0, flawed_fraction=0.3),
        seed=0,
        max_steps=args.warm_start_steps,
    )
    timings["policy warm start"] = time.time() - t

    t = time.time()
    logger.info("Step 4 - stage 1: train the %s thinking reward model", args.judge_type)
    run(
        [
            sys.executable,
            "recipes/thinking_reward.py",
            "--config",
            f"recipes/tiny/thinking_reward_{args.judge_type}.yaml",
            f"--model_name_or_path={out / 'judge-base'}",
            f"--dataset_name={out / 'data' / 'thinking'}",
            f"--output_dir={out / 'judge'}",
            *([f"--max_steps={args.judge_steps}"] if args.judge_steps else []),
        ],
        logs / "stage1_thinking_reward.log",
    )
    timings["stage 1 (judge)"] = time.time() - t

    t = time.time()
    logger.info("Step 5 - stage 2: Trust-GRPO (%d steps)", args.grpo_steps)
    run(
        [
            sys.executable,
            "recipes/grpo.py",
            "--config",
            "recipes/tiny/trust_grpo.yaml",
            f"--model_name_or_path={out / 'policy'}",
            f"--judge_backend={'transformers' if args.judge_type == 'generative' else 'scalar'}",
            f"--judge_model_name_or_path={out / 'judge'}",
            f"--dataset_name={out / 'data' / 'synthetic'}",
            f"--output_dir={out / 'trust-grpo'}",
            f"--max_steps={args.grpo_steps}",
            f"--num_generations={GRPO_NUM_GENERATIONS}",
            f"--per_device_train_batch_size={GRPO_PROMPTS_PER_STEP * GRPO_NUM_GENERATIONS}",
            f"--max_completion_length={GRPO_MAX_COMPLETION_LENGTH}",
            "--logging_steps=1",
        ],
        logs / "stage2_trust_grpo.log",
    )
    timings["stage 2 (Trust-GRPO)"] = time.time() - t


def write_report(out: Path, args: argparse.Namespace, timings: dict[str, float], start: float) -> None:
    """Step 6: OUTPUT_DIR/report.md and the figures beside it."""
    logs = out / "logs"
    t = time.time()
    logger.info("Step 6 - report")
    test = load_from_disk(out / "data" / "synthetic")["test"]
    if args.eval_prompts > len(test):
        raise SystemExit(
            f"--eval_prompts={args.eval_prompts}, but {out / 'data' / 'synthetic'} holds {len(test)} held-out prompts: "
            f"pass --eval_prompts {len(test)} or fewer, or run the whole demo again with --eval_prompts "
            f"{args.eval_prompts} (without --report_only) to generate them."
        )
    test = test.select(range(args.eval_prompts))
    samples = args.eval_samples
    before = sampled_rewards(out / "policy", test, samples, max_new_tokens=GRPO_MAX_COMPLETION_LENGTH)
    after = sampled_rewards(out / "trust-grpo", test, samples, max_new_tokens=GRPO_MAX_COMPLETION_LENGTH)
    judge_metrics = json.loads((out / "judge" / "judge_eval_results.json").read_text())
    state = json.loads((out / "trust-grpo" / "trainer_state.json").read_text())
    calibration = judge_calibration(out / "judge", args.judge_type, load_from_disk(out / "data" / "thinking")["test"])
    plot_training_curves(state["log_history"], out / TRAINING_FIGURE)
    plot_judge_calibration(
        calibration["scores"],
        calibration["labels"],
        calibration["pairwise_accuracy"],
        calibration["num_pairs"],
        out / JUDGE_FIGURE,
    )
    trust = trust_summary(state["log_history"])
    per_step = trust_table(state["log_history"])
    counts = trust_counts(state["log_history"], GRPO_PROMPTS_PER_STEP)
    timings["report"] = time.time() - t
    timings["total"] = time.time() - start

    lines = [
        "# sophia-trl demo report",
        "",
        f"Tiny models on the CPU; {args.judge_type} judge; {state.get('max_steps', args.grpo_steps)} Trust-GRPO steps.",
        "",
        "## Thinking reward model (stage 1), held-out judge data",
        "",
        "16 held-out questions with 4 responses each (one sound, three flawed). What GRPO uses is the judge's ranking",
        "of responses to the same question: `pairwise_accuracy` is the fraction of pairs of responses to one question,",
        "with different labelled scores, that the judge orders as the labels do (0.5 is chance); `mae` is its error on",
        "the score itself.",
        "",
        *[f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in judge_metrics.items()],
        "",
        f"## Trust-GRPO (stage 2), {GRPO_PROMPTS_PER_STEP} prompts x {GRPO_NUM_GENERATIONS} completions per step",
        "",
        counts,
        "",
        "A group is mixed when it holds right and wrong answers; there gamma = exp(mu_right - mu_wrong) < 1 when the",
        "judge scores the wrong answers higher on average, and 1 otherwise (and in every uniform group). The thinking",
        "term is what the judge added to each completion's reward, gamma * alpha_t * score, on top of the outcome and",
        "format rewards.",
        "",
        *per_step,
        "",
        "Mean over steps:",
        "",
        *[f"- {TRUST_COLUMNS.get(k, k)}: {v:.4f}" for k, v in trust.items()],
        "",
        f"![Training curves]({TRAINING_FIGURE})",
        "",
        f"## Policy on {args.eval_prompts} held-out prompts, {samples} sampled completions each",
        "",
        change_line("Held-out outcome reward", before["outcome_reward"], after["outcome_reward"]),
        "",
        change_line("Held-out format reward", before["format_reward"], after["format_reward"]),
        "",
        f"Each prompt's reward is the mean over its {samples} completions (temperature 1) from the warm-started policy",
        "(before) and the Trust-GRPO policy (after); the interval is a paired bootstrap over the prompts (10,000",
        "resamples of the prompts with replacement, each keeping its own before and after value; 2.5 % and 97.5 %",
        "quantiles of the mean change).",
        "",
        "## Figures",
        "",
        f"- [{TRAINING_FIGURE}]({TRAINING_FIGURE}): outcome reward, thinking term, alpha_t, gamma and the fraction",
        "  of mixed groups per stage-2 step (a step where no group got a thinking term logs no gamma: no point).",
        f"- [{JUDGE_FIGURE}]({JUDGE_FIGURE}): the trained judge's score against the labelled score of each held-out",
        f"  response, and its pairwise ranking accuracy ({calibration['pairwise_accuracy']:.3f} over",
        f"  {calibration['num_pairs']} pairs).",
        "",
        f"![Judge calibration]({JUDGE_FIGURE})",
        "",
        "## Time (seconds)",
        "",
        *[f"- {k}: {v:.0f}" for k, v in timings.items()],
    ]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    print(report)
    print(f"Report written to {out / 'report.md'}; stage logs in {logs}.")


if __name__ == "__main__":
    main()
