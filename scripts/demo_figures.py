# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""The numbers and pictures of `make demo`'s report: a paired bootstrap of the held-out change, the training curves of
stage 2 and the judge's calibration on held-out judge data (PNG files written beside the report)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# The per-step curves of the training figure: (key in trainer_state.json's log_history, panel title).
CURVES = [
    ("trust/outcome_reward_mean", "outcome reward"),
    ("rewards/thinking_reward/mean", "thinking term (gamma alpha_t score)"),
    ("trust/alpha", "alpha_t"),
    ("trust/gamma_mean", "gamma (mean over groups)"),
    ("trust/mixed_group_frac", "mixed-group fraction"),
]


def paired_bootstrap(
    before: list[float], after: list[float], num_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """
    The mean change `after - before` over paired items (held-out prompts) and its 95 % percentile bootstrap interval:
    the prompts are resampled with replacement, each keeping its own before and after value.

    Args:
        before (`list[float]`), after (`list[float]`):
            One value per prompt (e.g. the mean reward of its sampled completions), in the same order.
        num_resamples (`int`, *optional*, defaults to `10000`):
            Bootstrap resamples.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the resampling.

    Returns:
        `tuple[float, float, float]`: The mean change, the 2.5 % and the 97.5 % quantile of the resampled means.
    """
    if len(before) != len(after) or not before:
        raise ValueError(
            f"paired_bootstrap needs one before and one after value per prompt, got {len(before)} and {len(after)}."
        )
    change = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = change[rng.integers(0, len(change), size=(num_resamples, len(change)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(change.mean()), float(low), float(high)


def change_line(name: str, before: list[float], after: list[float]) -> str:
    """`<name>: B -> A (95% CI of the change: [LO, HI])`, the interval from `paired_bootstrap` over the prompts."""
    change, low, high = paired_bootstrap(before, after)
    return (
        f"{name}: {np.mean(before):.3f} -> {np.mean(after):.3f} "
        f"(95% CI of the change: [{low:+.3f}, {high:+.3f}]; mean change {change:+.3f})"
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(log_history: list[dict], path: Path, title: str = "Trust-GRPO (stage 2)") -> Path:
    """
    One panel per curve of `CURVES` against the step, from the trainer's `log_history`. A step where no group got a
    thinking term logs no gamma: its point is missing, not drawn as 1.
    """
    plt = _pyplot()
    entries = [e for e in log_history if "trust/alpha" in e]
    steps = [e["step"] for e in entries]
    fig, axes = plt.subplots(1, len(CURVES), figsize=(3.0 * len(CURVES), 2.6), sharex=True)
    for ax, (key, label) in zip(axes, CURVES):
        values = [e.get(key, math.nan) for e in entries]
        values = [math.nan if v is None else v for v in values]
        ax.plot(steps, values, marker="o", markersize=3, linewidth=1)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[-1].set_ylim(-0.05, 1.05)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_judge_calibration(
    scores: list[float], labels: list[float], pairwise_accuracy: float, num_pairs: int, path: Path
) -> Path:
    """The judge's score against the labelled score of each held-out response (jittered along the label axis, the
    labels sit on a 0.1 grid), the diagonal of a calibrated judge, and the pairwise ranking accuracy in the title."""
    plt = _pyplot()
    rng = np.random.default_rng(0)
    labels_array = np.asarray(labels, dtype=np.float64)
    scores_array = np.asarray(scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--", label="calibrated")
    ax.scatter(labels_array + rng.uniform(-0.015, 0.015, len(labels_array)), scores_array, s=12, alpha=0.7)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("labelled score", fontsize=8)
    ax.set_ylabel("judge score", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(
        f"Judge on held-out responses\npairwise ranking accuracy {pairwise_accuracy:.2f} ({num_pairs} pairs)",
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
