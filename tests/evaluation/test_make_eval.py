"""`make eval` passes local copies of the benchmarks (`DATA="NAME=PATH ..."`) to eval/evaluate.py as --data."""

import shlex
import shutil
import subprocess

import pytest
from evaluation_helpers import CLI, load_cli


def make_eval_arguments(*variables: str) -> list[str]:
    """The arguments `make eval` gives eval/evaluate.py, read from `make -n` (which runs nothing)."""
    result = subprocess.run(
        ["make", "-n", "-s", "-C", str(CLI.parents[1]), "eval", *variables],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = result.stdout.replace("\\\n", " ").splitlines()
    [command] = [line for line in commands if "eval/evaluate.py" in line]
    words = shlex.split(command)
    return words[words.index("eval/evaluate.py") + 1 :]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_eval_passes_local_copies():
    arguments = make_eval_arguments("MODEL=outputs/run", "DATA=mmmu=/data/MMMU mmbench=/data/MMBench_DEV_EN.tsv")
    args = load_cli().parse_args(arguments)
    assert args.model == "outputs/run" and args.benchmark == "all"
    assert args.data == ["mmmu=/data/MMMU", "mmbench=/data/MMBench_DEV_EN.tsv"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_eval_without_data_reads_the_hub():
    args = load_cli().parse_args(make_eval_arguments("MODEL=outputs/run", "BENCH=mmmu"))
    assert args.data == [] and args.benchmark == "mmmu"
