"""Judge prompt, score parser, cache and the local generative judge (`sophia_trl.rewards.thinking`)."""

import sys
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from sophia_trl.rewards.thinking import (
    JUDGE_SYSTEM_PROMPT,
    ThinkingJudge,
    TransformersJudge,
    VLLMJudge,
    build_judge_messages,
    build_openai_messages,
    format_score,
    image_hash,
    parse_score,
)

# ---------------------------------------------------------------------------------------------------------------------
# Prompt and parser
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>0.8</answer>", 0.8),
        ("<answer> 0.3 </answer>", 0.3),
        ("<ANSWER>1</ANSWER>", 1.0),
        ("<answer>.5</answer>", 0.5),
        ("The reasoning is sound. <answer>0.9</answer>", 0.9),
        ("<answer>0.2</answer> on reflection <answer>0.6</answer>", 0.6),  # the last block wins
        ("<answer>0.7", 0.7),  # cut by max_new_tokens before the closing tag
        ("<answer>1.4</answer>", 1.0),  # clamped
        ("<answer>-0.2</answer>", 0.0),  # clamped
        ("0.4", 0.4),
        ("  1 \n", 1.0),
        ("0.6.", 0.6),
        ("3", 1.0),
        ("", None),
        (None, None),
        ("good reasoning", None),
        ("<answer>good</answer>", None),
        ("<answer></answer>", None),
        ("score 0.7 out of 1", None),  # a number inside prose is not a score
        ("<answer>0.7 0.8</answer>", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_score(text, expected):
    result = parse_score(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    "score, text", [(0.0, "<answer>0.0</answer>"), (0.73, "<answer>0.7</answer>"), (1.0, "<answer>1.0</answer>")]
)
def test_format_score_round_trips_through_parser(score, text):
    assert format_score(score) == text
    assert parse_score(text) == pytest.approx(round(score, 1))


def test_format_score_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        format_score(1.5)


def test_build_judge_messages_with_and_without_image():
    image = Image.new("RGB", (56, 56), "red")
    with_image = build_judge_messages("How many circles?", "<think>2 + 1 = 3</think><answer>3</answer>", image)
    assert [m["role"] for m in with_image] == ["system", "user"]
    assert with_image[0]["content"] == [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]
    user = with_image[1]["content"]
    assert user[0] == {"type": "image", "image": image}
    assert "How many circles?" in user[1]["text"] and "2 + 1 = 3" in user[1]["text"]

    text_only = build_judge_messages("q", "r")
    assert [block["type"] for block in text_only[1]["content"]] == ["text"]


def test_system_prompt_names_the_five_criteria_and_the_answer_format():
    prompt = JUDGE_SYSTEM_PROMPT.lower()
    for criterion in (
        "logical soundness",
        "correct reasoning",
        "error identification",
        "language consistency",
        "redundancy",
    ):
        assert criterion in prompt
    assert "<answer>score</answer>" in prompt and "0.1" in prompt


def test_image_hash_depends_on_pixels_not_identity():
    a, b = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "red")
    assert image_hash(a) == image_hash(b)
    assert image_hash(a) != image_hash(Image.new("RGB", (8, 8), "blue"))
    assert image_hash(a) != image_hash(Image.new("RGB", (8, 4), "red"))
    assert image_hash(None) is None


# ---------------------------------------------------------------------------------------------------------------------
# Base class: validation and cache
# ---------------------------------------------------------------------------------------------------------------------


class TableJudge(ThinkingJudge):
    """Scores from a dict keyed by response; records what reached the backend."""

    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = table
        self.calls = []

    def _score_uncached(self, questions, responses, images):
        self.calls.append(list(zip(questions, responses, [image_hash(i) for i in images])))
        return [self.table.get(r) for r in responses]


def test_cache_serves_repeats_within_and_across_calls():
    judge = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3})
    red = Image.new("RGB", (8, 8), "red")
    assert judge.score(["q", "q", "q", "q"], ["a", "b", "a", "b"], [None, None, None, red]) == [0.1, 0.2, 0.1, 0.2]
    # "b" with and without the image are different rows; the duplicate "a" was not sent.
    assert [r for _, r, _ in judge.calls[0]] == ["a", "b", "b"]
    assert (judge.num_requests, judge.num_cache_hits) == (3, 1)

    assert judge.score(["q", "q"], ["a", "c"], [None, None]) == [0.1, 0.3]
    assert [r for _, r, _ in judge.calls[1]] == ["c"]
    assert (judge.num_requests, judge.num_cache_hits) == (4, 2)

    # Same response, other question: not a cache hit.
    judge.score(["other"], ["a"])
    assert judge.calls[2] == [("other", "a", None)]


def test_failures_are_none_and_not_cached():
    judge = TableJudge({"a": 0.5})
    assert judge.score(["q", "q"], ["a", "unknown"]) == [0.5, None]
    assert judge.num_failures == 1
    judge.table["unknown"] = 0.0
    assert judge.score(["q"], ["unknown"]) == [0.0]  # asked again, and a real 0 comes back as 0
    assert len(judge.calls) == 2


def test_cache_evicts_least_recently_used():
    judge = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3}, cache_size=2)
    judge.score(["q", "q"], ["a", "b"])
    judge.score(["q"], ["a"])  # touch "a": "b" is now the oldest
    judge.score(["q"], ["c"])  # evicts "b"
    judge.score(["q", "q"], ["a", "b"])
    assert [r for _, r, _ in judge.calls[-1]] == ["b"]


def test_cache_disabled():
    judge = TableJudge({"a": 0.1}, cache_size=0)
    judge.score(["q"], ["a"])
    judge.score(["q"], ["a"])
    assert len(judge.calls) == 2


@pytest.mark.parametrize(
    "questions, responses, images, error, match",
    [
        (["q"], ["a", "b"], None, ValueError, "1 questions but 2 responses"),
        (["q", "q"], ["a", "b"], [None], ValueError, "2 questions but 1 images"),
        (["q", None], ["a", "b"], None, TypeError, "Row 1"),
    ],
)
def test_score_rejects_bad_input(questions, responses, images, error, match):
    with pytest.raises(error, match=match):
        TableJudge({}).score(questions, responses, images)


def test_empty_input():
    judge = TableJudge({})
    assert judge.score([], []) == []
    assert judge.calls == []


# ---------------------------------------------------------------------------------------------------------------------
# TransformersJudge
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_judge(tiny_judge_dir):
    return TransformersJudge(tiny_judge_dir, batch_size=3, max_new_tokens=8, device="cpu", cache_size=0)


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
