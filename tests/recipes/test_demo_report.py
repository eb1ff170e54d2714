"""`make demo`'s report (scripts/demo.py): the held-out change with a paired bootstrap interval, and PNG figures beside
the report, linked from it. The fast tests write the report from stand-in stage outputs; the slow one runs the demo."""

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import DatasetDict

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import demo  # noqa: E402
from demo_figures import paired_bootstrap, plot_training_curves  # noqa: E402

from sophia_trl.tiny.scenes import make_synthetic_dataset  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANGE_LINE = (
    r"Held-out {} reward: -?\d\.\d{{3}} -> -?\d\.\d{{3}} \(95% CI of the change: \[[+-]\d\.\d{{3}}, [+-]\d\.\d{{3}}\]"
)


def check_report(out: Path) -> str:
    """The parts the issue asks of the report: both change lines with an interval, and the two figures, PNG files
    beside the report and linked from it."""
    report = (out / "report.md").read_text()
    for reward in ("outcome", "format"):
        assert re.search(CHANGE_LINE.format(reward), report), f"no {reward} line with an interval in:\n{report}"
    assert "paired bootstrap over the prompts" in report
    for figure in (demo.TRAINING_FIGURE, demo.JUDGE_FIGURE):
        assert f"]({figure})" in report
        assert (out / figure).read_bytes()[:8] == PNG_SIGNATURE
    assert "groups were mixed" in report and "gamma fell below 1" in report
    return report


def test_paired_bootstrap_by_hand():
    # The same change on every prompt: every resample has that mean, so the interval is the point.
    assert paired_bootstrap([0.0, 0.25, 0.5], [0.25, 0.5, 0.75]) == pytest.approx((0.25, 0.25, 0.25))
    # Changes -1 and +1 on two prompts: a resample's mean is -1, 0 or +1 with probabilities 1/4, 1/2, 1/4.
    change, low, high = paired_bootstrap([1.0, 0.0], [0.0, 1.0])
    assert (change, low, high) == (0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="one before and one after value per prompt"):
        paired_bootstrap([0.1, 0.2], [0.3])


@pytest.mark.parametrize("seed", range(5))
def test_paired_bootstrap_interval_matches_the_normal_one(seed):
    # Many prompts: the percentile interval of the mean change is close to mean +- 1.96 sd / sqrt(n), and pairing
    # cancels what the prompts share (a per-prompt difficulty far larger than the change).
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0, 1, 400)
    before = difficulty + rng.normal(0, 0.1, 400)
    after = difficulty + 0.05 + rng.normal(0, 0.1, 400)
    change, low, high = paired_bootstrap(list(before), list(after))
    diff = after - before
    half = 1.96 * statistics.stdev(diff) / math.sqrt(len(diff))
    assert change == pytest.approx(diff.mean())
    assert low == pytest.approx(diff.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(diff.mean() + half, abs=0.15 * half)


def test_training_curves_skip_steps_without_gamma(tmp_path):
    history = [
        {"step": 1, "trust/alpha": 0.3, "trust/outcome_reward_mean": 0.0, "trust/mixed_group_frac": 0.0},
        {"step": 2, "trust/alpha": 0.29, "trust/gamma_mean": 0.9, "trust/mixed_group_frac": 0.5},
        {"step": 2, "train_runtime": 10.0},  # the trainer's summary entry: no trust metrics
    ]
    path = plot_training_curves(history, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_report_has_the_change_lines_and_figures(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    (out / "judge").mkdir(parents=True)
    (out / "trust-grpo").mkdir()
    test = make_synthetic_dataset(3, seed=0, start_index=256, problem_types=demo.GRPO_PROBLEM_TYPES)
    DatasetDict({"test": test}).save_to_disk(out / "data" / "synthetic")
    DatasetDict({"test": demo.judge_test_groups(1, seed=0)}).save_to_disk(out / "data" / "thinking")
    (out / "judge" / "judge_eval_results.json").write_text(json.dumps({"judge_eval_pairwise_accuracy": 0.75}))
    history = [
        {"step": 1, "trust/alpha": 0.3, "trust/mixed_group_frac": 0.5, "trust/untrusted_frac": 0.5},
        {"step": 2, "trust/alpha": 0.29, "trust/mixed_group_frac": 0.0},  # no thinking term: no gamma logged
    ]
    history[0].update({"trust/gamma_mean": 0.9, "trust/outcome_reward_mean": 0.25})
    (out / "trust-grpo" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    # Stand-ins for the models: the policy's per-prompt rewards and the judge's scores.
    rewards = {"policy": [0.0, 0.25, 0.5], "trust-grpo": [0.25, 0.5, 0.5]}
    monkeypatch.setattr(
        demo,
        "sampled_rewards",
        lambda model_dir, *a, **k: {"outcome_reward": rewards[model_dir.name], "format_reward": [0.5, 0.5, 1.0]},
    )
    calibration = {"scores": [0.9, 0.2, 0.4, 0.1], "labels": [1.0, 0.0, 0.5, 0.2], "pairwise_accuracy": 5 / 6}
    monkeypatch.setattr(demo, "judge_calibration", lambda *a, **k: {**calibration, "num_pairs": 6})
    args = argparse.Namespace(eval_prompts=3, eval_samples=4, judge_type="generative", grpo_steps=2)
    demo.write_report(out, args, {}, start=0.0)

    report = check_report(out)
    assert "Held-out outcome reward: 0.250 -> 0.417 (95% CI of the change: [+0.000, +0.250]" in report
    assert "Held-out format reward: 0.667 -> 0.667 (95% CI of the change: [+0.000, +0.000]" in report
    assert "1 of 4 groups were mixed; in 1 of them" in report


def test_report_only_with_more_prompts_than_generated_names_the_setting(tmp_path):
    out = tmp_path / "demo"
    test = make_synthetic_dataset(3, seed=0, start_index=256, problem_types=demo.GRPO_PROBLEM_TYPES)
    DatasetDict({"test": test}).save_to_disk(out / "data" / "synthetic")
    args = argparse.Namespace(eval_prompts=5, eval_samples=4, judge_type="generative", grpo_steps=2)
    with pytest.raises(SystemExit, match=r"--eval_prompts=5, but .* holds 3 held-out prompts: pass --eval_prompts 3"):
        demo.write_report(out, args, {}, start=0.0)


@pytest.mark.slow
def test_demo_writes_the_report_with_interval_and_figures(tmp_path):
    # The whole pipeline at the smallest sizes (each stage as `make demo` runs it); the numbers mean nothing here.
    out = tmp_path / "demo"
    cmd = [sys.executable, "scripts/demo.py", f"--output_dir={out}", "--warm_start_steps=2", "--judge_steps=2"]
    cmd += ["--grpo_steps=2", "--eval_prompts=2", "--eval_samples=1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_report(out)
