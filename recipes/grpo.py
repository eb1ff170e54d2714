# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""Trust-GRPO training of a vision-language model with a thinking reward (SophiaVL-R1, stage 2).

Usage:

```bash
# Tiny CPU run (the models and data come from `make demo`'s first steps)
python recipes/grpo.py --config recipes/tiny/trust_grpo.yaml

# Qwen2.5-VL-7B on 8 GPUs with DeepSpeed ZeRO-3
accelerate launch --config_file accelerate_configs/zero3.yaml recipes/grpo.py \
    --config recipes/Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml
```

Any key of the YAML can be overridden on the command line, e.g. `--thinking_reward_preset official --use_peft`.
"""

import functools
import logging
import sys

import sophia_trl  # noqa: F401  (first: its import filters a bitsandbytes warning, see sophia_trl/__init__.py)

# isort: split

from peft import PeftModel
from transformers import AutoModelForImageTextToText, set_seed
from trl import ModelConfig, TrlParser

from sophia_trl.callbacks import SaveOnPreemptionCallback
from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments, check_one_vllm_engine
from sophia_trl.data import apply_policy_prompt, check_images, load_train_test_splits
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import load_thinking_judge
from sophia_trl.judges.loading import judge_prompt_of
from sophia_trl.judges.metrics import metrics_for_json
from sophia_trl.judges.preflight import check_judge
from sophia_trl.model_utils import check_local_paths, get_peft_config, load_processor, model_init_kwargs
from sophia_trl.recipe_utils import resolve_checkpoint, setup_logging
from sophia_trl.rewards import format_reward, outcome_reward

logger = logging.getLogger(__name__)

# The columns the trainer and the outcome reward read, and what writes them from the release's download.
REQUIRED_COLUMNS = ("prompt", "solution")
CONVERTER = "python data_prep/sophiavl_130k.py --input_dir {input_dir} --output_dir data/sophiavl-130k"

# Reward functions by the names used in `reward_funcs`; the first one listed is the outcome reward.
REWARD_FUNCS = {"outcome": outcome_reward, "format": format_reward}


def is_peft_model(model) -> bool:
    return isinstance(model, PeftModel)


def get_reward_funcs(script_args: TrustGRPOScriptArguments) -> list:
    unknown = [name for name in script_args.reward_funcs if name not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"Unknown reward function(s) {unknown} in reward_funcs; choose from {list(REWARD_FUNCS)}.")
    if script_args.reward_funcs[0] != "outcome":
        logger.warning("reward_funcs[0]=%r is used as the outcome reward.", script_args.reward_funcs[0])
    funcs = [REWARD_FUNCS[name] for name in script_args.reward_funcs]
    # The outcome reward's options, named like the function so that TRL logs it as `outcome_reward`.
    options = {"ocr_mode": script_args.ocr_mode, "numerical_timeout": script_args.numerical_timeout}
    return [functools.update_wrapper(functools.partial(f, **options), f) if f is outcome_reward else f for f in funcs]


def get_model(model_args: ModelConfig, training_args: TrustGRPOConfig):
    return AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **model_init_kwargs(model_args))


def main(script_args: TrustGRPOScriptArguments, training_args: TrustGRPOConfig, model_args: ModelConfig) -> None:
    ################
    # Seed and logging
    ################
    set_seed(training_args.seed)
    setup_logging(training_args, logger)
    logger.info("Model parameters %s", model_args)
    logger.info("Script parameters %s", script_args)
    logger.info(
        "Trust-GRPO: alpha=%s annealing=%s T=%s preset=%s trust=%s",
        training_args.thinking_reward_alpha,
        training_args.thinking_reward_annealing,
        training_args.thinking_reward_T or "total steps",
        training_args.thinking_reward_preset,
        training_args.trust_weighting,
    )

    # Settings that cannot run together, refused before anything loads.
    check_one_vllm_engine(script_args.judge_backend, training_args)
    # A missing local model, judge or dataset is a step not yet run: say which one before loading anything.
    local_judge = script_args.judge_backend in ("transformers", "scalar", "vllm")
    check_local_paths(
        {
            "model_name_or_path": model_args.model_name_or_path,
            "dataset_name": script_args.dataset_name,
            "judge_model_name_or_path": script_args.judge_model_name_or_path if local_judge else None,
        }
    )

    # The judge's prompt is known before anything loads: a judge asked with another prompt than its own scores off its
    # training distribution, so an unknown one stops the run here (judge_prompt_template says how to choose one).
    judge_prompt = judge_prompt_of(script_args)

    ################
    # Checkpoint
    ################
    # TRL's flag: `true` for the last checkpoint of output_dir, `false` to start over, or a checkpoint's path.
    checkpoint = resolve_checkpoint(training_args)

    ################
    # Data
    ################
    train_dataset, test_dataset = load_train_test_splits(
        script_args.dataset_name,
        script_args.dataset_config,
        script_args.dataset_train_split,
        script_args.dataset_test_split,
        required_columns=REQUIRED_COLUMNS,
        converter=CONVERTER,
    )
    eval_dataset = None
    if training_args.eval_strategy != "no":
        if test_dataset is None:
            raise ValueError(
                f"eval_strategy={training_args.eval_strategy!r} needs a {script_args.dataset_test_split!r} split in "
                f"{script_args.dataset_name}; set dataset_test_split or eval_strategy: 'no'."
            )
        eval_dataset = test_dataset
    train_dataset = apply_policy_prompt(train_dataset, script_args.policy_prompt, script_args.dataset_name)
    if eval_dataset is not None:
        eval_dataset = apply_policy_prompt(eval_dataset, script_args.policy_prompt, script_args.dataset_name)
    # A corrupt or oversized image would otherwise kill the run when its row is drawn, possibly hours in.
    # So would a row with more images than the in-process vLLM judge reserves memory for, when the judge scores it.
    image_check = {"max_pixels": script_args.max_image_pixels, "on_bad_row": script_args.on_bad_row}
    judge_images = script_args.judge_max_images_per_row if script_args.judge_backend == "vllm" else None
    train_dataset, _ = check_images(
        train_dataset,
        script_args.dataset_train_split,
        dataset_name=script_args.dataset_name,
        max_images=judge_images,
        **image_check,
    )
    if eval_dataset is not None:
        eval_dataset, _ = check_images(
            eval_dataset,
            script_args.dataset_test_split,
            dataset_name=script_args.dataset_name,
            max_images=judge_images if training_args.thinking_reward_on_eval else None,
            **image_check,
        )

    ################
    # Thinking judge, checked before the policy loads: a run whose judge does not score would train plain GRPO
    ################
    thinking_judge = load_thinking_judge(script_args, judge_prompt)
    if thinking_judge is not None:
        check_judge(thinking_judge)

    ################
    # Processor and model
    ################
    processor = load_processor(model_args, script_args.min_pixels, script_args.max_pixels, padding_side="left")
    model = get_model(model_args, training_args)

    ################
    # Rewards and thinking judge
    ################
    reward_funcs = get_reward_funcs(script_args)

    ################
    # Trainer
    ################
    trainer = TrustGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        thinking_judge=thinking_judge,
        overlap_judge=script_args.judge_overlap,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model_args, model.config.model_type),
    )

    ################
    # Training
    ################
    # On SIGTERM (SLURM, Kubernetes) the run finishes its step, saves a checkpoint and exits with 143 = 128 + SIGTERM.
    preemption = SaveOnPreemptionCallback()
    trainer.add_callback(preemption)
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    if preemption.preempted:
        logger.warning(
            "Stopped at step %d by SIGTERM; checkpoint saved in %s. Resume with --resume_from_checkpoint true.",
            trainer.state.global_step,
            training_args.output_dir,
        )
        sys.exit(143)
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics_for_json(metrics))  # an undefined metric as null: JSON has no NaN
    trainer.save_state()

    ################
    # Save and push
    ################
    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    if trainer.accelerator.is_main_process:
        trainer.create_model_card(dataset_name=script_args.dataset_name, tags=["sophia-trl", "trust-grpo"])
        # Restore the KV cache for fast inference after training with gradient checkpointing.
        trainer.model.config.use_cache = True
        if not is_peft_model(trainer.model):  # a LoRA run saves an adapter folder: a config.json would hide it
            trainer.model.config.save_pretrained(training_args.output_dir)
    if training_args.push_to_hub:
        logger.info("Pushing to the Hub...")
        trainer.push_to_hub(dataset_name=script_args.dataset_name, tags=["sophia-trl", "trust-grpo"])


if __name__ == "__main__":
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
