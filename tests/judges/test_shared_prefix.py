"""One prefill per group (`sophia_trl.judges.prefix`): the local judges score a group's responses on the key/value cache
of their shared prompt prefix, with the same scores as without it."""

import pytest
import torch
from PIL import Image
from trl import ModelConfig, TrlParser

import sophia_trl.judges.prefix as prefix_module
from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments
from sophia_trl.judges import JudgePrompt, ScalarJudge, TransformersJudge, build_judge_inputs, load_thinking_judge
from sophia_trl.judges.messages import render_judge_texts
from sophia_trl.judges.prefix import MIN_SUFFIX_TOKENS, group_rows, split_shared_prefix, tokenize_group

# Mixed groups in one call: two image groups of different image sizes (4 and 8 image tokens), a text-only group, a
# group of one (not shared) and a group whose responses share their first words (the prefix reaches into them).
RED, BLUE = Image.new("RGB", (56, 56), "red"), Image.new("RGB", (112, 56), "blue")
QUESTIONS = ["How many?"] * 4 + ["What colour?"] * 3 + ["Alone?"] + ["Text only?"] * 3 + ["Same start?"] * 2
IMAGES = [RED] * 4 + [BLUE] * 3 + [RED] + [None] * 3 + [BLUE.copy()] * 2
RESPONSES = [f"<think>{'step ' * (i % 5)}count {i}</think><answer>{i}</answer>" for i in range(11)] + [
    "<think>I see two squares and a circle</think><answer>3</answer>",
    "<think>I see two squares</think><answer>2</answer>",
]
SHARED_GROUPS = 4  # every group of two or more rows


def _noisy(judge, seed=1):
    """Perturb the untrained tiny judge's text model so that greedy generation writes varied tokens, not newlines."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in judge.model.named_parameters():
            if "visual" not in name:
                param.add_(torch.randn_like(param) * 0.1)
    return judge


def _both_ways(judge, method, monkeypatch, *args):
    """`method` with and without sharing (on one judge, so the weights are the same), and the prefills it ran."""
    prefills = []
    real_prefill = prefix_module.prefill
    monkeypatch.setattr(prefix_module, "prefill", lambda *a: prefills.append(a[1]) or real_prefill(*a))
    judge.share_prefix = True
    shared = getattr(judge, method)(*args)
    judge.share_prefix = False
    unshared = getattr(judge, method)(*args)
    judge.share_prefix = True
    return shared, unshared, prefills


@pytest.fixture(scope="module")
def expected_judge(tiny_judge_dir):
    return _noisy(TransformersJudge(tiny_judge_dir, batch_size=2, device="cpu", cache_size=0))


@pytest.fixture(scope="module")
def greedy_judge(tiny_judge_dir):
    judge = TransformersJudge(tiny_judge_dir, batch_size=3, max_new_tokens=8, device="cpu", readout="greedy")
    return _noisy(judge)


def test_share_prefix_is_on_by_default_for_this_projects_prompt(expected_judge):
    assert expected_judge.share_prefix is True


def test_expected_readout_shared_equals_unshared(expected_judge, monkeypatch):
    shared, unshared, prefills = _both_ways(expected_judge, "score", monkeypatch, QUESTIONS, RESPONSES, IMAGES)
    assert shared == pytest.approx(unshared, abs=1e-3)
    assert len(set(round(s, 6) for s in unshared)) > 5  # the rows really differ, so a mix-up would show
    assert len(prefills) == SHARED_GROUPS
    # Each prefix holds all of its image's tokens (none for the text-only group).
    image_token = expected_judge.model.config.image_token_id

    def image_tokens(image):
        ids = build_judge_inputs(expected_judge.processor, ["q"], ["r"], [image])["input_ids"]
        return int((ids == image_token).sum())

    expected = [image_tokens(RED), image_tokens(BLUE), 0, image_tokens(BLUE)]
    assert [int((p.prefix_ids == image_token).sum()) for p in prefills] == expected
    assert expected[0] != expected[1]  # two image sizes


def test_greedy_readout_shared_writes_the_same_text(greedy_judge, monkeypatch):
    texts, unshared, prefills = _both_ways(greedy_judge, "generate_texts", monkeypatch, QUESTIONS, RESPONSES, IMAGES)
    assert texts == unshared
    assert len(set(texts)) > 5 and len(prefills) == SHARED_GROUPS
    greedy_judge.clear_cache()
    assert greedy_judge.score(QUESTIONS, RESPONSES, IMAGES) == greedy_judge.score(QUESTIONS, RESPONSES, IMAGES)


def test_greedy_readout_shared_applies_the_checkpoints_repetition_penalty(greedy_judge, monkeypatch):
    # Qwen's instruct checkpoints set repetition_penalty in their generation config, and `generate` applies it.
    monkeypatch.setattr(greedy_judge.model.generation_config, "repetition_penalty", 5.0)
    texts, unshared, _ = _both_ways(greedy_judge, "generate_texts", monkeypatch, QUESTIONS, RESPONSES, IMAGES)
    assert texts == unshared
    monkeypatch.undo()
    assert texts != greedy_judge.generate_texts(QUESTIONS, RESPONSES, IMAGES)  # the penalty changed the text


def test_scalar_head_shared_equals_unshared(tiny_judge_dir, monkeypatch):
    judge = ScalarJudge(tiny_judge_dir, batch_size=3, device="cpu", cache_size=0)
    assert judge.share_prefix is True
    shared, unshared, prefills = _both_ways(judge, "score", monkeypatch, QUESTIONS, RESPONSES, IMAGES)
    assert shared == pytest.approx(unshared, abs=1e-3)
    assert len(set(round(s, 6) for s in unshared)) > 5 and len(prefills) == SHARED_GROUPS


IMAGE_AFTER_RESPONSE = JudgePrompt(system="Grade.", user="Question: {question}\nResponse: {response}\n{image}Score:")


def test_template_with_the_image_after_the_response_shares_nothing(tiny_judge_dir, monkeypatch):
    assert not IMAGE_AFTER_RESPONSE.response_last and JudgePrompt().response_last
    with pytest.raises(ValueError, match="puts the response before the question or the image"):
        TransformersJudge(tiny_judge_dir, device="cpu", judge_prompt=IMAGE_AFTER_RESPONSE, share_prefix=True)
    judge = TransformersJudge(tiny_judge_dir, device="cpu", cache_size=0, judge_prompt=IMAGE_AFTER_RESPONSE)
    assert judge.share_prefix is False
    # Forced on, no group qualifies: the common prefix stops before the image, and every row is scored unshared.
    shared, unshared, prefills = _both_ways(judge, "score", monkeypatch, QUESTIONS[:7], RESPONSES[:7], IMAGES[:7])
    assert prefills == [] and shared == pytest.approx(unshared)


def test_split_keeps_every_suffix_long_enough_for_the_readout(expected_judge):
    # Equal rows (the judge's cache removes them before, but the split does not rely on it): the common prefix stops
    # MIN_SUFFIX_TOKENS before the end, the positions the expected readout reads.
    questions, responses, images = ["q", "q"], ["I see", "I see"], [RED, RED]
    processor, image_token = expected_judge.processor, expected_judge.model.config.image_token_id
    texts = render_judge_texts(processor, questions, responses, images)
    rows, first = tokenize_group(processor, texts, RED, image_token)
    group = split_shared_prefix(rows, first, image_token)
    assert min(len(s) for s in group.suffixes) == MIN_SUFFIX_TOKENS
    assert [group.prefix_ids.tolist() + s for s in group.suffixes] == rows
    assert group.pixel_values.shape[0] == int(group.image_grid_thw.prod())  # one copy of the image
    assert split_shared_prefix(rows[:1], first, image_token) is None


def test_group_tokens_equal_the_processors(expected_judge):
    # The image is processed once for the group; every row's ids are those the processor gives with the image.
    processor, image_token = expected_judge.processor, expected_judge.model.config.image_token_id
    for image in (RED, BLUE, None):
        texts = render_judge_texts(processor, QUESTIONS[:3], RESPONSES[:3], [image] * 3)
        rows, _ = tokenize_group(processor, texts, image, image_token)
        inputs = build_judge_inputs(processor, QUESTIONS[:3], RESPONSES[:3], [image] * 3)
        assert rows == [r[m.bool()].tolist() for r, m in zip(inputs["input_ids"], inputs["attention_mask"])]


def test_rows_group_by_question_and_image_content():
    assert group_rows(["a", "a", "a", "b", "a"], [RED, RED.copy(), BLUE, RED, None]) == [[0, 1], [2], [3], [4]]


def _parse(tmp_path, *extra):
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    base = ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--dataset_name", "data"]
    return parser.parse_args_and_config(args=[*base, *extra])[0]


@pytest.mark.parametrize("flags, share", [([], True), (["--judge_share_prefix", "false"], False)])
def test_share_prefix_reaches_the_judge_from_the_command_line(tmp_path, tiny_judge_dir, flags, share):
    args = _parse(tmp_path, "--judge_backend", "scalar", "--judge_model_name_or_path", str(tiny_judge_dir), *flags)
    assert load_thinking_judge(args).share_prefix is share


def test_share_prefix_for_a_server_judge_is_refused(tmp_path):
    server = ["--judge_backend", "openai", "--judge_base_url", "http://127.0.0.1:9/v1", "--judge_model_name_or_path"]
    with pytest.raises(ValueError, match="--enable-prefix-caching"):
        _parse(tmp_path, *server, "j", "--judge_share_prefix", "true")
