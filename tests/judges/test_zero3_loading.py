"""A local judge under an active DeepSpeed ZeRO-3 configuration loads whole (not partitioned by `zero.Init`) and
generates without waiting for the other processes.

ZeRO-3 needs several GPUs. The tests register transformers' `HfDeepSpeedConfig` of a ZeRO-3 run, as
`accelerate launch --config_file accelerate_configs/zero3.yaml` does when the training arguments are parsed (a
stand-in for it where deepspeed is not installed, as on this machine), so that `is_deepspeed_zero3_enabled()` is true
as in such a run. Without `loading_whole`, `from_pretrained` then enters `deepspeed.zero.Init` (here: fails to import
deepspeed; on a GPU machine: partitions the judge's weights over the processes).
"""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.integrations.deepspeed import (
    is_deepspeed_zero3_enabled,
    set_hf_deepspeed_config,
    unset_hf_deepspeed_config,
)

from sophia_trl.judges import ScalarJudge, TransformersJudge
from sophia_trl.judges.scalar_model import load_scalar_reward_model
from sophia_trl.model_utils import loading_whole


class ZeRO3Config:
    """Stands in for `transformers.integrations.HfDeepSpeedConfig` of a ZeRO-3 run (it needs deepspeed installed)."""

    config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1}

    def is_zero3(self) -> bool:
        return True


@pytest.fixture
def zero3_active():
    # transformers keeps a weak reference to the configuration: the fixture holds the object.
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        config = ZeRO3Config()
        set_hf_deepspeed_config(config)
    else:  # the real one, which registers itself
        from transformers.integrations import HfDeepSpeedConfig

        config = HfDeepSpeedConfig(ZeRO3Config.config)
    assert is_deepspeed_zero3_enabled()
    yield config
    unset_hf_deepspeed_config()


def assert_same_weights(model, reference) -> None:
    loaded, expected = model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert loaded[name].shape == tensor.shape, name  # a partitioned weight is an empty placeholder
        torch.testing.assert_close(loaded[name], tensor, msg=name)


def test_loading_whole_sets_the_zero3_config_aside_and_restores_it(zero3_active):
    with loading_whole():
        assert not is_deepspeed_zero3_enabled()
    assert is_deepspeed_zero3_enabled()
    with pytest.raises(RuntimeError), loading_whole():  # restored on errors too
        raise RuntimeError("load failed")
    assert is_deepspeed_zero3_enabled()


def test_loading_whole_without_deepspeed_changes_nothing():
    assert not is_deepspeed_zero3_enabled()
    with loading_whole():
        assert not is_deepspeed_zero3_enabled()
    assert not is_deepspeed_zero3_enabled()


def test_generative_judge_loads_whole_under_zero3(tiny_judge_dir, zero3_active):
    judge = TransformersJudge(tiny_judge_dir, device="cpu", dtype=torch.float32, cache_size=0)
    assert is_deepspeed_zero3_enabled()  # the run's configuration is back for the policy
    unset_hf_deepspeed_config()
    reference = AutoModelForImageTextToText.from_pretrained(tiny_judge_dir, dtype=torch.float32)
    set_hf_deepspeed_config(zero3_active)
    assert_same_weights(judge.model, reference)


def test_scalar_judge_loads_whole_under_zero3(tiny_judge_dir, tmp_path, zero3_active):
    unset_hf_deepspeed_config()
    reference = load_scalar_reward_model(str(tiny_judge_dir), dtype=torch.float32)
    reference.save_pretrained(tmp_path)  # a scalar-head checkpoint, head included
    AutoProcessor.from_pretrained(tiny_judge_dir).save_pretrained(tmp_path)
    set_hf_deepspeed_config(zero3_active)
    judge = ScalarJudge(str(tmp_path), device="cpu", dtype=torch.float32, cache_size=0)
    assert is_deepspeed_zero3_enabled()
    assert_same_weights(judge.model, reference)


def test_generative_judge_generates_alone_under_zero3(tiny_judge_dir, zero3_active, monkeypatch):
    # Under ZeRO-3 with several processes, transformers' generate would default to synced_gpus=True and wait in an
    # all-reduce for the other processes after every token; the judge's processes run different numbers of batches.
    import transformers.generation.utils

    monkeypatch.setattr(transformers.generation.utils, "_get_torch_distributed_world_size", lambda: 2)
    judge = TransformersJudge(tiny_judge_dir, device="cpu", max_new_tokens=4, cache_size=0, readout="greedy")
    texts = judge.generate_texts(["How many?"] * 2, ["3", "4"], [Image.new("RGB", (56, 56), "red"), None])
    assert len(texts) == 2
