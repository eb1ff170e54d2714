"""A judge that fails: hostile HTTP 200 replies are failed calls (None), the failure budget's arithmetic, an error with one
process, and the check before training (bounded in time, with messages that say what to do)."""

import time

import pytest

from sophia_trl.judges import OpenAIJudge
from sophia_trl.judges.health import JudgeFailureBudget, JudgeOutageError, raise_on_every_process
from sophia_trl.judges.preflight import JudgeCheckError, check_judge


def test_hostile_200_replies_are_failed_calls_not_errors_nor_zeros(loopback_server):
    # One request at a time, so the requests meet the fault cycle in order.
    server = loopback_server(faults=("no_choices", "null_message", "html", "ok"))
    with OpenAIJudge(server.url, "judge", max_retries=0, max_concurrency=1, cache_size=0) as judge:
        scores = judge.score([f"score=0.{i + 1}" for i in range(4)], ["<think>r</think>"] * 4)
    assert scores == [None, None, None, 0.4]  # the ok reply reads score=0.4 from its request
    assert server.served == {"no_choices": 1, "null_message": 1, "html": 1, "ok": 1}


def test_503_and_timeouts_are_retried_within_their_bounds(loopback_server):
    server = loopback_server(faults=("503", "timeout", "ok"), fault_delay=30.0)
    start = time.monotonic()
    with OpenAIJudge(server.url, "judge", timeout=0.5, max_retries=2, backoff=0.05, max_concurrency=1) as judge:
        [score] = judge.score(["score=0.3"], ["r"])
    # attempt 1: 503 at once, attempt 2: times out after 0.5 s, attempt 3: answers; plus 0.05 + 0.1 s of backoff
    assert score == 0.3 and judge.num_attempts == 3
    assert time.monotonic() - start < 0.5 + 0.15 * 1.1 + 1.0


@pytest.mark.parametrize(
    ("steps", "raises_at", "figures"),
    [
        # (calls, failed) per step; window 3, budget 0.5
        ([(8, 8), (8, 8)], None, None),  # 16 / 16 failed, but two steps do not fill the window of 3
        ([(8, 8), (8, 8), (8, 0)], 2, "16 of 24 calls (67%)"),  # 16 / 24 = 0.67 > 0.5 once the window is full
        ([(8, 8), (8, 8), (8, 8)], 2, "24 of 24 calls (100%)"),  # 24 / 24 once the window is full
        ([(8, 4), (8, 4), (8, 4), (8, 4)], None, None),  # exactly 0.5 is within the budget
        (
            [(8, 8), (8, 0), (8, 0), (8, 8), (8, 8)],
            4,
            "16 of 24 calls (67%)",
        ),  # window (8, 0), (8, 8), (8, 8): 16 / 24 at step 4
        ([(8, 8), (8, 0), (8, 0), (8, 8), (8, 0)], None, None),  # a short outage: at most 8 / 24 in any full window
        ([(0, 0), (0, 0), (8, 5)], 2, "5 of 8 calls (62%)"),  # steps without calls (alpha = 0) count as steps: 5 / 8
    ],
)
def test_failure_budget_stops_when_the_window_fraction_exceeds_it(steps, raises_at, figures):
    budget = JudgeFailureBudget("judge at http://x/v1", max_failed_fraction=0.5, window=3, log_warnings=False)
    for step, (calls, failed) in enumerate(steps):
        if step == raises_at:
            with pytest.raises(JudgeOutageError) as info:
                budget.update(step, calls, failed)
            assert f"(judge at http://x/v1) failed {figures} over the last 3 steps (up to step {step})" in str(
                info.value
            )
            return
        budget.update(step, calls, failed)
    assert raises_at is None


def test_failure_budget_warns_once_per_step_with_the_fraction(caplog):
    budget = JudgeFailureBudget("judge", max_failed_fraction=1.0, window=2)
    with caplog.at_level("WARNING", logger="sophia_trl.judges.health"):
        budget.update(1, 8, 2)
        budget.update(2, 8, 0)
        budget.update(3, 8, 6)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # step 2 had no failure
    assert lines[0].startswith("Step 1: 2 of 8 thinking judge calls failed (25%); 25% over the last 1 steps")
    assert lines[1].startswith("Step 3: 6 of 8 thinking judge calls failed (75%); 38% over the last 2 steps")


@pytest.mark.parametrize(("fraction", "window"), [(-0.1, 10), (1.5, 10), (0.5, 0)])
def test_config_rejects_a_bad_failure_budget(fraction, window):
    from sophia_trl.configs import TrustGRPOConfig

    with pytest.raises(ValueError, match="judge_max_failed_fraction|judge_failure_window"):
        TrustGRPOConfig(
            "out", use_cpu=True, bf16=False, judge_max_failed_fraction=fraction, judge_failure_window=window
        )


def test_check_judge_refused_port_fails_in_seconds_and_says_what_to_do(closed_port_url):
    url = closed_port_url
    start = time.monotonic()
    with OpenAIJudge(url, "judge") as judge, pytest.raises(JudgeCheckError) as info:
        check_judge(judge)
    assert time.monotonic() - start < 10
    assert info.value.reason == "unreachable"
    message = str(info.value)
    assert url in message and "scripts/serve_judge.sh" in message and "--judge_backend none" in message


def test_check_judge_names_the_served_models_when_the_name_is_wrong(loopback_server):
    server = loopback_server(model="judge-3b")
    with OpenAIJudge(server.url, "judge") as judge, pytest.raises(JudgeCheckError) as info:
        check_judge(judge)
    assert info.value.reason == "unknown_model"
    assert "serves ['judge-3b'], not 'judge'" in str(info.value)
    assert server.total_requests == 0  # stopped before any scoring request


def test_check_judge_needs_a_score_from_a_server(loopback_server):
    server = loopback_server(faults=("html",))
    with OpenAIJudge(server.url, "judge", max_retries=0) as judge, pytest.raises(JudgeCheckError) as info:
        check_judge(judge)
    assert info.value.reason == "no_score" and server.url in str(info.value)


def test_check_judge_scores_the_probe_image(loopback_server):
    server = loopback_server()
    with OpenAIJudge(server.url, "judge") as judge:
        # The loopback judge answers the red channel of the image's top-left pixel / 255: white, 1.0.
        assert check_judge(judge) == 1.0
        assert judge.num_requests == 0  # the probe is not a training call and is not cached
    assert len(server.images) == 1 and server.images[0].size == (56, 56)


def test_an_error_passes_unchanged_with_one_process():
    # Without a process group there is no one to tell: the block's own exception comes out, nothing is swallowed.
    with pytest.raises(JudgeOutageError) as raised:
        with raise_on_every_process():
            raise JudgeOutageError("judge down")
    assert str(raised.value) == "judge down"
    assert not getattr(raised.value, "__notes__", None)
    with raise_on_every_process():
        pass


class FakeProcessGroup:
    """`torch.distributed` as `raise_on_every_process` sees it from process `rank` of 2, the other process reporting
    `other` (None, or (rank, class, class name, message))."""

    def __init__(self, rank, other):
        self.rank, self.other = rank, other

    is_available = is_initialized = staticmethod(lambda: True)
    get_world_size = staticmethod(lambda: 2)

    def get_rank(self):
        return self.rank

    def all_gather_object(self, reports, report):
        reports[self.rank], reports[1 - self.rank] = report, self.other


class NeedsTwoArguments(Exception):
    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")


@pytest.mark.parametrize(
    "rank, own_error, other, expected_class, expected_message, from_rank",
    [
        (0, None, (1, ConnectionError, "ConnectionError", "judge refused"), ConnectionError, "judge refused", 1),
        # A class that cannot be rebuilt from its message, or did not survive pickling: a RuntimeError naming it.
        (0, None, (1, NeedsTwoArguments, "NeedsTwoArguments", "7: x"), RuntimeError, "NeedsTwoArguments: 7: x", 1),
        (0, None, (1, None, "LocalError", "gone"), RuntimeError, "LocalError: gone", 1),
        # Both fail: the lowest failing process's error, on both.
        (1, ValueError("mine"), (0, TimeoutError, "TimeoutError", "slow"), TimeoutError, "slow", 0),
        (0, ValueError("mine"), (1, TimeoutError, "TimeoutError", "slow"), ValueError, "mine", 0),
    ],
)
def test_the_error_of_the_lowest_failing_process_is_raised(
    monkeypatch, rank, own_error, other, expected_class, expected_message, from_rank
):
    monkeypatch.setattr("sophia_trl.judges.health.dist", FakeProcessGroup(rank, other))
    with pytest.raises(expected_class) as raised:
        with raise_on_every_process():
            if own_error is not None:
                raise own_error
    assert type(raised.value) is expected_class and str(raised.value) == expected_message
    assert raised.value.__notes__ == [
        f"Raised on process {from_rank}; every process of the run stops with this error."
    ]
    if own_error is not None and raised.value is not own_error:
        assert raised.value.__cause__ is own_error  # this process's own error is kept as the cause


def test_nothing_is_raised_when_no_process_failed(monkeypatch):
    monkeypatch.setattr("sophia_trl.judges.health.dist", FakeProcessGroup(0, None))
    with raise_on_every_process():
        pass
