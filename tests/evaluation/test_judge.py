"""The optional LLM judge, against a loopback OpenAI-compatible server on 127.0.0.1."""

import logging
import time
from pathlib import Path

import pytest

from sophia_trl.evaluation import ChatJudge, evaluate, mathverse
from sophia_trl.evaluation.judge import parse_extraction, parse_judgement
from sophia_trl.judges import JudgeServerError

PREDICTIONS = Path(__file__).parent / "fixtures" / "predictions"


def _mathvista_reader(prompt: str) -> str:
    # what a competent judge extracts from the three MathVista responses that are not already clean
    if "twenty" in prompt:
        return "B"
    if "The value is 0.3" in prompt:
        return "Final answer: 0.3"
    if "There are 3" in prompt:
        return "3"
    return "NONE"


def test_mathvista_judge_reads_only_unclean_answers(chat_server, tmp_path):
    server = chat_server(_mathvista_reader)
    judge = ChatJudge(server.base_url, "judge-model", timeout=10, max_retries=0)
    report = evaluate(
        ["mathvista"], tmp_path / "r.json", predictions=[str(PREDICTIONS / "mathvista.jsonl")], judge=judge
    )
    result = report["benchmarks"]["mathvista"]
    # items 5 (no tag), 6 ("twenty") and 7 (cut off) are asked; the clean tags of items 1-4 are not
    assert len(server.prompts) == 3
    assert [r["mode"] for r in result["records"]] == ["rule"] * 4 + ["judge"] * 3
    # "twenty" -> the judge's "B" -> option "20", now right; 0.3 stays wrong; 3 stays right: 6 of 7
    assert [r["correct"] for r in result["records"]] == [True, True, True, True, False, True, True]
    assert result["metrics"]["accuracy"] == pytest.approx(100 * 6 / 7)
    assert result["scoring_mode"] == "rule+judge"
    assert result["judge"]["asked"] == 3 and result["judge"]["failed"] == 0
    assert report["judge"]["model"] == "judge-model"


def test_failed_judge_calls_keep_rule_results_and_are_counted(chat_server, tmp_path, caplog):
    server = chat_server(lambda prompt: 500)
    judge = ChatJudge(server.base_url, "judge-model", api_key="sk-test-secret", timeout=5, max_retries=1)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        report = evaluate(
            ["mathvista"], tmp_path / "r.json", predictions=[str(PREDICTIONS / "mathvista.jsonl")], judge=judge
        )
    elapsed = time.monotonic() - start
    result = report["benchmarks"]["mathvista"]
    assert len(server.prompts) == 3 * 2  # three items, each tried once and retried once, then given up
    assert elapsed < 20
    assert result["metrics"]["accuracy"] == pytest.approx(100 * 5 / 7)  # the rule-based result
    assert result["scoring_mode"] == "rule"
    assert result["judge"]["failed"] == 3
    assert "sk-test-secret" not in caplog.text
    assert "sk-test-secret" not in (tmp_path / "r.json").read_text()


def test_a_wrong_api_key_stops_the_evaluation_with_a_clear_error(chat_server, tmp_path):
    # A refused key is a configuration error, not a flaky call: scoring every item by rule instead would hide it.
    server = chat_server(lambda prompt: 401)
    judge = ChatJudge(server.base_url, "judge-model", api_key="sk-wrong", timeout=5, max_retries=2)
    with pytest.raises(JudgeServerError, match="API key") as error:
        evaluate(["mathvista"], tmp_path / "r.json", predictions=[str(PREDICTIONS / "mathvista.jsonl")], judge=judge)
    assert "sk-wrong" not in str(error.value)
    assert len(server.prompts) <= 3  # not retried


def test_judge_timeout_is_bounded(chat_server):
    server = chat_server(lambda prompt: (3.0, "B"))
    judge = ChatJudge(server.base_url, "judge-model", timeout=0.3, max_retries=0)
    start = time.monotonic()
    assert judge.complete(["question"]) == [None]
    assert time.monotonic() - start < 2.5
    assert judge.num_failures == 1


def test_judge_concurrency(chat_server):
    server = chat_server(lambda prompt: (0.5, "1"))
    judge = ChatJudge(server.base_url, "judge-model", timeout=10, max_retries=0, max_concurrency=4)
    start = time.monotonic()
    assert judge.complete([f"q{i}" for i in range(8)]) == ["1"] * 8
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 0.5 * 8  # two waves of four, not eight requests one after another


def test_mathverse_judge_extracts_then_checks_equivalence(chat_server):
    def reply(prompt: str) -> str:
        if "Copy out the model's final answer" in prompt:
            return "B"
        return "1" if "Student's answer: sixty degrees" in prompt else "0"

    server = chat_server(reply)
    judge = ChatJudge(server.base_url, "judge-model", timeout=10, max_retries=0)
    common = {"problem_index": "1", "problem_version": "Text Dominant", "question_for_eval": "Find x."}
    rows = [
        # rule: no match for "sixty degrees"; the judge says it equals 60° -> right, judge mode
        {**common, "sample_index": "1", "question": "Find x.", "answer": "60°", "question_type": "free-form",
         "response": "<answer>sixty degrees</answer>"},
        # no tag: the judge extracts "B" -> right, judge mode
        {**common, "sample_index": "2", "question": "Pick. Choices: A:1 B:2", "answer": "B",
         "question_type": "multi-choice", "response": "<think>it is two</think>I pick the second option"},
        # clean and right by rule: the judge is not asked
        {**common, "sample_index": "3", "question": "How long?", "answer": "5", "question_type": "free-form",
         "response": "<answer>5</answer>"},
        # clean but wrong by rule: the judge is asked for equivalence and says no
        {**common, "sample_index": "4", "question": "How long?", "answer": "5", "question_type": "free-form",
         "response": "<answer>7</answer>"},
    ]  # fmt: skip
    result = mathverse.score(rows, judge)
    assert len(server.prompts) == 3  # one extraction (row 2), two equivalence checks (rows 1 and 4)
    assert [r["correct"] for r in result["records"]] == [True, True, True, False]
    assert [r["mode"] for r in result["records"]] == ["judge", "judge", "rule", "judge"]
    assert result["metrics"]["Text Dominant"] == pytest.approx(75.0)


@pytest.mark.parametrize(
    "reply, expected",
    [(None, None), ("B", "B"), ("Final answer: 0.3", "0.3"), ("'12'", "12"), ("NONE", ""), ("None.", "")],
)
def test_parse_extraction(reply, expected):
    assert parse_extraction(reply) == expected


@pytest.mark.parametrize(
    "reply, expected", [("1", True), ("0", False), ("Same: 1", True), ("0.5", None), ("yes", None), (None, None)]
)
def test_parse_judgement(reply, expected):
    assert parse_judgement(reply) == expected


def test_judge_settings_are_checked():
    with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
        ChatJudge("http://127.0.0.1:1/v1", "m", max_concurrency=0)
