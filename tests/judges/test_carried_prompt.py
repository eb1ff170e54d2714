"""A judge carries its prompt (`sophia_trl.judges.carried_prompt`): the template file a judge folder holds, read back
when the folder is loaded unless `judge_prompt_template` overrides it, and the refusal of a judge whose prompt is not
known. Nothing here touches the network."""

import logging
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from sophia_trl.configs import TrustGRPOScriptArguments
from sophia_trl.judges import DEFAULT_JUDGE_PROMPT, JudgePrompt, load_thinking_judge
from sophia_trl.judges.carried_prompt import (
    JUDGE_PROMPT_FILE,
    UnknownJudgePromptError,
    carried_judge_prompt,
    resolve_judge_prompt,
    save_judge_prompt,
)
from sophia_trl.judges.template import JUDGE_PROMPT_KEYS

# A template unlike ours in every way a file can differ: no system turn, the image inside the text, literal braces,
# lines with trailing spaces, non-ASCII text and a blank line.
CUSTOM = JudgePrompt(
    system=None,
    user='Évalue le raisonnement.  \nQuestion : {question}\n{image}\n\nRéponse : {response}\nJSON: {{"score": 0.5}} ',
)
CUSTOM_WITH_SYSTEM = JudgePrompt(system="Grade {question} kindly.", user="{response}\n{image}")

HOW_TO_CHOOSE = ("recipes/judge_prompts/sophia_trl.yaml", "sophiavl-r1", "a template file")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: telling a Hub id from a folder must not download anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def judge_folder(tmp_path, prompt=None, name="judge"):
    """A folder standing for a judge checkpoint, carrying `prompt` (nothing when `None`)."""
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if prompt is not None:
        save_judge_prompt(prompt, folder)
    return folder


# ---------------------------------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt", [DEFAULT_JUDGE_PROMPT, CUSTOM, CUSTOM_WITH_SYSTEM], ids=["ours", "custom", "system"]
)
def test_the_saved_file_reads_back_as_the_same_template(tmp_path, prompt):
    path = save_judge_prompt(prompt, tmp_path)
    assert path == tmp_path / JUDGE_PROMPT_FILE
    loaded = JudgePrompt.from_file(path)
    assert loaded == prompt
    # Same messages, not only equal fields: the rendering of an item is unchanged.
    assert loaded.render("How many?", "<think>2</think><answer>2</answer>") == prompt.render(
        "How many?", "<think>2</think><answer>2</answer>"
    )
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(content) <= set(JUDGE_PROMPT_KEYS) and content["user"] == prompt.user


def test_our_prompt_is_written_in_the_shipped_file_format(tmp_path):
    # The same keys and text as recipes/judge_prompts/sophia_trl.yaml, with a header saying where it comes from.
    root = Path(__file__).resolve().parents[2]
    text = save_judge_prompt(None, tmp_path).read_text(encoding="utf-8")
    assert "this project's prompt" in text.splitlines()[1]
    assert yaml.safe_load(text) == yaml.safe_load((root / "recipes/judge_prompts/sophia_trl.yaml").read_text())


def test_only_a_local_folder_holding_the_file_carries_a_prompt(tmp_path):
    assert carried_judge_prompt(judge_folder(tmp_path, CUSTOM)) == tmp_path / "judge" / JUDGE_PROMPT_FILE
    assert carried_judge_prompt(judge_folder(tmp_path, name="bare")) is None
    assert carried_judge_prompt("bunny127/SophiaVL-R1-Thinking-Reward-Model-3B") is None
    assert carried_judge_prompt(None) is None


# ---------------------------------------------------------------------------------------------------------------------
# Which prompt a judge is asked with
# ---------------------------------------------------------------------------------------------------------------------


def test_a_judge_folder_is_asked_with_the_prompt_it_carries(tmp_path):
    assert resolve_judge_prompt(None, judge_folder(tmp_path, CUSTOM)) == CUSTOM


def test_a_template_that_is_set_wins_over_the_folder_with_a_warning(tmp_path, caplog):
    folder = judge_folder(tmp_path, CUSTOM)
    template = save_judge_prompt(CUSTOM_WITH_SYSTEM, tmp_path / "other")
    with caplog.at_level(logging.WARNING, logger="sophia_trl.judges.carried_prompt"):
        assert resolve_judge_prompt(str(template), folder) == CUSTOM_WITH_SYSTEM
    assert "overrides" in caplog.text and str(folder) in caplog.text
    caplog.clear()
    same = save_judge_prompt(CUSTOM, tmp_path / "same")
    with caplog.at_level(logging.WARNING, logger="sophia_trl.judges.carried_prompt"):
        assert resolve_judge_prompt(str(same), folder) == CUSTOM
    assert "overrides" not in caplog.text


@pytest.mark.parametrize(
    ("judge", "served", "why"),
    [
        ("judge", True, "served model 'judge'"),
        ("me/thinking-judge", False, "not a local folder (a Hub id?)"),
        ("bunny127/SophiaVL-R1-Thinking-Reward-Model-3B", False, "set judge_prompt_template: sophiavl-r1"),
    ],
)
def test_a_judge_whose_prompt_is_not_known_is_refused(tmp_path, judge, served, why):
    with pytest.raises(UnknownJudgePromptError) as info:
        resolve_judge_prompt(None, judge, served=served)
    message = str(info.value)
    assert why in message and all(choice in message for choice in HOW_TO_CHOOSE)


def test_a_folder_without_the_file_is_refused(tmp_path):
    folder = judge_folder(tmp_path)
    with pytest.raises(UnknownJudgePromptError, match=f"{folder} has no {JUDGE_PROMPT_FILE}"):
        resolve_judge_prompt(None, folder)


def test_a_served_name_carries_no_prompt_even_where_a_folder_of_that_name_exists(tmp_path, monkeypatch):
    judge_folder(tmp_path, CUSTOM)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownJudgePromptError, match="served model"):
        resolve_judge_prompt(None, "judge", served=True)
    assert resolve_judge_prompt(None, "judge") == CUSTOM


def test_a_teacher_without_a_known_prompt_may_be_asked_with_ours(tmp_path):
    assert (
        resolve_judge_prompt(None, "Qwen/Qwen2.5-VL-72B-Instruct", served=True, required=False) is DEFAULT_JUDGE_PROMPT
    )
    assert resolve_judge_prompt(None, judge_folder(tmp_path, CUSTOM), required=False) == CUSTOM


# ---------------------------------------------------------------------------------------------------------------------
# load_thinking_judge, the recipes' judge builder
# ---------------------------------------------------------------------------------------------------------------------


def test_load_thinking_judge_reads_the_folder_of_a_local_judge(tmp_path, tiny_judge_dir):
    folder = tmp_path / "judge"
    shutil.copytree(tiny_judge_dir, folder)
    save_judge_prompt(CUSTOM, folder)
    args = TrustGRPOScriptArguments(dataset_name="d", judge_model_name_or_path=str(folder), judge_batch_size=2)
    judge = load_thinking_judge(args)
    assert judge.judge_prompt == CUSTOM
    # The user's template still wins.
    args.judge_prompt_template = str(save_judge_prompt(CUSTOM_WITH_SYSTEM, tmp_path / "mine"))
    assert load_thinking_judge(args).judge_prompt == CUSTOM_WITH_SYSTEM


@pytest.mark.parametrize(
    "settings",
    [
        {"judge_backend": "openai", "judge_base_url": "http://127.0.0.1:9/v1", "judge_model_name_or_path": "judge"},
        {"judge_backend": "transformers", "judge_model_name_or_path": "bunny127/SophiaVL-R1-Thinking-Reward-Model-3B"},
        {"judge_backend": "scalar", "judge_model_name_or_path": "me/scalar-judge"},
        {"judge_backend": "vllm", "judge_model_name_or_path": "me/judge"},
    ],
    ids=["served", "released-hub-id", "scalar-hub-id", "vllm-hub-id"],
)
def test_load_thinking_judge_refuses_an_unknown_prompt_before_building_anything(monkeypatch, settings):
    import sophia_trl.judges as judges

    def must_not_build(*args, **kwargs):
        raise AssertionError("a judge was built")

    for backend in ("OpenAIJudge", "TransformersJudge", "ScalarJudge", "VLLMJudge"):
        monkeypatch.setattr(judges, backend, must_not_build)
    with pytest.raises(UnknownJudgePromptError, match="judge_prompt_template"):
        load_thinking_judge(TrustGRPOScriptArguments(dataset_name="d", **settings))


def test_a_served_judge_with_a_template_is_built_with_it(tmp_path):
    template = save_judge_prompt(CUSTOM, tmp_path)
    args = TrustGRPOScriptArguments(
        dataset_name="d",
        judge_backend="openai",
        judge_base_url="http://127.0.0.1:9/v1",
        judge_model_name_or_path="judge",
        judge_prompt_template=str(template),
    )
    with load_thinking_judge(args) as judge:  # building OpenAIJudge sends no request
        assert judge.judge_prompt == CUSTOM
