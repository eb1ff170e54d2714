"""Scalar-head thinking reward model, its trainer and ScalarJudge (`sophia_trl.reward_trainer`)."""

import inspect
import math

import pytest
import torch
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import RewardTrainer

from sophia_trl.reward_trainer import (
    DataCollatorForThinkingReward,
    Qwen2_5_VLForScalarReward,
    ThinkingRewardConfig,
    ThinkingRewardTrainer,
    last_token_indices,
    load_scalar_reward_model,
)
from sophia_trl.rewards.thinking import ScalarJudge, build_judge_inputs, pairwise_accuracy

FEATURES = Features(
    {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
)
SOUND = "<think>There are 2 red circles and 1 blue square, so 2 + 1 = 3 shapes.</think><answer>3</answer>"
FLAWED = "<think>" + "Shapes are nice, I like shapes. " * 30 + "</think><answer>7</answer>"  # redundant filler


def thinking_rows(num_questions=6):
    """Two responses per question (sound 0.9, flawed 0.1); questions alternate between image and text-only."""
    rows = []
    for q in range(num_questions):
        image = Image.new("RGB", (56, 56), (40 * q % 256, 100, 200)) if q % 3 != 2 else None
        for response, score in ((SOUND, 0.9), (FLAWED, 0.1)):
            rows.append(
                {
                    "question": f"How many shapes are in scene {q}?",
                    "image": image,
                    "response": response,
                    "score": score,
                }
            )
    return Dataset.from_list(rows, features=FEATURES)


def make_args(tmp_path, **kwargs):
    defaults = {
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 2,
        "max_steps": 8,
        "learning_rate": 1e-3,
        "use_cpu": True,
        "bf16": False,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 4,
        "gradient_checkpointing": False,
        "seed": 0,
    }
    return ThinkingRewardConfig(str(tmp_path / "out"), **{**defaults, **kwargs})


# ---------------------------------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------------------------------


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


def test_pairwise_accuracy_by_hand():
    # Group 0: targets 0.9 > 0.5 > 0.1, predictions order (0.9, 0.5) right, (0.9, 0.1) right, (0.5, 0.1) wrong.
    # Group 1: targets 0.2 < 0.8 with predictions tied: wrong. Equal targets (group 2) make no pair.
    predictions = torch.tensor([0.8, 0.2, 0.3, 0.5, 0.5, 0.1, 0.9])
    targets = torch.tensor([0.9, 0.5, 0.1, 0.2, 0.8, 0.4, 0.4])
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    accuracy, num_pairs = pairwise_accuracy(predictions, targets, groups)
    assert num_pairs == 4
    assert accuracy == pytest.approx(2 / 4)
    assert math.isnan(pairwise_accuracy(predictions[5:], targets[5:], groups[5:])[0])


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


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


def test_scalar_model_round_trips_and_pools_independently_of_padding(tiny_judge_dir, scalar_model, tmp_path):
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


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------


def test_overridden_reward_trainer_hooks_keep_their_contract():
    # Written against TRL 1.16.0: these are the hooks ThinkingRewardTrainer overrides or relies on.
    params = lambda f: list(inspect.signature(f).parameters)  # noqa: E731
    assert params(RewardTrainer._prepare_dataset) == ["self", "dataset", "processing_class", "args", "dataset_name"]
    assert params(RewardTrainer.compute_loss) == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert params(RewardTrainer.log) == ["self", "logs", "start_time"]
    assert hasattr(RewardTrainer, "_set_signature_columns_if_needed")
    source = inspect.getsource(RewardTrainer.__init__)
    assert "self._metrics = " in source and "self._total_train_tokens" in source and "self._tp_size" in source


def test_trainer_moves_predictions_toward_the_labels(tiny_judge_dir, tmp_path):
    data = thinking_rows(4)
    trainer = ThinkingRewardTrainer(
        str(tiny_judge_dir), args=make_args(tmp_path), train_dataset=data, eval_dataset=data
    )
    before_params = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()

    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before_params[n])]
    assert "score.weight" in changed and any("language_model" in n or n.startswith("model.") for n in changed)
    # 4 questions x 1 pair (0.9 vs 0.1) each, over the whole eval set although the eval batch holds 2 rows.
    assert after["eval_num_pairs"] == 4
    assert after["eval_mae"] < before["eval_mae"] - 0.1
    assert after["eval_loss"] < before["eval_loss"]
    assert after["eval_pairwise_accuracy"] == 1.0
    logged = [log for log in trainer.state.log_history if "mae" in log]
    assert logged and all({"mae", "mean_prediction", "mean_target"} <= set(log) for log in logged)
    assert any("pairwise_accuracy" in log for log in logged)  # logged when a training batch holds a pair

    trainer.save_model(tmp_path / "judge")
    judge = ScalarJudge(tmp_path / "judge", batch_size=4, device="cpu")
    scores = judge.score(data["question"], data["response"], data["image"])
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Sound responses score higher than flawed ones for every question, and the judge matches the trained model.
    assert all(scores[i] > scores[i + 1] for i in range(0, len(scores), 2))
    batch = DataCollatorForThinkingReward(trainer.processing_class)(list(data))
    trainer.model.eval()
    with torch.no_grad():
        logits = trainer.model(**{k: v for k, v in batch.items() if k not in ("target_scores", "group_ids")}).logits
    assert scores == pytest.approx(torch.sigmoid(logits.squeeze(-1)).tolist(), abs=1e-5)
    mae = sum(abs(s - t) for s, t in zip(scores, data["score"])) / len(scores)
    assert mae == pytest.approx(after["eval_mae"], abs=1e-4)


@pytest.mark.parametrize("loss_name", ["bce", "mse"])
def test_compute_loss_matches_the_formula(tiny_judge_dir, tmp_path, loss_name):
    data = thinking_rows(2)
    trainer = ThinkingRewardTrainer(
        str(tiny_judge_dir), args=make_args(tmp_path, regression_loss=loss_name), train_dataset=data
    )
    batch = DataCollatorForThinkingReward(trainer.processing_class)(list(data))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        z = trainer.model(
            **{k: v for k, v in batch.items() if k not in ("target_scores", "group_ids")}
        ).logits.squeeze(-1)
    y = batch["target_scores"]
    p = torch.sigmoid(z)
    expected = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean() if loss_name == "bce" else ((p - y) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_collator_groups_rows_by_question_and_image(tiny_judge_dir):
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    red, blue = Image.new("RGB", (56, 56), "red"), Image.new("RGB", (56, 56), "blue")
    rows = [
        {"question": "q", "image": red, "response": "a", "score": 0.2},
        {"question": "q", "image": red.copy(), "response": "b", "score": 0.4},
        {"question": "q", "image": blue, "response": "a", "score": 0.6},
        {"question": "q", "image": None, "response": "a", "score": 0.8},
    ]
    batch = DataCollatorForThinkingReward(processor)(rows)
    groups = batch["group_ids"].tolist()
    assert groups[0] == groups[1] and len({groups[1], groups[2], groups[3]}) == 3
    assert batch["target_scores"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert batch["image_grid_thw"].shape[0] == 3 and "pixel_values" in batch


@pytest.mark.parametrize(
    "rows, match",
    [
        ([{"question": "q", "response": "r"}], r"no column\(s\) \['score'\]"),
        (
            [{"question": "q", "response": "r", "score": 0.5}, {"question": "q", "response": "r", "score": 1.5}],
            "Row 1 .* score 1.5",
        ),
        ([{"question": "q", "response": "r", "score": None}], "Row 0 .* score None"),
    ],
)
def test_bad_rows_are_named(tiny_judge_dir, tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        ThinkingRewardTrainer(str(tiny_judge_dir), args=make_args(tmp_path), train_dataset=Dataset.from_list(rows))


def test_rows_longer_than_max_length_are_dropped_with_a_warning(tiny_judge_dir, tmp_path, caplog):
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    short = {"question": "q", "response": "ok", "score": 0.5}
    long = {"question": "q", "response": "word " * 300, "score": 0.5}
    short_len = int(build_judge_inputs(processor, ["q"], ["ok"], [None])["attention_mask"].sum())
    trainer = ThinkingRewardTrainer(
        str(tiny_judge_dir),
        args=make_args(tmp_path, max_length=short_len),
        train_dataset=Dataset.from_list([short, long, short]),
    )
    assert len(trainer.train_dataset) == 2
    assert "Dropped 1 of 3 train rows longer than max_length" in caplog.text


def test_config_checks():
    with pytest.raises(ValueError, match="regression_loss"):
        ThinkingRewardConfig("out", regression_loss="huber", use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="center_rewards_coefficient"):
        ThinkingRewardConfig("out", center_rewards_coefficient=0.01, use_cpu=True, bf16=False)
