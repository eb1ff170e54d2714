"""The scalar-head thinking reward model: Qwen2.5-VL with a linear head that gives one logit per sequence.

[`Qwen2_5_VLForScalarReward`] is what [`~sophia_trl.reward_trainer.ThinkingRewardTrainer`] trains and what
[`~sophia_trl.judges.ScalarJudge`] scores with; [`load_scalar_reward_model`] loads it from a scalar-head checkpoint or,
with a new head, from any Qwen2.5-VL checkpoint. This module imports only torch and transformers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.modeling_outputs import SequenceClassifierOutputWithPast
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLModel,
    Qwen2_5_VLPreTrainedModel,
)


def last_token_indices(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row, for left or right padding: `(B, L) -> (B,)`."""
    length = attention_mask.shape[-1]
    return (length - 1) - attention_mask.flip(-1).long().argmax(-1)


class Qwen2_5_VLForScalarReward(Qwen2_5_VLPreTrainedModel):
    """
    Qwen2.5-VL with a scalar head: the backbone's hidden state at the last non-padding token goes through a linear
    layer to one logit per sequence; `sigmoid(logit)` is the thinking score in [0, 1].

    Loading a generative Qwen2.5-VL checkpoint (e.g. `Qwen/Qwen2.5-VL-3B-Instruct`) takes its backbone and leaves the
    head newly initialised (the language-model head is dropped); loading a checkpoint saved by this class restores the
    head too. No `trust_remote_code` is involved: load it with this class, not with an Auto class.

    Args:
        config ([`~transformers.Qwen2_5_VLConfig`]):
            The Qwen2.5-VL configuration; `num_labels` is set to 1.
    """

    def __init__(self, config: Qwen2_5_VLConfig):
        config.num_labels = 1
        super().__init__(config)
        self.model = Qwen2_5_VLModel(config)
        self.score = nn.Linear(config.text_config.hidden_size, 1)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutputWithPast:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Token ids as built by the processor (image placeholders expanded).
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`, *optional*):
                1 for real tokens, 0 for padding (either side); the head reads the last 1 of each row.
            pixel_values (`torch.Tensor`, *optional*):
                Image patches of all the batch's images, as the processor returns them.
            image_grid_thw (`torch.LongTensor` of shape `(num_images, 3)`, *optional*):
                Patch grid of each image.

        Returns:
            [`~transformers.modeling_outputs.SequenceClassifierOutputWithPast`]: `logits` of shape `(batch_size, 1)`.
        """
        kwargs.pop("use_cache", None)  # no generation: never build a KV cache
        kwargs.pop("labels", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            **kwargs,
        )
        hidden = outputs.last_hidden_state  # (B, L, H)
        if attention_mask is None:
            last = torch.full((hidden.shape[0],), hidden.shape[1] - 1, device=hidden.device)
        else:
            last = last_token_indices(attention_mask).to(hidden.device)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        logits = self.score(pooled.to(self.score.weight.dtype))  # (B, 1)
        return SequenceClassifierOutputWithPast(logits=logits, hidden_states=outputs.hidden_states)


# Checkpoints of Qwen2.5-VL (and this class's own saves) store the backbone as `model.*` + `visual.*`; transformers
# maps those keys to `model.language_model.*` / `model.visual.*` only for its own classes, so register the same
# renaming for this one (it is also reversed on save, keeping the standard layout on disk).
register_checkpoint_conversion_mapping(
    Qwen2_5_VLForScalarReward.__name__,
    get_checkpoint_conversion_mapping("Qwen2VLForConditionalGeneration"),
    overwrite=True,
)


def load_scalar_reward_model(model_name_or_path: str, **kwargs: Any) -> Qwen2_5_VLForScalarReward:
    """
    Loads a [`Qwen2_5_VLForScalarReward`] from a scalar-head checkpoint or, with a new head, from any Qwen2.5-VL one.

    Args:
        model_name_or_path (`str`):
            Local folder or Hub id.
        **kwargs:
            Passed to `from_pretrained` (e.g. `dtype`, `attn_implementation`).

    Returns:
        [`Qwen2_5_VLForScalarReward`]: The model.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_name_or_path)
    if not isinstance(config, Qwen2_5_VLConfig):
        raise ValueError(
            f"{model_name_or_path} is a {config.model_type!r} model; the scalar thinking reward model is built on "
            "Qwen2.5-VL (model_type 'qwen2_5_vl'). Use the generative judge (--judge_type generative) for other "
            "architectures."
        )
    return Qwen2_5_VLForScalarReward.from_pretrained(model_name_or_path, **kwargs)
