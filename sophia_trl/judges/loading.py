"""The thinking judge a run's script arguments name: one function that builds any backend from `judge_*` settings."""

from __future__ import annotations

from typing import Any

from .base import ThinkingJudge
from .template import JudgePrompt


def judge_prompt_of(script_args: Any) -> JudgePrompt | None:
    """The prompt the run's judge was trained with: `judge_prompt_template` when set, else the `judge_prompt.yaml` its
    folder carries; `None` for `judge_backend="none"`. Raises `UnknownJudgePromptError` when it is not known."""
    from .carried_prompt import resolve_judge_prompt

    if script_args.judge_backend == "none":
        return None
    return resolve_judge_prompt(
        script_args.judge_prompt_template,
        script_args.judge_model_name_or_path,
        served=script_args.judge_backend == "openai",
    )


def load_thinking_judge(script_args: Any, judge_prompt: JudgePrompt | None = None) -> ThinkingJudge | None:
    """
    Build the thinking judge named by `script_args.judge_backend`, with its prompt template checked first.

    The judge is asked with the prompt it was trained with: `judge_prompt_template` when set, else the
    `judge_prompt.yaml` its folder carries (written by `recipes/thinking_reward.py`). A judge whose prompt is not known
    (the 'openai' backend's served model name, a Hub id, a folder without the file) is refused before anything loads.

    The backends import their heavy dependencies (transformers' models, vLLM, an HTTP session) only when built, so
    this function loads nothing a backend other than the named one needs.

    Args:
        script_args ([`~sophia_trl.configs.TrustGRPOScriptArguments`] or any object with its `judge_*` fields):
            `judge_backend` (`"transformers"`, `"scalar"`, `"openai"`, `"vllm"` or `"none"`),
            `judge_model_name_or_path`, `judge_base_url`, `judge_batch_size`, `judge_max_new_tokens`,
            `judge_max_concurrency`, `judge_timeout`, `judge_max_retries`, `judge_max_images_per_row`,
            `judge_load_in_4bit`, `judge_load_in_8bit`, `judge_prompt_template`, `judge_readout` and
            `judge_share_prefix`.
        judge_prompt ([`JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The judge's prompt when the caller has already resolved it with [`judge_prompt_of`] (as `recipes/grpo.py`
            does before it loads the data); resolved here when `None`.

    Returns:
        [`~sophia_trl.judges.TransformersJudge`], [`~sophia_trl.judges.ScalarJudge`],
        [`~sophia_trl.judges.OpenAIJudge`] or [`~sophia_trl.judges.VLLMJudge`]; `None` for `judge_backend="none"`
        (plain GRPO).

    Raises:
        [`~sophia_trl.judges.carried_prompt.UnknownJudgePromptError`]: The judge's prompt is not known and
            `judge_prompt_template` is unset; the message says how to choose one.
        `ValueError`: `judge_readout` is set for the `"scalar"` judge, which has one readout.

    Example:
        >>> from sophia_trl.configs import TrustGRPOScriptArguments
        >>> args = TrustGRPOScriptArguments(judge_model_name_or_path="outputs/judge", judge_load_in_4bit=True)
        >>> judge = load_thinking_judge(args)  # a TransformersJudge in 4-bit, asked with outputs/judge/judge_prompt.yaml
    """
    from ..model_utils import judge_model_init_kwargs
    from . import OpenAIJudge, ScalarJudge, TransformersJudge, VLLMJudge

    backend, name = script_args.judge_backend, script_args.judge_model_name_or_path
    if backend == "none":
        return None
    # The prompt the judge was trained with (the template set, else the one its folder carries), before any model loads.
    judge_prompt = judge_prompt or judge_prompt_of(script_args)
    # In-process judges may load in 4-bit/8-bit (judge_load_in_4bit/8bit), to fit beside the policy on one GPU.
    init_kwargs = judge_model_init_kwargs(script_args.judge_load_in_4bit, script_args.judge_load_in_8bit)
    readout = {"readout": script_args.judge_readout} if script_args.judge_readout else {}  # else the backend's default
    if readout and backend == "scalar":
        raise ValueError(
            f"judge_readout={script_args.judge_readout!r} applies to the generative judges ('transformers', 'openai', "
            "'vllm'); the 'scalar' judge has one readout. Remove judge_readout."
        )
    if backend == "transformers":
        return TransformersJudge(
            name,
            batch_size=script_args.judge_batch_size,
            max_new_tokens=script_args.judge_max_new_tokens,
            model_init_kwargs=init_kwargs,
            judge_prompt=judge_prompt,
            share_prefix=script_args.judge_share_prefix,
            **readout,
        )
    if backend == "scalar":
        return ScalarJudge(
            name,
            batch_size=script_args.judge_batch_size,
            model_init_kwargs=init_kwargs,
            judge_prompt=judge_prompt,
            share_prefix=script_args.judge_share_prefix,
        )
    if backend == "openai":
        return OpenAIJudge(
            script_args.judge_base_url,
            name,
            timeout=script_args.judge_timeout,
            max_retries=script_args.judge_max_retries,
            max_concurrency=script_args.judge_max_concurrency,
            max_new_tokens=script_args.judge_max_new_tokens,
            judge_prompt=judge_prompt,
            **readout,
        )
    return VLLMJudge(
        name,
        max_new_tokens=script_args.judge_max_new_tokens,
        max_images_per_row=script_args.judge_max_images_per_row,
        judge_prompt=judge_prompt,
        **readout,
    )
