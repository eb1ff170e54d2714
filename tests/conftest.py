import os

import pytest

# Nothing in the test suite may reach a hub: every model and dataset is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads, and tests that start servers or torchrun workers would oversubscribe
# the cores: one thread per process keeps the suite's run time stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL policy checkpoint, built offline once per test session."""
    from sophia_trl.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), seed=0)


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL judge checkpoint (same architecture, other weights), built offline once per session."""
    from sophia_trl.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-judge"), seed=1)
