"""Reward functions for Trust-GRPO. The thinking judge lives in `sophia_trl.rewards.thinking`; import it from there."""

from .outcome import (
    PROBLEM_TYPES,
    extract_answer,
    format_reward,
    free_form_reward,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    outcome_reward,
    parse_choices,
    score_answer,
    short_text_reward,
)

__all__ = [
    "PROBLEM_TYPES",
    "extract_answer",
    "format_reward",
    "free_form_reward",
    "multiple_choice_reward",
    "numerical_reward",
    "ocr_reward",
    "outcome_reward",
    "parse_choices",
    "score_answer",
    "short_text_reward",
]
