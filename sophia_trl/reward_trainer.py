"""Stage 1 of SophiaVL-R1 with a scalar head: a vision-language thinking reward model trained on pointwise scores.

TRL's `RewardTrainer` learns from preference pairs of text with a Bradley-Terry loss, and
`AutoModelForSequenceClassification` has no Qwen2.5-VL mapping. With the scalar-head model
[`~sophia_trl.judges.scalar_model.Qwen2_5_VLForScalarReward`] (the Qwen2.5-VL backbone plus a linear head on the last
non-padding token), this module adds the pieces that make it fit (question, image, response, score) rows:

- [`ThinkingRewardTrainer`]: `trl.RewardTrainer` with pointwise data, images, a regression loss and the metrics MAE
  and pairwise ranking accuracy within a question;
- [`DataCollatorForThinkingReward`], [`check_judge_row`] and [`drop_long_rows`]: the rows rendered with the judge
  prompt of [`sophia_trl.judges`], checked, and kept within `max_length`.

Its config, [`~sophia_trl.configs.ThinkingRewardConfig`] (`trl.RewardConfig` plus the choice of regression loss), is in
`sophia_trl.configs`. The trained model is what [`~sophia_trl.judges.ScalarJudge`] loads.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from datasets import Dataset, IterableDataset
from transformers import AutoProcessor, PreTrainedModel, ProcessorMixin
from trl import RewardTrainer
from trl.data_utils import get_dataset_column_names

from .configs import ThinkingRewardConfig
from .judges import JudgePrompt, build_judge_inputs, judge_inputs, pairwise_accuracy, question_group_id
from .judges.carried_prompt import save_judge_prompt
from .judges.scalar_model import load_scalar_reward_model
from .trl_compat import ResumeLoadsCheckpointWeights

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("question", "response", "score")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def check_judge_row(question: Any, response: Any, score: Any, where: str = "A row") -> None:
    """Raises a `ValueError` naming the row when it is not a (str, str, score in [0, 1]) judge-data row."""
    if not isinstance(question, str) or not isinstance(response, str):
        raise ValueError(
            f"{where}: question and response must be strings, got {type(question).__name__} and "
            f"{type(response).__name__}."
        )
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        raise ValueError(
            f"{where} has score {score!r}; scores must be numbers in [0, 1]. Rescale the scores or drop the row."
        )


@dataclass
class DataCollatorForThinkingReward:
    """
    Collates pointwise judge rows into model inputs: each row is rendered with the judge prompt
    ([`~sophia_trl.judges.build_judge_inputs`]) and processed with its image, if any.

    Args:
        processor ([`~transformers.ProcessorMixin`]):
            The judge's processor.
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The judge prompt template; this project's when `None`.

    Returns a batch with the processor's tensors plus `target_scores` (float, `(B,)`) and `group_ids` (int64,
    `(B,)`: rows with equal ids answer the same question about the same image).
    """

    processor: Any
    judge_prompt: JudgePrompt | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for example in examples:  # streamed datasets reach the trainer unchecked
            check_judge_row(example["question"], example["response"], example["score"])
        questions, responses, images = (list(column) for column in zip(*(judge_inputs(ex) for ex in examples)))
        batch = dict(build_judge_inputs(self.processor, questions, responses, images, self.judge_prompt))
        batch["target_scores"] = torch.tensor([float(ex["score"]) for ex in examples], dtype=torch.float32)
        batch["group_ids"] = torch.tensor(
            [question_group_id(q, img) for q, img in zip(questions, images)], dtype=torch.int64
        )
        return batch


def drop_long_rows(
    dataset: Dataset,
    processor: Any,
    max_length: int,
    dataset_name: str = "train",
    extra_tokens: int = 0,
    num_proc: int | None = None,
    judge_prompt: JudgePrompt | None = None,
) -> Dataset:
    """
    Drops judge-data rows whose rendered judge prompt (image tokens included) plus `extra_tokens` exceeds
    `max_length`, with a warning that says how many; truncating instead would cut the response or the image tokens.

    Args:
        dataset ([`~datasets.Dataset`]):
            Rows with `question`, `response` and optionally `image`.
        processor ([`~transformers.ProcessorMixin`]):
            The judge's processor.
        max_length (`int`):
            Token budget of a row.
        dataset_name (`str`, *optional*, defaults to `"train"`):
            Name used in the messages.
        extra_tokens (`int`, *optional*, defaults to `0`):
            Tokens added after the prompt (e.g. the generative judge's `<answer>x</answer>` target).
        num_proc (`int` or `None`, *optional*, defaults to `None`):
            Processes for `Dataset.map`.
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The judge prompt template the rows are rendered with; this project's when `None`.

    Returns:
        [`~datasets.Dataset`]: The rows that fit.
    """

    def num_tokens(example):
        question, response, image = judge_inputs(example)
        inputs = build_judge_inputs(processor, [question], [response], [image], judge_prompt)
        return {"_num_tokens": int(inputs["attention_mask"].sum()) + extra_tokens}

    lengths = dataset.map(num_tokens, desc=f"Measuring {dataset_name} rows", num_proc=num_proc)["_num_tokens"]
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    if len(keep) == len(dataset):
        return dataset
    if not keep:
        raise ValueError(
            f"Every row of the {dataset_name} dataset is longer than max_length={max_length} tokens (the shortest has "
            f"{min(lengths)}); raise max_length."
        )
    logger.warning(
        "Dropped %d of %d %s rows longer than max_length=%d tokens; raise max_length to keep them.",
        len(dataset) - len(keep),
        len(dataset),
        dataset_name,
        max_length,
    )
    return dataset.select(keep)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------


class ThinkingRewardTrainer(ResumeLoadsCheckpointWeights, RewardTrainer):
    """
    [`~trl.RewardTrainer`] for a vision-language thinking reward model trained on pointwise scores.

    The changes with respect to `RewardTrainer` (written against TRL 1.16.0):
    - resuming from a checkpoint loads its weights ([`~sophia_trl.trl_compat.ResumeLoadsCheckpointWeights`]);
    - the model is a [`~sophia_trl.judges.scalar_model.Qwen2_5_VLForScalarReward`] (loaded from a path or passed in)
      and `processing_class` is the full processor, so images reach the model and the saved checkpoint holds the
      processor;
    - `_prepare_dataset` validates pointwise rows and drops rows longer than `max_length` (with a warning) instead of
      tokenising chosen/rejected pairs; [`DataCollatorForThinkingReward`] renders the judge prompt in each batch;
    - `compute_loss` regresses `sigmoid(logit)` to the score (`regression_loss`) and logs `mae`,
      `pairwise_accuracy` (pairs from the same question and image, over the whole evaluation set at evaluation),
      `mean_prediction` and `mean_target`;
    - `save_model` also writes the judge prompt the rows were rendered with into the folder (`judge_prompt.yaml`), so
      the saved judge and every checkpoint carry it (`load_thinking_judge` reads it back).
    Everything else (optimisation, PEFT, checkpointing, logging) is inherited.

    Args:
        model (`str` or [`~sophia_trl.judges.scalar_model.Qwen2_5_VLForScalarReward`]):
            A Qwen2.5-VL checkpoint path or Hub id (the head is added when missing), or a loaded model.
        args ([`~sophia_trl.configs.ThinkingRewardConfig`], *optional*, defaults to `None`):
            Training configuration; `ThinkingRewardConfig("<model>-ThinkingReward")` when `None`.
        train_dataset ([`~datasets.Dataset`] or [`~datasets.IterableDataset`]):
            Rows with `question`, `response`, `score` and optionally `image`.
        eval_dataset ([`~datasets.Dataset`], *optional*, defaults to `None`):
            Same columns as `train_dataset`.
        processing_class ([`~transformers.ProcessorMixin`], *optional*, defaults to `None`):
            The processor; loaded with `AutoProcessor` from the model's path when `None`.
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The judge prompt template the rows are rendered with; this project's when `None`. It is saved with the
            model (`judge_prompt.yaml`); score the trained model with the same one (`ScalarJudge(..., judge_prompt=...)`,
            or `load_thinking_judge`, which reads the file).
        **kwargs:
            Passed to [`~trl.RewardTrainer`] (`callbacks`, `optimizers`, `peft_config`, ...).
    """

    _tag_names = ["trl", "reward-trainer", "sophia-trl", "thinking-reward"]

    def __init__(
        self,
        model: str | PreTrainedModel,
        args: ThinkingRewardConfig | None = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: ProcessorMixin | None = None,
        judge_prompt: JudgePrompt | None = None,
        **kwargs: Any,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = ThinkingRewardConfig(f"{str(name).rstrip('/').split('/')[-1]}-ThinkingReward")
        elif not isinstance(args, ThinkingRewardConfig):
            raise TypeError(f"args must be a ThinkingRewardConfig, got {type(args).__name__}.")
        if isinstance(model, str):
            if processing_class is None:
                processing_class = AutoProcessor.from_pretrained(model)
            model = load_scalar_reward_model(model, **(args.model_init_kwargs or {}))
            args.model_init_kwargs = None  # used above; RewardTrainer would warn that they are ignored
        if processing_class is None:
            processing_class = AutoProcessor.from_pretrained(model.config._name_or_path)
        tokenizer = getattr(processing_class, "tokenizer", None)
        if tokenizer is None or getattr(processing_class, "image_processor", None) is None:
            raise ValueError(
                f"processing_class must be a vision-language processor with a tokenizer and an image processor, got "
                f"{type(processing_class).__name__}. Load it with AutoProcessor (torchvision must be installed for "
                "Qwen2.5-VL processors)."
            )
        peft_config = kwargs.get("peft_config")
        if peft_config is not None and "score" not in (peft_config.modules_to_save or []):
            # The head is new: with an adapter it must still be trained and saved in full.
            peft_config.modules_to_save = [*(peft_config.modules_to_save or []), "score"]

        self._processor = processing_class
        self.judge_prompt = judge_prompt  # read by _prepare_dataset, which RewardTrainer.__init__ calls
        # RewardTrainer reads the pad/eos tokens from a tokenizer; the processor itself is restored below.
        super().__init__(
            model=model,
            args=args,
            data_collator=kwargs.pop("data_collator", None)
            or DataCollatorForThinkingReward(processing_class, judge_prompt),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            **kwargs,
        )
        # Saved with every checkpoint, so the output folder loads with AutoProcessor (image processor included).
        self.processing_class = processing_class
        self._eval_buffer: dict[str, list[torch.Tensor]] = defaultdict(list)

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: Any,
        args: ThinkingRewardConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        columns = get_dataset_column_names(dataset)
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"The {dataset_name} dataset has no column(s) {missing}; the thinking reward model needs pointwise rows "
                f"with {list(REQUIRED_COLUMNS)} and optionally 'image'. Got columns {columns}."
            )
        if not isinstance(dataset, Dataset):
            return dataset  # streamed rows are checked by the collator
        for i, row in enumerate(zip(dataset["question"], dataset["response"], dataset["score"])):
            check_judge_row(*row, where=f"Row {i} of the {dataset_name} dataset")
        if args.max_length is None:
            return dataset
        return drop_long_rows(
            dataset,
            self._processor,
            args.max_length,
            dataset_name,
            num_proc=args.dataset_num_proc,
            judge_prompt=self.judge_prompt,
        )

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["question", "response", "score", "image"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        targets = inputs.pop("target_scores")  # (B,)
        group_ids = inputs.pop("group_ids")  # (B,)
        outputs = model(**inputs)
        logits = outputs.logits.squeeze(-1).float()  # (B,)
        predictions = torch.sigmoid(logits)

        if self.args.regression_loss == "bce":
            loss = nn.functional.binary_cross_entropy_with_logits(logits, targets)
        else:
            loss = nn.functional.mse_loss(predictions, targets)

        if mode == "train":
            num_tokens = self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            self._total_train_tokens += num_tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

        with torch.no_grad():
            all_predictions = self.accelerator.gather_for_metrics(predictions.detach())
            all_targets = self.accelerator.gather_for_metrics(targets)
            all_groups = self.accelerator.gather_for_metrics(group_ids)
            self._metrics[mode]["mae"].append((all_predictions - all_targets).abs().mean().item())
            self._metrics[mode]["mean_prediction"].append(all_predictions.mean().item())
            self._metrics[mode]["mean_target"].append(all_targets.mean().item())
            if mode == "train":
                accuracy, num_pairs = pairwise_accuracy(all_predictions, all_targets, all_groups)
                if num_pairs:
                    self._metrics[mode]["pairwise_accuracy"].append(accuracy)
            else:
                # Pairs from one question are rarely in the same eval batch: rank over the whole eval set in log().
                for key, value in (("p", all_predictions), ("t", all_targets), ("g", all_groups)):
                    self._eval_buffer[key].append(value.cpu())

        return (loss, outputs) if return_outputs else loss

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:  # the process that writes the weights
            save_judge_prompt(self.judge_prompt, output_dir or self.args.output_dir)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if not self.model.training and self._eval_buffer:
            accuracy, num_pairs = pairwise_accuracy(*(torch.cat(self._eval_buffer[k]) for k in ("p", "t", "g")))
            self._eval_buffer.clear()
            if num_pairs:
                self._metrics["eval"]["pairwise_accuracy"] = [accuracy]
            self._metrics["eval"]["num_pairs"] = [num_pairs]
        super().log(logs, start_time)
