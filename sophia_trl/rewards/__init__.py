"""Reward functions for Trust-GRPO: the outcome reward, its per-type scorers and the problem-type registry."""

from .outcome import format_reward, outcome_reward, score_answer, well_formed_answer
from .problem_types import PROBLEM_TYPE_REGISTRY, PROBLEM_TYPES, ProblemType, normalize_problem_type
from .scorers import (
    free_form_reward,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    parse_choices,
    short_text_reward,
)

__all__ = [
    "PROBLEM_TYPES",
    "PROBLEM_TYPE_REGISTRY",
    "ProblemType",
    "format_reward",
    "free_form_reward",
    "multiple_choice_reward",
    "normalize_problem_type",
    "numerical_reward",
    "ocr_reward",
    "outcome_reward",
    "parse_choices",
    "score_answer",
    "short_text_reward",
    "well_formed_answer",
]
