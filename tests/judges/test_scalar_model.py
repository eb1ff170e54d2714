"""The scalar-head thinking reward model (`sophia_trl.judges.scalar_model`): pooling, loading and saving."""

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from sophia_trl.judges import build_judge_inputs
from sophia_trl.judges.scalar_model import Qwen2_5_VLForScalarReward, last_token_indices, load_scalar_reward_model


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], [2, 4]),  # right padding
        ([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]], [4, 4]),  # left padding
        ([[1, 0, 0, 0, 0]], [0]),
    ],
)
def test_last_token_indices(mask, expected):
    assert last_token_indices(torch.tensor(mask)).tolist() == expected


@pytest.fixture(scope="module")
def scalar_model(tiny_judge_dir):
    return load_scalar_reward_model(str(tiny_judge_dir)).eval()


def test_scalar_model_takes_the_backbone_of_a_generative_checkpoint(tiny_judge_dir, scalar_model):
    generative = dict(AutoModelForImageTextToText.from_pretrained(tiny_judge_dir).named_parameters())
    scalar = dict(scalar_model.named_parameters())
    assert sorted(set(scalar) - set(generative)) == ["score.bias", "score.weight"]
    for name, param in scalar.items():
        if name in generative:
            assert torch.equal(param, generative[name]), name
    assert scalar_model.config.num_labels == 1


def test_scalar_model_round_trips_and_pools_independently_of_padding(
    tiny_judge_dir, scalar_model, thinking_rows, tmp_path
):
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    rows = thinking_rows(3)
    questions, responses, images = rows["question"], rows["response"], rows["image"]
    with torch.no_grad():
        single = torch.cat(
            [
                scalar_model(**build_judge_inputs(processor, [q], [r], [i])).logits
                for q, r, i in zip(questions, responses, images)
            ]
        )
        for side in ("left", "right"):
            processor.tokenizer.padding_side = side
            batch = build_judge_inputs(processor, questions, responses, images)
            assert (batch["attention_mask"] == 0).any()  # the rows really are padded
            batched = scalar_model(**batch).logits
            torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
        scalar_model.save_pretrained(tmp_path / "scalar")
        reloaded = Qwen2_5_VLForScalarReward.from_pretrained(tmp_path / "scalar").eval()
        torch.testing.assert_close(reloaded(**batch).logits, batched)
    assert single.shape == (6, 1)


def test_load_scalar_reward_model_rejects_other_architectures(tmp_path):
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match="qwen2_5_vl"):
        load_scalar_reward_model(str(tmp_path))
