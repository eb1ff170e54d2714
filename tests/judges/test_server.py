"""OpenAIJudge and its transport (`sophia_trl.judges.server`, `sophia_trl.judges.transport`) against a loopback
OpenAI-compatible server that answers well, slowly, wrongly or not at all."""

import asyncio
import threading
import time

import pytest
from PIL import Image

from sophia_trl.judges import JudgeServerError, OpenAIJudge


def make_judge(server, **kwargs):
    defaults = {"timeout": 2.0, "max_retries": 2, "max_concurrency": 8, "backoff": 0.05, "cache_size": 0}
    return OpenAIJudge(server.url, "judge", **{**defaults, **kwargs})


def test_correct_answers_with_and_without_images(loopback_server):
    server = loopback_server()
    # The server answers the red channel of the top-left pixel / 255 for image rows: 51 / 255 = 0.2, 204 / 255 = 0.8.
    images = [Image.new("RGB", (56, 56), (51, 0, 0)), None, Image.new("RGB", (30, 20), (204, 10, 10))]
    with make_judge(server) as judge:
        scores = judge.score(["q1", "q2 score=0.7", "q3"], ["r1", "r2", "r3"], images)
    assert scores == [0.2, 0.7, 0.8]
    assert server.requests["ok"] == 3 and judge.num_attempts == 3 and judge.num_retries == 0
    # The images arrive intact (PNG is lossless).
    received = sorted((img.size, img.getcolors()) for img in server.images)
    assert received == [((30, 20), [(600, (204, 10, 10))]), ((56, 56), [(3136, (51, 0, 0))])]


def test_server_errors_are_retried_then_none(loopback_server):
    server = loopback_server()
    with make_judge(server, max_retries=2) as judge:
        start = time.perf_counter()
        scores = judge.score(["[[error]] q", "q score=0.4"], ["r", "r"])
        elapsed = time.perf_counter() - start
    assert scores == [None, 0.4]
    assert server.requests["error"] == 3  # 1 attempt + 2 retries, then give up
    assert judge.num_retries == 2 and judge.num_failures == 1
    # Backoff 0.05 s then 0.1 s (+ up to 10 % jitter): well under a second in all.
    assert 0.15 <= elapsed < 1.5


def test_flaky_server_recovers_within_the_retry_budget(loopback_server):
    server = loopback_server()
    with make_judge(server, max_retries=3) as judge:
        assert judge.score(["[[flaky:2]] score=0.9"], ["r"]) == [0.9]
    assert server.requests["flaky"] == 3
    assert judge.num_retries == 2


def test_garbage_and_unreadable_replies_give_none_without_retry(loopback_server):
    server = loopback_server()
    with make_judge(server) as judge:
        scores = judge.score(["[[garbage]]", "[[badjson]]", "[[badrequest]]"], ["r", "r", "r"])
    assert scores == [None, None, None]
    assert (server.requests["garbage"], server.requests["badjson"], server.requests["badrequest"]) == (1, 1, 1)
    assert judge.num_retries == 0


def test_timeouts_are_bounded(loopback_server):
    server = loopback_server(hang_time=5.0)
    with make_judge(server, timeout=0.3, max_retries=1, backoff=0.05) as judge:
        start = time.perf_counter()
        scores = judge.score(["[[hang]]", "score=0.1"], ["r", "r"])
        elapsed = time.perf_counter() - start
    assert scores == [None, 0.1]
    assert server.requests["hang"] == 2
    # Two attempts of 0.3 s and one backoff of ~0.05 s: far less than the server's 5 s.
    assert 0.6 <= elapsed < 2.0


def test_unreachable_server_gives_none_quickly():
    # Nothing listens on this port (a port of a closed socket).
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with OpenAIJudge(f"http://127.0.0.1:{port}/v1", "judge", timeout=1.0, max_retries=1, backoff=0.05) as judge:
        start = time.perf_counter()
        assert judge.score(["q"], ["r"]) == [None]
        assert time.perf_counter() - start < 3.0
        assert judge.num_attempts == 2
        with pytest.raises(ConnectionError, match="did not answer"):
            judge.check_server()


def test_authentication_error_raises_with_a_clear_message(loopback_server):
    server = loopback_server()
    with make_judge(server, api_key="sk-do-not-log-me") as judge:
        with pytest.raises(JudgeServerError, match="API key") as error:
            judge.score(["[[unauthorized]]"], ["r"])
        assert "sk-do-not-log-me" not in str(error.value)
        assert "sk-do-not-log-me" not in repr(judge)
    assert server.requests["unauthorized"] == 1


def test_api_key_from_environment_is_sent_not_logged(loopback_server, monkeypatch, caplog):
    # On the package's logger: a recipe run earlier in the same process sets its level to INFO.
    caplog.set_level("DEBUG", logger="sophia_trl")
    server = loopback_server()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with make_judge(server, max_retries=1) as judge:
        assert judge.score(["[[error]]", "score=0.2"], ["r", "r"]) == [None, 0.2]
        assert "sk-from-env" not in repr(judge)
    assert server.authorizations == {"Bearer sk-from-env"}
    assert "sk-from-env" not in caplog.text
    assert "failed 2 times" in caplog.text


@pytest.mark.parametrize("n, concurrency", [(16, 4), (48, 12)])  # 12 slots span two connection pools of 8
def test_concurrency_bound_and_wall_time(loopback_server, n, concurrency):
    service_time = 0.25
    server = loopback_server(service_time=service_time)
    with make_judge(server, max_concurrency=concurrency, timeout=5.0) as judge:
        start = time.perf_counter()
        scores = judge.score([f"q{i} score=0.3" for i in range(n)], ["r"] * n)
        elapsed = time.perf_counter() - start
    assert scores == [0.3] * n
    assert server.max_in_flight == concurrency
    expected = n / concurrency * service_time  # 1.0 s; one at a time would take 4.0 s (12.0 s)
    assert expected <= elapsed < expected + 0.8


def test_check_server_lists_models(loopback_server, caplog):
    server = loopback_server()
    with make_judge(server) as judge:
        assert judge.check_server() == ["judge"]
    with OpenAIJudge(server.url, "other-model") as judge:
        judge.check_server()
    assert "does not list the model 'other-model'" in caplog.text
    # A server that is up but cannot list its models (transformers serve without a Hub cache answers HTTP 500).
    with make_judge(loopback_server(list_models=False)) as judge:
        assert judge.check_server() == []
    assert "could not list its models (HTTP 500)" in caplog.text


def test_works_from_a_running_event_loop_and_from_threads(loopback_server):
    server = loopback_server()
    judge = make_judge(server)

    async def inside_a_loop():
        return judge.score(["score=0.6"], ["r"])

    assert asyncio.run(inside_a_loop()) == [0.6]

    results = {}

    def worker(i):
        results[i] = judge.score([f"score=0.{i}"], [f"r{i}"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {i: [i / 10] for i in range(1, 6)}
    judge.close()
    assert not judge.client._loop_thread.thread.is_alive()


def test_cache_avoids_repeated_requests(loopback_server):
    server = loopback_server()
    image = Image.new("RGB", (8, 8), (102, 0, 0))
    with make_judge(server, cache_size=16) as judge:
        # A group of 4 completions of one prompt where two completions are identical.
        scores = judge.score(["q"] * 4, ["a", "b", "a", "c"], [image] * 4)
        assert scores == [0.4] * 4
        assert server.total_requests == 3
        judge.score(["q"], ["b"], [image.copy()])  # equal pixels, other object: cached
        assert server.total_requests == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [({"timeout": 0}, "timeout"), ({"max_retries": -1}, "max_retries"), ({"max_concurrency": 0}, "max_concurrency")],
)
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OpenAIJudge("http://127.0.0.1:1/v1", "judge", **kwargs)


@pytest.mark.parametrize("bypass", [False, True])
def test_proxy_settings_from_the_environment(loopback_server, monkeypatch, bypass):
    # A loopback server stands in for the proxy: a proxy receives the request with the target's absolute URL, whose
    # path still ends with /chat/completions, so it answers instead of forwarding. Both read the score from the
    # question; their request counts say which one was asked.
    target, proxy = loopback_server(), loopback_server()
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1"))
    if bypass:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    questions = ["q score=0.6"] * 3
    with make_judge(target) as judge:
        scores = judge.score(questions, ["r1", "r2", "r3"], [None] * 3)
    if bypass:  # NO_PROXY names the judge's host: straight to it
        assert scores == [0.6] * 3 and (target.total_requests, proxy.total_requests) == (3, 0)
    else:  # every request goes through the proxy, which sees it and (here) answers it
        assert scores == [0.6] * 3 and (target.total_requests, proxy.total_requests) == (0, 3)
