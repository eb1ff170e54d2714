"""The completions table of a Trust-GRPO run for wandb and trackio, readable for vision-language prompts.

TRL 1.16 logs its completions table with the prompts and completions as lists of messages. For a VLM prompt the user
message holds an image block, and wandb rejects the table (`TypeError: Data row contained incompatible types`), which
stops training at the first logging step. The table built here has one row per completion with plain-text columns:

| column                | content                                                                   |
|-----------------------|---------------------------------------------------------------------------|
| `step`                | global step                                                               |
| `image`               | the prompt's first image (`None` for a text-only row)                     |
| `prompt`              | the conversation as text, `<image>` where an image is shown               |
| `completion`          | the completion's text                                                     |
| `<outcome reward>`    | the first reward function's value (e.g. `outcome_reward`)                 |
| `thinking_reward_raw` | the judge's raw score in [0, 1] (NaN: failed or skipped call)             |
| `trust_gamma`         | the trust weight gamma of the completion's group (NaN: no thinking term)  |
| `thinking_reward`     | what the thinking reward added: gamma * alpha * exp(-step / T) * score    |
| other columns         | other reward functions, other per-completion values logged with log_extra |
| `advantage`           | the advantage the completion got                                          |

TRL's console print and its parquet files (`<output_dir>/completions/`) are left as they are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

TABLE_BACKENDS = ("wandb", "trackio")
# Per-completion columns logged by TrustGRPOTrainer, shown right after the reward columns.
TRUST_COLUMNS = ("thinking_reward_raw", "trust_gamma")


def conversation_as_text(messages: str | Sequence[Mapping[str, Any]]) -> str:
    """
    A conversation as plain text: one `role: text` line per message, `<image>` where a message shows an image.

    Args:
        messages (`str` or `list[dict]`):
            A plain string (returned as is) or TRL conversational messages, whose content is a string or a list of
            `{"type": "text", "text": ...}` / `{"type": "image", ...}` blocks.

    Returns:
        `str`: The text.

    Example:
    ```python
    >>> conversation_as_text([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}])
    'user: <image>How many?'
    ```
    """
    if isinstance(messages, str):
        return messages
    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            text = content
        else:
            parts = []
            for block in content or []:
                if block.get("type") == "text":
                    parts.append(block.get("text", ""))
                elif block.get("type") in ("image", "image_url"):
                    parts.append("<image>")
            text = "".join(parts)
        lines.append(f"{message.get('role', '')}: {text}")
    return "\n".join(lines)


def table_backends(report_to: str | Sequence[str] | None) -> list[str]:
    """The backends of `report_to` that get a completions table (wandb, trackio), in the order given."""
    if report_to is None:
        return []
    if isinstance(report_to, str):
        report_to = [report_to]
    return [backend for backend in report_to if backend in TABLE_BACKENDS]


def _number(value: Any) -> float | None:
    # wandb types a column from its values: a None among floats keeps it numeric, a NaN-bearing object column may not.
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def completions_table_columns(
    logs: Mapping[str, Any], step: int, reward_names: Sequence[str], with_images: bool = True
) -> dict[str, list[Any]]:
    """
    The columns of the completions table, from a `GRPOTrainer._logs`-like mapping.

    Args:
        logs (`Mapping[str, Any]`):
            `prompt`, `completion` (one entry per completion), `rewards` (reward name -> values), `advantages`,
            `extra` (column -> values, e.g. `thinking_reward_raw`, `trust_gamma`) and `images` (a list of images
            per completion, or empty).
        step (`int`):
            Global step, repeated in the `step` column.
        reward_names (`Sequence[str]`):
            Reward columns in the order to show them, the outcome reward first.
        with_images (`bool`, *optional*, defaults to `True`):
            Add the `image` column (the first image of each prompt; `None` for text-only rows).

    Returns:
        `dict[str, list]`: Column name -> values (PIL images in `image`, `None` for missing numbers).
    """
    prompts = list(logs["prompt"])
    n = len(prompts)
    columns: dict[str, list[Any]] = {"step": [step] * n}
    images = list(logs.get("images") or [])
    if with_images and images:
        if len(images) != n:
            raise ValueError(f"The completions log has {len(images)} image lists for {n} prompts.")
        columns["image"] = [row[0] if row else None for row in images]
    columns["prompt"] = [conversation_as_text(prompt) for prompt in prompts]
    columns["completion"] = [conversation_as_text(completion) for completion in logs["completion"]]
    rewards, extra = logs["rewards"], dict(logs.get("extra") or {})
    # The outcome reward, then gamma's inputs, then the other rewards (the weighted thinking reward among them).
    columns[reward_names[0]] = [_number(v) for v in rewards[reward_names[0]]]
    for name in TRUST_COLUMNS:
        if name in extra:
            columns[name] = [_number(v) for v in extra.pop(name)]
    for name in reward_names[1:]:
        columns[name] = [_number(v) for v in rewards[name]]
    for name in sorted(extra):
        columns[name] = list(extra[name])
    columns["advantage"] = [_number(v) for v in logs["advantages"]]
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"Completions table column {name!r} has {len(values)} values for {n} prompts.")
    return columns


def log_completions_table(
    logs: Mapping[str, Any],
    step: int,
    reward_names: Sequence[str],
    backends: Sequence[str],
    unique_prompts: bool = False,
    with_images: bool = True,
) -> None:
    """
    Log the completions table to each backend as `completions` (wandb: the active run; trackio: the current run).

    Args:
        logs (`Mapping[str, Any]`):
            See [`completions_table_columns`].
        step (`int`):
            Global step.
        reward_names (`Sequence[str]`):
            Reward columns, the outcome reward first.
        backends (`Sequence[str]`):
            Any of `"wandb"`, `"trackio"`.
        unique_prompts (`bool`, *optional*, defaults to `False`):
            Keep one row per distinct prompt text (TRL's `log_unique_prompts`).
        with_images (`bool`, *optional*, defaults to `True`):
            Show the prompt images (TRL's `log_multimodal`).
    """
    import pandas as pd

    if not logs["prompt"]:
        return
    columns = completions_table_columns(logs, step, reward_names, with_images=with_images)
    frame = pd.DataFrame({name: values for name, values in columns.items() if name != "image"})
    keep = ~frame["prompt"].duplicated() if unique_prompts else pd.Series(True, index=frame.index)
    for backend_name in backends:
        if backend_name == "wandb":
            import wandb as backend

            if backend.run is None:
                logger.warning("report_to has wandb but no wandb run is active: the completions table is not logged.")
                continue
        elif backend_name == "trackio":
            import trackio as backend
        else:
            raise ValueError(f"No completions table for backend {backend_name!r}; choose from {TABLE_BACKENDS}.")
        table = frame.copy()
        if "image" in columns:
            table.insert(1, "image", [None if img is None else backend.Image(img) for img in columns["image"]])
        backend.log({"completions": backend.Table(dataframe=table[keep].reset_index(drop=True))})
