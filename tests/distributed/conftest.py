import json
import os
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def launch():
    """`launch(script, model_dir, out_dir, nproc, timeout=180)`: runs `script MODEL_DIR OUT_DIR` in `nproc` processes
    (torchrun and gloo for more than one) and returns what each rank wrote to `OUT_DIR/rank<r>.json`."""

    def run(script, model_dir, out_dir, nproc, timeout=180):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable]
        if nproc > 1:
            cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
            cmd += [f"--master_port={free_port()}"]
        subprocess.run([*cmd, str(script), str(model_dir), str(out_dir)], check=True, env=env, timeout=timeout)
        return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(nproc)]

    return run
