"""The scalar-head thinking reward model's trainer (`sophia_trl.reward_trainer`) and the ScalarJudge that loads its
output."""

import inspect

import pytest
import torch
from datasets import Dataset
from PIL import Image
from transformers import AutoProcessor
from trl import RewardTrainer

from sophia_trl.configs import ThinkingRewardConfig
from sophia_trl.judges import ScalarJudge, build_judge_inputs
from sophia_trl.reward_trainer import DataCollatorForThinkingReward, ThinkingRewardTrainer


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


def test_trainer_moves_predictions_toward_the_labels(tiny_judge_dir, thinking_rows, tmp_path):
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


def test_resume_loads_the_checkpoints_weights(tiny_judge_dir, thinking_rows, tmp_path):
    # ResumeLoadsCheckpointWeights: the scalar model saves its backbone as model.* + visual.*, as Qwen2.5-VL does.
    data = thinking_rows(2)
    args = make_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    first = ThinkingRewardTrainer(str(tiny_judge_dir), args=args, train_dataset=data)
    first.train()
    resumed = ThinkingRewardTrainer(str(tiny_judge_dir), args=args, train_dataset=data)
    resumed._load_from_checkpoint(str(tmp_path / "out" / "checkpoint-2"))
    for name, p in resumed.model.named_parameters():
        assert torch.equal(p, dict(first.model.named_parameters())[name]), name


@pytest.mark.parametrize("loss_name", ["bce", "mse"])
def test_compute_loss_matches_the_formula(tiny_judge_dir, thinking_rows, tmp_path, loss_name):
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
