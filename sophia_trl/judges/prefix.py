"""One prefill per group: the judge prompt's shared prefix computed once and its key/value cache reused per response.

The G responses of a GRPO group share the judge's system text, image and question; with a template that puts those
before the response (this project's does), every row's tokens start with the same prefix, and the image tokens
dominate it. [`split_shared_prefix`] finds that prefix in a group's tokens, [`prefill`] runs it once (vision tower
included) and [`SharedPrefix.forward_suffixes`] runs a batch of responses on a copy of its key/value cache, with the
position ids each token has in the whole prompt, so the model sees exactly what it sees without sharing.

It needs a Qwen2-VL-family backbone (`model.model` with `get_rope_index`, the multimodal rotary positions); a group
whose common prefix does not hold the image (a template that puts the image after the response) is not shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from .base import RowImages, image_list, row_image_hashes
from .messages import render_judge_texts

# Tokens each response keeps outside the shared prefix: the expected readout reads the last three positions.
MIN_SUFFIX_TOKENS = 3


def supports_shared_prefix(model: Any) -> bool:
    """Whether `model` has the backbone this module drives: `model.model` with Qwen2-VL's `get_rope_index`."""
    return hasattr(getattr(model, "model", None), "get_rope_index")


def group_rows(questions: list[str], images: list[RowImages]) -> list[list[int]]:
    """Row indices grouped by (question, image content), in order of first appearance."""
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, (question, digest) in enumerate(zip(questions, row_image_hashes(images))):
        groups.setdefault((question, digest), []).append(i)
    return list(groups.values())


@dataclass
class GroupTokens:
    """A group's prompts split into the shared prefix and each row's own tokens (its suffix)."""

    prefix_ids: torch.Tensor  # (P,)
    suffixes: list[list[int]]  # one token list per row, each >= MIN_SUFFIX_TOKENS long
    pixel_values: torch.Tensor | None  # the image's patches (the group's one image), or None
    image_grid_thw: torch.Tensor | None  # (1, 3)


def tokenize_group(
    processor: Any, texts: list[str], image: Image.Image | None, image_token_id: int
) -> tuple[list[list[int]], Any]:
    """
    The token ids of a group's prompt texts, which hold the same image, with the image processed once.

    The processor runs on the first row with the image (patches and placeholder expansion); the other rows are
    tokenized as text and their one image placeholder expanded to as many tokens, which is what the processor does. The
    first row is tokenized both ways as a check: if they differ, every row goes through the processor with its image.

    Returns:
        `tuple[list[list[int]], BatchFeature]`: The rows' token ids and the processor's output for the first row
        (`pixel_values`, `image_grid_thw` when there is an image).
    """
    first = processor(text=texts[:1], images=[image] if image is not None else None, return_tensors="pt")
    row = first["input_ids"][0].tolist()
    n_image_tokens = row.count(image_token_id)

    def expand(ids: list[int]) -> list[int]:
        if n_image_tokens and ids.count(image_token_id) == 1:
            at = ids.index(image_token_id)
            return ids[:at] + [image_token_id] * n_image_tokens + ids[at + 1 :]
        return ids

    tokenized = processor.tokenizer(texts)["input_ids"]
    if expand(tokenized[0]) != row:  # a processor that expands differently: let it process every row
        everything = processor(text=texts, images=[image] * len(texts) if image is not None else None)
        return [list(ids) for ids in everything["input_ids"]], first
    return [row] + [expand(ids) for ids in tokenized[1:]], first


def split_shared_prefix(rows: list[list[int]], first: Any, image_token_id: int) -> GroupTokens | None:
    """
    Split a group's prompts (one question and image, several responses) into their common token prefix and the rest
    of each row.

    Args:
        rows (`list[list[int]]`):
            The token ids of each row, image placeholders expanded ([`tokenize_group`]).
        first ([`~transformers.BatchFeature`]):
            The processor's output for the first row: the image's `pixel_values` and `image_grid_thw`.
        image_token_id (`int`):
            The model's image placeholder token.

    Returns:
        [`GroupTokens`], or `None` when sharing cannot help or would be wrong: fewer than two rows, or a prefix that
        does not hold all of the image's tokens (the image comes after where the rows differ).
    """
    if len(rows) < 2:
        return None
    length = min(len(r) for r in rows) - MIN_SUFFIX_TOKENS
    common = 0
    while common < length and all(r[common] == rows[0][common] for r in rows):
        common += 1
    n_image_tokens = rows[0].count(image_token_id)
    if common == 0 or rows[0][:common].count(image_token_id) != n_image_tokens:
        return None
    has_image = n_image_tokens > 0
    pixel_values = first["pixel_values"] if has_image else None
    grid = first["image_grid_thw"] if has_image else None
    return GroupTokens(torch.tensor(rows[0][:common]), [r[common:] for r in rows], pixel_values, grid)


@dataclass
class SharedPrefix:
    """A prefix run once: its key/value cache and where the rows' own tokens start in position space."""

    backbone: Any
    prefix_ids: torch.Tensor  # (P,)
    cache: Any  # transformers' DynamicCache of batch size 1
    length: int  # P, the prefix's tokens
    next_position: int  # the rotary position of the token after the prefix (P + the image's position delta)

    def forward_suffixes(self, suffixes: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """
        Run a batch of rows' own tokens on a copy of the prefix's cache.

        The suffixes are left padded, so every row ends at the last column (as the unshared batches do); the padding
        sits between the prefix and each row's tokens and is masked out, and each token gets the position it has in
        its whole prompt.

        Returns:
            `tuple[torch.Tensor, dict]`: The last hidden states `(B, S, H)` and the state to continue from
            ([`SharedPrefix.step`]): `past_key_values`, `attention_mask` `(B, P + S)` and `next_positions` `(B,)`.
        """
        device = self.cache.layers[0].keys.device
        width = max(len(s) for s in suffixes)
        batch = len(suffixes)
        input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
        suffix_mask = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.full((batch, width), self.next_position, dtype=torch.long)
        for b, suffix in enumerate(suffixes):
            start = width - len(suffix)
            input_ids[b, start:] = torch.tensor(suffix)
            suffix_mask[b, start:] = 1
            positions[b, start:] = torch.arange(self.next_position, self.next_position + len(suffix))
        attention_mask = torch.cat([torch.ones((batch, self.length), dtype=torch.long), suffix_mask], dim=1)
        from transformers import DynamicCache

        # A cache of the prefix's keys and values for each row of the batch (the batch's own tokens are appended).
        cache = DynamicCache(
            [
                (layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
                for layer in self.cache.layers
            ]
        )
        state = {
            "past_key_values": cache,
            "attention_mask": attention_mask.to(device),
            "next_positions": positions[:, -1].to(device) + 1,
        }
        hidden = self._forward(input_ids.to(device), positions.to(device), state)
        return hidden, state

    def step(self, token_ids: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """One more token per row `(B,)` after [`forward_suffixes`] (greedy generation): its hidden state `(B, H)`."""
        ones = torch.ones_like(state["attention_mask"][:, :1])
        state["attention_mask"] = torch.cat([state["attention_mask"], ones], dim=1)
        positions = state["next_positions"][:, None]  # (B, 1)
        state["next_positions"] = state["next_positions"] + 1
        return self._forward(token_ids[:, None], positions, state)[:, -1]

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        # Text after the image: the three rotary sections (temporal, height, width) share the position.
        position_ids = positions[None].expand(3, -1, -1)  # (3, B, S)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=state["attention_mask"],
            position_ids=position_ids,
            past_key_values=state["past_key_values"],
            use_cache=True,
        )
        return out.last_hidden_state


def prefill(model: Any, group: GroupTokens, device: str | torch.device) -> SharedPrefix:
    """Run a group's shared prefix (vision tower included) once through `model.model`, keeping its key/value cache."""
    backbone = model.model
    prefix = group.prefix_ids[None].to(device)  # (1, P)
    if group.pixel_values is not None:
        mm_token_type_ids = (prefix == model.config.image_token_id).int()
        position_ids, delta = backbone.get_rope_index(
            prefix, mm_token_type_ids=mm_token_type_ids, image_grid_thw=group.image_grid_thw.to(device)
        )
        delta = int(delta.item())
    else:
        position_ids, delta = torch.arange(prefix.shape[1], device=device)[None, None].expand(3, 1, -1), 0
    out = backbone(
        input_ids=prefix,
        attention_mask=torch.ones_like(prefix),
        position_ids=position_ids,
        pixel_values=None if group.pixel_values is None else group.pixel_values.to(device),
        image_grid_thw=None if group.image_grid_thw is None else group.image_grid_thw.to(device),
        use_cache=True,
    )
    length = prefix.shape[1]
    return SharedPrefix(backbone, group.prefix_ids, out.past_key_values, length, length + delta)


def suffix_batches(group: GroupTokens, batch_size: int) -> list[list[int]]:
    """The group's row positions in batches of similar suffix length."""
    order = sorted(range(len(group.suffixes)), key=lambda i: len(group.suffixes[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def score_shared_groups(
    judge: Any,
    questions: list[str],
    responses: list[str],
    images: list[RowImages],
    assistant_prefix: str,
    score_batch: Callable[[SharedPrefix, list[list[int]]], list[Any]],
) -> tuple[dict[int, Any], list[int]]:
    """
    Score the rows that share a prefix with others, one prefill per group.

    Args:
        judge (`_LocalJudge`):
            The judge: its `model`, `processor`, `judge_prompt`, `batch_size` and `device`.
        questions, responses, images:
            The rows.
        assistant_prefix (`str`):
            Text after the generation prompt (as in `build_judge_inputs`).
        score_batch (`Callable`):
            `(prefix, suffixes) -> one result per suffix`: the readout on a batch of the group's rows.

    Returns:
        `tuple[dict[int, Any], list[int]]`: The results by row index, and the rows left to score without sharing
        (groups of one, groups of rows with several images, and groups whose common prefix does not hold the image).
    """
    image_token_id = judge.model.config.image_token_id
    results: dict[int, Any] = {}
    unshared: list[int] = []
    for rows in group_rows(questions, images):
        group = None
        # A row with several images is scored without sharing: the prefill processes one image per group.
        if len(rows) > 1 and len(image_list(images[rows[0]])) <= 1:
            texts = render_judge_texts(
                judge.processor,
                [questions[i] for i in rows],
                [responses[i] for i in rows],
                [images[i] for i in rows],
                judge.judge_prompt,
                assistant_prefix,
            )
            token_rows, first = tokenize_group(judge.processor, texts, images[rows[0]], image_token_id)
            group = split_shared_prefix(token_rows, first, image_token_id)
        if group is None:
            unshared.extend(rows)
            continue
        prefix = prefill(judge.model, group, judge.device)
        for batch in suffix_batches(group, judge.batch_size):
            for k, result in zip(batch, score_batch(prefix, [group.suffixes[k] for k in batch])):
                results[rows[k]] = result
    return results, sorted(unshared)
