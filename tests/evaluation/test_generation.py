"""Generation backends: batched transformers against per-prompt calls, truncation flags, vLLM request building."""

import sys
import types

import pytest
import torch
from evaluation_helpers import square
from transformers import AutoModelForImageTextToText, AutoProcessor

from sophia_trl.evaluation.generation import (
    EvalPrompt,
    TransformersGenerator,
    VLLMGenerator,
    build_vllm_requests,
    import_vllm,
)

IMAGE_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"


def mixed_prompts() -> list[EvalPrompt]:
    """One image, no image, two images of different sizes: every case a batch must pad and align."""
    return [
        EvalPrompt([{"role": "user", "content": "How many red squares are there?"}], [square("red")]),
        EvalPrompt([{"role": "user", "content": "What is 2 + 2? Think first."}], []),
        EvalPrompt(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Compare."}],
            [square("blue"), square("green", size=84)],
        ),
    ]


@pytest.fixture(scope="module")
def noisy_vlm_dir(tiny_vlm_dir, tmp_path_factory):
    """The tiny policy with large random weights: its greedy outputs differ from prompt to prompt (the untrained tiny
    policy writes the same token everywhere, which would hide a batching bug)."""
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    path = tmp_path_factory.mktemp("noisy-vlm")
    model.save_pretrained(path)
    AutoProcessor.from_pretrained(tiny_vlm_dir).save_pretrained(path)
    return path


def test_batched_generation_equals_one_prompt_at_a_time(noisy_vlm_dir):
    generator = TransformersGenerator(str(noisy_vlm_dir), batch_size=3, max_new_tokens=5, device="cpu")
    batched = generator.generate(mixed_prompts())
    generator.batch_size = 1
    single = generator.generate(mixed_prompts())
    assert batched == single
    assert len({generation.text for generation in batched}) == 3  # the outputs differ, so the check has teeth
    assert all(generation.truncated for generation in batched)  # random weights never write the end token


def test_response_ending_with_eos_is_not_truncated(tiny_vlm_dir, tmp_path):
    # The untrained tiny policy writes "\n" forever: with "\n" as its end token it stops at once.
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("Ċ")  # byte-level "\n"
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    stopping = TransformersGenerator(str(tmp_path), max_new_tokens=6, device="cpu").generate(mixed_prompts()[:1])
    running = TransformersGenerator(str(tiny_vlm_dir), max_new_tokens=6, device="cpu").generate(mixed_prompts()[:1])
    # "\n" is an ordinary token, so it stays in the text (a real end token is special and skipped in decoding)
    assert stopping[0].truncated is False and stopping[0].text == "\n"
    assert running[0].truncated is True and running[0].text == "\n" * 6


def test_pixel_bounds_reach_the_image_processor(tiny_vlm_dir):
    generator = TransformersGenerator(str(tiny_vlm_dir), max_new_tokens=1, min_pixels=28 * 28, max_pixels=28 * 28 * 4)
    assert generator.processor.image_processor.size["longest_edge"] == 28 * 28 * 4
    inputs = generator.processor(text=[IMAGE_BLOCK], images=[square("red", size=112)], return_tensors="pt")
    # 112x112 is shrunk to 56x56 = 4 patches of 28x28 -> grid (1, 4, 4) of 14-pixel patches
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]


def test_missing_vllm_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e \.\[vllm\].*--backend transformers"):
        import_vllm()
    with pytest.raises(ImportError, match="vLLM"):
        VLLMGenerator("any-model")


def test_vllm_requests_carry_prompt_text_and_images(tiny_vlm_dir):
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    prompts = mixed_prompts()
    requests = build_vllm_requests(processor, prompts)
    assert [request["prompt"].count(IMAGE_BLOCK) for request in requests] == [1, 0, 2]
    assert requests[0]["multi_modal_data"]["image"][0] is prompts[0].images[0]
    assert "multi_modal_data" not in requests[1]
    assert requests[2]["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert all(request["prompt"].endswith("<|im_start|>assistant\n") for request in requests)


def test_vllm_generator_maps_outputs_in_order(tiny_vlm_dir, monkeypatch):
    calls = {}

    class FakeLLM:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def generate(self, requests, sampling_params, use_tqdm):
            calls["requests"], calls["params"] = requests, sampling_params
            return [
                types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out{i}", finish_reason=reason)])
                for i, reason in enumerate(["stop", "length", "stop"])
            ]

    fake = types.SimpleNamespace(LLM=FakeLLM, SamplingParams=lambda **kwargs: kwargs)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    generator = VLLMGenerator(str(tiny_vlm_dir), max_new_tokens=64, llm_kwargs={"tensor_parallel_size": 2})
    outputs = generator.generate(mixed_prompts())
    assert [(o.text, o.truncated) for o in outputs] == [("out0", False), ("out1", True), ("out2", False)]
    assert calls["params"] == {"temperature": 0.0, "max_tokens": 64}
    assert calls["init"]["limit_mm_per_prompt"] == {"image": 7}
    assert calls["init"]["tensor_parallel_size"] == 2
    assert len(calls["requests"]) == 3
