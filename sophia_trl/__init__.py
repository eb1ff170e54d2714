"""sophia-trl: Trust-GRPO with thinking rewards for multimodal reasoning models (SophiaVL-R1), built on TRL.

The trainers, their configs and the reward functions import from the top level, as TRL's do:

```python
from sophia_trl import TrustGRPOConfig, TrustGRPOTrainer, outcome_reward
```

They are imported on first use, so that light modules (`python -m sophia_trl.hub`, `sophia_trl.tiny`) do not load
TRL and torch's training stack.
"""

import logging
from importlib import import_module
from typing import TYPE_CHECKING, Any


class _NoKernelsHubWarning(logging.Filter):
    """Drops the one warning bitsandbytes 0.50 logs on import (through PEFT or TRL) on a CPU with AVX512-BF16: without
    the `kernels` package it cannot fetch a 4-bit CPU kernel from the Hub, and uses its own CPU kernel instead. With
    `kernels` installed, every import would download that kernel's code from the Hub and run it, so the package is not
    installed and only this warning is silenced. Entry points import `sophia_trl` before PEFT and TRL for the filter
    to be in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoKernelsHubWarning())

# Public name -> the module that defines it.
_EXPORTS = {
    "TrustGRPOConfig": "configs",
    "TrustGRPOScriptArguments": "configs",
    "TrustGRPOTrainer": "grpo_trainer",
    "ThinkingRewardConfig": "configs",
    "ThinkingRewardScriptArguments": "configs",
    "ThinkingRewardTrainer": "reward_trainer",
    "outcome_reward": "rewards",
    "format_reward": "rewards",
    "score_answer": "rewards",
}

__all__ = [
    "ThinkingRewardConfig",
    "ThinkingRewardScriptArguments",
    "ThinkingRewardTrainer",
    "TrustGRPOConfig",
    "TrustGRPOScriptArguments",
    "TrustGRPOTrainer",
    "format_reward",
    "outcome_reward",
    "score_answer",
]

if TYPE_CHECKING:
    from .configs import (
        ThinkingRewardConfig,
        ThinkingRewardScriptArguments,
        TrustGRPOConfig,
        TrustGRPOScriptArguments,
    )
    from .grpo_trainer import TrustGRPOTrainer
    from .reward_trainer import ThinkingRewardTrainer
    from .rewards import format_reward, outcome_reward, score_answer


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
