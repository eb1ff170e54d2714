"""Workarounds for TRL's `GRPOTrainer` (and the transformers `Trainer` beneath it), one mixin or function each, to be
dropped when TRL (or transformers) no longer needs it.

`TrustGRPOTrainer` lists the mixins before `GRPOTrainer` in its bases, so each override runs first and hands over to
TRL with `super()`; [`reward_func_kwargs`] rebuilds what TRL passes to reward functions. They rely on private
`GRPOTrainer` hooks and attributes: `tests/trainers/test_trl_contract.py` checks those against [`TRL_VERSION`] and
fails with a message naming this module the day TRL changes one of them ([`ResumeLoadsCheckpointWeights`]: a Trainer
hook, checked against [`TRANSFORMERS_VERSION`] by `tests/trainers/test_resume.py`). Besides the trainers, this is the
only module of sophia_trl that touches TRL's private parts.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .logging_utils import log_completions_table, table_backends

logger = logging.getLogger(__name__)

# The TRL release whose private GRPOTrainer hooks the workarounds below (and TrustGRPOTrainer's overrides) were
# written and checked against. Moving to another release means re-running tests/trainers/test_trl_contract.py and
# updating this.
TRL_VERSION = "1.16.0"
# The transformers release whose `Trainer._load_from_checkpoint` `ResumeLoadsCheckpointWeights` works around.
TRANSFORMERS_VERSION = "5.23.0"


class MultimodalBatchFixes:
    """
    Lets `GRPOTrainer` train on batches that mix image and text-only rows, or that hold only text-only rows.

    Needed with TRL 1.16.0. Without it:

    - a batch whose rows all have `image=None` reaches the processor as a list of `None` images, which it rejects;
    - in a mixed batch, TRL marks the text-only rows with `None` in the per-row image lists that `_generate` returns,
      and the processor call in `_generate_and_score_completions` rejects them.

    It can go once `GRPOTrainer._generate_and_score_completions` treats an all-`None` `image` column as text-only and
    `_generate` returns an empty list (not `None`) for the images of a text-only row;
    `tests/trainers/test_trl_contract.py::test_generate_returns_per_row_images_as_element_6` fails when the latter
    changes.
    """

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


class VLMCompletionsTableLogging:
    """
    Sends wandb and trackio a completions table they accept for vision-language prompts.

    Needed with TRL 1.16.0, whose `GRPOTrainer.log` puts the prompts into its completions table as lists of messages:
    for a VLM prompt the user message holds an image block and wandb rejects the table (`TypeError: Data row contained
    incompatible types`), which stops training at the first logging step. This mixin hides wandb and trackio from
    TRL's table and logs the text table of [`~sophia_trl.logging_utils.log_completions_table`] instead (with the image,
    the outcome and thinking rewards and gamma). Metrics, TRL's console print and its parquet files are unchanged.

    It can go once TRL's table flattens message lists to text (and keeps the images in their own column), or once
    wandb accepts such rows; the Trust-GRPO columns would then come from TRL's `extra` columns alone.
    `tests/recipes/test_completions_table.py::test_trl_stock_table_still_breaks_on_vlm_prompts` fails on that day.
    """

    _completions_table_step: int | None = None  # the step whose table `log` last sent to wandb/trackio

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
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


class CompletionsReadyHook:
    """
    Calls `self._on_completions(inputs, prompts, completions)` the moment generation returns.

    Needed with TRL 1.16.0, whose `GRPOTrainer._generate_and_score_completions` goes straight from `_generate` to the
    log-prob passes (old policy with vLLM or off-step updates, reference model with `beta > 0`) and only then calls
    `_calculate_rewards`: a reward that takes wall time but no local compute (a judge server) has no place to start
    early. `_on_completions` receives exactly the `inputs`, `prompts` and `completions` that `_calculate_rewards` gets
    later for the same batch (the same objects, and the completion ids), so work started there can be collected there.

    It can go once TRL offers a hook between generation and the log-prob passes (or starts reward functions
    asynchronously itself); `tests/trainers/test_async_judging.py::test_generation_returns_before_logprob_passes` fails
    when the order of the calls changes.
    """

    _rollout_inputs: list | None = None  # the batch `_generate_and_score_completions` is scoring

    def _generate_and_score_completions(self, inputs):
        self._rollout_inputs = inputs
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._rollout_inputs = None

    def _generate(self, prompts: list):
        output = super()._generate(prompts)
        if self._rollout_inputs is not None:
            # completion ids and completions are the 2nd and 4th elements
            self._on_completions(self._rollout_inputs, prompts, output[3], output[1])
        return output

    def _on_completions(
        self, inputs: list[dict], prompts: list, completions: list, completion_ids_list: list[list[int]]
    ) -> None:
        """Runs right after generation, before the log-prob passes; does nothing unless overridden."""


class ResumeLoadsCheckpointWeights:
    """
    Loads a checkpoint's model weights into the model when training resumes from it, for models whose weights
    transformers saves under other names than the model's own (Qwen2-VL, Qwen2.5-VL and the other models with a
    weight conversion mapping).

    Needed with transformers 5.23.0 (huggingface/transformers#43701): `save_pretrained` writes such a model's weights
    under their original checkpoint names (`model.layers.*`, `visual.*`), and `Trainer._load_from_checkpoint` loads
    them with `load_state_dict(strict=False)` under the model's names (`model.language_model.layers.*`,
    `model.visual.*`): no weight matches, the Trainer only logs the missing and unexpected keys, and the resumed run
    trains on from the weights the model was built with (the optimizer, scheduler and step come back, the weights do
    not). This mixin renames the checkpoint's keys with the model's conversion mapping, as `from_pretrained` does,
    before loading them. A PEFT model, FSDP, SageMaker MP, a sharded `.bin` checkpoint and a mapping that does more
    than rename keys go to the Trainer's loading unchanged (DeepSpeed restores the weights from its own files).

    It can go once transformers' `_load_from_checkpoint` applies the conversion mapping;
    `tests/trainers/test_resume.py::test_stock_trainer_still_loses_the_weights_on_resume` fails on that day.
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        from transformers import PreTrainedModel
        from transformers.utils import is_sagemaker_mp_enabled

        target = self.model if model is None else model
        if isinstance(target, PreTrainedModel) and not self.is_fsdp_enabled and not is_sagemaker_mp_enabled():
            state_dict = _checkpoint_weights_under_model_names(target, resume_from_checkpoint)
            if state_dict is not None:
                logger.info("Loading model from %s (checkpoint names converted).", resume_from_checkpoint)
                parameters = target.state_dict(keep_vars=True)
                result = target.load_state_dict(state_dict, strict=False)
                loaded = {id(parameters[name]) for name in state_dict if name in parameters}
                # A tied weight (lm_head with the embeddings) is saved once and loaded through its twin.
                missing = [name for name in result.missing_keys if id(parameters[name]) not in loaded]
                if missing or result.unexpected_keys:
                    logger.warning(
                        "Resuming from %s: the checkpoint lacks weights %s and has weights the model lacks %s.",
                        resume_from_checkpoint,
                        missing,
                        result.unexpected_keys,
                    )
                return
        super()._load_from_checkpoint(resume_from_checkpoint, model)


def _checkpoint_weights_under_model_names(model: Any, checkpoint: str) -> dict | None:
    """The safetensors weights of `checkpoint` renamed to `model`'s names by its conversion mapping; `None` when the
    mapping renames nothing, does more than rename, or the checkpoint has no safetensors weights."""
    import safetensors.torch
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming, rename_source_key

    conversions = getattr(model, "_weight_conversions", None) or get_model_conversion_mapping(model)
    if not conversions or not all(isinstance(c, WeightRenaming) for c in conversions):
        return None
    single, index = (
        os.path.join(checkpoint, "model.safetensors"),
        os.path.join(checkpoint, "model.safetensors.index.json"),
    )
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        with open(index) as f:
            files = [os.path.join(checkpoint, name) for name in sorted(set(json.load(f)["weight_map"].values()))]
    else:
        return None
    names = model.state_dict()
    state_dict = {}
    for file in files:
        for key, tensor in safetensors.torch.load_file(file, device="cpu").items():
            state_dict[rename_source_key(key, conversions, [], model.base_model_prefix, names)[0]] = tensor
    return state_dict


def _ignore(*args: Any) -> None:
    """A logging hook that logs nothing."""


def reward_func_kwargs(trainer: Any, inputs: list[dict]) -> dict[str, Any]:
    """
    The keyword arguments `GRPOTrainer._calculate_rewards` passes to a reward function besides `prompts`,
    `completions` and `completion_ids`, with logging hooks that log nothing: for an extra call of a reward function
    that must leave no trace in the metrics or the completions table.

    Needed with TRL 1.16.0, which builds these arguments inline in `_calculate_rewards` (the dataset columns of
    `inputs` except `prompt`, `completion` and `completion_ids`, then `trainer_state`, `log_extra`, `log_metric` and,
    with environments, `environments`) with no method of its own to call. It can go once TRL has one;
    `tests/trainers/test_trl_contract.py::test_reward_func_kwargs_match_trls` fails when TRL's arguments change.

    Args:
        trainer ([`~trl.GRPOTrainer`]):
            The trainer (its `state` and `environments`).
        inputs (`list[dict]`):
            The batch's rows, as `_calculate_rewards` receives them.

    Returns:
        `dict[str, Any]`: The keyword arguments, one list entry per row for each dataset column.
    """
    kwargs = {k: [x[k] for x in inputs] for k in inputs[0] if k not in ("prompt", "completion", "completion_ids")}
    kwargs.update(trainer_state=trainer.state, log_extra=_ignore, log_metric=_ignore)
    if trainer.environments is not None:
        kwargs["environments"] = trainer.environments
    return kwargs
