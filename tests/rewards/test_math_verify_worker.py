"""The math-verify worker process: it loads its module by file path, answers, misses no deadline, and a forked child
starts its own."""

import os
import subprocess
import sys

import pytest

from sophia_trl.rewards import math_verify_worker
from sophia_trl.rewards.math_verify_worker import math_verify_match, math_verify_match_in_worker


def test_worker_command_loads_the_module_by_path_and_answers():
    # The worker runs this module as a file, outside the package: a relative import would fail here.
    process = subprocess.run(
        [sys.executable, "-c", math_verify_worker._WORKER_COMMAND, math_verify_worker.__file__],
        input='{"solution": "0.5", "answer": "\\\\frac{1}{2}"}\n{"solution": "\\\\", "answer": "1"}\n',
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == [
        '{"ready": true}',
        '{"parsed": true, "match": true}',
        '{"parsed": false, "match": false}',
    ]


def test_match_in_this_process_and_in_the_worker_agree():
    for solution, answer in [("14", "14.0"), ("14", "15"), ("0.5", "0.50")]:
        assert math_verify_match_in_worker(solution, answer, timeout=60.0) == math_verify_match(solution, answer)


def test_a_missed_deadline_kills_the_worker_and_the_next_request_starts_a_new_one():
    assert math_verify_match_in_worker("2", "1+1", timeout=60.0) == (True, True)  # a started worker
    process = math_verify_worker._WORKER._process
    assert math_verify_match_in_worker("14", "9^{9^{9}}", timeout=0.5) is None
    assert process.poll() is not None  # killed
    assert math_verify_match_in_worker("4", "2+2", timeout=60.0) == (True, True)
    assert math_verify_worker._WORKER._process is not process


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_share_the_parents_worker():
    assert math_verify_match_in_worker("2", "1+1", timeout=60.0) == (True, True)  # the parent's worker is running
    parent_worker = math_verify_worker._WORKER
    pid = os.fork()
    if pid == 0:  # the child: a fresh worker object, no process until its first request
        fresh = math_verify_worker._WORKER is not parent_worker and math_verify_worker._WORKER._process is None
        os._exit(0 if fresh else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert math_verify_worker._WORKER is parent_worker
