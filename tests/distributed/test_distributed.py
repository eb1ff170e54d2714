"""The trust weights are the same whether a prompt's group sits on one process or is split over two (gloo, CPU)."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("rewards_across_processes.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(model_dir, out_dir, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
        cmd += [f"--master_port={free_port()}"]
    subprocess.run([*cmd, str(SCRIPT), str(model_dir), str(out_dir)], check=True, env=env, timeout=180)
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(nproc)]


@pytest.mark.distributed
def test_group_split_across_two_processes(tiny_vlm_dir, tmp_path):
    (single,) = run(tiny_vlm_dir, tmp_path / "one", 1)
    ranks = run(tiny_vlm_dir, tmp_path / "two", 2)
    assert single["num_processes"] == 1
    assert [r["num_processes"] for r in ranks] == [2, 2]

    # Hand-worked thinking column: gamma * 0.3 * R_t with gamma = exp(-0.5), exp(-0.5), 1 for the three groups.
    t = [0.2, 0.4, 0.9, 0.7, 0.1, 0.5, 0.3, 0.9, 0.9, 0.8, 0.7, 0.1]
    gammas = [math.exp(-0.5)] * 8 + [1.0] * 4
    expected = [g * 0.3 * x for g, x in zip(gammas, t)]
    for result in [single, *ranks]:
        assert [row[1] for row in result["rewards"]] == pytest.approx(expected, rel=1e-5)
        assert [row[0] for row in result["rewards"]] == [1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0]
        assert result["metrics"]["trust/gamma_mean"] == pytest.approx((2 * math.exp(-0.5) + 1) / 3, rel=1e-5)
        assert result["metrics"]["trust/judge_calls"] == 12
