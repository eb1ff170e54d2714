"""Real generation end to end: a judge SFT-trained to answer 0.7, scored in-process and behind `transformers serve`."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sophia_trl.judges import OpenAIJudge, TransformersJudge

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "scripts" / "serve_judge.sh"

QUESTIONS = ["How many red circles are there?", "Which colour has the most shapes?", "Read the word.", "Count."]
RESPONSES = ["<think>1 + 1 = 2</think><answer>2</answer>", "<think>red</think><answer>red</answer>", "cat", "3"]
IMAGES = [Image.new("RGB", (56, 56), "red"), None, Image.new("RGB", (56, 28), "blue"), None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_sft_trained_judge_scores_in_process(constant_judge_dir):
    judge = TransformersJudge(constant_judge_dir, batch_size=3, device="cpu", cache_size=0, readout="greedy")
    batched = judge.score(QUESTIONS, RESPONSES, IMAGES)
    single = [judge.score([q], [r], [i])[0] for q, r, i in zip(QUESTIONS, RESPONSES, IMAGES)]
    assert batched == single == [0.7] * 4


def wait_until_up(url: str, server: subprocess.Popen, timeout: float) -> None:
    """Polls the server's /health; fails at once if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"The server exited with code {server.returncode}.")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"The server at {url} did not answer within {timeout} s.")


@pytest.mark.slow
def test_transformers_serve_hosts_the_judge(constant_judge_dir, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the venv's CLIs
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "DEVICE": "cpu",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(SERVE), "transformers", str(constant_judge_dir), str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the whole server goes down at the end
        )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, server, timeout=180)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{log_path.read_text()[-3000:]}") from None

        # transformers serve answers only to the model path it was started with.
        model = str(constant_judge_dir)
        with OpenAIJudge(f"{url}/v1", model, timeout=60, max_retries=1, max_concurrency=4, cache_size=0) as judge:
            judge.check_server()
            start = time.perf_counter()
            scores = judge.score(QUESTIONS, RESPONSES, IMAGES)
            elapsed = time.perf_counter() - start
            assert scores == [0.7] * 4, log_path.read_text()[-3000:]
            assert judge.num_attempts == 4 and judge.num_retries == 0
        assert elapsed < 60
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    assert server.returncode is not None


def test_serve_script_wait_returns_when_the_server_answers(loopback_server):
    server = loopback_server()
    result = subprocess.run([str(SERVE), "wait", server.url.removesuffix("/v1"), "10"], capture_output=True, text=True)
    assert result.returncode == 0 and "is up" in result.stdout


def test_serve_script_wait_times_out_quickly_when_nothing_listens():
    start = time.perf_counter()
    result = subprocess.run(
        [str(SERVE), "wait", f"http://127.0.0.1:{free_port()}", "2"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "did not answer within 2s" in result.stderr
    assert time.perf_counter() - start < 15


def test_serve_script_usage():
    result = subprocess.run([str(SERVE)], capture_output=True, text=True)
    assert result.returncode == 2 and "scripts/serve_judge.sh vllm MODEL" in result.stderr
