"""The loopback servers of benchmarks/judge_throughput.py: the fast one answers like the test double; the capacity."""

from benchmarks.judge_throughput import loopback_server_process, server_capacity
from sophia_trl.judges import OpenAIJudge


def test_fast_loopback_server_answers_and_has_a_capacity():
    with loopback_server_process(0.0, fast=True) as url:
        with OpenAIJudge(url, "judge", cache_size=0) as judge:
            assert judge.score(["q score=0.3", "q score=0.9", "no score here"], ["a", "b", "c"]) == [0.3, 0.9, 0.5]
        # Replies are checked to be HTTP 200: a count of errors would not be a capacity.
        assert server_capacity(url, connections=4, duration=0.3) > 0
