"""Trainer callbacks: long runs on preemptible machines, and the judge prompt in every checkpoint of a judge."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .judges import JudgePrompt
from .judges.carried_prompt import save_judge_prompt

logger = logging.getLogger(__name__)


class SaveOnPreemptionCallback(TrainerCallback):
    """
    Finishes the current step, saves a checkpoint and stops training when the process receives SIGTERM.

    SLURM (before `--time` runs out or on preemption) and Kubernetes (before evicting a pod) send SIGTERM, then kill the
    job after a grace period. The signal handler only records the request: the step in progress finishes, then
    [`~transformers.Trainer`] saves a regular checkpoint (model, optimizer, scheduler, RNG states, trainer state with
    the step, hence the annealing schedule and the data position, and [`~sophia_trl.TrustGRPOTrainer`]'s running trust
    state) and leaves `train()`. The run continues with `--resume_from_checkpoint true` (or the checkpoint's path).

    In a run of several processes the decision is taken jointly (a max over processes after each step), so every
    process stops after the same step even when the signal reached only some of them.

    Args:
        signals (`tuple[int, ...]`, *optional*, defaults to `(signal.SIGTERM,)`):
            The signals that stop the run this way.

    Attributes:
        preempted (`bool`): Whether training stopped because of a signal (`train()` returned before `max_steps`).
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)):
        self.signals = signals
        self.preempted = False
        self._received: int | None = None
        self._previous_handlers: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two Python bytecodes of the main thread: only record the request, the step goes on.
        self._received = signum
        logger.warning(
            "Received %s: finishing the current step, then saving a checkpoint and stopping.", signal.strsignal(signum)
        )

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> TrainerControl:
        self.preempted = False
        self._received = None
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)
        return control

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> TrainerControl:
        if self._stop_requested():
            self.preempted = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ) -> TrainerControl:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        if self.preempted:
            logger.warning(
                "Training stopped at step %d of %d on %s; resume it with --resume_from_checkpoint true.",
                state.global_step,
                state.max_steps,
                signal.strsignal(self._received) if self._received else "a signal on another process",
            )
        return control

    def _stop_requested(self) -> bool:
        received = self._received is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            from accelerate import PartialState
            from accelerate.utils import reduce

            flag = torch.tensor([float(received)], device=PartialState().device)
            received = bool(reduce(flag, reduction="sum").item() > 0)
        return received


class SaveJudgePromptCallback(TrainerCallback):
    """
    Writes the judge prompt a judge is trained with into every checkpoint (`judge_prompt.yaml`), so that a checkpoint,
    like the final folder, carries its prompt. For trainers that do not write it themselves (TRL's `SFTTrainer` of the
    generative judge; `ThinkingRewardTrainer` does, in `save_model`).

    Args:
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`):
            The prompt the rows are rendered with; this project's when `None`.
    """

    def __init__(self, judge_prompt: JudgePrompt | None):
        self.judge_prompt = judge_prompt

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if state.is_world_process_zero:
            checkpoint = f"{args.output_dir}/{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            save_judge_prompt(self.judge_prompt, checkpoint)
