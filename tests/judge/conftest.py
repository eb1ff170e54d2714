import sys
from pathlib import Path

import pytest

# The loopback judge server lives with the throughput benchmark (benchmarks/judge_throughput.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@pytest.fixture
def loopback_server():
    from benchmarks.judge_throughput import LoopbackJudgeServer

    def start(**kwargs):
        server = LoopbackJudgeServer(**kwargs)
        servers.append(server.__enter__())
        return server

    servers = []
    yield start
    for server in servers:
        server.__exit__(None, None, None)
