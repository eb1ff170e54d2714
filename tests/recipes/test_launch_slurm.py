"""scripts/launch_trust_grpo_slurm.sh: each node's commands (dry run) for 2 and 4 training nodes plus judge nodes, and
the multi-node settings of scripts/launch_trust_grpo.sh."""

import os
import subprocess
import sys

import pytest
from recipe_helpers import ROOT, trl_accepts

SLURM = ROOT / "scripts" / "launch_trust_grpo_slurm.sh"
LAUNCH = ROOT / "scripts" / "launch_trust_grpo.sh"


def run(script, tmp_path, *args, **env):
    environment = {**os.environ, "PYTHON": sys.executable, "LOG_DIR": str(tmp_path / "logs"), **env}
    return subprocess.run(
        ["bash", str(script), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def node_commands(result, node):
    """The commands the dry run prints for one node: the judge server, or the judge check and accelerate launch."""
    prefix = f"[{node}] "
    lines = [line[len(prefix) :] for line in result.stderr.splitlines() if line.startswith(prefix)]
    return [
        line[2:] if line.startswith("+ ") else line for line in lines if "scripts/" in line or "accelerate" in line
    ]


@pytest.mark.parametrize(
    "train_nodes, judge_nodes, accumulation",
    [
        # The paper's batch, 16 prompts x 8 completions, with 4 completions per GPU: 4 x 16 x 2 and 4 x 32 x 1.
        (["t0", "t1"], ["j0"], 2),
        (["t0", "t1", "t2", "t3"], ["j0", "j1"], 1),
    ],
)
def test_dry_run_prints_each_nodes_commands(
    tmp_path, monkeypatch, gpu_parsing, train_nodes, judge_nodes, accumulation
):
    result = run(
        SLURM,
        tmp_path,
        "--",
        "--gradient_accumulation_steps",
        str(accumulation),
        NODES=" ".join(train_nodes + judge_nodes),
        NUM_JUDGE_NODES=str(len(judge_nodes)),
        GPUS_PER_NODE="8",
        DRY_RUN="1",
    )
    assert result.returncode == 0, result.stderr
    urls = ",".join(f"http://{node}:8001/v1" for node in judge_nodes)
    for node in judge_nodes:
        [serve] = node_commands(result, node)
        assert serve.startswith("env HOST=0.0.0.0 scripts/serve_judge.sh vllm bunny127/SophiaVL-R1-Thinking-Reward")
        assert "8001 --data-parallel-size 8 >" in serve
    processes = 8 * len(train_nodes)
    assert f"= {processes} processes" in result.stderr
    assert (
        f"Batch: 4 x {processes} processes x {accumulation} accumulation = 128 completions per step" in result.stderr
    )
    for rank, node in enumerate(train_nodes):
        check, train = node_commands(result, node)
        assert f"scripts/check_judge_server.py --base_url {urls} --model judge" in check
        assert train.startswith(
            "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 accelerate launch --config_file accelerate_configs/zero3.yaml "
            f"--num_processes {processes} --num_machines {len(train_nodes)} --machine_rank {rank} "
            "--main_process_ip t0 --main_process_port 29500 recipes/grpo.py"
        )
        assert f"--judge_base_url {urls} --judge_model_name_or_path judge" in train
        # TRL's own start-up checks accept the layout: whole groups per generation, tensor parallelism that divides.
        args, total = trl_accepts(train, monkeypatch)
        assert total == processes and args.generation_batch_size == 128 and args.num_generations == 8
        assert args.vllm_tensor_parallel_size == 2 and 8 % args.vllm_tensor_parallel_size == 0  # within a node


def test_a_layout_trl_refuses_stops_before_anything_starts(tmp_path):
    # 1 completion x 2 nodes x 3 GPUs x 1 step = 6 completions per generation: not whole groups of 8.
    result = run(
        SLURM,
        tmp_path,
        "--",
        "--per_device_train_batch_size=1",
        "--gradient_accumulation_steps=1",
        NODES="t0 t1 j0",
        GPUS_PER_NODE="3",
        DRY_RUN="1",
    )
    assert result.returncode != 0
    assert "6 completions per generation (1 x 6 processes x 1) is not a multiple of num_generations=8" in result.stderr
    assert "training node t0 (rank 0) would not start" in result.stderr


def test_too_few_nodes_and_a_multi_node_run_without_judge_url_are_refused(tmp_path):
    result = run(SLURM, tmp_path, NODES="j0", DRY_RUN="1")
    assert result.returncode != 0 and "leave no training node" in result.stderr
    result = run(LAUNCH, tmp_path, NUM_GPUS="8", NUM_MACHINES="2", MAIN_PROCESS_IP="t0", DRY_RUN="1")
    assert result.returncode != 0 and "a multi-node run needs the judge served apart" in result.stderr
    result = run(LAUNCH, tmp_path, NUM_GPUS="8", NUM_MACHINES="2", JUDGE_URL="http://j0:8001/v1", DRY_RUN="1")
    assert result.returncode != 0 and "needs MAIN_PROCESS_IP" in result.stderr


def test_the_judge_check_waits_for_every_replica(loopback_server, closed_port_url):
    sys.path.insert(0, str(ROOT / "scripts"))
    from check_judge_server import JudgeServerCheckError, wait_for_judge_server

    first, second = loopback_server(), loopback_server()
    # The loopback judge scores the white probe image 1.0.
    assert wait_for_judge_server(f"{first.url},{second.url}", "judge", timeout=10) == 1.0
    with pytest.raises(JudgeServerCheckError, match="did not answer within 1 s") as info:
        wait_for_judge_server(f"{first.url},{closed_port_url}", "judge", timeout=1, poll_interval=0.5)
    assert f"1 of the 2 judge replicas did not answer: {closed_port_url}" in str(info.value)
