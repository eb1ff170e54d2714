"""The Trust-GRPO reward math (SophiaVL-R1, arXiv 2505.17018, sec. 3.3), as pure tensor functions.

For each group of G responses to one prompt, with outcome rewards `o` and thinking rewards `t`:

    correct  = o >= correct_threshold
    mu_c     = mean(t[correct]),  mu_w = mean(t[~correct])
    gamma    = 1                  if mu_c >= mu_w (or the group is all correct / all wrong)
             = exp(mu_c - mu_w)   otherwise
    R_i      = o_i + gamma * alpha * exp(-step / T) * t_i

A failed judge call (asked, no score) is left out of mu_c and mu_w, and its row takes its group's mean judge score
before the thinking term is formed, so that its thinking term is its group's mean one (`fill_failed_scores`).

Rows are laid out as TRL lays them out after gathering: the G completions of a prompt are consecutive, so a tensor of
shape (B,) views as (B / G, G).

Besides the paper's rule, two rules let the judge's reliability, measured where it can be measured, govern it
everywhere (`TrustGRPOConfig.trust_rule`):

    reliability            w = clip(2 * AUC - 1, 0, 1), AUC = how often the judge scores a right response above a wrong
                           one of the same group (pairs within mixed groups, ties 1/2), a running estimate over steps;
                           R_i = o_i + w * alpha_t * t_i in every group (also in uniform groups, where gamma = 1).
    reliability_separate   the same w, and outcome and thinking rewards normalised per group separately:
                           A_i = norm(o)_i + w * alpha_t * norm(t)_i, so w and alpha_t stay real weights in uniform
                           groups (with GRPO's std scaling of the sum, a uniform group's thinking term is rescaled to
                           unit size whatever its weight).

Two counters to a judge that can be gamed (it likes long reasoning or a phrase, whatever the answer), each composable
with every rule and the annealing (`TrustGRPOConfig.thinking_reward_gate`, `thinking_reward_length_neutral`):

    gate "correct"         the thinking reward counts only for correct responses (Posterior-GRPO):
                           R_i = o_i + 1[correct_i] * gamma * alpha_t * t_i; a rule that normalises the thinking rewards
                           per group normalises them over the group's correct responses (`gate_to_correct`).
    length-neutral         within each group, the part of the judge's scores that a straight line in the response
                           length explains is removed: t_i - b * (L_i - mean L), b the least-squares slope
                           (`length_neutral_scores`).
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
TRUST_RULES = ("paper", "reliability", "reliability_separate")
THINKING_REWARD_GATES = ("none", "correct")
NORM_EPS = 1e-4  # the epsilon TRL 1.16 adds to the group std


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

    A NaN thinking reward (a row the judge was not asked about) stays NaN, so that TRL's `nansum` over reward columns
    adds nothing for it and its mean logs leave it out; failed judge calls are filled first ([`fill_failed_scores`]).

    Returns:
        `torch.Tensor`: shape (B,).
    """
    t = _grouped(thinking.float(), num_generations, "thinking")  # (num_groups, G)
    bonus = gamma.view(-1, 1) * alpha * t
    if active is not None:
        bonus = torch.where(active.view(-1, 1), bonus, torch.zeros_like(bonus))
    return bonus.view(-1)


def fill_failed_scores(
    thinking: torch.Tensor, scores: torch.Tensor, failed: torch.Tensor, num_generations: int
) -> torch.Tensor:
    """Puts each failed judge call where its group would put it without the judge: at the group's mean score.

    A failed call (timeout, refused request, reply without a score) carries no information about its response. Taking
    its score as 0 (or leaving it out of a sum, the same thing) ranks the response below every scored one of its group,
    and group normalisation turns that into a large negative advantage. A failed row gets instead the mean of the
    scores the judge gave in its group, so that its thinking term, which is affine in the score within a group (gamma *
    alpha_t * t, or w * alpha_t * norm(t)), is the mean of the scored rows' terms; a group where the judge gave no score
    gets 0 on its failed rows, so that it has no thinking term at all.

    Args:
        thinking (`torch.Tensor`):
            The thinking rewards to fill, shape (B,), each group's rows consecutive (the `official` preset's rows not
            asked hold its 0 there, which stays).
        scores (`torch.Tensor`):
            The scores the judge gave, shape (B,), NaN where it gave none (not asked, or failed).
        failed (`torch.Tensor`):
            Rows the judge was asked about and gave no score, shape (B,), bool.
        num_generations (`int`):
            Completions per prompt, G.

    Returns:
        `torch.Tensor`: `thinking` with the failed rows filled, shape (B,).

    Example:
        >>> nan = float("nan")
        >>> scores = torch.tensor([0.8, nan, 0.6, nan, nan, nan])  # row 1 failed, row 3 not asked; group 2 failed
        >>> failed = torch.tensor([False, True, False, False, True, True])
        >>> fill_failed_scores(scores, scores, failed, num_generations=2)
        tensor([0.8000, 0.8000, 0.6000,    nan, 0.0000, 0.0000])
        >>> fill_failed_scores(scores[:4], scores[:4], failed[:4], num_generations=4)
        tensor([0.8000, 0.7000, 0.6000,    nan])
    """
    # In float64, so that a group whose scores are all equal fills in exactly that value (a float32 mean can be an ulp
    # off, which GRPO's division by (std + 1e-4) would magnify into a visible advantage).
    s = _grouped(scores.double(), num_generations, "scores")  # (num_groups, G)
    given = ~torch.isnan(s)
    n = given.sum(dim=1, keepdim=True)  # (num_groups, 1)
    mean = torch.nan_to_num(s, nan=0.0).sum(dim=1, keepdim=True) / n.clamp(min=1)  # (num_groups, 1), 0 without scores
    fill = mean.expand_as(s).reshape(-1).float()  # (B,)
    return torch.where(failed.view(-1), fill, thinking.float())


def gate_to_correct(thinking: torch.Tensor, outcome: torch.Tensor, correct_threshold: float = 0.5) -> torch.Tensor:
    """Posterior gating: the thinking rewards of correct responses, NaN for the others (outcome < threshold or NaN).

    NaN leaves a wrong response out of a later per-group normalisation ([`group_normalize`]), so that the judge orders
    the correct responses among themselves; the caller gives the gated rows a thinking term of 0.

    Example:
        >>> gate_to_correct(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([0.0, 1.0, 1.0]))
        tensor([   nan, 0.2000, 0.7000])
    """
    correct = outcome.float() >= correct_threshold  # (B,), False for a NaN outcome
    return torch.where(correct, thinking.float(), torch.full_like(thinking.float(), torch.nan))


def length_neutral_scores(scores: torch.Tensor, lengths: torch.Tensor, num_generations: int) -> torch.Tensor:
    """The judge's scores without the part a straight line in the response length explains, within each group.

    Over the rows of a group that have a score (not NaN), with L the response lengths and b = cov(t, L) / var(L) the
    least-squares slope of score on length, each score becomes t_i - b * (L_i - mean L): the residual plus the group's
    mean score, so the group's mean is kept and only the length-linked spread goes. A group with fewer than two scores
    or one length keeps its scores. With two scored rows of different lengths the line fits them exactly: both get the
    mean, and the judge says nothing in that group.

    Args:
        scores (`torch.Tensor`):
            The judge's scores, shape (B,), NaN where there is none (kept NaN).
        lengths (`torch.Tensor`):
            Response lengths (tokens), shape (B,).
        num_generations (`int`):
            Completions per prompt, G.

    Returns:
        `torch.Tensor`: shape (B,).

    Example:
        >>> scores = torch.tensor([0.1, 0.3, 0.3, 0.5])
        >>> lengths = torch.tensor([10.0, 20.0, 30.0, 40.0])
        >>> length_neutral_scores(scores, lengths, num_generations=4)  # slope 6 / 500 = 0.012 per token, mean 0.3
        tensor([0.2800, 0.3600, 0.2400, 0.3200])
    """
    # In float64: a group whose scores are already free of length keeps them exactly.
    t = _grouped(scores.double(), num_generations, "scores")  # (num_groups, G)
    length = _grouped(lengths.double(), num_generations, "lengths")  # (num_groups, G)
    given = ~torch.isnan(t)
    n = given.sum(dim=1, keepdim=True).clamp(min=1)  # (num_groups, 1)
    t0 = torch.nan_to_num(t, nan=0.0)
    mean_t = t0.sum(dim=1, keepdim=True) / n
    mean_l = (length * given).sum(dim=1, keepdim=True) / n
    dl = (length - mean_l) * given  # (num_groups, G), 0 off the scored rows
    var_l = (dl**2).sum(dim=1, keepdim=True)
    slope = (dl * (t0 - mean_t)).sum(dim=1, keepdim=True) / torch.where(var_l > 0, var_l, torch.ones_like(var_l))
    slope = torch.where(var_l > 0, slope, torch.zeros_like(slope))  # (num_groups, 1)
    return (t - slope * dl).view(-1).float()


# Two judge scores closer than this rank as equal (scores live in [0, 1]; a judge writes at most three decimals).
RANKING_TIE = 1e-6


def ranking_pairs(
    outcome: torch.Tensor, thinking: torch.Tensor, num_generations: int, correct_threshold: float = 0.5
) -> tuple[float, int]:
    """How the judge ranks right against wrong responses to the same prompt: the evidence for its AUC.

    Every pair (right i, wrong j) of scored rows within one group counts 1 when t_i > t_j, 1/2 when t_i = t_j (within
    `RANKING_TIE`) and 0 otherwise. Only mixed groups have pairs; rows with a NaN outcome or thinking reward are left out.

    Args:
        outcome (`torch.Tensor`):
            Outcome rewards, shape (B,), each group's rows consecutive.
        thinking (`torch.Tensor`):
            Thinking rewards, shape (B,).
        num_generations (`int`):
            Completions per prompt, G.
        correct_threshold (`float`, *optional*, defaults to `0.5`):
            A response is right when its outcome reward is >= this value.

    Returns:
        `tuple[float, int]`: the summed pair scores and the number of pairs (AUC = sum / pairs).

    Example:
        >>> outcome = torch.tensor([1.0, 1.0, 0.0, 0.0])
        >>> thinking = torch.tensor([0.9, 0.4, 0.4, 0.1])  # pairs: 0.9>0.4, 0.9>0.1, 0.4=0.4, 0.4>0.1
        >>> ranking_pairs(outcome, thinking, num_generations=4)
        (3.5, 4)
    """
    o = _grouped(outcome.float(), num_generations, "outcome")  # (num_groups, G)
    t = _grouped(thinking.float(), num_generations, "thinking")  # (num_groups, G)
    scored = ~torch.isnan(t) & ~torch.isnan(o)
    right = (o >= correct_threshold) & scored
    wrong = (o < correct_threshold) & scored
    t0 = torch.nan_to_num(t, nan=0.0)
    diff = t0.unsqueeze(2) - t0.unsqueeze(1)  # (num_groups, G, G): t_i - t_j
    pairs = right.unsqueeze(2) & wrong.unsqueeze(1)  # (num_groups, G, G): i right, j wrong
    # Scores within RANKING_TIE of each other tie: a length-neutral fit or a float32 round trip must not turn two equal
    # judgements into a ranking.
    score = (diff > RANKING_TIE).float() + 0.5 * (diff.abs() <= RANKING_TIE).float()
    return (score * pairs).sum().item(), int(pairs.sum().item())


def update_reliability(
    state: tuple[float, float], score_sum: float, num_pairs: int, decay: float
) -> tuple[float, float]:
    """One step of the running AUC estimate: the pair scores and pair counts, each an exponential moving sum.

    Args:
        state (`tuple[float, float]`):
            (discounted sum of pair scores, discounted number of pairs) so far; (0, 0) before any step.
        score_sum (`float`), num_pairs (`int`):
            This step's evidence, from [`ranking_pairs`].
        decay (`float`):
            Weight of the past per step, in [0, 1): 0 keeps only this step, 0.9 remembers about 10 steps.

    Returns:
        `tuple[float, float]`: the new state. A step without pairs only discounts the past, so the estimate it gives
        (sum / count) does not change.

    Example:
        >>> update_reliability((9.0, 10.0), score_sum=1.0, num_pairs=10, decay=0.5)  # (0.5 * 9 + 1, 0.5 * 10 + 10)
        (5.5, 15.0)
    """
    return decay * state[0] + score_sum, decay * state[1] + num_pairs


def reliability_auc(state: tuple[float, float], prior: float) -> float:
    """The AUC estimate of a running state: discounted score sum / discounted pairs, or `prior` before any pair."""
    return state[0] / state[1] if state[1] > 0 else float(prior)


def reliability_weight(auc: float) -> float:
    """The judge's weight w = clip(2 * AUC - 1, 0, 1): 0 for a judge no better than chance at ranking right above wrong
    responses (or worse), 1 for one that always does.

    Example:
        >>> reliability_weight(0.8), reliability_weight(0.3)
        (0.6000000000000001, 0.0)
    """
    return min(max(2.0 * auc - 1.0, 0.0), 1.0)


def group_normalize(x: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(x - group mean) / (group std + 1e-4), as TRL 1.16 normalises a group's rewards (unbiased std).

    NaN values are left out of the group's mean and std and stay NaN; a group with fewer than two values, or all equal,
    becomes 0.

    Returns:
        `torch.Tensor`: shape (B,).
    """
    # In float64: a group of equal values then normalises to exactly 0 (a float32 mean can be an ulp off, which the
    # division by (std + 1e-4) would magnify).
    v = _grouped(x.double(), num_generations, "rewards")  # (num_groups, G)
    valid = ~torch.isnan(v)
    n = valid.sum(dim=1, keepdim=True)  # (num_groups, 1)
    v0 = torch.nan_to_num(v, nan=0.0)
    mean = v0.sum(dim=1, keepdim=True) / n.clamp(min=1)
    var = (((v0 - mean) * valid) ** 2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)
    out = (v - mean) / (var.sqrt() + NORM_EPS)
    out = torch.where(valid & (n < 2), torch.zeros_like(out), out)
    return out.view(-1).float()


def normalize_columns_jointly(columns: torch.Tensor, weights: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Rescales reward columns so that their weighted sum is group-normalised, as GRPO normalises it.

    With c_k = weight_k * column_k and S = sum_k c_k, column k becomes (c_k - group mean of c_k) / (group std of S +
    1e-4) / weight_k, so the weighted sum of the new columns is (S - mean S) / (std S + 1e-4), GRPO's advantage of these
    columns alone, while each column still shows its own part (a format reward stays a column of its own). As in TRL's
    `nansum`, a NaN entry counts as 0 (it becomes a finite value here, so that the row's columns still add up); a row
    whose entries are all NaN stays NaN and is left out of its group's mean and std, as TRL leaves unscorable rows out of
    the baseline. A column of weight 0 becomes 0.

    Args:
        columns (`torch.Tensor`):
            Rewards, shape (B, K).
        weights (`torch.Tensor`):
            Their weights, shape (K,).
        num_generations (`int`):
            Completions per prompt, G.

    Returns:
        `torch.Tensor`: shape (B, K).
    """
    if columns.dim() != 2 or weights.shape != (columns.shape[1],):
        raise ValueError(
            f"Expected columns of shape (B, K) and weights of shape (K,), got {tuple(columns.shape)} and "
            f"{tuple(weights.shape)}."
        )
    num_cols = columns.shape[1]
    w = weights.to(columns.device, torch.float32)
    c = torch.nan_to_num(columns.float(), nan=0.0) * w  # (B, K)
    grouped = c.view(-1, num_generations, num_cols)  # (num_groups, G, K)
    valid = ~torch.isnan(columns).all(dim=1).view(-1, num_generations, 1)  # (num_groups, G, 1)
    n = valid.sum(dim=1, keepdim=True)  # (num_groups, 1, 1)
    mean = (grouped * valid).sum(dim=1, keepdim=True) / n.clamp(min=1)  # (num_groups, 1, K)
    centred = (grouped - mean) * valid  # (num_groups, G, K)
    total = centred.sum(dim=2, keepdim=True)  # (num_groups, G, 1): S - mean S
    std = ((total**2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()  # (num_groups, 1, 1), unbiased
    scaled = (centred / (std + NORM_EPS)).view(-1, num_cols)  # (B, K)
    safe_w = torch.where(w == 0, torch.ones_like(w), w)
    out = torch.where(w == 0, torch.zeros_like(scaled), scaled / safe_w)
    return torch.where(valid.view(-1, 1), out, torch.full_like(out, torch.nan))
