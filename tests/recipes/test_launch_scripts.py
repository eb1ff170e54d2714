"""scripts/launch_trust_grpo.sh (GPU split, judge wait, training) and scripts/check_judge_server.py, against a loopback
OpenAI-compatible judge server."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from recipe_helpers import ROOT, trl_accepts

from sophia_trl.judges.loopback import LoopbackJudgeServer

sys.path.insert(0, str(ROOT / "scripts"))
import check_judge_server  # noqa: E402
from check_judge_server import JudgeServerCheckError, wait_for_judge_server  # noqa: E402

LAUNCH = ROOT / "scripts" / "launch_trust_grpo.sh"
ABLATIONS = "recipes/Qwen2.5-VL-7B-Instruct/grpo/ablations"


@pytest.fixture
def loopback():
    with LoopbackJudgeServer() as server:
        yield server


def launch(tmp_path, *args, timeout=300, **env):
    environment = {
        **os.environ,
        "PYTHON": sys.executable,
        "LOG_DIR": str(tmp_path / "logs"),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        **env,
    }
    return subprocess.run(
        ["bash", str(LAUNCH), *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout
    )


def commands(result):
    return [line[2:] for line in result.stderr.splitlines() if line.startswith("+ ")]


def test_dry_run_one_node_of_nine_gpus_is_the_paper_layout(tmp_path):
    result = launch(tmp_path, NUM_GPUS="9", DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert "GPU split: trainer 0,1,2,3,4,5,6,7 (8 processes), judge 8" in result.stderr
    assert "= 128 completions per step = 16 prompts x 8 generations" in result.stderr
    serve, check, train = commands(result)
    assert serve.startswith("scripts/serve_judge.sh vllm bunny127/SophiaVL-R1-Thinking-Reward-Model-3B 8001")
    assert "--base_url http://127.0.0.1:8001/v1 --model judge --timeout 900" in check
    assert train.startswith("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7 accelerate launch --config_file ")
    assert "--num_processes 8 recipes/grpo.py" in train
    assert "--judge_base_url http://127.0.0.1:8001/v1 --judge_model_name_or_path judge" in train


def test_dry_run_eight_gpus_with_a_vllm_generation_server(tmp_path):
    result = launch(
        tmp_path, "--", "--gradient_accumulation_steps", "2", NUM_GPUS="8", VLLM_MODE="server", DRY_RUN="1"
    )
    assert result.returncode == 0, result.stderr
    assert "GPU split: trainer 0,1,2,3,4,5 (6 processes), judge 7, generation 6" in result.stderr
    assert "4 x 6 processes x 2 accumulation = 48 completions per step = 6 prompts" in result.stderr
    serve, generation, check, train = commands(result)
    assert generation.startswith(
        "trl vllm-serve --model Qwen/Qwen2.5-VL-7B-Instruct --data_parallel_size 1 --port 8000"
    )
    assert "--vllm_mode server --vllm_server_host 127.0.0.1 --vllm_server_port 8000" in train
    assert train.endswith("--gradient_accumulation_steps 2")


def test_dry_run_plain_grpo_ablation_starts_no_judge(tmp_path):
    result = launch(tmp_path, NUM_GPUS="8", DRY_RUN="1", OVERRIDES=f"{ABLATIONS}/grpo.yaml")
    assert result.returncode == 0, result.stderr
    [train] = commands(result)  # no judge server, no wait
    merged = tmp_path / "logs" / "grpo_merged.yaml"
    assert f"--config {merged}" in train and "--judge_base_url" not in train
    assert "trainer 0,1,2,3,4,5,6,7 (8 processes)" in result.stderr
    config = yaml.safe_load(merged.read_text())
    assert config["judge_backend"] == "none" and config["learning_rate"] == 5.0e-7


def test_dry_run_external_judge_and_transformers_serve_names(tmp_path):
    external = launch(tmp_path, NUM_GPUS="8", DRY_RUN="1", JUDGE_URL="http://judge-host:8001/v1")
    check, train = commands(external)
    assert "--base_url http://judge-host:8001/v1 --model judge" in check
    assert "trainer 0,1,2,3,4,5,6,7 (8 processes)" in external.stderr
    served = launch(tmp_path, NUM_GPUS="8", DRY_RUN="1", JUDGE_SERVER="transformers", JUDGE_MODEL="me/judge")
    # transformers serve only answers to the model it hosts
    assert "--judge_model_name_or_path me/judge" in commands(served)[-1]


def test_a_batch_that_does_not_split_into_groups_is_refused(tmp_path):
    result = launch(
        tmp_path, "--", "--per_device_train_batch_size=3", "--gradient_accumulation_steps=1", NUM_GPUS="3", DRY_RUN="1"
    )
    # 3 completions x 2 training GPUs (the third serves the judge) x 1 step = 6, not a whole number of groups of 8.
    assert result.returncode != 0
    assert "6 completions per generation (3 x 2 processes x 1) is not a multiple of num_generations=8" in result.stderr
    assert not any("recipes/grpo.py" in command for command in commands(result))


def test_check_waits_and_scores_a_probe(loopback):
    # The loopback judge answers with the red channel of the image's top-left pixel / 255: the white probe gives 1.0.
    assert wait_for_judge_server(loopback.url, "judge", timeout=10) == 1.0
    assert loopback.requests["ok"] == 1 and len(loopback.images) == 1
    assert wait_for_judge_server(loopback.url, "judge", timeout=10, check_score=False) is None


def test_check_gives_up_after_the_timeout(closed_port_url):
    start = time.monotonic()
    with pytest.raises(JudgeServerCheckError, match="did not answer within 2 s") as info:
        wait_for_judge_server(closed_port_url, "judge", timeout=2, poll_interval=0.5)
    assert info.value.exit_code == 1
    assert time.monotonic() - start < 6


def test_check_stops_when_the_server_process_exits(closed_port_url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    start = time.monotonic()
    with pytest.raises(JudgeServerCheckError, match=f"process {dead.pid} exited") as info:
        wait_for_judge_server(closed_port_url, "judge", timeout=60, server_pid=dead.pid)
    assert info.value.exit_code == 3 and time.monotonic() - start < 5


@pytest.mark.parametrize(
    ("marker", "exit_code", "message"), [("[[garbage]]", 4, "holds no score"), ("[[unauthorized]]", 2, "HTTP 401")]
)
def test_check_reports_a_server_that_does_not_judge(loopback, monkeypatch, marker, exit_code, message):
    monkeypatch.setattr(check_judge_server, "PROBE_QUESTION", f"{marker} How many circles?")
    with pytest.raises(JudgeServerCheckError, match=message) as info:
        wait_for_judge_server(loopback.url, "judge", timeout=10)
    assert info.value.exit_code == exit_code


def test_launch_refuses_to_train_when_the_judge_never_answers(tmp_path, closed_port_url):
    result = launch(tmp_path, NUM_GPUS="0", JUDGE_URL=closed_port_url, WAIT_TIMEOUT="2")
    assert result.returncode != 0
    # check_judge_server.py's message, then the launcher's.
    assert "error: The judge server at" in result.stderr and "did not answer within 2 s" in result.stderr
    assert "training was not started" in result.stderr
    assert "recipes/grpo.py --config" not in "\n".join(commands(result)[1:])


def test_launch_reports_a_judge_server_that_dies(tmp_path):
    # Without vLLM (as on this machine), scripts/serve_judge.sh exits at once: the wait must stop and show its log.
    result = launch(tmp_path, NUM_GPUS="0", JUDGE_MODEL="me/judge", WAIT_TIMEOUT="60")
    assert result.returncode != 0
    assert "exited before answering" in result.stderr and "vllm is not installed" in result.stderr


@pytest.mark.slow
def test_launch_trains_on_the_cpu_with_a_served_judge(tmp_path, loopback, tiny_vlm_dir, synthetic_data_dir):
    overrides = tmp_path / "cpu.yaml"
    output_dir = tmp_path / "run"
    overrides.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_vlm_dir),
                "dataset_name": str(synthetic_data_dir),
                "judge_backend": "openai",
                "judge_model_name_or_path": "judge",
                "judge_prompt_template": "recipes/judge_prompts/sophia_trl.yaml",
                "output_dir": str(output_dir),
                "max_steps": 2,
                "per_device_train_batch_size": 8,
                "max_completion_length": 8,
                "logging_steps": 1,
            }
        )
    )
    result = launch(
        tmp_path,
        NUM_GPUS="0",
        CONFIG="recipes/tiny/trust_grpo.yaml",
        OVERRIDES=str(overrides),
        JUDGE_URL=loopback.url,
        WAIT_TIMEOUT="30",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in logs if "trust/judge_calls" in entry]
    assert len(steps) == 2
    for entry in steps:
        # 2 prompts x 4 generations judged per step, all answered; white scene backgrounds score 1.0 (see above).
        assert (entry["trust/judge_calls"], entry["trust/judge_failed"]) == (8, 0)
        assert entry["trust/thinking_reward_mean"] == 1.0
    assert loopback.requests["ok"] >= 2  # the probe, then the training requests (repeated completions are cached)


@pytest.mark.parametrize("vllm_mode", ["colocate", "server"])
def test_dry_run_gives_a_layout_trl_accepts_for_1_to_16_gpus(tmp_path, monkeypatch, gpu_parsing, vllm_mode):
    servers = 1 if vllm_mode == "colocate" else 2  # the judge, and in server mode the generation server
    for num_gpus in range(1, 17):
        result = launch(tmp_path, NUM_GPUS=str(num_gpus), VLLM_MODE=vllm_mode, DRY_RUN="1")
        trains = [c for c in commands(result) if "recipes/grpo.py" in c]
        if num_gpus <= servers:
            # Nothing is started, and the message says what to change.
            assert result.returncode != 0 and not trains, (num_gpus, result.stderr)
            assert "No GPU left for training" in result.stderr and "JUDGE_URL=" in result.stderr
            continue
        assert result.returncode == 0, (num_gpus, result.stderr)
        [train] = trains
        args, processes = trl_accepts(train, monkeypatch)
        assert processes == num_gpus - servers
        # The paper's recipe: 4 completions per device, 4 accumulation steps, groups of 8.
        completions = 4 * processes * 4
        assert args.generation_batch_size == completions and completions % args.num_generations == 0
        assert f"= {completions} completions per step = {completions // 8} prompts x 8 generations" in result.stderr
        if vllm_mode == "colocate":
            # TRL's colocate check (trl/generation/vllm_generation.py): the tensor-parallel size divides the processes.
            expected_tp = 2 if processes % 2 == 0 else 1
            assert args.vllm_tensor_parallel_size == expected_tp
            assert processes % args.vllm_tensor_parallel_size == 0
            assert f"{processes // expected_tp} engines of tensor-parallel size {expected_tp}" in result.stderr
        else:
            assert args.vllm_mode == "server"


def test_an_explicit_tensor_parallel_size_that_does_not_divide_is_refused(tmp_path):
    result = launch(tmp_path, "--", "--vllm_tensor_parallel_size", "2", NUM_GPUS="8", DRY_RUN="1")
    assert result.returncode != 0
    assert "vllm_tensor_parallel_size=2 does not divide the 7 training processes" in result.stderr
    assert not any("recipes/grpo.py" in command for command in commands(result))


def test_a_generation_batch_that_does_not_split_says_which_value_works(tmp_path):
    result = launch(
        tmp_path, "--", "--per_device_train_batch_size=3", "--gradient_accumulation_steps=1", NUM_GPUS="3", DRY_RUN="1"
    )
    # 3 x 2 processes x n must be a multiple of 8: n = 4 is the smallest.
    assert "pass -- --gradient_accumulation_steps 4" in result.stderr
    fixed = launch(
        tmp_path, "--", "--per_device_train_batch_size=3", "--gradient_accumulation_steps=4", NUM_GPUS="3", DRY_RUN="1"
    )
    assert fixed.returncode == 0 and "= 24 completions per step = 3 prompts x 8 generations" in fixed.stderr


def test_dry_run_base_vlm_judge_ablation_serves_the_untrained_model(tmp_path):
    result = launch(
        tmp_path,
        NUM_GPUS="9",
        DRY_RUN="1",
        JUDGE_MODEL="Qwen/Qwen2.5-VL-3B-Instruct",
        OVERRIDES=f"{ABLATIONS}/base_vlm_judge.yaml",
    )
    assert result.returncode == 0, result.stderr
    serve, check, train = commands(result)
    assert serve.startswith("scripts/serve_judge.sh vllm Qwen/Qwen2.5-VL-3B-Instruct 8001")
    config = yaml.safe_load((tmp_path / "logs" / "base_vlm_judge_merged.yaml").read_text())
    # Everything else is the paper's run: trust weighting and annealing on, the same judge prompt.
    assert config["trust_weighting"] is True and config["thinking_reward_annealing"] == "exp"
    assert config["output_dir"] == "outputs/Qwen2.5-VL-7B-Instruct-Trust-GRPO-base-vlm-judge"
