"""The Trust-GRPO reward math (SophiaVL-R1, arXiv 2505.17018, sec. 3.3), as pure tensor functions.

For each group of G responses to one prompt, with outcome rewards `o` and thinking rewards `t`:

    correct  = o >= correct_threshold
    mu_c     = mean(t[correct]),  mu_w = mean(t[~correct])
    gamma    = 1                  if mu_c >= mu_w (or the group is all correct / all wrong)
             = exp(mu_c - mu_w)   otherwise
    R_i      = o_i + gamma * alpha * exp(-step / T) * t_i

Rows are laid out as TRL lays them out after gathering: the G completions of a prompt are consecutive, so a tensor of
shape (B,) views as (B / G, G).
"""

from __future__ import annotations

import math

import torch

# The released SophiaVL-R1 code (verl/workers/reward/custom.py) asks the judge only about responses whose outcome
# reward is at least 0.2 (the others get a thinking reward of 0), and gives no thinking reward at all to a group
# whose outcomes are all >= 0.9 or all <= 0.1.
OFFICIAL_MIN_OUTCOME = 0.2
OFFICIAL_UNIFORM_HIGH = 0.9
OFFICIAL_UNIFORM_LOW = 0.1

ANNEALING_SCHEDULES = ("exp", "none")


def _grouped(x: torch.Tensor, num_generations: int, name: str) -> torch.Tensor:
    if x.dim() != 1:
        raise ValueError(f"`{name}` must be 1-D (one value per completion), got shape {tuple(x.shape)}.")
    if num_generations < 1 or x.numel() % num_generations != 0:
        raise ValueError(
            f"`{name}` has {x.numel()} values, which is not a multiple of num_generations={num_generations}: rows "
            "must come in whole groups of num_generations consecutive completions."
        )
    return x.view(-1, num_generations)


def trust_weights(
    outcome: torch.Tensor, thinking: torch.Tensor, num_generations: int, correct_threshold: float = 0.5
) -> torch.Tensor:
    """Trust weight gamma of each group: 1 when the judge ranks correct responses at least as high as wrong ones.

    Args:
        outcome (`torch.Tensor`):
            Outcome rewards, shape (B,), B = num_groups * num_generations with each group's rows consecutive. A NaN
            outcome leaves its row out of both means.
        thinking (`torch.Tensor`):
            Thinking rewards, shape (B,). NaN (a failed judge call) is left out of the means.
        num_generations (`int`):
            Completions per prompt, G.
        correct_threshold (`float`, *optional*, defaults to `0.5`):
            A response is correct when its outcome reward is >= this value.

    Returns:
        `torch.Tensor`: gamma, shape (num_groups,), in (0, 1]. A group with no scored correct or no scored wrong
        response has gamma = 1.

    Example:
        >>> outcome = torch.tensor([1.0, 1.0, 0.0, 0.0])
        >>> thinking = torch.tensor([0.2, 0.4, 0.9, 0.7])  # the judge prefers the wrong answers
        >>> trust_weights(outcome, thinking, num_generations=4)  # exp(0.3 - 0.8)
        tensor([0.6065])
    """
    o = _grouped(outcome.float(), num_generations, "outcome")  # (num_groups, G)
    t = _grouped(thinking.float(), num_generations, "thinking")  # (num_groups, G)
    scored = ~torch.isnan(t) & ~torch.isnan(o)
    correct = (o >= correct_threshold) & scored
    wrong = (o < correct_threshold) & scored
    t0 = torch.nan_to_num(t, nan=0.0)
    n_c, n_w = correct.sum(dim=1), wrong.sum(dim=1)  # (num_groups,)
    mu_c = (t0 * correct).sum(dim=1) / n_c.clamp(min=1)
    mu_w = (t0 * wrong).sum(dim=1) / n_w.clamp(min=1)
    gamma = torch.exp(torch.clamp(mu_c - mu_w, max=0.0))  # exp(mu_c - mu_w) when mu_c < mu_w, else 1
    one_sided = (n_c == 0) | (n_w == 0)
    return torch.where(one_sided, torch.ones_like(gamma), gamma)


def annealed_alpha(step: int, alpha: float, T: int | None, schedule: str = "exp") -> float:
    """Weight of the thinking reward at a training step: alpha * exp(-step / T) for "exp", alpha for "none".

    Args:
        step (`int`):
            The global training step (continues, not restarts, when training resumes from a checkpoint).
        alpha (`float`):
            Initial weight (0.3 in the paper).
        T (`int` or `None`):
            Annealing horizon, the run's total number of training steps in the paper. Needed for "exp".
        schedule (`str`, *optional*, defaults to `"exp"`):
            `"exp"` or `"none"`.

    Example:
        >>> round(annealed_alpha(step=500, alpha=0.3, T=1000), 4)  # 0.3 * exp(-0.5)
        0.182
    """
    if schedule == "none":
        return float(alpha)
    if schedule != "exp":
        raise ValueError(f"Unknown thinking reward annealing schedule {schedule!r}; use one of {ANNEALING_SCHEDULES}.")
    if T is None or T <= 0:
        raise ValueError(f"The 'exp' annealing schedule needs a horizon T > 0, got T={T}.")
    return float(alpha) * math.exp(-step / T)


def official_preset_masks(outcome: torch.Tensor, num_generations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which rows the released code sends to the judge, and which groups get a thinking reward at all.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: `ask_judge` of shape (B,) (outcome >= 0.2 in an active group) and
        `active` of shape (num_groups,) (False for groups whose outcomes are all >= 0.9 or all <= 0.1).

    Example:
        >>> ask, active = official_preset_masks(torch.tensor([1.0, 0.1, 1.0, 1.0]), num_generations=2)
        >>> ask.tolist(), active.tolist()
        ([True, False, False, False], [True, False])
    """
    o = _grouped(outcome.float(), num_generations, "outcome")  # (num_groups, G)
    uniform = (o >= OFFICIAL_UNIFORM_HIGH).all(dim=1) | (o <= OFFICIAL_UNIFORM_LOW).all(dim=1)
    active = ~uniform
    ask_judge = (o >= OFFICIAL_MIN_OUTCOME) & active.unsqueeze(1)
    return ask_judge.view(-1), active


def thinking_bonus(
    thinking: torch.Tensor, gamma: torch.Tensor, alpha: float, num_generations: int, active: torch.Tensor | None = None
) -> torch.Tensor:
    """The term added to each outcome reward: gamma_group * alpha * R_thinking (0 in inactive groups).

    A NaN thinking reward (failed judge call) stays NaN, so that TRL's `nansum` over reward columns adds nothing for it
    and its mean logs leave it out.

    Returns:
        `torch.Tensor`: shape (B,).
    """
    t = _grouped(thinking.float(), num_generations, "thinking")  # (num_groups, G)
    bonus = gamma.view(-1, 1) * alpha * t
    if active is not None:
        bonus = torch.where(active.view(-1, 1), bonus, torch.zeros_like(bonus))
    return bonus.view(-1)
