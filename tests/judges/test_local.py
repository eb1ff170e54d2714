"""The in-process judges (`sophia_trl.judges.local`): TransformersJudge on the tiny judge, VLLMJudge with a stand-in
vLLM. ScalarJudge is tested with the model it loads, in tests/trainers/test_reward_trainer.py."""

import math
import sys
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from sophia_trl.judges import TransformersJudge, VLLMJudge, build_judge_messages, build_openai_messages, parse_score

# ---------------------------------------------------------------------------------------------------------------------
# TransformersJudge
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_judge(tiny_judge_dir):
    return TransformersJudge(
        tiny_judge_dir, batch_size=3, max_new_tokens=8, device="cpu", cache_size=0, readout="greedy"
    )


def _length_score_generate(judge, seen):
    """A `generate` whose reply depends on each row's unpadded prompt: `<answer>{(length % 11) / 10}</answer>`.

    It also checks what the batch looks like: left padding, and one image grid per row that holds image tokens.
    """
    tokenizer = judge.tokenizer
    image_token_id = judge.model.config.image_token_id

    def generate(input_ids, attention_mask, pixel_values=None, image_grid_thw=None, max_new_tokens=None, **kwargs):
        assert kwargs["do_sample"] is False
        assert attention_mask[:, -1].all(), "prompts must be left padded"
        rows_with_images = int((input_ids == image_token_id).any(dim=1).sum())
        assert (0 if image_grid_thw is None else len(image_grid_thw)) == rows_with_images
        seen.append(input_ids.shape[0])
        replies = [f"<answer>{(int(n) % 11) / 10:.1f}</answer>" for n in attention_mask.sum(dim=1)]
        new = tokenizer(replies, padding=True, padding_side="right", return_tensors="pt").input_ids
        return torch.cat([input_ids, new], dim=1)

    return generate


def _unpadded_lengths(judge, questions, responses, images):
    lengths = []
    for q, r, img in zip(questions, responses, images):
        text = judge.processor.apply_chat_template(
            build_judge_messages(q, r, img), tokenize=False, add_generation_prompt=True
        )
        lengths.append(judge.processor(text=[text], images=[img] if img else None).input_ids[0].__len__())
    return lengths


def test_transformers_judge_batches_mixed_rows_like_single_rows(transformers_judge, monkeypatch):
    judge = transformers_judge
    seen = []
    monkeypatch.setattr(judge.model, "generate", _length_score_generate(judge, seen))
    # 28x28 -> 1 image token, 28x56 -> 2, 56x56 -> 4: a misplaced image changes that row's length.
    images = [
        Image.new("RGB", (56, 56), "red"),
        None,
        Image.new("RGB", (28, 28), "blue"),
        None,
        Image.new("RGB", (56, 28), "green"),
        None,
        Image.new("RGB", (56, 56), "white"),
    ]
    questions = [f"How many shapes are in picture {i}?" for i in range(7)]
    responses = ["<think>" + "one two " * i + "</think><answer>3</answer>" for i in range(7)]

    batched = judge.score(questions, responses, images)
    assert seen == [3, 3, 1]
    single = [judge.score([q], [r], [img])[0] for q, r, img in zip(questions, responses, images)]
    expected = [(n % 11) / 10 for n in _unpadded_lengths(judge, questions, responses, images)]
    assert batched == pytest.approx(expected)
    assert single == pytest.approx(expected)
    assert len(set(expected)) > 3  # the rows really differ, so a mix-up would show


def test_transformers_judge_text_only_batch(transformers_judge, monkeypatch):
    judge = transformers_judge
    monkeypatch.setattr(judge.model, "generate", _length_score_generate(judge, []))
    scores = judge.score(["q1", "q2"], ["short", "a much longer response here"])
    assert scores == pytest.approx(
        [
            (n % 11) / 10
            for n in _unpadded_lengths(judge, ["q1", "q2"], ["short", "a much longer response here"], [None, None])
        ]
    )


def test_transformers_judge_real_generation(transformers_judge):
    # The untrained tiny judge writes noise: what matters is that generation runs on a mixed batch and every output
    # is either a valid score or None.
    images = [Image.new("RGB", (56, 56), "red"), None, None, Image.new("RGB", (56, 56), "blue")]
    texts = transformers_judge.generate_texts(["q"] * 4, ["a", "b", "c", "d"], images)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    scores = transformers_judge.score(["q"] * 4, ["a", "b", "c", "d"], images)
    assert scores == [parse_score(t) for t in texts]


def test_transformers_judge_rejects_bad_settings(tiny_judge_dir):
    with pytest.raises(ValueError, match="batch_size"):
        TransformersJudge(tiny_judge_dir, batch_size=0)


# ---------------------------------------------------------------------------------------------------------------------
# VLLMJudge (vLLM is not installed here: a stand-in module records what the judge asks of it)
# ---------------------------------------------------------------------------------------------------------------------


def test_vllm_judge_without_vllm_explains_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match=r"VLLMJudge needs vLLM.*\[vllm\]"):
        VLLMJudge("some/judge")


def test_vllm_judge_builds_chat_requests(monkeypatch):
    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            calls["sampling"] = kwargs

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def chat(self, conversations, sampling_params, use_tqdm):
            calls["conversations"] = conversations
            replies = ["<answer>0.3</answer>", "no score", "<answer>0.9</answer>"]
            return [SimpleNamespace(outputs=[SimpleNamespace(text=t)]) for t in replies]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    judge = VLLMJudge(
        "/models/judge", max_new_tokens=12, gpu_memory_utilization=0.2, llm_kwargs={"max_model_len": 4096}
    )
    assert calls["llm"] == {
        "model": "/models/judge",
        "gpu_memory_utilization": 0.2,
        "tensor_parallel_size": 1,
        "limit_mm_per_prompt": {"image": 1},
        "max_model_len": 4096,
    }
    assert calls["sampling"] == {"temperature": 0.0, "max_tokens": 12}

    image = Image.new("RGB", (8, 8), "red")
    assert judge.score(["q1", "q2", "q3"], ["r1", "r2", "r3"], [image, None, None]) == [0.3, None, 0.9]
    first, second = calls["conversations"][0], calls["conversations"][1]
    assert first == build_openai_messages("q1", "r1", image)
    assert first[1]["content"][0]["type"] == "image_url"
    assert [block["type"] for block in second[1]["content"]] == ["text"]


def test_vllm_judge_expected_readout_reads_the_prompt_and_token_logprobs(monkeypatch, tiny_judge_dir):
    from transformers import AutoTokenizer

    from sophia_trl.judges import score_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_judge_dir)
    ids = score_token_ids(tokenizer)
    calls = {}

    def logprob_entries(probs):  # vLLM's {token id: Logprob(logprob, rank, decoded_token)}
        return {ids[ch]: SimpleNamespace(logprob=math.log(p), rank=1, decoded_token=ch) for ch, p in probs.items()}

    class SamplingParams:
        def __init__(self, **kwargs):
            calls["sampling"] = kwargs

    class LLM:
        def __init__(self, **kwargs):
            pass

        def get_tokenizer(self):
            return tokenizer

        def chat(self, conversations, sampling_params, use_tqdm, **kwargs):
            calls["conversations"], calls["chat"] = conversations, kwargs
            # Row 1: P("1") = 0.25, P("0") = 0.75, digits 4 and 8 at 0.5 each -> 0.25 * 1.0 + 0.75 * 0.6 = 0.70.
            # Row 2: all on "1" -> 1.0. Row 3: no log-probabilities (e.g. the server's max_logprobs was 0) -> None.
            prompts = [
                [None, logprob_entries({"0": 0.75, "1": 0.25}), logprob_entries({".": 1.0})],
                [None, logprob_entries({"1": 1.0}), logprob_entries({".": 1.0})],
                None,
            ]
            tokens = [[logprob_entries({"4": 0.5, "8": 0.5})], [logprob_entries({"0": 1.0})], None]
            return [
                SimpleNamespace(prompt_logprobs=p, outputs=[SimpleNamespace(text="", logprobs=t)])
                for p, t in zip(prompts, tokens)
            ]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    judge = VLLMJudge("/models/judge", readout="expected")
    assert calls["sampling"] == {"temperature": 0.0, "max_tokens": 1, "logprobs": 20, "prompt_logprobs": 20}
    scores = judge.score(["q1", "q2", "q3"], ["r1", "r2", "r3"], [None] * 3)
    assert scores[0] == pytest.approx(0.70) and scores[1] == pytest.approx(1.0) and scores[2] is None
    assert calls["chat"] == {"add_generation_prompt": False, "continue_final_message": True}
    assert calls["conversations"][0][-1] == {"role": "assistant", "content": "<answer>0."}
    assert calls["conversations"][0][:-1] == build_openai_messages("q1", "r1", None)
    with pytest.raises(ValueError, match="readout='best' is not one of"):
        VLLMJudge("/models/judge", readout="best")
