"""What both recipes do the same way before training: the logging setup and the checkpoint to resume from."""

from __future__ import annotations

import logging
import os
import sys

import datasets
import transformers
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger(__name__)


def setup_logging(training_args: TrainingArguments, recipe_logger: logging.Logger) -> None:
    """
    Send the logs to stdout at the run's log level, with the recipe's and sophia_trl's own messages (settings, judge
    warnings) at INFO on the main process.

    Args:
        training_args ([`~transformers.TrainingArguments`]):
            The run's training config (its `log_level`, `log_level_replica` and which process logs).
        recipe_logger (`logging.Logger`):
            The entry script's logger.
    """
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    for lib_logger in (recipe_logger, logging.getLogger("sophia_trl")):
        lib_logger.setLevel(logging.INFO if training_args.should_log else log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """
    The checkpoint `trainer.train` resumes from, read from TRL's `resume_from_checkpoint` flag: `true` for the last
    checkpoint of `output_dir`, `false` to start over, a checkpoint's path, or unset to resume from the last checkpoint
    of `output_dir` when there is one.

    Args:
        training_args ([`~transformers.TrainingArguments`]):
            The run's training config (`output_dir`, `resume_from_checkpoint`).

    Returns:
        `str` or `None`: The checkpoint folder to pass to `trainer.train(resume_from_checkpoint=...)`; `None` starts
        the run from step 0.

    Raises:
        `FileNotFoundError`: `resume_from_checkpoint=true` and `output_dir` holds no `checkpoint-*` folder.
    """
    last_checkpoint = None
    if os.path.isdir(training_args.output_dir):
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is not None and checkpoint.lower() in ("true", "false"):
        if checkpoint.lower() == "true" and last_checkpoint is None:
            raise FileNotFoundError(
                f"resume_from_checkpoint=true but {training_args.output_dir} holds no checkpoint-* folder: give the "
                "output_dir of the run to resume, or a checkpoint's path."
            )
        checkpoint = last_checkpoint if checkpoint.lower() == "true" else None
    elif checkpoint is None and last_checkpoint is not None:
        logger.info("Checkpoint detected, resuming training at %s.", last_checkpoint)
        checkpoint = last_checkpoint
    return checkpoint
