"""Hub pushes: the model card a Trust-GRPO run writes, and uploads of the policy and the judge, network intercepted."""

import json
import shutil
from types import SimpleNamespace

import pytest
from hub_fakes import DATASET_ID, HUB_REPO, HubCalls
from huggingface_hub import ModelCard

from sophia_trl import hub, model_cards
from sophia_trl.configs import TrustGRPOConfig


def test_trainer_push_uploads_the_run_folder_to_the_repo(logged_and_pushed_run):
    trainer, output_dir, _, _, calls = logged_and_pushed_run
    # push_to_hub=True makes the repository when the trainer is built; push_to_hub() uploads the output folder.
    assert [call["repo_id"] for call in calls.create_repo] == [HUB_REPO]
    [upload] = calls.upload_folder
    assert upload["repo_id"] == HUB_REPO and upload["folder_path"] == str(output_dir)
    assert {"README.md", "config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= set(
        upload["files"]
    )
    assert "checkpoint-*" in upload["ignore_patterns"]


def test_pushed_model_card_states_method_settings_judge_and_paper(logged_and_pushed_run):
    _, output_dir, _, _, _ = logged_and_pushed_run
    card = ModelCard.load(output_dir / "README.md")
    assert {"trust-grpo", "sophia-trl", "trl"} <= set(card.data.tags)
    assert card.data.datasets == [DATASET_ID] and card.data.pipeline_tag == "image-text-to-text"
    assert card.data.base_model is None  # the tiny policy is a local folder: no local path on the Hub
    text = card.text
    assert "R = R_outcome + gamma * alpha * exp(-step / T) * R_thinking" in text
    for row in [
        "| `thinking_reward_alpha` | 0.3 |",
        "| `thinking_reward_T` | 2 (the run's total steps) |",
        "| `thinking_reward_preset` | paper |",
        "| `trust_weighting` | True |",
        "| `num_generations` | 4 |",
        "| `beta` | 0.0 |",
        "| `max_steps` | 2 |",
        "| `prompts per step` | 2 |",  # 8 completions / 4 generations
    ]:
        assert row in text, row
    assert "Thinking judge: `AdversarialJudge`" in text and "Reward functions: `parity_outcome`." in text
    assert "@article{fan2025sophiavl" in text and "https://huggingface.co/papers/2505.17018" in text
    assert f'from_pretrained("{HUB_REPO}"' in text
    assert "/tmp/" not in text


def test_card_with_an_explicit_horizon_and_a_hub_base_model(tmp_path):
    args = TrustGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        thinking_reward_T=500,
        thinking_reward_preset="official",
        per_device_train_batch_size=16,
        gradient_accumulation_steps=4,
        num_generations=8,
        max_steps=1500,
    )
    card = model_cards.trust_grpo_model_card(
        args,
        model_name="x",
        total_steps=1500,
        base_model="Qwen/Qwen2.5-VL-7B-Instruct",
        dataset_name=str(tmp_path),
        judge="`OpenAIJudge`, served model `judge`",
    )
    assert "| `thinking_reward_T` | 500 |" in card.text and "| `prompts per step` | 8 |" in card.text
    assert "| `thinking_reward_preset` | official |" in card.text
    assert card.data.base_model == "Qwen/Qwen2.5-VL-7B-Instruct" and card.data.datasets is None
    assert "[Qwen/Qwen2.5-VL-7B-Instruct](https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct)" in card.text
    assert str(tmp_path) not in card.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
        ("gpt2", "gpt2"),
        ("/home/me/outputs/run", None),
        ("outputs/demo/data/synthetic", None),
        ("./data", None),
        (None, None),
        ("", None),
    ],
)
def test_hub_name_keeps_hub_ids_only(name, expected):
    assert model_cards.hub_name(name) == expected


def test_describe_judge():
    class Served:
        model = "judge"

    def local(path):
        return SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(_name_or_path=path)))

    assert model_cards.describe_judge(None).startswith("none")
    assert model_cards.describe_judge(Served()) == "`Served`, served model `judge`"
    named = model_cards.describe_judge(local("bunny127/SophiaVL-R1-Thinking-Reward-Model-3B"))
    assert "(https://huggingface.co/bunny127/SophiaVL-R1-Thinking-Reward-Model-3B)" in named
    assert model_cards.describe_judge(local("/tmp/judge")) == "`SimpleNamespace` with a local checkpoint"


def test_judge_push_cli_writes_the_judge_card_and_uploads(tiny_judge_dir, tmp_path, monkeypatch):
    folder = tmp_path / "judge"
    shutil.copytree(tiny_judge_dir, folder)
    (folder / "judge_eval_results.json").write_text(
        json.dumps({"judge_eval_mae": 0.123, "judge_eval_pair_accuracy": 0.8, "epoch": 1.0})
    )
    (folder / "checkpoint-10").mkdir()
    calls = HubCalls().install(monkeypatch)
    hub.main(
        [
            "--folder",
            str(folder),
            "--repo_id",
            "me/thinking-judge",
            "--kind",
            "thinking_reward",
            "--base_model",
            "Qwen/Qwen2.5-VL-3B-Instruct",
            "--dataset_name",
            "bunny127/SophiaVL-R1-Thinking-156k",
            "--private",
        ]
    )
    assert calls.create_repo == [
        {"repo_id": "me/thinking-judge", "private": True, "exist_ok": True, "repo_type": "model"}
    ]
    [upload] = calls.upload_folder
    assert upload["repo_id"] == "me/thinking-judge" and upload["folder_path"] == str(folder)
    assert {"README.md", "model.safetensors"} <= set(upload["files"]) and "checkpoint-*" in upload["ignore_patterns"]
    card = ModelCard.load(folder / "README.md")
    assert {"thinking-reward", "generative"} <= set(card.data.tags)  # judge type read from config.json
    assert card.data.base_model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert "| `judge_eval_mae` | 0.123 |" in card.text and "| `judge_eval_pair_accuracy` | 0.8 |" in card.text
    assert "epoch" not in card.text and "2505.17018" in card.text
    # The folder carries this project's prompt (as a stage-1 judge does): the card says so.
    assert "`judge_prompt.yaml` beside the weights: this project's prompt" in card.text


def test_push_cli_refuses_folders_without_a_model_or_a_card(tmp_path, monkeypatch):
    calls = HubCalls().install(monkeypatch)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hub.push_folder_to_hub(tmp_path, "me/x")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no README.md"):
        hub.main(["--folder", str(tmp_path), "--repo_id", "me/x", "--kind", "policy"])
    assert calls.upload_folder == [] and calls.create_repo == []
