"""TrustGRPOTrainer: GRPO with a thinking reward weighted by trust and annealed over training (SophiaVL-R1)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate.utils import gather
from trl import GRPOTrainer
from trl.trainer.utils import get_trackio_space_url

from .configs import TrustGRPOConfig
from .data import message_text
from .hub import SOPHIAVL_R1_PAPER, describe_judge, trust_grpo_model_card
from .logging_utils import log_completions_table, table_backends
from .trust import annealed_alpha, official_preset_masks, thinking_bonus, trust_weights

logger = logging.getLogger(__name__)

THINKING_REWARD_NAME = "thinking_reward"


class ThinkingScorer(Protocol):
    """What the trainer needs of a thinking judge (every backend in `sophia_trl.rewards.thinking` has it)."""

    def score(self, questions: list[str], responses: list[str], images: list | None = None) -> list[float | None]: ...


def thinking_reward(completions: list, **kwargs) -> list[float | None]:
    """Placeholder column for the thinking reward: `TrustGRPOTrainer` fills it once the outcome rewards are known."""
    return [None] * len(completions)


def question_of(prompt: str | list[dict[str, Any]]) -> str:
    """The text of the last user message of a conversational prompt (the prompt itself when it is a string)."""
    return message_text(prompt, role="user") or ""


def response_of(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion, conversational (`[{"role": "assistant", "content": ...}]`) or plain."""
    return message_text(completion, role="assistant") or ""


def image_of(example: dict[str, Any]):
    """The first image of a dataset row (`image` or `images` column), or None for a text-only row."""
    if example.get("images"):
        return example["images"][0]
    return example.get("image")


class TrustGRPOTrainer(GRPOTrainer):
    """
    Trainer for Trust-GRPO (SophiaVL-R1, arXiv 2505.17018).

    The only change to training with respect to [`trl.GRPOTrainer`] is how rewards are combined; generation, the loss
    and checkpointing are inherited. The first reward function is the outcome reward: it decides which completions are
    correct (outcome >= `correct_threshold`). Once the outcome rewards of the whole batch are gathered, the trainer asks
    `thinking_judge` to score the reasoning, computes each group's trust weight gamma and adds

        gamma * alpha * exp(-step / T) * R_thinking

    to the completion's reward as an extra reward column named `thinking_reward`. Other reward functions (e.g. a
    format or length reward) add with their `reward_weights` as in GRPO; the thinking column has weight 1. GRPO's
    group normalisation of the summed reward then gives the advantages.

    Datasets may mix image and text-only rows (`image` None, or an empty `images` list).

    A failed judge call gives a NaN thinking reward: it is left out of gamma's means and adds nothing to the reward.
    The judge runs on each process's own completions; the trust weights are computed from the gathered rewards, so
    every process computes the same weights even when a prompt's group is split across processes.

    Two reporting hooks are overridden too: `log`, so that wandb and trackio get a completions table they accept for
    VLM prompts (with the image, the outcome and thinking rewards and gamma, see `sophia_trl.logging_utils`), and
    `create_model_card`, so that saves and `push_to_hub` write a card with the Trust-GRPO settings (`sophia_trl.hub`).

    Written against TRL 1.16.0's `GRPOTrainer._calculate_rewards(inputs, prompts, completions, completion_ids_list)`,
    which returns the rewards of all processes gathered, shape (B_global, num_reward_funcs), and `_generate(prompts)`,
    whose 7th output is the per-row image lists, and `log`, which draws its completions table for the backends in
    `args.report_to` from `self._logs`.

    Args:
        model, reward_funcs, args, **kwargs:
            As for [`trl.GRPOTrainer`], with `args` a [`TrustGRPOConfig`].
        thinking_judge (`ThinkingScorer` or `None`, *optional*, defaults to `None`):
            An object with `score(questions, responses, images) -> list[float | None]`, e.g. a backend from
            `sophia_trl.rewards.thinking`. `None` trains plain GRPO on the reward functions.

    Logged metrics (besides GRPO's): `trust/gamma_mean`, `trust/untrusted_frac` (groups with gamma < 1),
    `trust/mixed_group_frac` (groups with correct and wrong completions), `trust/alpha` (annealed alpha),
    `trust/outcome_reward_mean`, `trust/thinking_reward_mean` (raw judge scores), `trust/judge_calls`,
    `trust/judge_skipped`, `trust/judge_failed`.
    """

    _tag_names = ["trl", "grpo", "trust-grpo", "sophia-trl"]
    _name = "TrustGRPO"
    _paper = SOPHIAVL_R1_PAPER

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
        self._completions_table_step: int | None = None  # the step whose table `log` last sent to wandb/trackio

    def _generate_and_score_completions(self, inputs):
        # A batch whose rows all have `image=None` would reach the processor as a list of Nones: treat it as text-only.
        if inputs and "image" in inputs[0] and all(x["image"] is None for x in inputs):
            inputs = [{k: v for k, v in x.items() if k != "image"} for x in inputs]
        return super()._generate_and_score_completions(inputs)

    def _generate(self, prompts: list):
        # TRL 1.16 marks the text-only rows of a mixed batch with `None` images, which the processor call in
        # `_generate_and_score_completions` rejects; an empty image list per row keeps mixed batches working.
        output = list(super()._generate(prompts))  # images are the 7th element
        if output[6] is not None:
            output[6] = [row if row else [] for row in output[6]]
        return tuple(output)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
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
            ask_judge = torch.ones_like(outcome, dtype=torch.bool)
            active = None
        if alpha == 0.0:
            ask_judge = torch.zeros_like(ask_judge)

        # Each process scores its own completions; the official preset's skipped rows in active groups score 0.
        local = slice(
            self.accelerator.process_index * len(prompts), (self.accelerator.process_index + 1) * len(prompts)
        )
        local_ask = ask_judge[local]
        local_thinking = torch.full((len(prompts),), torch.nan, device=outcome.device)
        if active is not None:
            local_active_rows = active.repeat_interleave(num_generations)[local]
            local_thinking[local_active_rows & ~local_ask] = 0.0
        rows = local_ask.nonzero(as_tuple=True)[0].tolist()
        if rows:
            scores = self.thinking_judge.score(
                [question_of(prompts[i]) for i in rows],
                [response_of(completions[i]) for i in rows],
                [image_of(inputs[i]) for i in rows],
            )
            if len(scores) != len(rows):
                raise ValueError(f"The thinking judge returned {len(scores)} scores for {len(rows)} completions.")
            local_thinking[rows] = torch.tensor(
                [torch.nan if s is None else float(s) for s in scores], device=outcome.device
            )
        local_failed = torch.isnan(local_thinking[local_ask]).sum()
        thinking = gather(local_thinking)  # (B,) identical on every process
        counts = gather(torch.stack([local_ask.sum(), (~local_ask).sum(), local_failed]).view(1, 3)).sum(dim=0)

        if args.trust_weighting:
            gamma = trust_weights(outcome, thinking, num_generations, args.correct_threshold)  # (num_groups,)
        else:
            gamma = torch.ones(outcome.numel() // num_generations, device=outcome.device)
        rewards_per_func[:, -1] = thinking_bonus(thinking, gamma, alpha, num_generations, active)

        grouped = (outcome.view(-1, num_generations) >= args.correct_threshold).float().mean(dim=1)  # (num_groups,)
        mixed = (grouped > 0) & (grouped < 1)
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

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # TRL 1.16 logs its completions table with the prompts as message lists, which wandb rejects for VLM prompts
        # ("Data row contained incompatible types"): hide wandb/trackio from TRL's table and log a text table instead.
        # Metrics still reach every backend through the Trainer callbacks, which do not read report_to after __init__.
        backends = table_backends(self.args.report_to) if self.log_completions else []
        if not backends:
            return super().log(logs, start_time)
        report_to = self.args.report_to
        self.args.report_to = [backend for backend in report_to if backend not in backends]
        try:
            super().log(logs, start_time)
        finally:
            self.args.report_to = report_to
        # The Trainer logs once more after the last step (the run summary) with the same completions: log them once.
        if self.accelerator.is_main_process and self._completions_table_step != self.state.global_step:
            self._completions_table_step = self.state.global_step
            log_completions_table(
                self._logs,
                self.state.global_step,
                self.reward_func_names,
                backends,
                unique_prompts=self.log_unique_prompts,
                with_images=self.log_multimodal,
            )

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | list[str] | None = None
    ) -> None:
        """Writes `README.md` in `output_dir`: the method, the run's Trust-GRPO settings, the judge and the paper
        (`sophia_trl.hub.trust_grpo_model_card`). `push_to_hub` and checkpoint saves call it."""
        if not self.is_world_process_zero():
            return
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        wandb_run = None
        if "wandb" in (self.args.report_to or []):
            import wandb

            wandb_run = wandb.run
        card = trust_grpo_model_card(
            self.args,
            model_name=model_name or (self.args.hub_model_id or Path(self.args.output_dir).name).split("/")[-1],
            total_steps=self.state.max_steps,
            base_model=getattr(self.model.config, "_name_or_path", None),
            hub_model_id=self.hub_model_id,
            dataset_name=dataset_name,
            judge=describe_judge(self.thinking_judge),
            reward_names=[name for name in self.reward_func_names if name != THINKING_REWARD_NAME],
            tags=[*self._tag_names, *tags],
            wandb_url=wandb_run.url if wandb_run is not None else None,
            trackio_url=get_trackio_space_url(),
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))
