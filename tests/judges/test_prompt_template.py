"""Judge prompt templates (`JudgePrompt`): the default file renders today's prompt, a custom template reaches every
judge path as the identical prompt, bad templates fail naming the file and the placeholder, and the recipes take
`--judge_prompt_template`."""

import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from sophia_trl.judges import (
    DEFAULT_JUDGE_PROMPT,
    JUDGE_SYSTEM_PROMPT,
    JudgePrompt,
    OpenAIJudge,
    ScalarJudge,
    TransformersJudge,
    VLLMJudge,
    build_judge_messages,
    build_openai_messages,
    format_judge_sft_example,
    load_judge_prompt,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "recipes" / "judge_prompts" / "sophia_trl.yaml"

# A judge trained elsewhere: a generic system turn, the instructions in the user turn and the image after the text.
CUSTOM_YAML = """\
system: You are a helpful assistant.
user: |-
  Rate the reasoning from 0 to 1.
  Question: {question}
  Reasoning process: {response}
  {image}
  Reply as <answer>x</answer>, e.g. {{"score": 0.5}}.
"""
CUSTOM_SYSTEM = "You are a helpful assistant."
# The user text around the image for QUESTION and RESPONSE below, written out by hand.
QUESTION = "How many circles? {response}"  # braces in an item are text, never a placeholder
RESPONSE = "<think>I count 3.</think><answer>3</answer>"
CUSTOM_BEFORE = (
    "Rate the reasoning from 0 to 1.\nQuestion: How many circles? {response}\nReasoning process: "
    "<think>I count 3.</think><answer>3</answer>\n"
)
CUSTOM_AFTER = '\nReply as <answer>x</answer>, e.g. {"score": 0.5}.'


@pytest.fixture
def custom_file(tmp_path):
    path = tmp_path / "released_judge.yaml"
    path.write_text(CUSTOM_YAML)
    return path


@pytest.fixture
def custom(custom_file):
    return JudgePrompt.from_file(custom_file)


@pytest.fixture(scope="module")
def image():
    return Image.new("RGB", (56, 56), (178, 40, 40))  # red 178 -> the loopback server answers 0.7


def render(processor, messages):
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def test_the_default_template_file_renders_todays_messages(image):
    prompt = JudgePrompt.from_file(DEFAULT_FILE)
    assert prompt == DEFAULT_JUDGE_PROMPT == load_judge_prompt(None) == load_judge_prompt("")
    user_text = "Question:\nHow many?\n\nResponse:\n<answer>3</answer>\n\nScore the reasoning in this response."
    system = {"role": "system", "content": [{"type": "text", "text": JUDGE_SYSTEM_PROMPT}]}
    assert build_judge_messages("How many?", "<answer>3</answer>", image, prompt) == [
        system,
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": user_text}]},
    ]
    assert build_judge_messages("How many?", "<answer>3</answer>", None, prompt) == [
        system,
        {"role": "user", "content": [{"type": "text", "text": user_text}]},
    ]
    # The default prompt's SFT rows keep plain-string contents (TRL puts the image first).
    row = {"question": "How many?", "response": "<answer>3</answer>", "image": image, "score": 0.7}
    assert format_judge_sft_example(row, prompt)["prompt"] == [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user_text},
    ]


def test_a_custom_template_places_the_image_and_substitutes_nothing_else(custom, image):
    assert custom.render(QUESTION, RESPONSE) == (CUSTOM_SYSTEM, CUSTOM_BEFORE, CUSTOM_AFTER)
    assert build_judge_messages(QUESTION, RESPONSE, image, custom) == [
        {"role": "system", "content": [{"type": "text", "text": CUSTOM_SYSTEM}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": CUSTOM_BEFORE},
                {"type": "image", "image": image},
                {"type": "text", "text": CUSTOM_AFTER},
            ],
        },
    ]
    # A text-only item: the text around {image} is joined.
    assert build_judge_messages(QUESTION, RESPONSE, None, custom)[1]["content"] == [
        {"type": "text", "text": CUSTOM_BEFORE + CUSTOM_AFTER}
    ]
    # No system key: no system turn.
    no_system = JudgePrompt(system=None, user="{question} -> {response}")
    assert build_judge_messages("q", "r", None, no_system) == [
        {"role": "user", "content": [{"type": "text", "text": "q -> r"}]}
    ]


# ---------------------------------------------------------------------------------------------------------------------
# The same rendered prompt on every path
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processor(tiny_judge_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_judge_dir)


def test_stage1_sft_rows_render_the_template(custom, image, processor):
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature
    from trl.data_utils import prepare_multimodal_messages

    rows = [
        {"question": QUESTION, "response": RESPONSE, "image": image, "score": 0.7},
        {"question": QUESTION, "response": RESPONSE, "image": None, "score": 0.2},
    ]
    features = Features(
        {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
    )
    dataset = Dataset.from_list(rows, features=features)
    # As recipes/thinking_reward.py maps it: through Arrow, so mixed image / text-only rows must share one schema.
    sft = dataset.map(
        format_judge_sft_example, fn_kwargs={"judge_prompt": custom}, remove_columns=dataset.column_names
    )
    for example, row in zip(sft, rows):
        messages = prepare_multimodal_messages(copy.deepcopy(example["prompt"]), example["images"])  # as SFTTrainer
        expected = render(processor, build_judge_messages(QUESTION, RESPONSE, row["image"], custom))
        assert render(processor, messages) == expected
        assert example["completion"] == [{"role": "assistant", "content": f"<answer>{row['score']:.1f}</answer>"}]
    with_image = render(processor, build_judge_messages(QUESTION, RESPONSE, image, custom))
    # The image tokens sit between the response and the answer format, where {image} is.
    assert with_image.index("Reasoning process:") < with_image.index("<|vision_start|>") < with_image.index("Reply as")


def test_the_scalar_head_collator_renders_the_template(custom, image, processor):
    from sophia_trl.reward_trainer import DataCollatorForThinkingReward, drop_long_rows

    row = {"question": QUESTION, "response": RESPONSE, "image": image, "score": 0.7}
    batch = DataCollatorForThinkingReward(processor, custom)([row])
    expected = processor(
        text=[render(processor, build_judge_messages(QUESTION, RESPONSE, image, custom))], images=[image]
    )
    assert batch["input_ids"][0].tolist() == expected["input_ids"][0]
    default_length = len(DataCollatorForThinkingReward(processor)([row])["input_ids"][0])
    assert default_length != len(expected["input_ids"][0])  # the template really changed the rows

    # drop_long_rows measures the rows with the same template: a budget of exactly the custom length keeps the row.
    from datasets import Dataset

    dataset = Dataset.from_list([{"question": QUESTION, "response": RESPONSE, "image": None, "score": 0.7}])
    n = len(
        processor(text=[render(processor, build_judge_messages(QUESTION, RESPONSE, None, custom))])["input_ids"][0]
    )
    assert len(drop_long_rows(dataset, processor, n, judge_prompt=custom)) == 1
    with pytest.raises(ValueError, match="longer than max_length"):
        drop_long_rows(dataset, processor, n - 1, judge_prompt=custom)


class RecordingProcessor:
    """The judge's processor, recording the texts it is called with."""

    def __init__(self, processor):
        self._processor = processor
        self.texts = []

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def __call__(self, text, **kwargs):
        self.texts.extend(text)
        return self._processor(text=text, **kwargs)


@pytest.mark.parametrize("judge_class", [TransformersJudge, ScalarJudge])
def test_local_judges_feed_the_template_to_the_model(judge_class, tiny_judge_dir, custom, image, processor):
    # The greedy readout reads the rendered prompt as it is (the expected readout appends "<answer>0." to it).
    readout = {"readout": "greedy"} if judge_class is TransformersJudge else {}
    judge = judge_class(tiny_judge_dir, batch_size=2, device="cpu", cache_size=0, judge_prompt=custom, **readout)
    judge.processor = RecordingProcessor(judge.processor)
    if judge_class is TransformersJudge:
        judge.max_new_tokens = 2  # the tiny judge's words do not matter here, only what it read
    judge.score([QUESTION, QUESTION], [RESPONSE, RESPONSE], [image, None])
    expected = {render(processor, build_judge_messages(QUESTION, RESPONSE, img, custom)) for img in (image, None)}
    assert set(judge.processor.texts) == expected


def test_vllm_judge_sends_the_template(monkeypatch, custom, image):
    calls = {}

    class LLM:
        def __init__(self, **kwargs):
            pass

        def chat(self, conversations, sampling_params, use_tqdm):
            calls["conversations"] = conversations
            return [SimpleNamespace(outputs=[SimpleNamespace(text="<answer>0.4</answer>")]) for _ in conversations]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=lambda **kwargs: kwargs))
    judge = VLLMJudge("/models/judge", judge_prompt=custom)
    assert judge.score([QUESTION], [RESPONSE], [image]) == [0.4]
    [conversation] = calls["conversations"]
    assert conversation == build_openai_messages(QUESTION, RESPONSE, image, judge_prompt=custom)
    assert [block["type"] for block in conversation[1]["content"]] == ["text", "image_url", "text"]


@pytest.fixture
def recording_server():
    """A loopback judge server that keeps the JSON body of every chat request."""
    from sophia_trl.judges.loopback import LoopbackJudgeServer

    with LoopbackJudgeServer(record_bodies=True) as server:
        yield server


def test_the_server_judge_sends_the_template(recording_server, custom, image):
    with OpenAIJudge(recording_server.url, "judge", cache_size=0, judge_prompt=custom) as judge:
        assert judge.score([QUESTION], [RESPONSE], [image]) == [0.7]  # the image arrived: its red channel is 0.7
    [body] = recording_server.bodies
    # JSON round trip of what the judge renders, image as the same PNG data URL.
    assert body["messages"] == json.loads(
        json.dumps(build_openai_messages(QUESTION, RESPONSE, image, judge_prompt=custom))
    )
    assert body["messages"][0] == {"role": "system", "content": CUSTOM_SYSTEM}  # a plain string, as OpenAI writes it
    texts = [block.get("text") for block in body["messages"][1]["content"]]
    assert texts == [CUSTOM_BEFORE, None, CUSTOM_AFTER]


def test_the_label_script_sends_the_template(recording_server, custom_file, tmp_path):
    sys.path.insert(0, str(ROOT))
    from data_prep import label_thinking

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"question": QUESTION, "response": RESPONSE}) + "\n")
    label_thinking.main(
        [
            "--input",
            str(pairs),
            "--output_dir",
            str(tmp_path / "labelled"),
            "--judge_base_url",
            recording_server.url,
            "--judge_model",
            "judge",
            "--judge_prompt_template",
            str(custom_file),
        ]
    )
    [body] = recording_server.bodies
    assert body["messages"] == [
        {"role": "system", "content": CUSTOM_SYSTEM},
        {"role": "user", "content": [{"type": "text", "text": CUSTOM_BEFORE + CUSTOM_AFTER}]},
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Bad templates
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("user: 'Question: {question}'", r"no \{response\} placeholder"),
        ("user: '{question} {response} {answer}'", r"unknown placeholder \{answer\}"),
        ("user: '{question} {response:>10}'", r"unknown placeholder \{response:>10\}"),
        ("user: '{question} {response.upper}'", r"unknown placeholder \{response.upper\}"),
        (
            "system: 'See {image}'\nuser: '{question} {response}'",
            r"system message has the unknown placeholder \{image\}",
        ),
        ("user: '{image} {question} {response} {image}'", r"\{image\} 2 times"),
        ("user: 'Reply {\"score\": x} to {question} {response}'", r"unknown placeholder \{\"score\": x\}.*\{\{"),
        ("user: 'Reply } to {question} {response}'", r"not a valid template \(Single '\}'"),
        ("user: '{question} {response}'\nassistant: '<answer>'", r"unknown key\(s\) \['assistant'\]"),
        ("system: 'no user'", r"no 'user' key"),
        ("- a list", r"must hold a mapping"),
        ("user: [1, 2]", r"'user' must be a string"),
    ],
)
def test_bad_templates_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad_template.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        JudgePrompt.from_file(path)
    assert str(path) in str(error.value)


def test_a_missing_template_file_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipes/judge_prompts/sophia_trl.yaml is an example"):
        load_judge_prompt(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------------------------------
# The recipes take --judge_prompt_template
# ---------------------------------------------------------------------------------------------------------------------


def _import_recipe(name):
    recipes = str(ROOT / "recipes")
    if recipes not in sys.path:
        sys.path.insert(0, recipes)
    return __import__(name)


def test_the_grpo_recipe_passes_the_template_to_its_judge(custom_file, custom, tmp_path):
    from trl import ModelConfig, TrlParser

    from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments
    from sophia_trl.judges import load_thinking_judge

    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    script_args, _, _ = parser.parse_args_and_config(
        args=[
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "--bf16",
            "false",
            "--dataset_name",
            "data",
            "--judge_backend",
            "openai",
            "--judge_base_url",
            "http://127.0.0.1:9/v1",
            "--judge_model_name_or_path",
            "judge",
            "--judge_prompt_template",
            str(custom_file),
        ]
    )
    assert script_args.judge_prompt_template == str(custom_file)
    with load_thinking_judge(script_args) as judge:
        assert judge.judge_prompt == custom
    script_args.judge_prompt_template = str(tmp_path / "missing.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_thinking_judge(script_args)


def test_the_stage1_recipe_parses_the_template(custom_file, tmp_path):
    thinking_reward = _import_recipe("thinking_reward")
    for judge_type in ("generative", "scalar"):
        parser = thinking_reward.make_parser(judge_type)
        script_args, _, _ = parser.parse_args_and_config(
            args=[
                "--output_dir",
                str(tmp_path),
                "--use_cpu",
                "--bf16",
                "false",
                "--dataset_name",
                "data",
                "--judge_type",
                judge_type,
                "--judge_prompt_template",
                str(custom_file),
            ]
        )
        assert script_args.judge_prompt_template == str(custom_file)
