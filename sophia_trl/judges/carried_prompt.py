"""The prompt a judge carries: stage 1 writes the template it trained with beside the weights (`judge_prompt.yaml`),
and a run that loads that folder reads it back, unless `judge_prompt_template` says otherwise. A judge whose prompt
is not known (a served model name, a Hub id, a folder without the file) needs `judge_prompt_template`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from .template import DEFAULT_JUDGE_PROMPT, JudgePrompt, load_judge_prompt

logger = logging.getLogger(__name__)

JUDGE_PROMPT_FILE = "judge_prompt.yaml"
RELEASED_JUDGE = "bunny127/SophiaVL-R1-Thinking-Reward-Model-3B"


class UnknownJudgePromptError(ValueError):
    """The prompt a judge was trained with is not known and `judge_prompt_template` is not set."""


class _BlockStyleDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, so the file reads like recipes/judge_prompts/sophia_trl.yaml."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def describe_judge_prompt(judge_prompt: JudgePrompt) -> str:
    """Where a template comes from, in words: this project's prompt, or its source (a file, a named template)."""
    if judge_prompt == DEFAULT_JUDGE_PROMPT:
        return "this project's prompt (recipes/judge_prompts/sophia_trl.yaml)"
    return "a template given in code" if judge_prompt.source == "JudgePrompt" else judge_prompt.source


def save_judge_prompt(judge_prompt: JudgePrompt | None, folder: str | os.PathLike) -> Path:
    """
    Writes the template a judge was trained with into its folder, as a template file ([`JudgePrompt.from_file`]
    reads it back to an equal [`JudgePrompt`]).

    Args:
        judge_prompt ([`JudgePrompt`] or `None`):
            The template; this project's prompt when `None`.
        folder (`str` or `os.PathLike`):
            The judge's folder (created if missing).

    Returns:
        `Path`: The file written, `folder / "judge_prompt.yaml"`.
    """
    judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
    content = judge_prompt.to_dict()
    header = (
        "# The judge prompt this thinking reward model was trained with, from:\n"
        f"#   {describe_judge_prompt(judge_prompt)}\n"
        "# Written by sophia-trl's recipes/thinking_reward.py. recipes/grpo.py, data_prep/label_thinking.py and\n"
        "# load_thinking_judge read it when the judge is loaded from this folder; to score this judge behind a server,\n"
        "# give this file as judge_prompt_template. Format: recipes/judge_prompts/sophia_trl.yaml.\n"
    )
    path = Path(folder) / JUDGE_PROMPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.dump(content, Dumper=_BlockStyleDumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    path.write_text(header + body, encoding="utf-8")
    return path


def carried_judge_prompt(judge: str | os.PathLike | None) -> Path | None:
    """The template file a judge folder carries, or `None` when `judge` is not a local folder holding one (nothing is
    downloaded: a Hub id or a served model name carries none here)."""
    if not judge:
        return None
    path = Path(judge).expanduser() / JUDGE_PROMPT_FILE
    return path if path.is_file() else None


def resolve_judge_prompt(
    template: str | None,
    judge: str | os.PathLike | None,
    *,
    served: bool = False,
    required: bool = True,
) -> JudgePrompt:
    """
    The prompt to ask a judge with: `template` when set, else the template its folder carries, else (`required`) an
    error that says how to choose one, or (not `required`) this project's prompt.

    Args:
        template (`str` or `None`):
            `judge_prompt_template`: a template file or a named template ([`load_judge_prompt`]); it wins over the
            folder's file (with a warning when they differ).
        judge (`str`, `os.PathLike` or `None`):
            The judge's checkpoint folder, Hub id or served model name.
        served (`bool`, *optional*, defaults to `False`):
            `judge` is a served model name ('openai' backend): it carries no prompt, even if a folder of that name
            exists here.
        required (`bool`, *optional*, defaults to `True`):
            Refuse a judge whose prompt is not known. `False` falls back to this project's prompt (a teacher VLM that
            labels data, asked with our prompt on purpose).

    Returns:
        [`JudgePrompt`]: The template.

    Raises:
        [`UnknownJudgePromptError`]: `template` is unset, `required` is set and the judge carries no prompt.
    """
    carried = None if served else carried_judge_prompt(judge)
    if template:
        judge_prompt = load_judge_prompt(template)
        if carried is not None and JudgePrompt.from_file(carried) != judge_prompt:
            logger.warning(
                "judge_prompt_template=%s overrides %s, the prompt the judge %s was trained with.",
                template,
                carried,
                judge,
            )
        logger.info("Judge prompt: %s (judge_prompt_template)", template)
        return judge_prompt
    if carried is not None:
        logger.info("Judge prompt: %s, the template the judge was trained with", carried)
        return JudgePrompt.from_file(carried)
    if not required:
        logger.info("Judge prompt: this project's (judge_prompt_template unset, %s carries none)", judge)
        return DEFAULT_JUDGE_PROMPT
    raise UnknownJudgePromptError(unknown_prompt_message(judge, served=served))


def unknown_prompt_message(judge: str | os.PathLike | None, served: bool = False) -> str:
    """Why the prompt of `judge` is not known, and how to choose one."""
    if served:
        why = f"The judge is the served model {str(judge)!r}, whose training prompt this run cannot read."
    elif judge is not None and Path(judge).expanduser().is_dir():
        why = (
            f"The judge folder {judge} has no {JUDGE_PROMPT_FILE} (recipes/thinking_reward.py writes one beside the "
            "weights), so the prompt it was trained with is not known."
        )
    else:
        why = (
            f"The judge {judge} is not a local folder (a Hub id?): the prompt it was trained with is not known here "
            f"(a judge folder carries it in {JUDGE_PROMPT_FILE}; a downloaded folder that holds one is read)."
        )
    released = str(judge).rstrip("/").endswith(RELEASED_JUDGE)
    hint = f" For {RELEASED_JUDGE}, set judge_prompt_template: sophiavl-r1." if released else ""
    return (
        f"{why}{hint} Set judge_prompt_template (in the YAML, or --judge_prompt_template on the command line) to: "
        "recipes/judge_prompts/sophia_trl.yaml for a judge trained by this project (or that judge folder's "
        f"{JUDGE_PROMPT_FILE}); sophiavl-r1 for the released judge {RELEASED_JUDGE}; or a template file of your own "
        "(docs/thinking_reward_model.md). A judge scored with another prompt than its own gives off-distribution "
        "scores."
    )
