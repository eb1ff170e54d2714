"""Configuration of Trust-GRPO training and of the GRPO recipe's script arguments."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, ScriptArguments

from .trust import ANNEALING_SCHEDULES

THINKING_REWARD_PRESETS = ("paper", "official")
JUDGE_BACKENDS = ("transformers", "scalar", "openai", "vllm", "none")


@dataclass
class TrustGRPOConfig(GRPOConfig):
    r"""
    Configuration class for [`TrustGRPOTrainer`].

    Only the parameters specific to Trust-GRPO are listed here; see [`trl.GRPOConfig`] for the others. The reward of
    each completion is `R = R_outcome + gamma * alpha * exp(-step / T) * R_thinking`, where gamma is the group's trust
    weight (SophiaVL-R1, arXiv 2505.17018, eq. 3-5).

    The paper's ablations are settings:
    - without trust: `trust_weighting=False`;
    - without trust and without annealing: `trust_weighting=False, thinking_reward_annealing="none"`;
    - plain GRPO: no thinking judge (the recipe's `judge_backend: none`) or `thinking_reward_alpha=0`.

    Parameters:
        > Parameters that control the thinking reward

        thinking_reward_alpha (`float`, *optional*, defaults to `0.3`):
            Initial weight alpha of the thinking reward (paper sec. 4.1).
        thinking_reward_annealing (`str`, *optional*, defaults to `"exp"`):
            `"exp"` multiplies alpha by exp(-step / T); `"none"` keeps it constant.
        thinking_reward_T (`int` or `None`, *optional*, defaults to `None`):
            Annealing horizon T. `None` uses the run's total number of training steps, as in the paper.
        thinking_reward_preset (`str`, *optional*, defaults to `"paper"`):
            `"paper"` asks the judge about every completion. `"official"` reproduces the released code: no judge call
            for completions whose outcome reward is below 0.2 (their thinking reward is 0), and no thinking reward
            for a group whose outcomes are all >= 0.9 or all <= 0.1.

        > Parameters that control the trust weight

        trust_weighting (`bool`, *optional*, defaults to `True`):
            Scale the thinking reward of each group by its trust weight gamma.
        correct_threshold (`float`, *optional*, defaults to `0.5`):
            A completion counts as correct when its outcome reward is >= this value.
    """

    # Parameters that control the thinking reward
    thinking_reward_alpha: float = field(
        default=0.3, metadata={"help": "Initial weight alpha of the thinking reward (paper sec. 4.1)."}
    )
    thinking_reward_annealing: str = field(
        default="exp",
        metadata={
            "help": "'exp': alpha * exp(-step / T); 'none': constant alpha.",
            "choices": list(ANNEALING_SCHEDULES),
        },
    )
    thinking_reward_T: int | None = field(
        default=None,
        metadata={"help": "Annealing horizon T. None uses the run's total number of training steps (paper)."},
    )
    thinking_reward_preset: str = field(
        default="paper",
        metadata={
            "help": "'paper': judge every completion. 'official': as the released code, skip the judge when the "
            "outcome reward is < 0.2 (thinking reward 0) and give no thinking reward to groups whose outcomes are all "
            ">= 0.9 or all <= 0.1.",
            "choices": list(THINKING_REWARD_PRESETS),
        },
    )

    # Parameters that control the trust weight
    trust_weighting: bool = field(
        default=True, metadata={"help": "Scale each group's thinking reward by its trust weight gamma."}
    )
    correct_threshold: float = field(
        default=0.5, metadata={"help": "A completion is correct when its outcome reward is >= this value."}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.thinking_reward_alpha < 0:
            raise ValueError(f"thinking_reward_alpha must be >= 0, got {self.thinking_reward_alpha}.")
        if self.thinking_reward_annealing not in ANNEALING_SCHEDULES:
            raise ValueError(
                f"thinking_reward_annealing={self.thinking_reward_annealing!r} is not one of {ANNEALING_SCHEDULES}."
            )
        if self.thinking_reward_T is not None and self.thinking_reward_T <= 0:
            raise ValueError(
                f"thinking_reward_T must be a positive number of steps, got {self.thinking_reward_T}; leave it unset "
                "to use the run's total number of training steps."
            )
        if self.thinking_reward_preset not in THINKING_REWARD_PRESETS:
            raise ValueError(
                f"thinking_reward_preset={self.thinking_reward_preset!r} is not one of {THINKING_REWARD_PRESETS}."
            )
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "Trust-GRPO adds the weighted thinking reward to the outcome reward before the group normalisation, "
                f"so multi_objective_aggregation must be 'sum_then_normalize', got {self.multi_objective_aggregation!r}."
            )


@dataclass
class TrustGRPOScriptArguments(ScriptArguments):
    """
    Script arguments of `recipes/grpo.py`: the dataset (inherited from [`trl.ScriptArguments`]), the reward functions,
    the thinking judge and the image resolution.
    """

    # Parameters that control the rewards
    reward_funcs: list[str] = field(
        default_factory=lambda: ["outcome"],
        metadata={
            "help": "Reward functions by name, the outcome reward first (it decides which completions are correct): "
            "'outcome', then any of 'format'."
        },
    )

    # Parameters that control the thinking judge
    judge_backend: str = field(
        default="transformers",
        metadata={
            "help": "'transformers' (local generative judge), 'scalar' (local scalar-head judge), 'openai' (any "
            "OpenAI-compatible server, e.g. `vllm serve`), 'vllm' (in-process vLLM) or 'none' (plain GRPO).",
            "choices": list(JUDGE_BACKENDS),
        },
    )
    judge_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Judge checkpoint (local backends) or served model name ('openai')."}
    )
    judge_base_url: str | None = field(
        default=None, metadata={"help": "Base URL of the judge server for 'openai', e.g. http://localhost:8001/v1."}
    )
    judge_batch_size: int = field(default=8, metadata={"help": "Completions per forward pass of a local judge."})
    judge_max_new_tokens: int = field(default=16, metadata={"help": "Tokens a generative judge may write."})
    judge_max_concurrency: int = field(default=32, metadata={"help": "Requests in flight to the judge server."})
    judge_timeout: float = field(default=60.0, metadata={"help": "Seconds before one judge request times out."})
    judge_max_retries: int = field(default=3, metadata={"help": "Retries of a failed judge request."})

    # Parameters that control the images
    min_pixels: int | None = field(
        default=None, metadata={"help": "Minimum pixels per image for the processor (Qwen2.5-VL `min_pixels`)."}
    )
    max_pixels: int | None = field(
        default=None, metadata={"help": "Maximum pixels per image for the processor (Qwen2.5-VL `max_pixels`)."}
    )

    def __post_init__(self):
        if not self.reward_funcs:
            raise ValueError("reward_funcs is empty: give the outcome reward first, e.g. ['outcome', 'format'].")
        if self.judge_backend not in JUDGE_BACKENDS:
            raise ValueError(f"judge_backend={self.judge_backend!r} is not one of {JUDGE_BACKENDS}.")
        if self.judge_backend in ("transformers", "scalar", "openai", "vllm") and not self.judge_model_name_or_path:
            raise ValueError(
                f"judge_backend={self.judge_backend!r} needs judge_model_name_or_path (a checkpoint, or the served "
                "model name for 'openai'); use judge_backend: none for plain GRPO."
            )
        if self.judge_backend == "openai" and not self.judge_base_url:
            raise ValueError("judge_backend='openai' needs judge_base_url, e.g. http://localhost:8001/v1.")
