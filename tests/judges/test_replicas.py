"""Judge replicas (`OpenAIChatClient` with several base URLs): least-in-flight routing, a failing replica set aside and
its requests answered by the others (no score lost), the check before training over every replica, and the setting."""

import logging
import time
from pathlib import Path

import pytest
from trl import ModelConfig, TrlParser

from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments
from sophia_trl.judges import OpenAIJudge, load_thinking_judge
from sophia_trl.judges.preflight import JudgeCheckError, check_judge
from sophia_trl.judges.transport import split_base_urls


def _rows(n):
    """Questions that the loopback server answers with their own score, so a mixed-up or lost reply shows."""
    scores = [round(0.1 * (i % 10), 1) for i in range(n)]
    return [f"row {i}: score={s}" for i, s in enumerate(scores)], [f"<think>r{i}</think>" for i in range(n)], scores


def test_requests_go_to_the_replica_with_the_fewest_in_flight(loopback_server):
    fast, slow = loopback_server(service_time=0.02), loopback_server(service_time=0.3)
    questions, responses, expected = _rows(40)
    with OpenAIJudge([fast.url, slow.url], "judge", max_concurrency=4, cache_size=0) as judge:
        assert judge.score(questions, responses) == expected
        counts = judge.client.replica_counts()
    # 4 slots: the slow replica keeps its requests in flight 15 times longer, so the fast one takes most of them.
    assert counts == {fast.url: (fast.total_requests, 0), slow.url: (slow.total_requests, 0)}
    assert fast.total_requests + slow.total_requests == 40
    assert fast.total_requests > 3 * slow.total_requests > 0
    # Equal replicas share the load evenly.
    a, b = loopback_server(service_time=0.05), loopback_server(service_time=0.05)
    with OpenAIJudge(f"{a.url},{b.url}", "judge", max_concurrency=4, cache_size=0) as judge:
        assert judge.score(questions, responses) == expected
    assert abs(a.total_requests - b.total_requests) <= 4


def test_a_groups_requests_go_to_one_replica(loopback_server):
    """A group's requests (one question and image) share one replica, whose prefix cache then serves them."""
    from PIL import Image

    servers = [loopback_server(service_time=0.02) for _ in range(3)]
    seen = {server.url: [] for server in servers}

    def recording(server):
        reply = server._reply

        def record(body):
            seen[server.url].append(str(body["messages"]))
            return reply(body)

        return record

    for server in servers:
        server._reply = recording(server)
    images = [Image.new("RGB", (28, 28), (20 * g, 0, 0)) for g in range(6)]
    questions = [f"group {g}: score=0.{g}" for g in range(6) for _ in range(8)]
    responses = [f"<think>response {i}</think>" for i in range(48)]
    with OpenAIJudge([s.url for s in servers], "judge", max_concurrency=16, cache_size=0) as judge:
        scores = judge.score(questions, responses, [images[g] for g in range(6) for _ in range(8)])
    assert scores == [g / 10 for g in range(6) for _ in range(8)]
    owners = {g: {url for url, bodies in seen.items() for b in bodies if f"group {g}:" in b} for g in range(6)}
    assert all(len(urls) == 1 for urls in owners.values()), owners
    assert len(set().union(*owners.values())) == 3  # the groups still spread over the replicas


def test_a_replica_down_from_the_start_loses_no_score(loopback_server, closed_port_url, caplog):
    up = loopback_server()
    questions, responses, expected = _rows(30)
    caplog.set_level(logging.INFO, logger="sophia_trl.judges.transport")
    # max_retries=0: sending a request again to another replica is not one of its retries.
    with OpenAIJudge([closed_port_url, up.url], "judge", max_retries=0, max_concurrency=8, cache_size=0) as judge:
        assert judge.score(questions, responses) == expected
        counts = judge.client.replica_counts()
    down_requests, down_failures = counts[closed_port_url]
    assert down_requests == down_failures >= 1 and counts[up.url] == (30, 0) and up.total_requests == 30
    # Set aside after its first failures: the requests sent before it failed, at most one per slot.
    assert down_requests <= 8
    messages = [r.getMessage() for r in caplog.records]
    assert sum("set aside" in m and closed_port_url in m for m in messages) == 1  # one warning per back-off
    assert any(f"'{closed_port_url}': ({down_requests}, {down_failures})" in m for m in messages)


def test_a_replica_that_starts_failing_mid_run_loses_no_score(loopback_server):
    # The first replica drops its connections from its 6th request on and then closes its port; the other answers.
    failing, healthy = loopback_server(go_away_after=5, service_time=0.01), loopback_server(service_time=0.01)
    questions, responses, expected = _rows(60)
    with OpenAIJudge([failing.url, healthy.url], "judge", max_retries=0, max_concurrency=4, cache_size=0) as judge:
        for start in range(0, 60, 12):  # five steps
            assert (
                judge.score(questions[start : start + 12], responses[start : start + 12])
                == expected[start : start + 12]
            )
        requests, failures = judge.client.replica_counts()[failing.url]
    assert failing.served["ok"] == 5 and failures >= 1 and requests == 5 + failures
    assert healthy.total_requests == 60 - 5


def test_5xx_replica_is_set_aside_and_tried_again_after_its_back_off(loopback_server):
    broken, healthy = loopback_server(faults=("503",)), loopback_server()
    questions, responses, expected = _rows(8)
    with OpenAIJudge(
        [broken.url, healthy.url], "judge", max_retries=0, max_concurrency=1, cache_size=0, backoff=0.01
    ) as judge:
        judge.client.replica_backoff = 0.3
        assert judge.score(questions, responses) == expected
        assert broken.served["503"] == 1  # one failure, then set aside for the rest of the batch
        time.sleep(0.4)  # the back-off is over: the replica gets a request again
        assert judge.score(questions[:1], ["again"]) == expected[:1]
        assert broken.served["503"] == 2


def test_all_replicas_down_gives_none_within_the_retries(closed_port_url):
    other = closed_port_url.replace("/v1", "/other/v1")  # the same closed port under another path
    with OpenAIJudge([closed_port_url, other], "judge", max_retries=1, backoff=0.01, cache_size=0) as judge:
        assert judge.score(["score=0.5"], ["r"]) == [None]
        # The first attempt tries both replicas; then both are set aside, and the retry goes to the one whose back-off
        # ends first.
        assert judge.num_attempts == 3


def test_check_judge_covers_every_replica_and_names_the_ones_down(loopback_server, closed_port_url):
    up = loopback_server()
    with OpenAIJudge([up.url, closed_port_url], "judge") as judge, pytest.raises(JudgeCheckError) as info:
        check_judge(judge)
    message = str(info.value)
    assert info.value.reason == "unreachable"
    assert "1 of the 2 judge replicas did not answer" in message and closed_port_url in message
    assert up.url not in message
    second = loopback_server()
    with OpenAIJudge([up.url, second.url], "judge") as judge:
        assert check_judge(judge) is not None


OUR_TEMPLATE = Path(__file__).resolve().parents[2] / "recipes" / "judge_prompts" / "sophia_trl.yaml"


def _parse(tmp_path, *extra):
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    base = ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--dataset_name", "data"]
    return parser.parse_args_and_config(
        args=[*base, "--judge_backend", "openai", "--judge_model_name_or_path", "j"]
        + ["--judge_prompt_template", str(OUR_TEMPLATE), *extra]
    )[0]


def test_replica_urls_from_the_command_line_and_from_yaml(tmp_path):
    urls = ["http://a:8001/v1", "http://b:8001/v1"]
    args = _parse(tmp_path, "--judge_base_url", ",".join(urls))
    with load_thinking_judge(args) as judge:
        assert judge.base_urls == urls
    config = tmp_path / "c.yaml"
    config.write_text("judge_base_url:\n  - http://a:8001/v1\n  - http://b:8001/v1\n")
    args = _parse(tmp_path, "--config", str(config))
    assert args.judge_base_url == ",".join(urls)
    with load_thinking_judge(args) as judge:
        assert judge.base_urls == urls


@pytest.mark.parametrize(
    "value, message", [(" , ", "holds no URL"), ("http://a/v1,http://a/v1", "more than once"), ([], "holds no URL")]
)
def test_bad_replica_lists_are_refused(value, message):
    with pytest.raises(ValueError, match=message):
        split_base_urls(value)
