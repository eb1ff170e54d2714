"""The configs of both stages: the trainers' configs and the recipes' script arguments.

- [`ImageDataArguments`]: the dataset (TRL's `ScriptArguments`), the processor's image resolution and the dataset's
  bad rows, shared by both recipes' script arguments;
- [`TrustGRPOConfig`] and [`TrustGRPOScriptArguments`]: stage 2, Trust-GRPO (`recipes/grpo.py`);
- [`ThinkingRewardConfig`] and [`ThinkingRewardScriptArguments`]: stage 1, the thinking reward model
  (`recipes/thinking_reward.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, RewardConfig, ScriptArguments

from .data.loading import BAD_ROW_POLICIES
from .judges.scores import JUDGE_READOUTS
from .judges.transport import split_base_urls
from .prompts import POLICY_PROMPTS
from .rewards.scorers import OCR_MODES
from .trust import ANNEALING_SCHEDULES, THINKING_REWARD_GATES, TRUST_RULES

THINKING_REWARD_PRESETS = ("paper", "official")
JUDGE_BACKENDS = ("transformers", "scalar", "openai", "vllm", "none")
LOCAL_JUDGE_BACKENDS = ("transformers", "scalar")
JUDGE_TYPES = ("generative", "scalar")
REGRESSION_LOSSES = ("bce", "mse")


@dataclass
class ImageDataArguments(ScriptArguments):
    """
    Script arguments both recipes share: the dataset (inherited from [`trl.ScriptArguments`]), the image resolution
    of the processor and what to do with the dataset's bad rows.
    """

    # Parameters that control the images
    min_pixels: int | None = field(
        default=None, metadata={"help": "Minimum pixels per image for the processor (Qwen2.5-VL `min_pixels`)."}
    )
    max_pixels: int | None = field(
        default=None, metadata={"help": "Maximum pixels per image for the processor (Qwen2.5-VL `max_pixels`)."}
    )

    # Parameters that control the dataset's bad rows
    max_image_pixels: int | None = field(
        default=None,
        metadata={
            "help": "A dataset image larger than this (width x height) is a bad row, checked before training; no "
            "limit besides PIL's decompression-bomb guard when unset. The processor resizes images to max_pixels: this "
            "limit catches files too large to decode at all."
        },
    )
    on_bad_row: str = field(
        default="error",
        metadata={
            "help": "A dataset row whose image cannot be opened, is missing or is over max_image_pixels: 'error' stops "
            "before training and names the row, 'skip' leaves it out and logs how many and which.",
            "choices": list(BAD_ROW_POLICIES),
        },
    )

    def __post_init__(self):
        # trl.ScriptArguments has no __post_init__ to call first.
        if self.on_bad_row not in BAD_ROW_POLICIES:
            raise ValueError(f"on_bad_row={self.on_bad_row!r} is not 'error' or 'skip'.")
        if self.max_image_pixels is not None and self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be a positive number of pixels, got {self.max_image_pixels}.")


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

    TRL's `multi_objective_aggregation="normalize_then_sum"` (GDPO) is accepted: every reward column is normalised per
    group, the thinking column then weighted by gamma * alpha_t, and the sum normalised over the batch (the trainer
    does the per-column step itself, so that the weight survives it).

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
        thinking_reward_on_eval (`bool`, *optional*, defaults to `True`):
            Score evaluation batches with the thinking reward too, as training batches (one judge call per
            evaluation completion). `False` scores them by the outcome reward (and the other reward functions) alone,
            without asking the judge, as the released code validates; the paper's recipes set it.

        thinking_reward_gate (`str`, *optional*, defaults to `"none"`):
            `"correct"`: the thinking reward counts only for correct responses (Posterior-GRPO's gating),
            `R = R_outcome + 1[correct] * gamma * alpha_t * R_thinking`, so a wrong answer never gains from reasoning
            the judge likes; the trust weight still reads every score. Rules that normalise the thinking reward per
            group (`reliability_separate`, `normalize_then_sum`) normalise it over the group's correct responses.
        thinking_reward_length_neutral (`bool`, *optional*, defaults to `False`):
            Within each group, remove from the judge's scores the part that a straight line in the response length
            (tokens) explains, before the trust weight and the thinking term read them. It also removes a genuine
            preference for longer reasoning (see docs/trust_rules.md).

        > Parameters that control the trust weight

        trust_weighting (`bool`, *optional*, defaults to `True`):
            Scale the thinking reward of each group by its trust weight gamma.
        correct_threshold (`float`, *optional*, defaults to `0.5`):
            A completion counts as correct when its outcome reward is >= this value.

        > Parameters that control the thinking judge's failure budget

        judge_max_failed_fraction (`float`, *optional*, defaults to `0.5`):
            Largest fraction of failed thinking judge calls over the last `judge_failure_window` steps. Above it the
            judge is taken to be down: the run saves a checkpoint and stops with `JudgeOutageError` rather than go on
            without its thinking reward. `1.0` never stops.
        judge_failure_window (`int`, *optional*, defaults to `10`):
            Number of training steps over which the failed fraction is taken; the budget is checked once that many
            steps have been scored, so a short outage within it recovers by itself.
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
    thinking_reward_on_eval: bool = field(
        default=True,
        metadata={
            "help": "Score evaluation batches with the thinking reward too (the judge is asked about every evaluation "
            "completion). False: evaluation rewards are the outcome reward (and the other reward functions) alone and "
            "the judge gets no call during evaluation, as the released code validates."
        },
    )

    thinking_reward_gate: str = field(
        default="none",
        metadata={
            "help": "'correct': the thinking reward counts only for correct responses, R = R_o + 1[correct] * gamma * "
            "alpha_t * R_t (Posterior-GRPO), so a wrong answer never gains from reasoning the judge likes. 'none': "
            "every response (the paper).",
            "choices": list(THINKING_REWARD_GATES),
        },
    )
    thinking_reward_length_neutral: bool = field(
        default=False,
        metadata={
            "help": "Within each group, remove from the judge's scores the part a straight line in the response "
            "length (tokens) explains (least squares), so length alone cannot raise the advantage; also removes a "
            "genuine preference for longer reasoning."
        },
    )

    # Parameters that control the trust weight
    trust_weighting: bool = field(
        default=True, metadata={"help": "Scale each group's thinking reward by its trust weight gamma."}
    )
    correct_threshold: float = field(
        default=0.5, metadata={"help": "A completion is correct when its outcome reward is >= this value."}
    )
    trust_rule: str = field(
        default="paper",
        metadata={
            "help": "'paper': gamma per group (eq. 4). 'reliability': one weight w = clip(2 AUC - 1, 0, 1) for every "
            "group, AUC the judge's running right-above-wrong ranking accuracy in mixed groups. "
            "'reliability_separate': w, with outcome and thinking rewards normalised separately (needs "
            "scale_rewards='none').",
            "choices": list(TRUST_RULES),
        },
    )
    reliability_prior: float = field(
        default=0.5, metadata={"help": "AUC assumed before the first mixed group (0.5: weight 0 until shown)."}
    )
    reliability_decay: float = field(
        default=0.9, metadata={"help": "Per-step decay of the running AUC estimate (0.9: about the last 10 steps)."}
    )

    # Parameters that control the thinking judge's failure budget
    judge_max_failed_fraction: float = field(
        default=0.5,  # a judge failing most of its calls is down: the thinking reward would be mostly missing
        metadata={
            "help": "Largest fraction of failed judge calls over the last judge_failure_window steps; above it the "
            "run saves a checkpoint and stops (JudgeOutageError). 1.0 never stops."
        },
    )
    judge_failure_window: int = field(
        default=10,  # ~1 % of the paper's 1,500 steps: a server restart fits in it, a dead server does not
        metadata={"help": "Training steps over which the failed fraction of judge calls is taken."},
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
        if not 0.0 <= self.judge_max_failed_fraction <= 1.0:
            raise ValueError(
                f"judge_max_failed_fraction must be a fraction in [0, 1], got {self.judge_max_failed_fraction}; use "
                "1.0 to never stop on judge failures."
            )
        if self.judge_failure_window < 1:
            raise ValueError(f"judge_failure_window must be a number of steps >= 1, got {self.judge_failure_window}.")
        if self.trust_rule not in TRUST_RULES:
            raise ValueError(f"trust_rule={self.trust_rule!r} is not one of {TRUST_RULES}.")
        if self.trust_rule == "reliability_separate" and self.scale_rewards != "none":
            raise ValueError(
                "trust_rule='reliability_separate' normalises the outcome and thinking rewards per group itself, so "
                f"GRPO must not rescale their sum: set scale_rewards='none' (got {self.scale_rewards!r})."
            )
        if not 0.0 <= self.reliability_prior <= 1.0:
            raise ValueError(f"reliability_prior is an AUC in [0, 1], got {self.reliability_prior}.")
        if not 0.0 <= self.reliability_decay < 1.0:
            raise ValueError(f"reliability_decay must be in [0, 1), got {self.reliability_decay}.")
        if self.thinking_reward_gate not in THINKING_REWARD_GATES:
            raise ValueError(
                f"thinking_reward_gate={self.thinking_reward_gate!r} is not one of {THINKING_REWARD_GATES}."
            )
        if self.multi_objective_aggregation == "normalize_then_sum" and self.trust_rule == "reliability_separate":
            raise ValueError(
                "multi_objective_aggregation='normalize_then_sum' already normalises the thinking reward on its own "
                "and applies the trust weight after it; with it, trust_rule='reliability' gives reliability_separate's "
                "weight w. Set trust_rule='reliability' (or keep reliability_separate with 'sum_then_normalize')."
            )


@dataclass
class TrustGRPOScriptArguments(ImageDataArguments):
    """
    Script arguments of `recipes/grpo.py`: the dataset, images and bad rows (inherited from [`ImageDataArguments`]),
    the reward functions and the thinking judge.
    """

    # Parameters that control the rewards
    reward_funcs: list[str] = field(
        default_factory=lambda: ["outcome"],
        metadata={
            "help": "Reward functions by name, the outcome reward first (it decides which completions are correct): "
            "'outcome', then any of 'format'."
        },
    )
    ocr_mode: str = field(
        default="exp",
        metadata={
            "help": "Outcome reward of OCR rows: 'exp' for exp(-WER) in [0, 1], 'neg' for the paper's -WER.",
            "choices": list(OCR_MODES),
        },
    )
    numerical_timeout: float = field(
        default=1.0, metadata={"help": "Seconds allowed to verify one numerical answer (math-verify)."}
    )
    policy_prompt: str = field(
        default="sophia_trl",
        metadata={
            "help": "The policy prompt: 'sophia_trl' keeps the dataset's prompt column (this project's prompt, "
            "written by data_prep/); 'sophiavl-r1' rebuilds it from the problem, problem_type and options columns as "
            "the released SophiaVL-R1 run wrote it (read from the release; see docs/thinking_reward_model.md).",
            "choices": list(POLICY_PROMPTS),
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
        default=None,
        metadata={
            "help": "Base URL of the judge server for 'openai', e.g. http://localhost:8001/v1. Several replicas of "
            "the judge: their URLs separated by commas (a list in YAML); each request goes to the replica with the "
            "fewest in flight, and a failing replica's requests go to the others (docs/scaling.md)."
        },
    )
    judge_batch_size: int = field(default=8, metadata={"help": "Completions per forward pass of a local judge."})
    judge_max_new_tokens: int = field(default=16, metadata={"help": "Tokens a generative judge may write."})
    judge_max_concurrency: int = field(default=32, metadata={"help": "Requests in flight to the judge server."})
    judge_timeout: float = field(default=60.0, metadata={"help": "Seconds before one judge request times out."})
    judge_max_retries: int = field(default=3, metadata={"help": "Retries of a failed judge request."})
    judge_max_images_per_row: int = field(
        default=1,
        metadata={
            "help": "Most images one dataset row may have, for the in-process vLLM judge ('vllm'), which reserves "
            "memory for them (vLLM's limit_mm_per_prompt); rows with more are bad rows, found before training "
            "(on_bad_row). The other backends take every image of a row; a vLLM "
            "server takes as many as it was started with (MAX_IMAGES of scripts/serve_judge.sh)."
        },
    )
    judge_load_in_4bit: bool = field(
        default=False,
        metadata={
            "help": "Load a local judge ('transformers', 'scalar') in 4-bit NF4 with bitsandbytes, so it fits beside "
            "the policy on one GPU (about a quarter of its bf16 memory)."
        },
    )
    judge_load_in_8bit: bool = field(
        default=False,
        metadata={"help": "Load a local judge ('transformers', 'scalar') in 8-bit with bitsandbytes."},
    )
    judge_prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "The judge's prompt: a YAML template file ('system' and 'user' with {question}, {response} and "
            "{image}) or a named template ('sophiavl-r1': the released judge's). Unset: the judge_prompt.yaml its "
            "folder carries (written by recipes/thinking_reward.py); required for a judge whose prompt is not known "
            "(a served model name, a Hub id, a folder without the file). See docs/thinking_reward_model.md."
        },
    )
    judge_readout: str | None = field(
        default=None,
        metadata={
            "help": "How a generative judge's score is read: 'expected' (the probability-weighted mean of the score "
            "tokens after '<answer>', one forward pass) or 'greedy' (the written score). None: the backend's default, "
            "'expected' for 'transformers', 'greedy' for 'openai' (vLLM's server supports 'expected'; transformers "
            "serve does not) and 'vllm'. See docs/thinking_reward_model.md.",
            "choices": list(JUDGE_READOUTS),
        },
    )
    judge_share_prefix: bool | None = field(
        default=None,
        metadata={
            "help": "Local judges ('transformers', 'scalar'): compute the prompt prefix a group's completions share "
            "(system text, image, question) once per group and score each completion on its key/value cache; same "
            "scores, less compute. None: on when the judge prompt puts the response after the question and image "
            "(this project's prompt does) and the judge is a Qwen2-VL-family model. See docs/scaling.md."
        },
    )
    judge_overlap: bool | None = field(
        default=None,
        metadata={
            "help": "Send the judge requests as soon as generation returns, so they run during the log-prob passes. "
            "None: on for the 'openai' server backend, off for in-process judges (they share the device)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.reward_funcs:
            raise ValueError("reward_funcs is empty: give the outcome reward first, e.g. ['outcome', 'format'].")
        if self.judge_backend not in JUDGE_BACKENDS:
            raise ValueError(f"judge_backend={self.judge_backend!r} is not one of {JUDGE_BACKENDS}.")
        if self.judge_backend in ("transformers", "scalar", "openai", "vllm") and not self.judge_model_name_or_path:
            raise ValueError(
                f"judge_backend={self.judge_backend!r} needs judge_model_name_or_path (a checkpoint, or the served "
                "model name for 'openai'); use judge_backend: none for plain GRPO."
            )
        if self.judge_base_url:  # one URL, or replicas: comma-separated or a YAML list; kept as one checked string
            self.judge_base_url = ",".join(split_base_urls(self.judge_base_url))
        if self.judge_backend == "openai" and not self.judge_base_url:
            raise ValueError("judge_backend='openai' needs judge_base_url, e.g. http://localhost:8001/v1.")
        if self.ocr_mode not in OCR_MODES:
            raise ValueError(f"ocr_mode={self.ocr_mode!r} is not one of {OCR_MODES}.")
        if self.policy_prompt not in POLICY_PROMPTS:
            raise ValueError(f"policy_prompt={self.policy_prompt!r} is not one of {POLICY_PROMPTS}.")
        if self.numerical_timeout <= 0:
            raise ValueError(f"numerical_timeout must be a positive number of seconds, got {self.numerical_timeout}.")
        if self.judge_max_images_per_row < 1:
            raise ValueError(f"judge_max_images_per_row must be >= 1, got {self.judge_max_images_per_row}.")
        if self.judge_load_in_4bit and self.judge_load_in_8bit:
            raise ValueError("Set at most one of judge_load_in_4bit and judge_load_in_8bit.")
        if self.judge_share_prefix and self.judge_backend not in LOCAL_JUDGE_BACKENDS:
            raise ValueError(
                f"judge_share_prefix applies to the judges loaded in this process {LOCAL_JUDGE_BACKENDS}, not "
                f"judge_backend={self.judge_backend!r}: a vLLM server shares prefixes itself with "
                "--enable-prefix-caching (docs/scaling.md). Remove judge_share_prefix."
            )
        if (self.judge_load_in_4bit or self.judge_load_in_8bit) and self.judge_backend not in LOCAL_JUDGE_BACKENDS:
            raise ValueError(
                f"judge_load_in_4bit/judge_load_in_8bit quantise a judge loaded in this process (judge_backend "
                f"{LOCAL_JUDGE_BACKENDS}), not judge_backend={self.judge_backend!r}: quantise a served judge in its "
                "server (e.g. vllm serve --quantization bitsandbytes)."
            )


def check_one_vllm_engine(judge_backend: str, args: GRPOConfig) -> None:
    """
    Refuses an in-process vLLM judge beside TRL's colocated vLLM policy engine: two vLLM engines in one process.

    vLLM sets up its distributed and model-parallel state once per process (TRL's colocated engine sets it up for the
    policy's tensor-parallel group), and each engine reserves its share of the GPU's memory as if alone, so a second
    engine in the process cannot start cleanly. The judge goes behind a server instead.

    Args:
        judge_backend (`str`):
            The judge's backend, one of `JUDGE_BACKENDS` (`TrustGRPOScriptArguments.judge_backend`).
        args ([`~trl.GRPOConfig`]):
            The training settings: `use_vllm` and `vllm_mode`.

    Raises:
        `ValueError`: `judge_backend="vllm"` with `use_vllm=True` and `vllm_mode="colocate"`; the message names the
            server backend.
    """
    if judge_backend == "vllm" and args.use_vllm and args.vllm_mode == "colocate":
        raise ValueError(
            "judge_backend='vllm' would start a second vLLM engine in this process, beside TRL's colocated policy "
            "engine (use_vllm: true, vllm_mode: colocate); vLLM keeps its distributed state and memory reservation per "
            "process, so two engines in one process do not work. Serve the judge instead: `scripts/serve_judge.sh "
            "vllm JUDGE_MODEL 8001` on its own GPU, then judge_backend: openai, judge_base_url: "
            "http://127.0.0.1:8001/v1, judge_model_name_or_path: judge. (Or generate with vllm_mode: server, or "
            "score with judge_backend: transformers.)"
        )


@dataclass
class ThinkingRewardConfig(RewardConfig):
    r"""
    Configuration class for [`~sophia_trl.reward_trainer.ThinkingRewardTrainer`]: [`~trl.RewardConfig`] plus the
    regression loss.

    Parameters:
        > Parameters that control the training

        regression_loss (`str`, *optional*, defaults to `"bce"`):
            `"bce"`: binary cross-entropy between `sigmoid(logit)` and the score used as a soft label. It is a proper
            scoring rule for a probability-like score (its minimum is at `sigmoid(logit) = score`) and its gradient
            `sigmoid(logit) - score` does not vanish when the sigmoid saturates. `"mse"`: squared error between
            `sigmoid(logit)` and the score, whose gradient carries an extra `sigmoid'(logit)` factor and fades near 0
            and 1.

    The rows are pointwise: `question` (str), `response` (str), `score` (float in [0, 1]) and, optionally, `image`
    (PIL image or None). `max_length` counts the tokens of the rendered judge prompt, image tokens included; longer
    rows are dropped with a warning. `center_rewards_coefficient` does not apply to pointwise regression.
    """

    # Parameters that control the training
    regression_loss: str = field(
        default="bce",
        metadata={
            "help": "'bce' (binary cross-entropy with the score as a soft label; keeps its gradient when the sigmoid "
            "saturates) or 'mse' (squared error of sigmoid(logit) to the score).",
            "choices": list(REGRESSION_LOSSES),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.regression_loss not in REGRESSION_LOSSES:
            raise ValueError(f"regression_loss={self.regression_loss!r} is not one of {REGRESSION_LOSSES}.")
        if self.center_rewards_coefficient is not None:
            raise ValueError(
                "center_rewards_coefficient is for pairwise (Bradley-Terry) reward models; the thinking reward model "
                "regresses to the score itself. Leave it unset."
            )


@dataclass
class ThinkingRewardScriptArguments(ImageDataArguments):
    """
    Script arguments of `recipes/thinking_reward.py`: the dataset, images and bad rows (inherited from
    [`ImageDataArguments`]), the kind of judge and the evaluation of the trained judge.
    """

    # Parameters that control the judge
    judge_type: str = field(
        default="generative",
        metadata={
            "help": "'generative': SFT the VLM to answer <answer>score</answer> (the paper's judge). 'scalar': train "
            "a linear head by regression to the score with ThinkingRewardTrainer.",
            "choices": list(JUDGE_TYPES),
        },
    )
    judge_prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "The judge prompt the judge is trained and evaluated with: a YAML template file ('system' and "
            "'user' with {question}, {response} and {image}) or a named template ('sophiavl-r1': the released "
            "judge's); this project's prompt when unset. It is written into output_dir "
            "as judge_prompt.yaml, which recipes/grpo.py reads when it loads that folder as the judge."
        },
    )

    # Parameters that control the evaluation of the trained judge
    eval_judge: bool = field(
        default=True,
        metadata={"help": "After training, score the test split with the saved judge and log its MAE."},
    )
    eval_judge_max_rows: int | None = field(
        default=None, metadata={"help": "Rows of the test split to score after training (all when unset)."}
    )
    judge_batch_size: int = field(default=16, metadata={"help": "Rows per batch when scoring the test split."})

    def __post_init__(self):
        super().__post_init__()
        if self.judge_type not in JUDGE_TYPES:
            raise ValueError(f"judge_type={self.judge_type!r} is not one of {JUDGE_TYPES}.")
        if self.dataset_name is None:
            raise ValueError("dataset_name is required: a folder written by data_prep/*.py, a data file or a Hub id.")
