"""The expected-score readout (local and server judges) and `OpenAIJudge.score_async`."""

import math

import pytest
import torch
from PIL import Image

from sophia_trl.judges import (
    JudgeServerError,
    OpenAIJudge,
    TransformersJudge,
    build_judge_messages,
    expected_score,
    score_token_ids,
)

LOG = math.log


@pytest.mark.parametrize(
    ("first", "digit", "expected"),
    [
        ({"0": LOG(0.5), "1": LOG(0.5)}, {"6": LOG(0.5), "8": LOG(0.5)}, 0.5 * 1.0 + 0.5 * 0.7),
        ({"1": 0.0}, None, 1.0),  # "1" only: no digit needed
        ({"0": 0.0}, {str(d): LOG(0.1) for d in range(10)}, 0.45),  # uniform digits: mean 4.5 tenths
        ({"0": LOG(0.2), "1": LOG(0.2)}, {"3": 0.0}, 0.5 * 1.0 + 0.5 * 0.3),  # renormalised over the scores
        ({"0": LOG(0.9), "1": LOG(0.1), "x": LOG(0.5)}, {"0": 0.0}, 0.1),  # other tokens are left out
        ({"x": 0.0}, {"5": 0.0}, None),  # no probability on any score
        ({"0": 0.0}, None, None),  # "0" needs the digit distribution
        ({"0": 0.0}, {"a": 0.0}, None),
    ],
)
def test_expected_score(first, digit, expected):
    result = expected_score(first, digit)
    assert result == expected if expected is None else result == pytest.approx(expected)


def test_score_token_ids_of_the_tiny_tokenizer(tiny_judge_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_judge_dir)
    ids = score_token_ids(tokenizer)
    assert sorted(ids) == sorted([".", *map(str, range(10))])
    assert tokenizer.decode([ids["0"], ids["."], ids["7"]]) == "0.7"


def test_score_token_ids_rejects_a_tokenizer_that_merges_digits():
    class Merging:
        def encode(self, text, add_special_tokens=False):
            return [hash(text) % 1000]  # every string is one token: "<answer>0.7" too

    with pytest.raises(ValueError, match="readout='greedy'"):
        score_token_ids(Merging())


def reference_expected(judge, question, response, image):
    """The readout computed row by row without padding, from the probabilities of the full sequence."""
    text = judge.processor.apply_chat_template(
        build_judge_messages(question, response, image), tokenize=False, add_generation_prompt=True
    )
    inputs = judge.processor(text=[text + "<answer>0."], images=[image] if image else None, return_tensors="pt")
    with torch.no_grad():
        logits = judge.model(**inputs).logits[0].float()  # (L, V)
    ids = score_token_ids(judge.tokenizer)
    p_first = torch.softmax(logits[-3], dim=-1)
    p_digit = torch.softmax(logits[-1], dim=-1)
    p0, p1 = p_first[ids["0"]].item(), p_first[ids["1"]].item()
    digits = torch.tensor([p_digit[ids[str(d)]].item() for d in range(10)])
    tenths = (digits * torch.arange(10)).sum().item() / digits.sum().item()
    return (p1 + p0 * tenths / 10) / (p0 + p1)


def test_transformers_judge_expected_readout_matches_unbatched_probabilities(tiny_judge_dir):
    judge = TransformersJudge(tiny_judge_dir, batch_size=3, device="cpu", cache_size=0, readout="expected")
    questions = ["How many?", "What colour is the largest shape in the picture?", "Sum?"]
    responses = ["<think>two</think><answer>2</answer>", "<answer>red</answer>", "<think>1 + 2 = 3</think> 3"]
    images = [Image.new("RGB", (56, 56), "red"), None, Image.new("RGB", (56, 56), "blue")]
    scores = judge.score(questions, responses, images)
    # Rows of different lengths share the batch (left padding): each equals its own unpadded computation.
    for score, q, r, img in zip(scores, questions, responses, images):
        assert 0.0 <= score <= 1.0
        assert score == pytest.approx(reference_expected(judge, q, r, img), abs=1e-5)


def test_transformers_judge_rejects_unknown_readout(tiny_judge_dir):
    with pytest.raises(ValueError, match="readout"):
        TransformersJudge(tiny_judge_dir, device="cpu", readout="mean")


def test_openai_judge_expected_readout(loopback_server):
    # The loopback judge puts probability x on "1" and 1 - x on "0", then "5" after "0.": expected x + (1 - x) / 2.
    server = loopback_server()
    with OpenAIJudge(server.url, "judge", readout="expected", cache_size=0) as judge:
        scores = judge.score(["q score=0.8", "q score=0.2", "q [[garbage]]"], ["a", "b", "c"])
    assert scores[0] == pytest.approx(0.9)  # greedy path "1.0": a second request continues "<answer>0."
    assert scores[1] == pytest.approx(0.6)  # greedy path "0.5": one request
    assert scores[2] is None  # a reply without log-probabilities
    assert server.requests["ok"] == 3 and server.requests["garbage"] == 1


def test_openai_judge_readout_is_checked():
    with pytest.raises(ValueError, match="readout"):
        OpenAIJudge("http://127.0.0.1:1/v1", "judge", readout="mean")


def test_score_async_gives_what_score_gives(loopback_server):
    server = loopback_server(service_time=0.05)
    with OpenAIJudge(server.url, "judge", cache_size=0) as judge:
        future = judge.score_async(["q score=0.3", "q score=0.9"], ["a", "b"], [None, None])
        assert future.result(timeout=30) == judge.score(["q score=0.3", "q score=0.9"], ["a", "b"])
        failing = judge.score_async(["q [[unauthorized]]"], ["a"])
        with pytest.raises(JudgeServerError):
            failing.result(timeout=30)
