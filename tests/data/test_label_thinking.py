"""data_prep/label_thinking.py: reading pairs, labelling with a judge, filtering, and bin balancing."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from datasets import load_from_disk

from sophia_trl.prompts import build_prompt
from sophia_trl.tiny.scenes import make_synthetic_dataset


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("label_thinking")


class ScriptedJudge:
    """Gives each response the next of its scripted votes; records what it was asked."""

    def __init__(self, votes):
        self.votes = {response: list(v) for response, v in votes.items()}
        self.calls = []

    def score(self, questions, responses, images=None):
        self.calls.append((list(questions), list(responses), images))
        return [self.votes[r].pop(0) for r in responses]


# --- Balancing -----------------------------------------------------------------------------------------------------


def test_balance_bins_histogram_by_hand(script):
    scores = [0.0, 0.05, 0.09, 0.3, 0.5, 0.55, 0.9, 0.95, 1.0, 1.0, 0.99]
    rows = [{"score": s, "i": i} for i, s in enumerate(scores)]
    # bins: [0, 0.1) x3, [0.3, 0.4) x1, [0.5, 0.6) x2, [0.9, 1.0] x5
    assert script.score_histogram(scores) == [3, 0, 0, 1, 0, 2, 0, 0, 0, 5]
    balanced = script.balance_bins(rows, max_per_bin=2, seed=0)
    assert script.score_histogram(r["score"] for r in balanced) == [2, 0, 0, 1, 0, 2, 0, 0, 0, 2]
    order = [r["i"] for r in balanced]
    assert order == sorted(order)  # kept rows stay in input order
    assert {3, 4, 5} <= set(order)  # bins under the cap keep everything
    assert script.balance_bins(rows, 2, seed=0) == balanced
    assert any(script.balance_bins(rows, 2, seed=s) != balanced for s in range(1, 6))
    assert script.balance_bins(rows, None) == rows


def test_format_histogram(script):
    table = script.format_histogram([3, 0, 0, 1, 0, 2, 0, 0, 0, 5], [2, 0, 0, 1, 0, 2, 0, 0, 0, 2])
    lines = table.splitlines()
    assert lines[1].split() == ["[0.0,", "0.1)", "3", "2"]
    assert lines[10].split() == ["[0.9,", "1.0]", "5", "2"]
    assert lines[11].split() == ["total", "11", "7"]


# --- Labelling -----------------------------------------------------------------------------------------------------


def test_label_pairs_votes_and_drops(script):
    pairs = [{"question": "q", "response": r, "image": None} for r in ("a", "b", "c", "d", "e", "f")]
    judge = ScriptedJudge(
        {
            "a": [0.6, 0.7, 0.7],  # mean 0.667 -> 0.7
            "b": [0.2, 0.3, 0.25],  # mean 0.25 -> 0.3 (halves round up)
            "c": [0.9, 0.5, 0.9],  # spread 0.4 > 0.2: noisy
            "d": [0.4, None, 0.4],  # a failed vote: unparsable
            "e": [1.3, 1.3, 1.3],  # out of range: unparsable
            "f": [0.0, 0.2, 0.1],  # spread 0.2 is accepted; mean 0.1
        }
    )
    labelled, dropped = script.label_pairs(pairs, judge, num_votes=3, max_spread=0.2, batch_size=4)
    assert [(row["response"], row["score"]) for row in labelled] == [("a", 0.7), ("b", 0.3), ("f", 0.1)]
    assert dropped == {"noisy": 1, "unparsable": 2}
    assert [len(call[1]) for call in judge.calls] == [4, 4, 4, 2, 2, 2]  # 3 votes per batch of at most 4
    assert all(call[2] is None for call in judge.calls)  # no images: images=None


def _trl_completion_logs(folder, dataset, responses):
    """Completion logs in the layout TRL's GRPOTrainer writes (log_completions=True): images stripped."""
    folder.mkdir(parents=True)
    for step, chunk in enumerate([responses[:3], responses[3:]]):
        table = {
            "step": [step] * len(chunk),
            "prompt": [
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p[0]["content"]}]}]
                for p in dataset["prompt"][: len(chunk)]
            ],
            "completion": [[{"role": "assistant", "content": r}] for r in chunk],
            "accuracy_reward": [1.0] * len(chunk),
            "advantage": [0.0] * len(chunk),
        }
        pd.DataFrame(table).to_parquet(folder / f"completions_{step:05d}.parquet")


def test_read_trl_completion_logs_with_images(script, tmp_path):
    # Rows 2-4 of seed 0 ask three different questions; rows 0 and 5 ask the same one about different images.
    dataset = make_synthetic_dataset(6, seed=0, problem_types=["numerical"]).select([2, 3, 4, 0, 5])
    dataset.save_to_disk(str(tmp_path / "task"))
    responses = ["<think>r0</think><answer>1</answer>", "<think>r1</think><answer>2</answer>",
                 "<think>r2</think><answer>3</answer>", "<think>r0</think><answer>1</answer>"]  # fmt: skip
    _trl_completion_logs(tmp_path / "run" / "completions", dataset, responses)

    pairs, bad, num_duplicates = script.read_pairs([tmp_path / "run" / "completions"])
    assert not bad and num_duplicates == 1  # step 1 repeats (prompt 0, response 0)
    assert [p["question"] for p in pairs] == dataset["problem"][:3]  # the build_prompt instruction is removed
    assert [p["response"] for p in pairs] == responses[:3]
    assert all(p["image"] is None for p in pairs)

    task = load_from_disk(str(tmp_path / "task"))
    assert script.attach_images(pairs, task) == (3, 0)
    for pair, image in zip(pairs, dataset["image"]):
        assert np.array_equal(np.asarray(pair["image"]), np.asarray(image))

    # A prompt text shared by rows with different images gives no image rather than a wrong one.
    shared = [{"question": "q", "response": "r", "image": None, "user_text": dataset["prompt"][3][0]["content"]}]
    assert dataset["prompt"][3] == dataset["prompt"][4]
    assert script.attach_images(shared, task) == (0, 1) and shared[0]["image"] is None


def test_read_pairs_bad_row(script, tmp_path):
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match=r"row pairs\.jsonl:0.*no 'response'"):
        script.read_pairs([tmp_path / "pairs.jsonl"])
    pairs, bad, _ = script.read_pairs([tmp_path / "pairs.jsonl"], on_bad_row="skip")
    assert pairs == [] and len(bad) == 1


# --- End to end, through the real OpenAI-compatible judge client ---------------------------------------------------


class _JudgeHandler(BaseHTTPRequestHandler):
    """Replies `<answer>x</answer>` for a response holding `quality=x`, and no score for one holding `garbage`."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        match = re.search(r"quality=(\d\.\d)", body)
        content = "I cannot tell." if "garbage" in body or match is None else f"<answer>{match.group(1)}</answer>"
        reply = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "teacher",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_main_with_openai_judge(script, tmp_path, judge_server, capsys):
    qualities = [0.9] * 6 + [0.8] * 2 + [0.2] * 3 + [0.0]
    rows = [
        {"question": f"Question {i}?", "response": f"<think>quality={q}</think><answer>{i}</answer>"}
        for i, q in enumerate(qualities)
    ] + [{"question": "Q?", "response": "<think>garbage</think><answer>0</answer>"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    script.main(
        ["--input", str(tmp_path / "pairs.jsonl"), "--output_dir", str(out), "--judge_base_url", judge_server,
         "--judge_model", "teacher", "--judge_timeout", "10", "--max_per_bin", "2", "--judge_max_retries", "0"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "Labelled 12; dropped 1 unparsable and 0 noisy" in printed
    assert re.search(r"\[0\.9, 1\.0\]\s+6\s+2", printed) and re.search(r"\[0\.2, 0\.3\)\s+3\s+2", printed)
    train = load_from_disk(str(out))["train"]
    assert sorted(train["score"]) == [0.0, 0.2, 0.2, 0.8, 0.8, 0.9, 0.9]
    assert train.column_names == ["question", "image", "response", "score", "problem_type"]
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["histogram_before"] == [1, 0, 3, 0, 0, 0, 0, 0, 2, 6]
    assert report["histogram_after"] == [1, 0, 2, 0, 0, 0, 0, 0, 2, 2]
    assert report["num_dropped"] == {"unparsable": 1}


def test_votes_need_a_sampling_judge(script):
    base = ["--input", "x", "--output_dir", "y", "--judge_model", "m", "--judge_base_url", "http://h/v1"]
    with pytest.raises(SystemExit):
        script.parse_args(base + ["--num_votes", "3"])  # temperature 0: identical votes
    assert script.parse_args(base + ["--num_votes", "3", "--judge_temperature", "0.7"]).num_votes == 3


def test_prompt_instruction_is_removed_from_questions(script, tmp_path):
    user = build_prompt("How many red shapes?", "multiple choice", ["A. 1", "B. 2"])[0]["content"]
    row = {"prompt": [{"role": "user", "content": user}], "completion": [{"role": "assistant", "content": "r"}]}
    (tmp_path / "p.jsonl").write_text(json.dumps(row) + "\n")
    pairs, _, _ = script.read_pairs([tmp_path / "p.jsonl"])
    assert pairs[0]["question"] == "How many red shapes?\nOptions:\nA. 1\nB. 2"
