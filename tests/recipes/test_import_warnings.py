"""The recipes start without bitsandbytes' warning about the missing `kernels` package (logged when PEFT or TRL imports
it on a CPU with AVX512-BF16), and only that warning of bitsandbytes is silenced."""

import ast
import logging
import os
import subprocess
import sys

import pytest
from recipe_helpers import RECIPES, ROOT

import sophia_trl  # noqa: F401  (installs the filter)

KERNELS_WARNING = "Failed to load CPU gemm_4bit_forward from kernels-community"
# Prints whether bitsandbytes takes the path that logs the warning on this CPU.
IMPORTS = (
    "import {first}; import peft; from bitsandbytes.functional import has_avx512bf16; print(bool(has_avx512bf16()))"
)


def run_python(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)


def test_importing_sophia_trl_first_removes_the_warning():
    result = run_python("-c", IMPORTS.format(first="sophia_trl"))
    if result.stdout.strip() != "True":
        pytest.skip("bitsandbytes does not log the warning on this CPU (no AVX512-BF16)")
    assert KERNELS_WARNING not in result.stderr


ENTRY_POINTS = [*sorted(RECIPES.glob("*.py")), ROOT / "benchmarks" / "lab" / "experiment.py"]


@pytest.mark.parametrize("recipe", ENTRY_POINTS, ids=lambda path: path.name)
def test_recipes_import_sophia_trl_before_peft_and_trl(recipe):
    imports = [
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in ast.parse(recipe.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    heavy = [i for i, name in enumerate(imports) if name and name.split(".")[0] in ("peft", "trl", "transformers")]
    if heavy:
        assert "sophia_trl" in imports[: heavy[0]], f"{recipe.name} imports {imports[heavy[0]]} before sophia_trl"


@pytest.mark.slow
def test_grpo_help_starts_without_the_warning():
    if run_python("-c", IMPORTS.format(first="sys")).stdout.strip() != "True":
        pytest.skip("bitsandbytes does not log the warning on this CPU (no AVX512-BF16)")
    assert KERNELS_WARNING not in run_python(str(RECIPES / "grpo.py"), "--help").stderr


def test_only_that_warning_is_filtered(caplog):
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("%s: No module named 'kernels'.", KERNELS_WARNING)
        logger.warning("Another bitsandbytes warning")
    assert [record.getMessage() for record in caplog.records] == ["Another bitsandbytes warning"]
