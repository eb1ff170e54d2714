"""TrustGRPOTrainer: GRPO with a thinking reward weighted by trust and annealed over training (SophiaVL-R1)."""

from __future__ import annotations

import copy
import json
import logging
import os
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import torch
from accelerate.utils import gather, is_peft_model
from torch import nn
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer
from trl.trainer.utils import get_config_model_id, get_trackio_space_url, is_async_callable

from .configs import TrustGRPOConfig, check_one_vllm_engine
from .judges import VLLMJudge, decoded_policy_prompt, judge_inputs
from .judges.health import JudgeFailureBudget, JudgeOutageError, judge_label, raise_on_every_process
from .model_cards import SOPHIAVL_R1_PAPER, describe_judge, trust_grpo_model_card
from .trl_compat import (
    CompletionsReadyHook,
    MultimodalBatchFixes,
    ResumeLoadsCheckpointWeights,
    VLMCompletionsTableLogging,
    reward_func_kwargs,
)
from .trust import (
    OFFICIAL_MIN_OUTCOME,
    annealed_alpha,
    fill_failed_scores,
    gate_to_correct,
    group_normalize,
    length_neutral_scores,
    normalize_columns_jointly,
    official_preset_masks,
    ranking_pairs,
    reliability_auc,
    reliability_weight,
    thinking_bonus,
    trust_weights,
    update_reliability,
)

logger = logging.getLogger(__name__)

THINKING_REWARD_NAME = "thinking_reward"
TRUST_STATE_NAME = "trust_state.json"  # the trainer's running state in a checkpoint folder


class ThinkingScorer(Protocol):
    """What the trainer needs of a thinking judge (every backend in `sophia_trl.judges` has it)."""

    def score(self, questions: list[str], responses: list[str], images: list | None = None) -> list[float | None]: ...


def thinking_reward(completions: list, **kwargs) -> list[float | None]:
    """Placeholder column for the thinking reward: `TrustGRPOTrainer` fills it once the outcome rewards are known."""
    return [None] * len(completions)


def _with_thinking_processing_class(kwargs: dict, num_reward_funcs: int) -> dict:
    """`kwargs` with a processing class (none) for the thinking column after the user's `reward_processing_classes`."""
    processing_classes = kwargs.get("reward_processing_classes")
    if processing_classes is None:
        return kwargs
    processing_classes = processing_classes if isinstance(processing_classes, list) else [processing_classes]
    if len(processing_classes) != num_reward_funcs:
        raise ValueError(
            f"reward_processing_classes has {len(processing_classes)} entries for {num_reward_funcs} reward functions; "
            "give one per reward function (None for a function that needs none), none for the thinking reward."
        )
    return {**kwargs, "reward_processing_classes": [*processing_classes, None]}


class TrustGRPOTrainer(
    MultimodalBatchFixes, CompletionsReadyHook, VLMCompletionsTableLogging, ResumeLoadsCheckpointWeights, GRPOTrainer
):
    """
    Trainer for Trust-GRPO.

    Trust-GRPO (SophiaVL-R1, https://huggingface.co/papers/2505.17018) adds a thinking reward to GRPO's rule-based
    outcome reward: a judge scores the reasoning of each completion, and the score counts only as far as the judge is
    trusted on the completion's group and fades over training.

    The method is one change w.r.t. [`trl.GRPOTrainer`], in `_calculate_rewards`. The first reward function is the
    outcome reward: it decides which completions are correct (outcome >= `correct_threshold`). Once the outcome rewards
    of the whole batch are gathered, `_calculate_rewards` asks `thinking_judge` to score the reasoning, computes each
    group's trust weight gamma (`sophia_trl.trust`) and adds

        gamma * alpha * exp(-step / T) * R_thinking

    to the completion's reward as the extra reward column `thinking_reward` that `__init__` appends. Other reward
    functions (e.g. a format or length reward) add with their `reward_weights` as in GRPO, and so do the reward columns
    that TRL appends after the thinking column for environments with `get_reward`; the thinking column has weight 1
    and no entry in `reward_processing_classes` (one per reward function, as in GRPO). GRPO's group normalisation of
    the summed reward into advantages and the loss are inherited unchanged.

    The methods of `GRPOTrainer` it overrides, here and through its mixins (all but `create_model_card` also run TRL's
    through `super()`):

    - `__init__`: appends the `thinking_reward` column, its weight 1 and its processing class (none), checks the
      judge, copies `args`, sets up the judge's failure budget;
    - `_save_checkpoint` and `_load_optimizer_and_scheduler` (the Trainer's, as TRL's own adaptive-entropy state):
      write `trust_state.json` into each checkpoint (the reliability rules' running AUC evidence and the failure
      budget's window) and read it back when training resumes, so a resumed run continues as an uninterrupted one
      (the checkpoint of a judge outage holds an empty window: the resumed run counts failures afresh);
    - `_load_from_checkpoint` ([`~sophia_trl.trl_compat.ResumeLoadsCheckpointWeights`], the Trainer's): loads a
      Qwen-VL checkpoint's weights on resume under the model's own names;
    - `_calculate_rewards`: the Trust-GRPO reward above, from the judge's scores of the outcome rewards' batch;
    - `create_model_card`: writes a card with the method, the run's Trust-GRPO settings, the judge and the paper
      ([`~sophia_trl.model_cards.trust_grpo_model_card`]) at every save and in `push_to_hub`;
    - `_generate_and_score_completions` ([`~sophia_trl.trl_compat.MultimodalBatchFixes`]): a batch of text-only rows
      with `image=None` goes to TRL as text-only;
    - `_generate` ([`~sophia_trl.trl_compat.MultimodalBatchFixes`]): text-only rows of a mixed batch get an empty image
      list instead of `None`, which the processor rejects;
    - `_generate_and_score_completions` and `_generate` ([`~sophia_trl.trl_compat.CompletionsReadyHook`]): call
      `_on_completions` right after generation, where the judge requests start (see below);
    - `log` ([`~sophia_trl.trl_compat.VLMCompletionsTableLogging`]): sends wandb and trackio a completions table they
      accept for VLM prompts, with the raw thinking reward and gamma columns.

    The mixins work around TRL 1.16 limits and go when TRL lifts them; `_on_completions` is the hook of
    `CompletionsReadyHook`, not a TRL method. Besides these, the trainer reads TRL's private `_metrics`, calls
    `_log_completion_extra` (the completions table's extra columns) and `_save_checkpoint` (before stopping on a judge
    outage), and asks [`~sophia_trl.trl_compat.reward_func_kwargs`] for TRL's reward-function arguments. Under
    `multi_objective_aggregation="normalize_then_sum"` it sets the attributes `multi_objective_aggregation` and
    `scale_rewards` that TRL 1.16's `_generate_and_score_completions` reads to form the advantages
    (`tests/trainers/test_gamed_judge_rules.py` checks the advantages TRL then hands to the loss). The overrides of the
    Trainer's checkpoint hooks were written against transformers 5.23.0 with TRL 1.16.0.

    `args.trust_rule` chooses the weight: `"paper"` is gamma above (1 in groups whose answers are all right or all
    wrong). `"reliability"` gives every group one weight w = clip(2 * AUC - 1, 0, 1), AUC a running estimate of how
    often the judge scores right responses above wrong ones to the same prompt. `"reliability_separate"` uses w and
    fills the columns already normalised per group, the outcome columns jointly and the thinking column on its own,
    so that the advantage is norm(R_o) + w * alpha_t * norm(R_t); with `scale_rewards="none"` TRL then only subtracts
    their group mean, which is 0. TRL's `rewards/<name>/mean` logs show these rescaled columns; the raw means are
    `trust/outcome_reward_mean` and `trust/thinking_reward_mean`.

    Against a judge that can be gamed, `args.thinking_reward_gate="correct"` gives the thinking term to correct
    responses only (Posterior-GRPO), and `args.thinking_reward_length_neutral` removes, within each group, the part of
    the judge's scores a straight line in the response length explains, before the trust rule and the thinking term
    read them (the logs keep the judge's own scores). With `multi_objective_aggregation="normalize_then_sum"` (GDPO)
    the trainer hands TRL every column normalised per group and the thinking one weighted after its normalisation,
    `norm(R_t) * gamma * alpha_t`, and has TRL sum them with their weights and divide by the batch std (it sets the
    trainer's `multi_objective_aggregation` to "sum_then_normalize" and `scale_rewards` to "batch", which give exactly
    that on such columns).

    Datasets may mix image and text-only rows (`image` None, or an empty `images` list); every image of a row with
    several reaches the judge, in order. Evaluation batches are scored as training batches unless
    `args.thinking_reward_on_eval` is `False`: then their thinking column is 0 and the judge is not asked.

    A failed judge call (asked, no score) tells nothing about its response, so it leaves the response where its group
    would put it without the judge: the call is left out of gamma's means and of the reliability rules' AUC, and the
    row gets its group's mean judge score before the thinking term is formed (before the per-group normalisation of
    `"reliability_separate"`), so its thinking term is the group's mean one; a group where every call failed gets no
    thinking term at all. Under the `official` preset the rows the released code never asks about (outcome < 0.2) keep
    its 0; they are not failures, count in gamma's means as the released code counts them, and stay out of the AUC.
    The judge runs on each process's own completions; the trust weights are computed from the gathered rewards, so
    every process computes the same weights even when a prompt's group is split across processes. A judge that raises
    on one process makes every process raise the same error before the scores are gathered
    ([`~sophia_trl.judges.health.raise_on_every_process`]).

    With a judge that has `score_async` (the server backend, [`~sophia_trl.judges.OpenAIJudge`]), each process sends
    its completions to the judge the moment generation returns (`_on_completions`) and collects the scores in
    `_calculate_rewards`, so the requests are in flight while TRL computes the log-probs and the rule-based rewards.
    The rewards, trust weights and metrics are those of the synchronous path. With `thinking_reward_preset="official"`
    the rows to send are decided from the outcome reward of the process's own rows, computed once more right after
    generation (without logging): a row with outcome < 0.2 is never sent, and a group whose outcomes are all >= 0.9
    or all <= 0.1 is skipped when it lies on one process (per-device batch a multiple of `num_generations`); the
    rows of a group split across processes are sent and their scores dropped if the gathered group turns out
    uniform. `_calculate_rewards` keeps the final say and scores any row it needs that was not sent.

    Written against TRL 1.16.0's `GRPOTrainer._calculate_rewards(inputs, prompts, completions, completion_ids_list)`,
    which returns the rewards of all processes gathered, shape (B_global, num_reward_funcs), and its
    `create_model_card(model_name, dataset_name, tags)`, which `_save_checkpoint` calls;
    `tests/trainers/test_trl_contract.py` fails when one of these contracts moves.

    Args:
        model, reward_funcs, args, **kwargs:
            As for [`trl.GRPOTrainer`], with `args` a [`TrustGRPOConfig`].
        thinking_judge (`ThinkingScorer` or `None`, *optional*, defaults to `None`):
            An object with `score(questions, responses, images) -> list[float | None]`, e.g. a backend from
            `sophia_trl.judges`. `None` trains plain GRPO on the reward functions.
        overlap_judge (`bool` or `None`, *optional*, defaults to `None`):
            Whether to send the judge requests as soon as generation returns (see above). `None` does so when the
            judge has `score_async` (server backends) and scores in `_calculate_rewards` otherwise (local judges,
            which would compete with the log-prob passes for the same device); `False` always scores there.

    Logged metrics (besides GRPO's), each a mean over the batch's groups or rows as said: `trust/gamma_mean` and
    `trust/untrusted_frac` (the fraction with gamma < 1) over the groups that get a thinking term (the judge scored at
    least one of their rows and, under `official`, the group is not uniform; not logged for a batch without one),
    `trust/mixed_group_frac` (groups with correct and wrong completions, over all groups), `trust/alpha` (annealed
    alpha), `trust/outcome_reward_mean` (all rows), `trust/thinking_reward_mean` (the scores the judge gave, over the
    rows it scored; not logged for a batch without one), with a reliability rule `trust/reliability_auc` (the running
    estimate), `trust/reliability_weight` (w) and `trust/batch_auc` (this batch's pairs, when it has some), and the
    counts `trust/judge_calls`, `trust/judge_skipped`, `trust/judge_failed`. The completions table gets the columns
    `thinking_reward_raw` (the judge's score; NaN for a row not asked or a failed call) and `trust_gamma` (the
    group's weight; NaN for a group without a thinking term).
    """

    _tag_names = ["trl", "grpo", "trust-grpo", "sophia-trl"]
    _name = "TrustGRPO"
    _paper = SOPHIAVL_R1_PAPER

    def __init__(
        self,
        model,
        reward_funcs,
        args: TrustGRPOConfig | None = None,
        thinking_judge=None,
        overlap_judge: bool | None = None,
        **kwargs,
    ):
        if args is None:  # as TRL's trainers: a default config named after the model
            model_name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = TrustGRPOConfig(f"{model_name.split('/')[-1]}-TrustGRPO")
        elif not isinstance(args, TrustGRPOConfig):
            raise TypeError(f"TrustGRPOTrainer needs a TrustGRPOConfig, got {type(args).__name__}.")
        else:
            # The caller's config stays as given (it may build a second trainer): the trainer changes a copy.
            args = copy.deepcopy(args)
        reward_funcs = list(reward_funcs) if isinstance(reward_funcs, list | tuple) else [reward_funcs]
        if not reward_funcs:
            raise ValueError("TrustGRPOTrainer needs at least the outcome reward function.")
        self.thinking_judge = thinking_judge
        if thinking_judge is not None:
            if not callable(getattr(thinking_judge, "score", None)):
                raise TypeError("thinking_judge must have a `score(questions, responses, images)` method.")
            if isinstance(thinking_judge, VLLMJudge):
                check_one_vllm_engine("vllm", args)
            reward_funcs.append(thinking_reward)
            if overlap_judge and not callable(getattr(thinking_judge, "score_async", None)):
                raise ValueError(
                    f"overlap_judge=True needs a judge with `score_async` (e.g. OpenAIJudge); "
                    f"{type(thinking_judge).__name__} has none. Leave overlap_judge=None to score synchronously."
                )
            if args.reward_weights is not None:
                if len(args.reward_weights) != len(reward_funcs) - 1:
                    raise ValueError(
                        f"reward_weights has {len(args.reward_weights)} values for {len(reward_funcs) - 1} reward "
                        "functions; give one weight per reward function (the thinking reward is weighted by alpha)."
                    )
                args.reward_weights = [*args.reward_weights, 1.0]
            kwargs = _with_thinking_processing_class(kwargs, len(reward_funcs) - 1)
        self.overlap_judge = overlap_judge
        self._pending_judgement: tuple[list, list[int], Future] | None = None  # (completions, rows, scores)
        super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)
        # The thinking column's index in the rewards: TRL appends the reward columns of environments with `get_reward`
        # after the reward functions, so it need not be the last one.
        self._thinking_column = next((i for i, f in enumerate(self.reward_funcs) if f is thinking_reward), None)
        # Running evidence of the judge's right-above-wrong ranking (trust_rule="reliability*"): (discounted pair
        # score sum, discounted pair count); saved with each checkpoint, with the failure budget's window.
        self._reliability = (0.0, 0.0)
        # normalize_then_sum (GDPO) with a judge: `_calculate_rewards` hands TRL each column normalised per group, the
        # thinking column already weighted, and TRL sums them and divides by the batch std, as its normalize_then_sum
        # does after its own per-column normalisation (which would erase gamma and alpha_t).
        self._columns_normalized_here = (
            thinking_judge is not None and args.multi_objective_aggregation == "normalize_then_sum"
        )
        if self._columns_normalized_here:
            self.multi_objective_aggregation, self.scale_rewards = "sum_then_normalize", "batch"
        self.judge_failure_budget = None
        if thinking_judge is not None:
            self.judge_failure_budget = JudgeFailureBudget(
                judge_label(thinking_judge),
                args.judge_max_failed_fraction,
                args.judge_failure_window,
                log_warnings=self.accelerator.is_main_process,
            )

    def _group_trust_weights(
        self, outcome: torch.Tensor, thinking: torch.Tensor, num_generations: int, mode: str, scores: torch.Tensor
    ) -> torch.Tensor:
        """Weight of each group's thinking reward under `args.trust_rule`, shape (num_groups,); logs the AUC estimate.

        The paper's gamma reads `thinking` (with the `official` preset's zeros, as the released code); the reliability
        rules' AUC reads only `scores`, the scores the judge gave. They update their running AUC estimate from the
        gathered rewards of training batches only, so it is the same on every process; evaluation batches use it
        without moving it.
        """
        args: TrustGRPOConfig = self.args
        num_groups = outcome.numel() // num_generations
        if args.trust_rule == "paper":
            if args.trust_weighting:
                return trust_weights(outcome, thinking, num_generations, args.correct_threshold)
            return torch.ones(num_groups, device=outcome.device)
        score_sum, num_pairs = ranking_pairs(outcome, scores, num_generations, args.correct_threshold)
        if mode == "train":
            self._reliability = update_reliability(self._reliability, score_sum, num_pairs, args.reliability_decay)
        auc = reliability_auc(self._reliability, args.reliability_prior)
        weight = reliability_weight(auc) if args.trust_weighting else 1.0
        metrics = self._metrics[mode]
        metrics["trust/reliability_auc"].append(auc)
        metrics["trust/reliability_weight"].append(weight)
        if num_pairs:
            metrics["trust/batch_auc"].append(score_sum / num_pairs)
        return torch.full((num_groups,), weight, device=outcome.device)

    def _judge_alpha(self) -> float:
        """The annealed alpha of the current step."""
        args: TrustGRPOConfig = self.args
        horizon = args.thinking_reward_T or max(self.state.max_steps, 1)
        return annealed_alpha(
            self.state.global_step, args.thinking_reward_alpha, horizon, args.thinking_reward_annealing
        )

    def _judges_batch(self, mode: str) -> bool:
        """Whether the judge scores a batch of `mode`: always in training, in evaluation with `thinking_reward_on_eval`."""
        return mode == "train" or self.args.thinking_reward_on_eval

    def _on_completions(self, inputs, prompts, completions, completion_ids_list) -> None:
        # Sends this process's rows to the judge now; `_calculate_rewards` collects the scores after TRL's log-prob
        # passes and rule-based rewards, which then run while the requests are in flight.
        self._pending_judgement = None
        judge = self.thinking_judge
        if judge is None or self.overlap_judge is False or not callable(getattr(judge, "score_async", None)):
            return
        if not self._judges_batch("train" if self.model.training else "eval"):
            return
        if self._judge_alpha() == 0.0:
            return  # `_calculate_rewards` asks the judge nothing
        if self.args.thinking_reward_preset == "official":
            rows = self._official_rows_to_send(inputs, prompts, completions, completion_ids_list)
        else:
            rows = list(range(len(prompts)))
        if not rows:
            return
        try:
            future = judge.score_async(*self._judge_inputs(inputs, prompts, completions, rows))
        except Exception as error:  # raised where `_calculate_rewards` collects it, on every process at once
            future = Future()
            future.set_exception(error)
        self._pending_judgement = (completions, rows, future)

    def _official_rows_to_send(self, inputs, prompts, completions, completion_ids_list) -> list[int]:
        """The local rows the official preset will ask about, from the outcome reward of this process's rows."""
        outcome_func = self.reward_funcs[0]
        if isinstance(outcome_func, nn.Module) or is_async_callable(outcome_func):
            return []  # not cheap to run twice: `_calculate_rewards` scores synchronously
        # TRL's keyword arguments for reward functions, without the logging hooks: this extra call must log nothing.
        kwargs = reward_func_kwargs(self, inputs)
        values = outcome_func(prompts=prompts, completions=completions, completion_ids=completion_ids_list, **kwargs)
        outcome = torch.tensor([torch.nan if v is None else float(v) for v in values])  # (B_local,)
        num_generations = self.num_generations if self.model.training else self.num_generations_eval
        if len(prompts) % num_generations == 0:  # whole groups on this process: the preset's own masks
            ask, _ = official_preset_masks(outcome, num_generations)
        else:  # a group may continue on another process: only the row-level skip is known here
            ask = outcome >= OFFICIAL_MIN_OUTCOME
        return ask.nonzero(as_tuple=True)[0].tolist()

    def _collect_judge_scores(self, rows: list[int], inputs, prompts, completions) -> list[float | None]:
        """The judge's scores of the local `rows`: from the requests sent after generation, the rest asked now."""
        pending, self._pending_judgement = self._pending_judgement, None
        scores: dict[int, float | None] = {}

        def add(asked: list[int], replies: list[float | None]) -> None:
            if len(replies) != len(asked):
                raise ValueError(f"The thinking judge returned {len(replies)} scores for {len(asked)} completions.")
            scores.update(zip(asked, replies))

        if pending is not None and pending[0] is completions:  # sent for this very batch
            add(pending[1], pending[2].result())
        missing = [i for i in rows if i not in scores]
        if missing:
            add(missing, self.thinking_judge.score(*self._judge_inputs(inputs, prompts, completions, missing)))
        return [scores[i] for i in rows]

    def _judge_inputs(self, inputs, prompts, completions, rows: list[int]) -> tuple[list, list, list]:
        """The judge's questions, responses and images of the local `rows`. A template that reads `{policy_prompt}`
        (the released judge's) gets the policy's decoded prompt as the question, as the released reward code sends."""
        items = [judge_inputs(inputs[i], prompts[i], completions[i]) for i in rows]
        judge_prompt = getattr(self.thinking_judge, "judge_prompt", None)
        if judge_prompt is not None and judge_prompt.reads_policy_prompt:
            decoded = [decoded_policy_prompt(self.processing_class, prompts[i]) for i in rows]
            items = [(question, response, image) for question, (_, response, image) in zip(decoded, items)]
        questions, responses, images = (list(column) for column in zip(*items))
        return questions, responses, images

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # Shapes: B = completions of all processes (TRL gathers the rewards), B_local = this process's completions
        # (len(prompts)), F = reward functions, num_groups = B / num_generations.
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (B, F)
        mode = "train" if self.model.training else "eval"
        outcome = rewards_per_func[:, 0].clone()  # (B,) gathered over processes; a copy, the columns may be rescaled
        self._metrics[mode]["trust/outcome_reward_mean"].append(torch.nanmean(outcome).item())
        if self.thinking_judge is None:
            return rewards_per_func
        if not self._judges_batch(mode):
            rewards_per_func[:, self._thinking_column] = 0.0  # (B,) no thinking term: the other columns' alone
            if self._columns_normalized_here:  # TRL was set up to sum columns that arrive normalised
                self._normalize_other_columns(rewards_per_func, self.num_generations_eval)
            return rewards_per_func

        args: TrustGRPOConfig = self.args
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        alpha = self._judge_alpha()

        if args.thinking_reward_preset == "official":
            ask_judge, active = official_preset_masks(outcome, num_generations)  # (B,), (num_groups,)
        else:
            ask_judge = torch.ones_like(outcome, dtype=torch.bool)  # (B,)
            active = None
        if alpha == 0.0:
            ask_judge = torch.zeros_like(ask_judge)

        # Each process scores its own completions: `scores` holds what the judge said, NaN where it was not asked or
        # the call failed.
        local = slice(
            self.accelerator.process_index * len(prompts), (self.accelerator.process_index + 1) * len(prompts)
        )
        local_ask = ask_judge[local]  # (B_local,)
        local_scores = torch.full((len(prompts),), torch.nan, device=outcome.device)  # (B_local,)
        rows = local_ask.nonzero(as_tuple=True)[0].tolist()
        with raise_on_every_process():  # a judge error on one process must not leave the others in the gather below
            replies = self._collect_judge_scores(rows, inputs, prompts, completions) if rows else []
        if rows:
            local_scores[rows] = torch.tensor(
                [torch.nan if s is None else float(s) for s in replies], device=outcome.device
            )
        local_failed = torch.isnan(local_scores[local_ask]).sum()
        scores = gather(local_scores)  # (B,) identical on every process
        judged = scores  # (B,) what the trust rule and the thinking term read
        if args.thinking_reward_length_neutral:
            lengths = torch.tensor([len(ids) for ids in completion_ids_list], device=outcome.device).float()
            judged = length_neutral_scores(scores, gather(lengths), num_generations)  # (B,)
        # (3,): judge calls, rows not sent to the judge, failed calls, summed over processes
        counts = gather(torch.stack([local_ask.sum(), (~local_ask).sum(), local_failed]).view(1, 3)).sum(dim=0)
        if mode == "train":
            self._check_judge_failures(int(counts[0].item()), int(counts[2].item()))

        thinking, with_term = self._thinking_rewards(judged, ask_judge, active, num_generations)  # (B,), (num_groups,)
        gamma = self._group_trust_weights(outcome, thinking, num_generations, mode, judged)  # (num_groups,)
        # A failed call takes its group's mean score after gamma is set (gamma's means leave it out).
        thinking = fill_failed_scores(thinking, judged, ask_judge & torch.isnan(scores), num_generations)  # (B,)
        self._normalize_other_columns(rewards_per_func, num_generations)
        rewards_per_func[:, self._thinking_column] = self._thinking_term(
            thinking, outcome, gamma, alpha, num_generations, active
        )  # (B,)

        grouped = (outcome.view(-1, num_generations) >= args.correct_threshold).float().mean(dim=1)  # (num_groups,)
        mixed = (grouped > 0) & (grouped < 1)  # (num_groups,)
        metrics = self._metrics[mode]
        metrics["trust/alpha"].append(alpha)
        if with_term.any():  # what the trust rule decided, over the groups with a judge score
            metrics["trust/gamma_mean"].append(gamma[with_term].mean().item())
            metrics["trust/untrusted_frac"].append((gamma[with_term] < 1).float().mean().item())
        metrics["trust/mixed_group_frac"].append(mixed.float().mean().item())
        if not torch.isnan(scores).all():
            metrics["trust/thinking_reward_mean"].append(torch.nanmean(scores).item())
        metrics["trust/judge_calls"].append(counts[0].item())
        metrics["trust/judge_skipped"].append(counts[1].item())
        metrics["trust/judge_failed"].append(counts[2].item())
        # Per-completion columns of the completions table (TRL gathers these local slices itself): what the judge said
        # and the weight its group got, NaN where there is none.
        no_weight = torch.full_like(gamma, torch.nan)
        gamma_rows = torch.where(with_term, gamma, no_weight).repeat_interleave(num_generations)  # (B,)
        self._log_completion_extra("thinking_reward_raw", scores[local].tolist())
        self._log_completion_extra("trust_gamma", gamma_rows[local].tolist())
        return rewards_per_func

    def _normalize_other_columns(self, rewards_per_func: torch.Tensor, num_generations: int) -> None:
        """Normalises the columns other than the thinking one in place, per group, where the trust rule or the aggregation
        wants them normalised before the weighted thinking term is added: jointly for `reliability_separate` (TRL then
        only subtracts their group mean, 0, under the config's scale_rewards="none"), each on its own for
        normalize_then_sum (TRL then sums them with their weights and divides by the batch std)."""
        others = [j for j in range(rewards_per_func.shape[1]) if j != self._thinking_column]
        if self._columns_normalized_here:
            for k in others:
                rewards_per_func[:, k] = group_normalize(rewards_per_func[:, k], num_generations)
        elif self.args.trust_rule == "reliability_separate":
            rewards_per_func[:, others] = normalize_columns_jointly(
                rewards_per_func[:, others], self.reward_weights[others], num_generations
            )

    def _thinking_term(
        self,
        thinking: torch.Tensor,
        outcome: torch.Tensor,
        gamma: torch.Tensor,
        alpha: float,
        num_generations: int,
        active: torch.Tensor | None,
    ) -> torch.Tensor:
        """The thinking column, shape (B,): gamma * alpha_t * R_t, with R_t normalised per group first under
        `reliability_separate` and normalize_then_sum, and 0 for wrong responses under `thinking_reward_gate="correct"`
        (whose normalisation is then over the group's correct responses)."""
        args: TrustGRPOConfig = self.args
        gated = args.thinking_reward_gate == "correct"
        term = gate_to_correct(thinking, outcome, args.correct_threshold) if gated else thinking  # (B,)
        if args.trust_rule == "reliability_separate" or self._columns_normalized_here:
            term = group_normalize(term, num_generations)
        bonus = thinking_bonus(term, gamma, alpha, num_generations, active)  # (B,)
        if gated:
            bonus = torch.where(outcome >= args.correct_threshold, bonus, torch.zeros_like(bonus))
        return bonus

    @staticmethod
    def _thinking_rewards(
        scores: torch.Tensor, ask_judge: torch.Tensor, active: torch.Tensor | None, num_generations: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The thinking rewards gamma reads, shape (B,): the judge's scores and, under the `official` preset, the
        released code's 0 for the rows of an active group it does not ask about (outcome < 0.2); and which groups get
        a thinking term, shape (num_groups,): those where the judge gave a score."""
        with_term = ~torch.isnan(scores).view(-1, num_generations).all(dim=1)  # (num_groups,)
        if active is None:
            return scores, with_term
        released = active.repeat_interleave(num_generations) & ~ask_judge  # (B,)
        return torch.where(released, torch.zeros_like(scores), scores), with_term & active

    def _check_judge_failures(self, calls: int, failed: int) -> None:
        """Counts the step's failed judge calls; over the budget, saves a checkpoint of the last finished step and
        raises `JudgeOutageError` (the counts are summed over processes: every process stops at the same step)."""
        try:
            self.judge_failure_budget.update(self.state.global_step + 1, calls, failed)
        except JudgeOutageError:
            # The step being scored is not trained: the checkpoint holds the last finished one, to resume from, with
            # an empty failure window: the run resumes once the judge is checked, and counts its failures afresh.
            self.judge_failure_budget.reset()
            self._save_checkpoint(self.model_wrapped, trial=None)
            raise

    def _save_checkpoint(self, model, trial) -> None:
        # Writes the running state into the checkpoint folder before the Trainer saves (and maybe pushes) it. The
        # state is the same on every process (it comes from gathered rewards and summed counts): the main one writes.
        if self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, TRUST_STATE_NAME), "w") as f:
                json.dump(self._trust_state(), f, indent=2)
        super()._save_checkpoint(model, trial)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        # The Trainer calls this once when training resumes from `checkpoint` (and with None otherwise).
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and self.thinking_judge is not None:
            self._load_trust_state(checkpoint)

    def _trust_state(self) -> dict:
        """What a resumed run needs to continue as an uninterrupted one: the reliability rules' running AUC evidence
        and the judge failure budget's window."""
        budget = self.judge_failure_budget
        return {
            "reliability": list(self._reliability),
            "judge_failure_budget": budget.state_dict() if budget is not None else None,
        }

    def _load_trust_state(self, checkpoint: str) -> None:
        """Restores `_trust_state` from `checkpoint`; a checkpoint without it (another trainer's) starts afresh."""
        path = os.path.join(checkpoint, TRUST_STATE_NAME)
        if not os.path.isfile(path):
            logger.warning(
                "%s has no %s: the reliability rules' running AUC and the judge failure budget's window start afresh.",
                checkpoint,
                TRUST_STATE_NAME,
            )
            return
        with open(path) as f:
            state = json.load(f)
        score_sum, num_pairs = state["reliability"]
        self._reliability = (float(score_sum), float(num_pairs))
        if state["judge_failure_budget"] is not None:
            self.judge_failure_budget.load_state_dict(state["judge_failure_budget"])

    def create_model_card(
        self, model_name: str | None = None, dataset_name: str | None = None, tags: str | list[str] | None = None
    ) -> None:
        """Writes `README.md` in `output_dir`: the method, the run's Trust-GRPO settings, the judge and the paper
        ([`~sophia_trl.model_cards.trust_grpo_model_card`]). `push_to_hub` and checkpoint saves call it."""
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
            # The card describes the thinking reward on its own line.
            reward_names=[name for name in self.reward_func_names if name != THINKING_REWARD_NAME],
            tags=[*self._tag_names, *tags],
            wandb_url=wandb_run.url if wandb_run is not None else None,
            trackio_url=get_trackio_space_url(),
            adapter=is_peft_model(self.model),
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))
