"""A row with several images (an `images` column with more than one): every image reaches the judge, in order, on
every path: the judge's inputs and cache key, its conversation, the stage-1 SFT rows, the local judges' processor and
model, the server requests (also from a training run), the in-process vLLM judge and the judge server script."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from sophia_trl.judges import (
    JudgePrompt,
    OpenAIJudge,
    ScalarJudge,
    TransformersJudge,
    VLLMJudge,
    build_judge_inputs,
    build_judge_messages,
    build_openai_messages,
    format_judge_sft_example,
    image_hash,
    image_of,
    judge_inputs,
)
from sophia_trl.judges.loopback import LoopbackJudgeServer, decode_data_url

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Which picture has more shapes?"
RESPONSE = "<think>The first has 3, the second 2.</think><answer>first</answer>"
# Red channels 0.2, 0.4, 0.6 (the loopback server reads a score from the first image's top-left pixel).
COLOURS = [(51, 10, 10), (102, 20, 20), (153, 30, 30)]
# The template of a judge that places the images inside the user text, as a template file may.
INLINE = JudgePrompt(system=None, user="Question: {question}\nPictures: {image}\nResponse: {response}")


@pytest.fixture
def pictures():
    return [Image.new("RGB", (56, 56), colour) for colour in COLOURS]


def pixel(image: Image.Image) -> tuple[int, int, int]:
    return image.convert("RGB").getpixel((0, 0))


def image_blocks(messages) -> list:
    # An OpenAI-format system turn's content is a plain string: it holds no image.
    blocks = [block for message in messages if not isinstance(message["content"], str) for block in message["content"]]
    return [block for block in blocks if block["type"] != "text"]


# ---------------------------------------------------------------------------------------------------------------------
# The judge's inputs, its cache key and its conversation
# ---------------------------------------------------------------------------------------------------------------------


def test_a_rows_images_are_all_judge_inputs(pictures):
    a, b, _ = pictures
    both = image_of({"images": [a, b]})
    assert len(both) == 2 and both[0] is a and both[1] is b
    assert image_of({"images": [a]}) is a  # one image stays one image
    assert image_of({"image": a}) is a
    assert image_of({"images": []}) is None and image_of({"image": None}) is None
    prompt = [{"role": "user", "content": QUESTION}]
    completion = [{"role": "assistant", "content": RESPONSE}]
    question, response, images = judge_inputs({"images": [a, b]}, prompt, completion)
    assert (question, response) == (QUESTION, RESPONSE) and [pixel(x) for x in images] == COLOURS[:2]
    assert judge_inputs({"question": QUESTION, "response": RESPONSE, "images": [a, b]})[2] == [a, b]


def test_the_cache_key_covers_every_image_in_order(pictures):
    a, b, c = pictures
    assert image_hash([a, b]) not in (image_hash([a, c]), image_hash([b, a]), image_hash(a))
    assert image_hash([a]) == image_hash(a)  # the same judge input
    assert image_hash([]) is None and image_hash(None) is None


@pytest.mark.parametrize("judge_prompt", [None, INLINE], ids=["images-first", "inline"])
def test_the_conversation_holds_every_image_in_order(pictures, judge_prompt):
    a, b, _ = pictures
    messages = build_judge_messages(QUESTION, RESPONSE, [a, b], judge_prompt)
    user = messages[-1]["content"]
    kinds = [block["type"] for block in user]
    assert kinds == (["image", "image", "text"] if judge_prompt is None else ["text", "image", "image", "text"])
    assert [block["image"] for block in image_blocks(messages)] == [a, b]
    # One image as a list renders as the image itself.
    assert build_judge_messages(QUESTION, RESPONSE, [a], judge_prompt) == build_judge_messages(
        QUESTION, RESPONSE, a, judge_prompt
    )


def test_the_openai_rendering_holds_every_image_in_order(pictures):
    a, b, _ = pictures
    messages = build_openai_messages(QUESTION, RESPONSE, [a, b], judge_prompt=INLINE)
    urls = [block["image_url"]["url"] for block in image_blocks(messages)]
    assert [pixel(decode_data_url(url)) for url in urls] == COLOURS[:2]
    encoded = build_openai_messages(QUESTION, RESPONSE, [a, b], image_url=["u1", "u2"])  # one URL per image, in order
    assert [block["image_url"]["url"] for block in image_blocks(encoded)] == ["u1", "u2"]
    with pytest.raises(ValueError, match="one URL per image"):
        build_openai_messages(QUESTION, RESPONSE, [a, b], image_url="u1")


@pytest.mark.parametrize("judge_prompt", [None, INLINE], ids=["images-first", "inline"])
def test_sft_rows_hold_every_image_where_trl_places_them(pictures, judge_prompt):
    a, b, _ = pictures
    row = format_judge_sft_example(
        {"question": QUESTION, "response": RESPONSE, "score": 0.5, "images": [a, b]}, judge_prompt
    )
    assert row["images"] == [a, b]
    # TRL fills the prompt with the row's images: the result is the judge's conversation at scoring time.
    filled = prepare_multimodal_messages(row["prompt"], row["images"])
    expected = build_judge_messages(QUESTION, RESPONSE, [a, b], judge_prompt)
    assert [[b["type"] for b in m["content"]] for m in filled] == [[b["type"] for b in m["content"]] for m in expected]
    assert [block["image"] for block in image_blocks(filled)] == [a, b]


# ---------------------------------------------------------------------------------------------------------------------
# Local judges: the processor gets every image, the model every image's pixels
# ---------------------------------------------------------------------------------------------------------------------


def test_the_processor_gets_every_image_of_every_row(tiny_judge_dir, pictures):
    from transformers import AutoProcessor

    a, b, c = pictures
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    inputs = build_judge_inputs(processor, [QUESTION] * 3, [RESPONSE] * 3, [[a, b], None, c])
    expected = processor.image_processor([a, b, c], return_tensors="pt")
    torch.testing.assert_close(inputs["pixel_values"], expected["pixel_values"])  # all three, in row order
    torch.testing.assert_close(inputs["image_grid_thw"], expected["image_grid_thw"])
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    tokens_per_image = int(expected["image_grid_thw"][0].prod()) // 4  # 2 x 2 patches merge into one token
    per_row = (inputs["input_ids"] == image_token_id).sum(dim=1).tolist()
    assert per_row == [2 * tokens_per_image, 0, tokens_per_image]


def scores_by_second_image(judge, pictures) -> list[float]:
    a, b, c = pictures
    return judge.score([QUESTION] * 3, [RESPONSE] * 3, [[a, b], [a, c], a])


def test_the_generative_judge_reads_every_image(tiny_judge_dir, pictures, monkeypatch):
    judge = TransformersJudge(tiny_judge_dir, device="cpu", dtype=torch.float32, cache_size=0)
    seen = []
    forward = judge.model.forward

    def recording_forward(*args, **kwargs):
        seen.append(kwargs["image_grid_thw"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(judge.model, "forward", recording_forward)
    two_ab, two_ac, one = scores_by_second_image(judge, pictures)
    assert sum(seen) == 2 + 2 + 1  # every image's pixels reached the model
    assert len({two_ab, two_ac, one}) == 3  # and the second image changes the judgement


def test_the_scalar_judge_reads_every_image(tiny_judge_dir, pictures, tmp_path):
    from transformers import AutoProcessor

    from sophia_trl.judges.scalar_model import load_scalar_reward_model

    load_scalar_reward_model(str(tiny_judge_dir)).save_pretrained(tmp_path)
    AutoProcessor.from_pretrained(tiny_judge_dir).save_pretrained(tmp_path)
    judge = ScalarJudge(str(tmp_path), device="cpu", dtype=torch.float32, cache_size=0)
    assert len(set(scores_by_second_image(judge, pictures))) == 3


# ---------------------------------------------------------------------------------------------------------------------
# Server backend, in-process vLLM, the judge server script
# ---------------------------------------------------------------------------------------------------------------------


class RecordingServer(LoopbackJudgeServer):
    """The loopback judge server, keeping the JSON body of every chat request."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bodies = []

    def _reply(self, body):
        with self._lock:
            self.bodies.append(body)
        return super()._reply(body)


def request_pixels(body) -> tuple[str, list[tuple[int, int, int]]]:
    """The text of a request and the top-left pixel of each of its images, in order."""
    # An OpenAI-format system turn's content is a plain string; the other turns hold blocks.
    contents = [message["content"] for message in body["messages"]]
    blocks = [block for content in contents if not isinstance(content, str) for block in content]
    text = "".join(content for content in contents if isinstance(content, str))
    text += "".join(block.get("text", "") for block in blocks)
    return text, [
        pixel(decode_data_url(block["image_url"]["url"])) for block in blocks if block["type"] == "image_url"
    ]


def test_server_requests_hold_every_image_in_order(pictures):
    a, b, c = pictures
    with RecordingServer() as server, OpenAIJudge(server.url, "judge", cache_size=0) as judge:
        scores = judge.score(["q0", "q1", "q2"], [RESPONSE] * 3, [[a, b], [c, b, a], None])
    assert scores == [0.2, 0.6, 0.5]  # each row's first image is the one the loopback server reads
    sent = dict(request_pixels(body) for body in server.bodies)
    by_question = {next(q for q in ("q0", "q1", "q2") if q in text): colours for text, colours in sent.items()}
    assert by_question == {"q0": COLOURS[:2], "q1": [COLOURS[2], COLOURS[1], COLOURS[0]], "q2": []}


def test_a_training_run_sends_every_image_of_a_row_to_the_judge_server(tiny_vlm_dir, tiny_grpo_config, tmp_path):
    from datasets import Dataset

    from sophia_trl.grpo_trainer import TrustGRPOTrainer

    # Row i shows two pictures; the colours say which row and which picture.
    def picture(row, index):
        return Image.new("RGB", (56, 56), (40 * row + 20 * index, 100, 100))

    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": f"Compare pair {i}."}] for i in range(2)],
            "images": [[picture(i, 0), picture(i, 1)] for i in range(2)],
        }
    )
    with RecordingServer() as server, OpenAIJudge(server.url, "judge", cache_size=0) as judge:
        trainer = TrustGRPOTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[lambda completions, **kwargs: [0.0] * len(completions)],
            thinking_judge=judge,
            args=tiny_grpo_config(tmp_path, max_steps=1),
            train_dataset=dataset,
        )
        trainer.train()
    assert len(server.bodies) == 8  # 2 prompts x 4 completions
    for body in server.bodies:
        text, colours = request_pixels(body)
        row = next(i for i in range(2) if f"Compare pair {i}." in text)
        assert colours == [pixel(picture(row, 0)), pixel(picture(row, 1))]


def test_the_vllm_judge_takes_as_many_images_as_it_was_started_with(pictures, monkeypatch):
    a, b, c = pictures
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def chat(self, conversations, sampling_params, use_tqdm):
            calls["conversations"] = conversations
            return [SimpleNamespace(outputs=[SimpleNamespace(text="<answer>0.3</answer>")]) for _ in conversations]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs))
    judge = VLLMJudge("/models/judge", max_images_per_row=2, cache_size=0)
    assert calls["llm"]["limit_mm_per_prompt"] == {"image": 2}
    assert judge.score([QUESTION] * 2, [RESPONSE] * 2, [[a, b], c]) == [0.3, 0.3]
    assert calls["conversations"][0] == build_openai_messages(QUESTION, RESPONSE, [a, b])
    with pytest.raises(ValueError, match=r"3 images.*max_images_per_row \(recipes: judge_max_images_per_row\)"):
        judge.score([QUESTION], [RESPONSE], [[a, b, c]])


def test_the_recipe_setting_reaches_the_vllm_judge(monkeypatch):
    from sophia_trl.configs import TrustGRPOScriptArguments
    from sophia_trl.judges import load_thinking_judge

    calls = {}
    monkeypatch.setitem(
        sys.modules,
        "vllm",
        SimpleNamespace(LLM=lambda **kwargs: calls.update(kwargs), SamplingParams=lambda **kwargs: kwargs),
    )
    args = TrustGRPOScriptArguments(
        judge_backend="vllm",
        judge_model_name_or_path="/models/judge",
        judge_max_images_per_row=4,
        judge_prompt_template=str(ROOT / "recipes" / "judge_prompts" / "sophia_trl.yaml"),
    )
    assert load_thinking_judge(args).max_images_per_row == 4
    assert calls["limit_mm_per_prompt"] == {"image": 4}
    with pytest.raises(ValueError, match="judge_max_images_per_row"):
        TrustGRPOScriptArguments(judge_backend="none", judge_max_images_per_row=0)


@pytest.mark.parametrize("max_images, expected", [(None, '{"image": 1}'), ("3", '{"image": 3}')])
def test_the_judge_server_script_allows_max_images(tmp_path, max_images, expected):
    # A stand-in `vllm` on PATH that prints the arguments it was started with.
    stub = tmp_path / "bin" / "vllm"
    stub.parent.mkdir()
    stub.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
    env.pop("MAX_IMAGES", None)
    if max_images:
        env["MAX_IMAGES"] = max_images
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/serve_judge.sh"), "vllm", "some/judge", "8001"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    args = result.stdout.splitlines()
    assert args[args.index("--limit-mm-per-prompt") + 1] == expected
