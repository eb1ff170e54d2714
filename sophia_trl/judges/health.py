"""The thinking judge's health during training: a few failed calls are normal, an outage stops the run, and an error
on one process stops every process.

A failed judge call leaves its response at its group's mean judge score (`sophia_trl.trust.fill_failed_scores`). A
judge that fails for most of the batch, step after step (its server died, was restarted with another model, or never
came up), would otherwise let the run go on as plain GRPO without anyone noticing. [`JudgeFailureBudget`] counts the judge's calls and failures per
step over a window of steps and raises [`JudgeOutageError`] when the failed fraction exceeds the budget.

A judge that raises (rather than failing a call) on one process must not leave the others waiting in the gather of
the scores: [`raise_on_every_process`] makes every process raise the same error.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import pickle
from collections.abc import Iterator

import torch.distributed as dist

logger = logging.getLogger(__name__)


class JudgeOutageError(RuntimeError):
    """The thinking judge failed more calls than the failure budget allows (see [`JudgeFailureBudget`])."""


class JudgeFailureBudget:
    """
    Counts a thinking judge's calls and failed calls per training step and stops the run when too many fail.

    [`~sophia_trl.TrustGRPOTrainer`] reports every scored step with [`update`]: the counts summed over all processes,
    so every process takes the same decision. The step's failed fraction is logged as one warning per step (when
    calls failed), not one line per request. Once `window` steps have been counted, a failed fraction over the last
    `window` steps above `max_failed_fraction` raises [`JudgeOutageError`]; below it, failed calls take their group's
    mean score and the run recovers by itself when the judge answers again. The trainer saves the window with each
    checkpoint ([`state_dict`]) and restores it when training resumes.

    Args:
        judge_name (`str`):
            How the judge is named in the messages, e.g. its URL and model.
        max_failed_fraction (`float`, *optional*, defaults to `0.5`):
            Largest tolerated fraction of failed calls over the window, in [0, 1]; 1 never stops the run.
        window (`int`, *optional*, defaults to `10`):
            Number of the latest steps over which the fraction is taken.
        log_warnings (`bool`, *optional*, defaults to `True`):
            Log the per-step warning (pass `False` on all processes but the main one).

    Example:

    ```python
    >>> budget = JudgeFailureBudget("judge at http://localhost:8001/v1", max_failed_fraction=0.5, window=2)
    >>> budget.update(step=0, calls=8, failed=8)  # one step is not a window yet: no error
    >>> budget.update(step=1, calls=8, failed=2)  # 10 / 16 = 0.62 > 0.5
    Traceback (most recent call last):
    ...
    sophia_trl.judges.health.JudgeOutageError: The thinking judge (judge at http://localhost:8001/v1) failed 10 of ...
    ```
    """

    def __init__(self, judge_name: str, max_failed_fraction: float = 0.5, window: int = 10, log_warnings: bool = True):
        if not 0.0 <= max_failed_fraction <= 1.0:
            raise ValueError(f"max_failed_fraction must be in [0, 1], got {max_failed_fraction}.")
        if window < 1:
            raise ValueError(f"window must be >= 1 step, got {window}.")
        self.judge_name = judge_name
        self.max_failed_fraction = max_failed_fraction
        self.window = window
        self.log_warnings = log_warnings
        self._steps: collections.deque[tuple[int, int]] = collections.deque(maxlen=window)  # (calls, failed)

    def state_dict(self) -> dict[str, list[list[int]]]:
        """The counted steps of the window, oldest first, as `[calls, failed]` pairs: what a checkpoint keeps."""
        return {"window": [list(step) for step in self._steps]}

    def load_state_dict(self, state: dict[str, list[list[int]]]) -> None:
        """Restores the window of [`state_dict`] (its latest `window` steps if it holds more)."""
        self._steps.clear()
        self._steps.extend((int(calls), int(failed)) for calls, failed in state["window"])

    def reset(self) -> None:
        """Forgets the counted steps: the next `window` steps make a new window."""
        self._steps.clear()

    @property
    def failed_fraction(self) -> float:
        """Failed fraction of the judge calls over the counted steps of the window (0 when no call was made)."""
        calls = sum(c for c, _ in self._steps)
        return sum(f for _, f in self._steps) / calls if calls else 0.0

    def update(self, step: int, calls: int, failed: int) -> None:
        """
        Counts one step's judge calls and raises when the window's failed fraction exceeds the budget.

        Args:
            step (`int`):
                The training step (for the messages).
            calls (`int`):
                Judge calls of the step, over all processes.
            failed (`int`):
                Failed calls among them (no score).

        Raises:
            [`JudgeOutageError`]: The window is full and its failed fraction exceeds `max_failed_fraction`.
        """
        self._steps.append((int(calls), int(failed)))
        window_calls = sum(c for c, _ in self._steps)
        window_failed = sum(f for _, f in self._steps)
        fraction = self.failed_fraction
        if failed and self.log_warnings:
            logger.warning(
                "Step %d: %d of %d thinking judge calls failed (%.0f%%); %.0f%% over the last %d steps, the run stops "
                "above %.0f%% (judge_max_failed_fraction). Judge: %s.",
                step,
                failed,
                calls,
                100 * failed / max(calls, 1),
                100 * fraction,
                len(self._steps),
                100 * self.max_failed_fraction,
                self.judge_name,
            )
        if len(self._steps) == self.window and fraction > self.max_failed_fraction:
            raise JudgeOutageError(
                f"The thinking judge ({self.judge_name}) failed {window_failed} of {window_calls} calls "
                f"({100 * fraction:.0f}%) over the last {self.window} steps (up to step {step}), more than "
                f"judge_max_failed_fraction={self.max_failed_fraction} allows: the run would train without its "
                "thinking reward. A checkpoint of the last finished step was saved; check the judge (its server log, "
                "scripts/check_judge_server.py), then resume with --resume_from_checkpoint true. Raise "
                "judge_max_failed_fraction or judge_failure_window to tolerate longer outages."
            )


def judge_label(judge: object) -> str:
    """How errors and warnings name a judge: its served model and URL, or its checkpoint, or its class."""
    kind = type(judge).__name__
    base_url, model = getattr(judge, "base_url", None), getattr(judge, "model", None)
    if isinstance(base_url, str):
        return f"{kind} {model!r} at {base_url}"
    config = getattr(model, "config", None)
    path = getattr(judge, "model_name_or_path", None) or getattr(config, "_name_or_path", None)
    return f"{kind} from {path}" if path else kind


@contextlib.contextmanager
def raise_on_every_process() -> Iterator[None]:
    """
    Makes an exception raised in the block on any process raise on every process, before the next collective.

    Every process of the run must enter the block (it ends with a collective, even when nothing was raised). When the
    block raises on some processes, each process raises the error of the lowest-ranked failing process: that process
    its own exception, the others one of the same class with the same message (a `RuntimeError` naming the class when
    the class cannot be rebuilt from its message), each with a note naming the process it came from. Without this, a
    judge error on one process stops only that process, and the others wait in the gather of the scores until the
    launcher or the collective's timeout kills them. With one process (or without `torch.distributed`) the block's
    error is raised unchanged.

    Example:

    ```python
    with raise_on_every_process():
        scores = judge.score(questions, responses, images)  # may raise on one process only
    scores = gather(scores)  # every process gets here, or none does
    ```
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        yield
        return
    error: Exception | None = None
    try:
        yield
    except Exception as raised:
        error = raised
    report = None
    if error is not None:
        try:
            error_class = pickle.loads(pickle.dumps(type(error)))  # the other processes rebuild it by name
        except Exception:
            error_class = None
        report = (dist.get_rank(), error_class, type(error).__name__, str(error))
    reports: list = [None] * dist.get_world_size()
    dist.all_gather_object(reports, report)
    failed = [r for r in reports if r is not None]
    if not failed:
        return
    rank, error_class, class_name, message = failed[0]
    note = f"Raised on process {rank}; every process of the run stops with this error."
    if rank == dist.get_rank():
        error.add_note(note)
        raise error
    try:
        shared = error_class(message)
    except Exception:
        shared = RuntimeError(f"{class_name}: {message}")
    shared.add_note(note)
    raise shared from error
