"""recipes/grpo.py on the tiny models against a loopback judge server that fails: the check before training, failed
calls counted and bounded in time, an outage that stops the run with a checkpoint that resumes, and SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


def recipe_args(policy_dir, synthetic_data_dir, output_dir, url, *overrides: str) -> list[str]:
    """The tiny recipe with a served judge at `url`: one prompt group of 4 x 2 = 8 judge calls per step."""
    return [
        "--config",
        str(RECIPES / "tiny/trust_grpo.yaml"),
        f"--model_name_or_path={policy_dir}",
        f"--dataset_name={synthetic_data_dir}",
        f"--output_dir={output_dir}",
        "--judge_backend=openai",
        f"--judge_base_url={url}",
        "--judge_model_name_or_path=judge",
        f"--judge_prompt_template={RECIPES / 'judge_prompts/sophia_trl.yaml'}",  # a served judge carries no prompt
        "--judge_timeout=1",
        "--judge_max_retries=0",  # one attempt per call: every injected fault is one failed call
        "--per_device_train_batch_size=8",
        "--max_completion_length=16",
        "--logging_steps=1",
        "--disable_tqdm=true",
        "--min_pixels=784",
        "--max_pixels=3136",
        *overrides,
    ]


def run_recipe(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(RECIPES / "grpo.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def step_logs(output_dir: Path) -> list[dict]:
    """The per-step logs of a run (trainer_state.json of the run, or of its last checkpoint)."""
    state = output_dir / "trainer_state.json"
    history = json.loads(state.read_text())["log_history"]
    return [entry for entry in history if "trust/alpha" in entry]


def test_recipe_stops_in_seconds_when_the_judge_server_is_not_there(
    tiny_vlm_dir, synthetic_data_dir, tmp_path, monkeypatch, closed_port_url
):
    from transformers import AutoModelForImageTextToText
    from trl import ModelConfig, TrlParser

    from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments
    from sophia_trl.judges.preflight import JudgeCheckError

    sys.path.insert(0, str(RECIPES))
    import grpo

    url = closed_port_url
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    parsed = parser.parse_args_and_config(recipe_args(tiny_vlm_dir, synthetic_data_dir, tmp_path / "run", url))
    loaded = []
    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", lambda *a, **k: loaded.append(a))
    start = time.monotonic()
    with pytest.raises(JudgeCheckError) as info:
        grpo.main(*parsed)
    assert time.monotonic() - start < 10
    assert not loaded, "the policy was loaded before the judge was checked"
    assert url in str(info.value) and "--judge_backend none" in str(info.value)


def test_recipe_counts_every_injected_fault_and_no_step_waits_past_the_timeout(
    tiny_vlm_dir, synthetic_data_dir, tmp_path, loopback_server
):
    # Per 10 calls: 5 answer, 1 HTTP 503, 1 hangs 30 s (past judge_timeout=1), 3 HTTP 200 without a usable reply.
    faults = ("ok", "503", "ok", "timeout", "ok", "no_choices", "ok", "null_message", "ok", "html")
    server = loopback_server(faults=faults, fault_delay=30.0)
    out = tmp_path / "run"
    result = run_recipe(recipe_args(tiny_vlm_dir, synthetic_data_dir, out, server.url, "--max_steps=3"))
    assert result.returncode == 0, result.stderr[-3000:]
    logs = step_logs(out)
    assert [entry["step"] for entry in logs] == [1, 2, 3]
    # Call 0 is the check before training (ok); calls 1-24 are the 3 steps: 12 of them fall on a fault.
    assert sum(server.served.values()) == 25 and server.served["ok"] == 13
    assert sum(entry["trust/judge_failed"] for entry in logs) == 12
    assert all(entry["trust/judge_calls"] == 8 for entry in logs)
    # One attempt of at most judge_timeout=1 s per call, all 8 in flight at once; a hung call would take 30 s.
    assert max(entry["step_time"] for entry in logs) < 10
    # One warning per step with failed calls, none per request.
    warnings = [line for line in result.stdout.splitlines() if "thinking judge calls failed" in line]
    assert len(warnings) == sum(entry["trust/judge_failed"] > 0 for entry in logs)


def test_a_short_outage_recovers_without_stopping(tiny_vlm_dir, synthetic_data_dir, tmp_path, loopback_server):
    # The server drops the 8 calls of step 2 (calls 9-16), then answers again.
    server = loopback_server(go_away_after=9, back_after=8)
    out = tmp_path / "run"
    overrides = ("--max_steps=3", "--judge_failure_window=2", "--judge_max_failed_fraction=0.5")
    result = run_recipe(recipe_args(tiny_vlm_dir, synthetic_data_dir, out, server.url, *overrides))
    assert result.returncode == 0, result.stderr[-3000:]
    # Window of steps 1-2: 8 of 16 failed = 0.5, within the budget; step 3 scores again.
    assert [entry["trust/judge_failed"] for entry in step_logs(out)] == [0, 8, 0]


def test_an_outage_past_the_budget_stops_with_a_checkpoint_that_resumes(
    tiny_vlm_dir, synthetic_data_dir, tmp_path, loopback_server
):
    # The server goes away for good after the check and 2 steps (calls 0-16).
    server = loopback_server(go_away_after=17)
    out = tmp_path / "run"
    budget = ("--judge_failure_window=2", "--judge_max_failed_fraction=0.5", "--judge_max_retries=1")
    start = time.monotonic()
    result = run_recipe(recipe_args(tiny_vlm_dir, synthetic_data_dir, out, server.url, "--max_steps=6", *budget))
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    [last] = [line for line in result.stderr.splitlines() if line.startswith("sophia_trl.judges.health.JudgeOutage")]
    # Step 3 fails 8 of 8 (window: 8 of 16, 0.5); step 4 too (16 of 16): the run stops before training step 4.
    assert last.startswith("sophia_trl.judges.health.JudgeOutageError: The thinking judge (OpenAIJudge 'judge' at ")
    assert "failed 16 of 16 calls (100%) over the last 2 steps (up to step 4)" in last
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]
    assert [entry["step"] for entry in step_logs(out / "checkpoint-3")] == [1, 2, 3]
    assert not (out / "model.safetensors").exists()  # no final model: the run did not finish
    print(f"outage run: {elapsed:.1f} s in all")

    server.come_back()
    resumed = run_recipe(
        recipe_args(
            tiny_vlm_dir,
            synthetic_data_dir,
            out,
            server.url,
            "--max_steps=6",
            "--resume_from_checkpoint=true",
            *budget,
        )
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = step_logs(out)
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4, 5, 6]
    assert [entry["trust/judge_failed"] for entry in logs[3:]] == [0, 0, 0]


def test_sigterm_saves_a_checkpoint_that_resumes_as_the_uninterrupted_run(
    tiny_vlm_dir, synthetic_data_dir, tmp_path, loopback_server
):
    server = loopback_server()
    steps = ("--max_steps=5", "--save_strategy=no")
    straight = tmp_path / "straight"
    assert run_recipe(recipe_args(tiny_vlm_dir, synthetic_data_dir, straight, server.url, *steps)).returncode == 0

    out = tmp_path / "preempted"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                str(RECIPES / "grpo.py"),
                *recipe_args(tiny_vlm_dir, synthetic_data_dir, out, server.url, *steps),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        logged = 0
        for line in process.stdout:  # the trainer prints each step's logs
            logged += "'trust/alpha'" in line
            if logged == 2:
                process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                break
        process.stdout.read()
        returncode = process.wait(timeout=300)
    assert returncode == 143, (tmp_path / "stderr.txt").read_text()[-3000:]
    print(f"SIGTERM to exit: {time.monotonic() - signalled:.1f} s")
    checkpoints = [p.name for p in out.glob("checkpoint-*")]
    assert len(checkpoints) == 1 and checkpoints[0] in ("checkpoint-2", "checkpoint-3", "checkpoint-4")
    assert not (out / "model.safetensors").exists()

    resumed = run_recipe(
        recipe_args(tiny_vlm_dir, synthetic_data_dir, out, server.url, *steps, "--resume_from_checkpoint=true")
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = step_logs(straight), step_logs(out)
    assert [e["step"] for e in got] == [1, 2, 3, 4, 5]
    keys = [k for k in expected[0] if k.startswith("trust/")] + ["reward", "loss"]
    assert "trust/alpha" in keys and "trust/gamma_mean" in keys
    for want, have in zip(expected, got):
        for key in keys:
            assert have[key] == pytest.approx(want[key], abs=1e-6), (want["step"], key)
