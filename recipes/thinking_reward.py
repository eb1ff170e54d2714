# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""Stage 1 of SophiaVL-R1: train the thinking reward model that scores a response's reasoning in [0, 1].

Two kinds of judge, chosen with `judge_type`:

- `generative` (the paper's): the vision-language model is fine-tuned with TRL's `SFTTrainer` (completion-only loss) to
  answer the judge prompt with `<answer>score</answer>`. Score with `TransformersJudge`, `VLLMJudge`, or serve it
  (`scripts/serve_judge.sh`) for `OpenAIJudge`.
- `scalar`: a linear head on the backbone, trained with `ThinkingRewardTrainer` by regression to the score. Score with
  `ScalarJudge` (one forward pass, no generation).

The data has one row per judged response: `question` (str), `image` (image or None), `response` (str), `score`
(float in [0, 1]), as written by `data_prep/synthetic.py --kind thinking`, `data_prep/thinking_156k.py` or
`data_prep/label_thinking.py`.

Usage:

```bash
# Tiny CPU runs (the base model and data come from `make demo`'s first steps)
python recipes/thinking_reward.py --config recipes/tiny/thinking_reward_generative.yaml
python recipes/thinking_reward.py --config recipes/tiny/thinking_reward_scalar.yaml

# Qwen2.5-VL-3B on GPUs
accelerate launch --config_file accelerate_configs/zero2.yaml recipes/thinking_reward.py \
    --config recipes/Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml
```

Any key of the YAML can be overridden on the command line, e.g. `--learning_rate 1e-5 --use_peft`. After training,
the saved judge scores the test split and the script logs its MAE (`judge_eval_*` metrics). The output folder carries
the judge prompt it was trained with (`judge_prompt.yaml`, named in the model card): `recipes/grpo.py` reads it when
`judge_model_name_or_path` is that folder.
"""

import logging
import sys
from pathlib import Path

import sophia_trl  # noqa: F401  (first: its import filters a bitsandbytes warning, see sophia_trl/__init__.py)

# isort: split

import yaml
from transformers import AutoModelForImageTextToText, set_seed
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

from sophia_trl.callbacks import SaveJudgePromptCallback
from sophia_trl.configs import JUDGE_TYPES, ThinkingRewardConfig, ThinkingRewardScriptArguments
from sophia_trl.data import check_images, load_train_test_splits
from sophia_trl.hub import push_folder_to_hub
from sophia_trl.judges import (
    ScalarJudge,
    TransformersJudge,
    evaluate_judge,
    format_judge_sft_example,
    format_score,
    load_judge_prompt,
)
from sophia_trl.judges.carried_prompt import describe_judge_prompt, save_judge_prompt
from sophia_trl.judges.metrics import metrics_for_json
from sophia_trl.model_cards import thinking_reward_model_card
from sophia_trl.model_utils import check_local_paths, get_peft_config, load_processor, model_init_kwargs
from sophia_trl.recipe_utils import resolve_checkpoint, setup_logging
from sophia_trl.reward_trainer import ThinkingRewardTrainer, drop_long_rows

logger = logging.getLogger(__name__)

# The judge-data columns both trainers read (`image` is optional), and what writes them from the release's download.
REQUIRED_COLUMNS = ("question", "response", "score")
CONVERTER = "python data_prep/thinking_156k.py --input_dir {input_dir} --output_dir data/thinking-156k"


def main(
    script_args: ThinkingRewardScriptArguments,
    training_args: SFTConfig | ThinkingRewardConfig,
    model_args: ModelConfig,
) -> dict[str, float]:
    ################
    # Seed and logging
    ################
    set_seed(training_args.seed)
    setup_logging(training_args, logger)
    logger.info("Model parameters %s", model_args)
    logger.info("Script parameters %s", script_args)
    logger.info("Training a %s thinking reward model with %s", script_args.judge_type, type(training_args).__name__)

    # A missing local base model or dataset is a step not yet run: say which one before loading anything.
    check_local_paths({"model_name_or_path": model_args.model_name_or_path, "dataset_name": script_args.dataset_name})
    # The prompt the judge learns to answer, checked before anything loads; this project's when no template is set.
    judge_prompt = load_judge_prompt(script_args.judge_prompt_template)
    if script_args.judge_prompt_template:
        logger.info("Judge prompt template: %s", script_args.judge_prompt_template)

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
    # A corrupt or oversized image would otherwise kill the run when its row is drawn, possibly hours in.
    image_check = {"max_pixels": script_args.max_image_pixels, "on_bad_row": script_args.on_bad_row}
    train_dataset, _ = check_images(
        train_dataset, script_args.dataset_train_split, dataset_name=script_args.dataset_name, **image_check
    )
    if test_dataset is not None:
        test_dataset, _ = check_images(
            test_dataset, script_args.dataset_test_split, dataset_name=script_args.dataset_name, **image_check
        )
    if test_dataset is None:
        logger.warning(
            "No %r split in %s: no evaluation of the trained judge.",
            script_args.dataset_test_split,
            script_args.dataset_name,
        )
    eval_dataset = test_dataset if training_args.eval_strategy != "no" else None
    logger.info("Judge data: %d train rows, %s test rows", len(train_dataset), test_dataset and len(test_dataset))

    ################
    # Processor, model and trainer
    ################
    processor = load_processor(model_args, script_args.min_pixels, script_args.max_pixels)
    init_kwargs = model_init_kwargs(model_args)
    peft_config = get_peft_config(model_args)
    if script_args.judge_type == "generative":
        if not isinstance(training_args, SFTConfig):
            raise TypeError("judge_type 'generative' trains with SFTConfig; parse the arguments with make_parser().")
        if training_args.max_length is not None:
            # The target: "<answer>x.x</answer>", the end-of-turn token and a newline.
            target = format_score(1.0) + (processor.tokenizer.eos_token or "") + "\n"
            extra = len(processor.tokenizer(target, add_special_tokens=False)["input_ids"])
            train_dataset = drop_long_rows(
                train_dataset, processor, training_args.max_length, "train", extra, judge_prompt=judge_prompt
            )
            if eval_dataset is not None:
                eval_dataset = drop_long_rows(
                    eval_dataset, processor, training_args.max_length, "eval", extra, judge_prompt=judge_prompt
                )
        columns = train_dataset.column_names
        sft_kwargs = {"fn_kwargs": {"judge_prompt": judge_prompt}, "remove_columns": columns}
        model = AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **init_kwargs)
        trainer = SFTTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset.map(format_judge_sft_example, **sft_kwargs),
            eval_dataset=eval_dataset.map(format_judge_sft_example, **sft_kwargs) if eval_dataset else None,
            processing_class=processor,
            peft_config=peft_config,
            callbacks=[SaveJudgePromptCallback(judge_prompt)],  # every checkpoint carries the prompt
        )
    else:
        if not isinstance(training_args, ThinkingRewardConfig):
            raise TypeError("judge_type 'scalar' trains with ThinkingRewardConfig; parse with make_parser().")
        training_args.model_init_kwargs = {
            k: v for k, v in {**init_kwargs, **(training_args.model_init_kwargs or {})}.items() if v is not None
        }
        trainer = ThinkingRewardTrainer(
            model=model_args.model_name_or_path,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processor,
            peft_config=peft_config,
            judge_prompt=judge_prompt,
        )

    ################
    # Training
    ################
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics_for_json(metrics))
    trainer.save_state()

    ################
    # Save
    ################
    if peft_config is not None:
        # The judge backends load a full checkpoint: fold the adapter into the weights.
        trainer.model = trainer.model.merge_and_unload()
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(training_args.output_dir)
        if script_args.judge_type == "generative":
            # Gradient checkpointing turns the KV cache off in the config; the judge generates, so turn it back on.
            trainer.model.config.get_text_config().use_cache = True
            trainer.model.config.save_pretrained(training_args.output_dir)
            # The judge carries its prompt (ThinkingRewardTrainer.save_model writes it for the scalar judge).
            save_judge_prompt(judge_prompt, training_args.output_dir)
    logger.info("Thinking reward model saved to %s", training_args.output_dir)

    ################
    # Evaluate the saved judge
    ################
    judge_metrics: dict[str, float] = {}
    if script_args.eval_judge and test_dataset is not None and trainer.accelerator.is_main_process:
        rows = test_dataset
        if script_args.eval_judge_max_rows is not None:
            rows = rows.select(range(min(script_args.eval_judge_max_rows, len(rows))))
        device = str(trainer.accelerator.device)
        judge_class = TransformersJudge if script_args.judge_type == "generative" else ScalarJudge
        judge = judge_class(
            training_args.output_dir,
            batch_size=script_args.judge_batch_size,
            device=device,
            judge_prompt=judge_prompt,
        )
        judge_metrics = {f"judge_eval_{k}": v for k, v in evaluate_judge(judge, rows).items()}
        trainer.log_metrics("judge_eval", judge_metrics)
        # JSON has no NaN: an undefined metric (no pairs to rank, say) is written as null, with the reason beside it.
        judge_metrics = metrics_for_json(judge_metrics)
        trainer.save_metrics("judge_eval", judge_metrics)

    ################
    # Model card and push
    ################
    card = thinking_reward_model_card(
        model_name=Path(training_args.output_dir).name,
        judge_type=script_args.judge_type,
        base_model=model_args.model_name_or_path,
        hub_model_id=training_args.hub_model_id,
        dataset_name=script_args.dataset_name,
        eval_metrics=judge_metrics,
        judge_prompt=describe_judge_prompt(judge_prompt),
    )
    if trainer.accelerator.is_main_process:
        card.save(Path(training_args.output_dir) / "README.md")
        if training_args.push_to_hub:
            repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
            logger.info("Pushing the thinking reward model to %s...", repo_id)
            push_folder_to_hub(training_args.output_dir, repo_id, card=card, private=training_args.hub_private_repo)
    return judge_metrics


def judge_type_from_args(args: list[str]) -> str:
    """The `judge_type` from the command line or, failing that, from the `--config` YAML ("generative" if unset);
    it decides which training config class the parser builds."""
    for i, arg in enumerate(args):
        if arg == "--judge_type" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--judge_type="):
            return arg.split("=", 1)[1]
    if "--config" in args and args.index("--config") + 1 < len(args):
        with open(args[args.index("--config") + 1]) as config_file:
            config = yaml.safe_load(config_file) or {}
        return config.get("judge_type", "generative")
    return "generative"


def make_parser(judge_type: str) -> TrlParser:
    """The parser for one kind of judge: `SFTConfig` for the generative judge, `ThinkingRewardConfig` for the scalar."""
    if judge_type not in JUDGE_TYPES:
        raise ValueError(f"judge_type={judge_type!r} is not one of {JUDGE_TYPES}.")
    config_class = SFTConfig if judge_type == "generative" else ThinkingRewardConfig
    return TrlParser((ThinkingRewardScriptArguments, config_class, ModelConfig))


if __name__ == "__main__":
    parser = make_parser(judge_type_from_args(sys.argv[1:]))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
