"""TrustGRPOTrainer: GRPO with a thinking reward weighted by trust and annealed over training (SophiaVL-R1)."""

from __future__ import annotations

import logging
from typing import Protocol

import torch
from accelerate.utils import gather
from trl import GRPOTrainer

from .configs import TrustGRPOConfig
from .hub import SOPHIAVL_R1_PAPER, TrustGRPOModelCard
from .judges import judge_inputs
from .trl_compat import MultimodalBatchFixes, VLMCompletionsTableLogging
from .trust import annealed_alpha, official_preset_masks, thinking_bonus, trust_weights

logger = logging.getLogger(__name__)

THINKING_REWARD_NAME = "thinking_reward"


class ThinkingScorer(Protocol):
    """What the trainer needs of a thinking judge (every backend in `sophia_trl.judges` has it)."""

    def score(self, questions: list[str], responses: list[str], images: list | None = None) -> list[float | None]: ...


def thinking_reward(completions: list, **kwargs) -> list[float | None]:
    """Placeholder column for the thinking reward: `TrustGRPOTrainer` fills it once the outcome rewards are known."""
    return [None] * len(completions)


class TrustGRPOTrainer(TrustGRPOModelCard, MultimodalBatchFixes, VLMCompletionsTableLogging, GRPOTrainer):
    """
    Trainer for Trust-GRPO.

    Trust-GRPO (SophiaVL-R1, https://huggingface.co/papers/2505.17018) adds a thinking reward to GRPO's rule-based
    outcome reward: a judge scores the reasoning of each completion, and the score counts only as far as the judge is
    trusted on the completion's group and fades over training.

    The only change w.r.t. [`trl.GRPOTrainer`] is `_calculate_rewards`. The first reward function is the outcome
    reward: it decides which completions are correct (outcome >= `correct_threshold`). Once the outcome rewards of the
    whole batch are gathered, `_calculate_rewards` asks `thinking_judge` to score the reasoning, computes each group's
    trust weight gamma (`sophia_trl.trust`) and adds

        gamma * alpha * exp(-step / T) * R_thinking

    to the completion's reward as the extra reward column `thinking_reward` that `__init__` appends. Other reward
    functions (e.g. a format or length reward) add with their `reward_weights` as in GRPO; the thinking column has
    weight 1. Everything else (generation, GRPO's group normalisation of the summed reward into advantages, the loss,
    checkpointing) is inherited unchanged.

    Datasets may mix image and text-only rows (`image` None, or an empty `images` list).

    A failed judge call gives a NaN thinking reward: it is left out of gamma's means and adds nothing to the reward.
    The judge runs on each process's own completions; the trust weights are computed from the gathered rewards, so
    every process computes the same weights even when a prompt's group is split across processes.

    The other bases are not part of the method. [`~sophia_trl.hub.TrustGRPOModelCard`] makes saves and `push_to_hub`
    write a model card with the run's Trust-GRPO settings and judge. The mixins of `sophia_trl.trl_compat` work around
    TRL 1.16 limits and go when TRL lifts them: `MultimodalBatchFixes` (mixed and text-only batches) and
    `VLMCompletionsTableLogging` (a completions table that wandb and trackio accept for VLM prompts).

    Written against TRL 1.16.0's `GRPOTrainer._calculate_rewards(inputs, prompts, completions, completion_ids_list)`,
    which returns the rewards of all processes gathered, shape (B_global, num_reward_funcs); `tests/test_trl_contract.py`
    fails when that contract moves.

    Args:
        model, reward_funcs, args, **kwargs:
            As for [`trl.GRPOTrainer`], with `args` a [`TrustGRPOConfig`].
        thinking_judge (`ThinkingScorer` or `None`, *optional*, defaults to `None`):
            An object with `score(questions, responses, images) -> list[float | None]`, e.g. a backend from
            `sophia_trl.judges`. `None` trains plain GRPO on the reward functions.

    Logged metrics (besides GRPO's): `trust/gamma_mean`, `trust/untrusted_frac` (groups with gamma < 1),
    `trust/mixed_group_frac` (groups with correct and wrong completions), `trust/alpha` (annealed alpha),
    `trust/outcome_reward_mean`, `trust/thinking_reward_mean` (raw judge scores), `trust/judge_calls`,
    `trust/judge_skipped`, `trust/judge_failed`.
    """

    _tag_names = ["trl", "grpo", "trust-grpo", "sophia-trl"]
    _name = "TrustGRPO"
    _paper = SOPHIAVL_R1_PAPER
    _card_hidden_rewards = (THINKING_REWARD_NAME,)  # the card describes the thinking reward on its own line

    def __init__(self, model, reward_funcs, args: TrustGRPOConfig | None = None, thinking_judge=None, **kwargs):
        if args is not None and not isinstance(args, TrustGRPOConfig):
            raise TypeError(f"TrustGRPOTrainer needs a TrustGRPOConfig, got {type(args).__name__}.")
        reward_funcs = list(reward_funcs) if isinstance(reward_funcs, list | tuple) else [reward_funcs]
        if not reward_funcs:
            raise ValueError("TrustGRPOTrainer needs at least the outcome reward function.")
        self.thinking_judge = thinking_judge
        if thinking_judge is not None:
            if not callable(getattr(thinking_judge, "score", None)):
                raise TypeError("thinking_judge must have a `score(questions, responses, images)` method.")
            reward_funcs.append(thinking_reward)
            if args is not None and args.reward_weights is not None:
                if len(args.reward_weights) != len(reward_funcs) - 1:
                    raise ValueError(
                        f"reward_weights has {len(args.reward_weights)} values for {len(reward_funcs) - 1} reward "
                        "functions; give one weight per reward function (the thinking reward is weighted by alpha)."
                    )
                args.reward_weights = [*args.reward_weights, 1.0]
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Shapes: B = completions of all processes (TRL gathers the rewards), B_local = this process's completions
        # (len(prompts)), F = reward functions, num_groups = B / num_generations.
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (B, F)
        mode = "train" if self.model.training else "eval"
        outcome = rewards_per_func[:, 0]  # (B,) gathered over processes
        self._metrics[mode]["trust/outcome_reward_mean"].append(torch.nanmean(outcome).item())
        if self.thinking_judge is None:
            return rewards_per_func

        args: TrustGRPOConfig = self.args
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        horizon = args.thinking_reward_T or max(self.state.max_steps, 1)
        alpha = annealed_alpha(
            self.state.global_step, args.thinking_reward_alpha, horizon, args.thinking_reward_annealing
        )

        if args.thinking_reward_preset == "official":
            ask_judge, active = official_preset_masks(outcome, num_generations)  # (B,), (num_groups,)
        else:
            ask_judge = torch.ones_like(outcome, dtype=torch.bool)  # (B,)
            active = None
        if alpha == 0.0:
            ask_judge = torch.zeros_like(ask_judge)

        # Each process scores its own completions; the official preset's skipped rows in active groups score 0.
        local = slice(
            self.accelerator.process_index * len(prompts), (self.accelerator.process_index + 1) * len(prompts)
        )
        local_ask = ask_judge[local]  # (B_local,)
        local_thinking = torch.full((len(prompts),), torch.nan, device=outcome.device)  # (B_local,), NaN: no score
        if active is not None:
            local_active_rows = active.repeat_interleave(num_generations)[local]  # (B_local,)
            local_thinking[local_active_rows & ~local_ask] = 0.0
        rows = local_ask.nonzero(as_tuple=True)[0].tolist()
        if rows:
            questions, responses, images = zip(*(judge_inputs(inputs[i], prompts[i], completions[i]) for i in rows))
            scores = self.thinking_judge.score(list(questions), list(responses), list(images))
            if len(scores) != len(rows):
                raise ValueError(f"The thinking judge returned {len(scores)} scores for {len(rows)} completions.")
            local_thinking[rows] = torch.tensor(
                [torch.nan if s is None else float(s) for s in scores], device=outcome.device
            )
        local_failed = torch.isnan(local_thinking[local_ask]).sum()
        thinking = gather(local_thinking)  # (B,) identical on every process
        # (3,): judge calls, rows not sent to the judge, failed calls, summed over processes
        counts = gather(torch.stack([local_ask.sum(), (~local_ask).sum(), local_failed]).view(1, 3)).sum(dim=0)

        if args.trust_weighting:
            gamma = trust_weights(outcome, thinking, num_generations, args.correct_threshold)  # (num_groups,)
        else:
            gamma = torch.ones(outcome.numel() // num_generations, device=outcome.device)  # (num_groups,)
        rewards_per_func[:, -1] = thinking_bonus(thinking, gamma, alpha, num_generations, active)  # (B,)

        grouped = (outcome.view(-1, num_generations) >= args.correct_threshold).float().mean(dim=1)  # (num_groups,)
        mixed = (grouped > 0) & (grouped < 1)  # (num_groups,)
        metrics = self._metrics[mode]
        metrics["trust/alpha"].append(alpha)
        metrics["trust/gamma_mean"].append(gamma.mean().item())
        metrics["trust/untrusted_frac"].append((gamma < 1).float().mean().item())
        metrics["trust/mixed_group_frac"].append(mixed.float().mean().item())
        metrics["trust/thinking_reward_mean"].append(torch.nanmean(thinking).item())
        metrics["trust/judge_calls"].append(counts[0].item())
        metrics["trust/judge_skipped"].append(counts[1].item())
        metrics["trust/judge_failed"].append(counts[2].item())
        # Per-completion columns of the completions table (TRL gathers these local slices itself).
        self._log_completion_extra("thinking_reward_raw", thinking[local].tolist())
        self._log_completion_extra("trust_gamma", gamma.repeat_interleave(num_generations)[local].tolist())
        return rewards_per_func
