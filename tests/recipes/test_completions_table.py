"""The completions table: text columns for VLM prompts, trust columns, and real wandb (offline) / trackio logging."""

import json
import math
import sqlite3

import pytest
from PIL import Image

from sophia_trl.logging_utils import completions_table_columns, conversation_as_text, table_backends
from sophia_trl.trust import trust_weights


@pytest.mark.parametrize(
    ("messages", "text"),
    [
        ("plain prompt", "plain prompt"),
        ([{"role": "user", "content": "How many?"}], "user: How many?"),
        (
            [
                {"role": "system", "content": "Think first."},
                {
                    "role": "user",
                    "content": [{"type": "image", "image": object()}, {"type": "text", "text": "Count."}],
                },
            ],
            "system: Think first.\nuser: <image>Count.",
        ),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}], "user: <image>"),
        (
            [{"role": "assistant", "content": [{"type": "text", "text": "<think>a</think>"}]}],
            "assistant: <think>a</think>",
        ),
    ],
)
def test_conversation_as_text(messages, text):
    assert conversation_as_text(messages) == text


def test_table_backends_keeps_wandb_and_trackio_only():
    assert table_backends(["tensorboard", "trackio", "wandb"]) == ["trackio", "wandb"]
    assert table_backends("wandb") == ["wandb"]
    assert table_backends(None) == [] and table_backends("none") == []


def hand_logs():
    red = Image.new("RGB", (8, 8), "red")
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}]
    return {
        "prompt": [user, user, [{"role": "user", "content": "Text only?"}]],
        "completion": [[{"role": "assistant", "content": f"<answer>{i}</answer>"}] for i in range(3)],
        "rewards": {"outcome_reward": [1.0, 0.0, 1.0], "thinking_reward": [0.1, 0.0, 0.3]},
        "advantages": [1.2, -1.2, 0.0],
        "extra": {
            "trust_gamma": [0.5, 0.5, 1.0],
            "extracted_answer": ["0", "1", "2"],
            "thinking_reward_raw": [0.2, float("nan"), 1.0],
        },
        "images": [[red], [red], []],
    }


def test_completions_table_columns_from_hand_built_logs():
    logs = hand_logs()
    columns = completions_table_columns(logs, step=7, reward_names=["outcome_reward", "thinking_reward"])
    assert list(columns) == [
        "step",
        "image",
        "prompt",
        "completion",
        "outcome_reward",
        "thinking_reward_raw",
        "trust_gamma",
        "thinking_reward",
        "extracted_answer",
        "advantage",
    ]
    assert columns["step"] == [7, 7, 7]
    assert columns["image"][0] is logs["images"][0][0] and columns["image"][2] is None
    assert columns["prompt"] == ["user: <image>Count.", "user: <image>Count.", "user: Text only?"]
    assert columns["completion"][1] == "assistant: <answer>1</answer>"
    assert columns["thinking_reward_raw"] == [0.2, None, 1.0]  # a failed judge call is missing, not NaN
    assert columns["trust_gamma"] == [0.5, 0.5, 1.0] and columns["advantage"] == [1.2, -1.2, 0.0]
    without_images = completions_table_columns(logs, 7, ["outcome_reward", "thinking_reward"], with_images=False)
    assert "image" not in without_images


def test_completions_table_rejects_columns_of_another_length():
    logs = hand_logs()
    logs["extra"]["trust_gamma"] = [1.0]
    with pytest.raises(ValueError, match="trust_gamma"):
        completions_table_columns(logs, 1, ["outcome_reward", "thinking_reward"])


def wandb_tables(wandb_dir):
    """The completions tables as wandb stages them: a table with images is logged as a run artifact, whose table JSON
    (with the image cells) and PNG files wait under WANDB_DATA_DIR until the run is synced."""
    tables = []
    for path in (wandb_dir / "data").rglob("*"):
        if path.is_file() and path.read_bytes()[:1] == b"{":
            table = json.loads(path.read_text())
            if table.get("_type") == "table" and "trust_gamma" in table["columns"]:
                tables.append(table)
    return sorted(tables, key=lambda table: table["data"][0][0])


def rows_by_column(table):
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def test_wandb_offline_run_logs_a_vlm_completions_table(logged_and_pushed_run):
    trainer, output_dir, wandb_dir, _, _ = logged_and_pushed_run
    # The run's own record of the logged tables (the images are in the staged artifact below).
    assert list((wandb_dir / "wandb").rglob("completions_*.table.json"))
    tables = wandb_tables(wandb_dir)
    assert tables, "no completions table was logged to wandb"
    assert tables[0]["columns"] == [
        "step",
        "image",
        "prompt",
        "completion",
        "parity_outcome",
        "thinking_reward_raw",
        "trust_gamma",
        "thinking_reward",
        "advantage",
    ]
    rows = [row for table in tables for row in rows_by_column(table)]
    # wandb stages every logged table in two files; the last step's table is logged once like the others (the run
    # summary logged after it does not repeat it: that would give 2 files for step 1 and 4 for step 2).
    assert [table["data"][0][0] for table in tables] == [1, 1, 2, 2]
    assert all(len(table["data"]) == 8 for table in tables)  # every completion of the step
    for row in rows:
        assert row["image"]["_type"] == "image-file" and (row["image"]["width"], row["image"]["height"]) == (56, 56)
        assert row["prompt"].startswith("user: <image>")
    # TRL's own parquet files are still written, with the conversations as they were.
    assert sorted(p.name for p in (output_dir / "completions").iterdir())[:2] == [
        "completions_00001.parquet",
        "completions_00002.parquet",
    ]


def test_table_rewards_follow_the_trust_grpo_equation(logged_and_pushed_run):
    _, _, wandb_dir, _, _ = logged_and_pushed_run
    import torch

    seen_untrusted = False
    for table in wandb_tables(wandb_dir):
        rows = rows_by_column(table)
        step = rows[0]["step"]
        alpha = 0.3 * math.exp(-(step - 1) / 2)  # step k's rewards are computed at global step k - 1; T = 2 steps
        outcome = torch.tensor([row["parity_outcome"] for row in rows])
        raw = torch.tensor([row["thinking_reward_raw"] for row in rows])
        gamma = trust_weights(outcome, raw, num_generations=4).repeat_interleave(4)
        for row, g in zip(rows, gamma.tolist()):
            # AdversarialJudge gives 1 to wrong and 0 to right completions: mixed groups get gamma = exp(0 - 1).
            assert row["thinking_reward_raw"] == 1.0 - row["parity_outcome"]
            assert row["trust_gamma"] == pytest.approx(g)
            assert row["trust_gamma"] in (pytest.approx(1.0), pytest.approx(math.exp(-1)))
            assert row["thinking_reward"] == pytest.approx(g * alpha * row["thinking_reward_raw"], abs=1e-6)
            seen_untrusted |= row["trust_gamma"] < 1
    assert seen_untrusted, "no group had right and wrong completions: the run does not exercise gamma < 1"


def test_trackio_run_logs_the_completions_table(logged_and_pushed_run):
    _, _, _, trackio_dir, _ = logged_and_pushed_run
    [db] = [p for p in trackio_dir.glob("*.db")]
    with sqlite3.connect(db) as connection:
        logged = [json.loads(m) for (m,) in connection.execute("select metrics from metrics")]
    tables = [entry["completions"] for entry in logged if "completions" in entry]
    assert tables, "no completions table was logged to trackio"
    assert "train/trust/gamma_mean" in {key for entry in logged for key in entry}  # the trust metrics reach trackio
    rows = tables[0]["_value"]
    assert rows[0]["image"]["_type"] == "trackio.image" and rows[0]["prompt"].startswith("user: <image>")
    assert {"parity_outcome", "thinking_reward_raw", "trust_gamma", "thinking_reward", "advantage"} <= set(rows[0])


def test_trl_stock_table_still_breaks_on_vlm_prompts():
    """Why VLMCompletionsTableLogging (sophia_trl/trl_compat.py) replaces TRL's wandb table (TRL 1.16): prompts stay
    message lists with image blocks, which wandb rejects from the second row on. When this stops failing, it can go."""
    import pandas as pd
    import wandb
    from trl.trainer.utils import strip_images_from_messages

    prompt = [
        {
            "role": "user",
            "content": [{"type": "image", "image": Image.new("RGB", (4, 4))}, {"type": "text", "text": "Count."}],
        }
    ]
    stripped = strip_images_from_messages(prompt)
    with pytest.raises(TypeError, match="incompatible types"):
        wandb.Table(dataframe=pd.DataFrame({"prompt": [stripped, stripped]}))
    wandb.Table(dataframe=pd.DataFrame({"prompt": [conversation_as_text(stripped)] * 2}))  # text prompts are fine
