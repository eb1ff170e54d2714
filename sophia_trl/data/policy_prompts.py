"""The policy prompt a run trains with: the dataset's `prompt` column rebuilt as a named policy prompt."""

from __future__ import annotations

import logging

from datasets import Dataset

from ..prompts import POLICY_PROMPTS, build_prompt, last_message_text

logger = logging.getLogger(__name__)

# The columns a prompt is rebuilt from (`options` may be missing: no options).
PROMPT_SOURCE_COLUMNS = ("problem", "problem_type")


def apply_policy_prompt(dataset: Dataset, policy_prompt: str, dataset_name: str = "the dataset") -> Dataset:
    """
    The dataset with its `prompt` column written as the named policy prompt ([`~sophia_trl.prompts.build_prompt`]).

    `"sophia_trl"` leaves the dataset as it is (the converters in `data_prep/` write this project's prompt). Another
    name (`"sophiavl-r1"`: the released run's prompt) rebuilds each row's prompt from its `problem`, `problem_type` and
    `options` columns, keeping the system message of its `prompt`.

    Args:
        dataset ([`~datasets.Dataset`]):
            A split written by a converter of `data_prep/` (or with the same columns).
        policy_prompt (`str`):
            A name in [`~sophia_trl.prompts.POLICY_PROMPTS`].
        dataset_name (`str`, *optional*, defaults to `"the dataset"`):
            Named in error messages.

    Returns:
        [`~datasets.Dataset`]: The dataset with the prompts rebuilt.
    """
    if policy_prompt not in POLICY_PROMPTS:
        raise ValueError(f"policy_prompt={policy_prompt!r} is not one of {list(POLICY_PROMPTS)}.")
    if policy_prompt == "sophia_trl":
        return dataset
    missing = [column for column in PROMPT_SOURCE_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"policy_prompt={policy_prompt!r} rebuilds the prompts from the columns {list(PROMPT_SOURCE_COLUMNS)} "
            f"(and 'options'), but {dataset_name} has no {missing}. Convert the data with data_prep/sophiavl_130k.py "
            "(or add the columns), or use policy_prompt: sophia_trl."
        )
    columns = [c for c in ("problem", "problem_type", "options", "prompt") if c in dataset.column_names]

    def rebuild(*values):
        row = dict(zip(columns, values))
        system = last_message_text(row.get("prompt"), role="system")
        return {"prompt": build_prompt(row["problem"], row["problem_type"], row.get("options"), system, policy_prompt)}

    logger.info("Rebuilding the prompts of %s as the %r policy prompt.", dataset_name, policy_prompt)
    return dataset.map(rebuild, input_columns=columns, desc=f"{policy_prompt} policy prompt")
