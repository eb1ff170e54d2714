"""The released SophiaVL-R1 files read as data: fetching (local, download, checksum, cache, retries), the named judge
template `sophiavl-r1` (the messages a judge server receives equal what `get_process_reward` sends), the released
extractor chain, and the named policy prompt `sophiavl-r1`.

The release's own files are never used here: `checkout/` holds stand-ins written for these tests, with the code
structure of `verl/workers/reward/custom.py` and `verl/utils/dataset.py` and wording of their own.
"""

import ast
import hashlib
import logging
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from datasets import Dataset
from PIL import Image

from sophia_trl import prompts, release
from sophia_trl.configs import TrustGRPOScriptArguments
from sophia_trl.data import apply_policy_prompt
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import (
    JudgePrompt,
    OpenAIJudge,
    decoded_policy_prompt,
    load_judge_prompt,
    parse_score,
    parse_score_sophiavl_r1,
)
from sophia_trl.judges.loopback import LoopbackHTTPServer, LoopbackJudgeServer
from sophia_trl.judges.release_prompt import main as release_prompt_main

CHECKOUT = Path(__file__).parent / "checkout"
CUSTOM = CHECKOUT / release.JUDGE_FILE
DATASET = CHECKOUT / release.POLICY_FILE


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def standin_hashes(monkeypatch):
    """The stand-ins' checksums in place of the release's, so they pass the check as the released files would."""
    monkeypatch.setitem(release.RELEASE_SHA256, release.JUDGE_FILE, sha256(CUSTOM))
    monkeypatch.setitem(release.RELEASE_SHA256, release.POLICY_FILE, sha256(DATASET))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No release source, a fresh cache, no download address: each test sets what it uses."""
    for name in (release.SOURCE_ENV, release.BASE_URL_ENV, release.ALLOW_MISMATCH_ENV, "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(release.CACHE_ENV, str(tmp_path / "cache"))
    prompts._release_policy_prompt.cache_clear()
    yield
    prompts._release_policy_prompt.cache_clear()


class FileServer:
    """Serves the stand-ins at `/<commit>/<path>` on 127.0.0.1, failing the first `failures` requests with HTTP 500."""

    def __init__(self, failures: int = 0, body_override: bytes | None = None):
        self.failures = failures
        self.body_override = body_override
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                prefix = f"/{release.RELEASE_COMMIT}/"
                file = CHECKOUT / self.path[len(prefix) :] if self.path.startswith(prefix) else None
                if len(server.requests) <= server.failures:
                    status, body = 500, b"busy"
                elif file is None or not file.is_file():
                    status, body = 404, b"not found"
                else:
                    status, body = 200, server.body_override or file.read_bytes()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [CHECKOUT, CUSTOM], ids=["checkout", "file"])
def test_a_local_checkout_or_file_is_read_when_it_matches(clean_env, standin_hashes, source):
    assert release.fetch_release_file(release.JUDGE_FILE, source) == CUSTOM.read_text(encoding="utf-8")


def test_a_local_file_of_another_version_is_refused_naming_both_hashes(clean_env, caplog):
    with pytest.raises(release.ReleaseFileError) as err:
        release.fetch_release_file(release.JUDGE_FILE, CHECKOUT)
    message = str(err.value)
    assert str(CUSTOM) in message and sha256(CUSTOM) in message
    assert release.RELEASE_SHA256[release.JUDGE_FILE] in message and "--allow_checksum_mismatch" in message
    # Read knowingly: a warning instead.
    with caplog.at_level(logging.WARNING, logger="sophia_trl.release"):
        text = release.fetch_release_file(release.JUDGE_FILE, CHECKOUT, allow_checksum_mismatch=True)
    assert text == CUSTOM.read_text(encoding="utf-8") and sha256(CUSTOM) in caplog.text


def test_a_missing_local_file_is_named(clean_env, tmp_path):
    with pytest.raises(release.ReleaseFileError, match=re.escape(str(tmp_path / release.JUDGE_FILE))):
        release.fetch_release_file(release.JUDGE_FILE, tmp_path)


def test_a_download_is_checked_cached_and_read_from_the_cache(clean_env, standin_hashes, monkeypatch, tmp_path):
    with FileServer() as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        first = release.fetch_release_file(release.JUDGE_FILE)
        second = release.fetch_release_file(release.JUDGE_FILE)
    assert first == second == CUSTOM.read_text(encoding="utf-8")
    assert server.requests == [f"/{release.RELEASE_COMMIT}/{release.JUDGE_FILE}"]  # once: then the cache
    cached = tmp_path / "cache" / "release" / release.RELEASE_COMMIT / release.JUDGE_FILE
    assert cached.read_bytes() == CUSTOM.read_bytes()


def test_a_download_is_retried_a_bounded_number_of_times(clean_env, standin_hashes, monkeypatch):
    monkeypatch.setattr(release.time, "sleep", lambda seconds: None)
    with FileServer(failures=release.DOWNLOAD_ATTEMPTS - 1) as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        assert release.fetch_release_file(release.JUDGE_FILE) == CUSTOM.read_text(encoding="utf-8")
    assert len(server.requests) == release.DOWNLOAD_ATTEMPTS
    with FileServer(failures=10) as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        with pytest.raises(release.ReleaseFileError, match="failed 3 times"):
            release.fetch_release_file(release.POLICY_FILE)
    assert len(server.requests) == release.DOWNLOAD_ATTEMPTS


def test_a_missing_file_on_the_server_is_not_retried(clean_env, standin_hashes, monkeypatch):
    monkeypatch.setattr(release, "RELEASE_SHA256", {**release.RELEASE_SHA256, "verl/none.py": "0" * 64})
    with FileServer() as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        with pytest.raises(release.ReleaseFileError, match="HTTP 404"):
            release.fetch_release_file("verl/none.py")
    assert len(server.requests) == 1


def test_a_download_of_another_version_is_refused_and_not_cached(clean_env, monkeypatch, tmp_path):
    with FileServer() as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        with pytest.raises(release.ReleaseFileError, match=sha256(CUSTOM)):
            release.fetch_release_file(release.JUDGE_FILE, allow_checksum_mismatch=True)  # never for a download
    assert not (tmp_path / "cache" / "release").exists()


def test_a_corrupt_cache_is_downloaded_again_and_offline_mode_does_not_download(
    clean_env, standin_hashes, monkeypatch, tmp_path
):
    cached = tmp_path / "cache" / "release" / release.RELEASE_COMMIT / release.JUDGE_FILE
    cached.parent.mkdir(parents=True)
    cached.write_text("truncated")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(release.ReleaseFileError, match="HF_HUB_OFFLINE"):
        release.fetch_release_file(release.JUDGE_FILE)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with FileServer() as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        release.fetch_release_file(release.JUDGE_FILE)
    assert cached.read_bytes() == CUSTOM.read_bytes() and len(server.requests) == 1


# ---------------------------------------------------------------------------------------------------------------------
# The judge template read from the release
# ---------------------------------------------------------------------------------------------------------------------

# The stand-in's f-string, as its source reads (what `get_process_reward` sends around the two slots).
STANDIN_BEFORE = (
    "Stand-in grader text. Read a question with its picture and a worked answer, then rate how well it reasons on a "
    "scale from 0 to 1.### Points to weigh:\n- **Steps**: does each follow?\n- **Facts**: are they right?\nPick one "
    "value from **{0, 0.1, ..., 1.0}**:\n - **0**: worthless\n- **1**: flawless\nReply with the value only.\n"
    "    Item: "
)


def test_the_judge_prompt_is_read_from_the_function(clean_env):
    read = release.read_judge_prompt(CUSTOM.read_text(encoding="utf-8"))
    assert read.system == "You are a stand-in grader."
    assert read.pieces == (
        (STANDIN_BEFORE, "policy_prompt"),
        ("\n    Worked answer: ", "response"),
        ("\n    Reply as: <answer>value</answer>\n    ", None),
    )
    assert read.image_prefix == "<image> " and read.removes_dollars


def test_code_of_another_shape_is_refused(clean_env):
    source = CUSTOM.read_text(encoding="utf-8").replace("Worked answer: {reasoning_str}", "Worked answer: {steps}")
    with pytest.raises(release.ReleaseFileError, match="unexpected part"):
        release.read_judge_prompt(source)
    with pytest.raises(release.ReleaseFileError, match="no function get_process_reward"):
        release.read_judge_prompt("x = 1\n")


def test_the_named_template_resolves_and_its_file_loads_the_same(clean_env, standin_hashes, monkeypatch, tmp_path):
    monkeypatch.setenv(release.SOURCE_ENV, str(CHECKOUT))
    named = load_judge_prompt("sophiavl-r1")
    assert named.system == "You are a stand-in grader."
    assert named.reads_policy_prompt and named.response_normalization == "remove_dollars"
    assert named.score_parser == "sophiavl-r1" and not named.image_first
    output = tmp_path / "judge_prompts" / "sophiavl_r1.yaml"
    release_prompt_main(["--source", str(CHECKOUT), "--output", str(output)])
    assert load_judge_prompt(output) == named
    assert yaml.safe_load(output.read_text())["score_parser"] == "sophiavl-r1"


def test_the_named_template_downloads_when_no_source_is_given(clean_env, standin_hashes, monkeypatch):
    with FileServer() as server:
        monkeypatch.setenv(release.BASE_URL_ENV, server.url)
        assert load_judge_prompt("sophiavl-r1").system == "You are a stand-in grader."


def standin_functions(names: set[str], namespace: dict) -> dict:
    """Runs the named functions of the stand-in (this test's own file, never the release's) in `namespace`."""
    tree = ast.parse(CUSTOM.read_text(encoding="utf-8"))
    body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    exec(compile(ast.Module(body=body, type_ignores=[]), str(CUSTOM), "exec"), namespace)
    return namespace


EXTRACTORS = {
    "extract_after_think_number",
    "extract_zero_wrong_steps",
    "extract_box_score",
    "extract_total_wrong_steps",
    "extract_xml_answer",
    "extract_plain_number",
    "extract_wrong_steps",
    "extract_score",
}


@pytest.fixture
def recording_server():
    with LoopbackJudgeServer(record_bodies=True) as server:
        yield server


# The policy's decoded prompt (a Qwen chat template decoded without special tokens) and responses with `$`.
DECODED_PROMPT = "system\nThink first.\nuser\nHow many red squares are there? {n}\nassistant\n"
RESPONSES = ["<think>$2+1$ is $$3$$</think><answer>3</answer>", "<think>no dollars</think> <answer>3</answer>"]


@pytest.mark.parametrize("with_image", [True, False], ids=["image", "text"])
@pytest.mark.parametrize("response", RESPONSES, ids=["dollars", "plain"])
def test_the_server_receives_what_get_process_reward_sends(
    clean_env, standin_hashes, recording_server, monkeypatch, with_image, response
):
    image = Image.new("RGB", (24, 16), (179, 20, 20)) if with_image else None
    # The release: the reward manager removes `$`, then get_process_reward posts its request.
    namespace = standin_functions(
        EXTRACTORS | {"get_process_reward", "pil_to_base64"},
        {
            "re": re,
            "httpx": httpx,
            "time": time,
            "base64": __import__("base64"),
            "BytesIO": __import__("io").BytesIO,
            "openai_api_base": recording_server.url + "/chat/completions",
            "reward_model": "judge",
        },
    )
    encoded = namespace["pil_to_base64"](image) if image is not None else None
    released_score = namespace["get_process_reward"](
        DECODED_PROMPT, response.replace("$$", "").replace("$", ""), encoded
    )
    # sophia-trl: the named template, the decoded prompt as question, the response as the policy wrote it.
    monkeypatch.setenv(release.SOURCE_ENV, str(CHECKOUT))
    with OpenAIJudge(
        recording_server.url, "judge", cache_size=0, judge_prompt=load_judge_prompt("sophiavl-r1")
    ) as judge:
        [score] = judge.score([DECODED_PROMPT], [response], [image])
    released, ours = recording_server.bodies
    assert ours["messages"] == released["messages"]
    assert score == released_score == (0.7 if with_image else 0.5)  # the loopback reads the red channel, else 0.5
    # Worked by hand from the stand-in's text, as get_process_reward assembles it.
    prompt_str = ("<image> " if with_image else "") + DECODED_PROMPT
    reasoning = response.replace("$", "")
    text = f"{STANDIN_BEFORE}{prompt_str}\n    Worked answer: {reasoning}\n    Reply as: <answer>value</answer>\n    "
    user = [{"type": "text", "text": text}]
    if with_image:
        user.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}})
    assert ours["messages"] == [
        {"role": "system", "content": "You are a stand-in grader."},
        {"role": "user", "content": user},
    ]


# ---------------------------------------------------------------------------------------------------------------------
# The released extractor chain
# ---------------------------------------------------------------------------------------------------------------------

# (reply, score the chain gives): worked by hand from the order box, xml, plain number, after </think>, wrong steps.
REPLIES = [
    ("<answer>0.8</answer>", 0.8),
    ("<answer> 1 </answer>", 1.0),
    ("<answer>0.75</answer>", 0.0),  # xml needs one decimal; the plain number then reads the leading 0
    ("\\boxed{0.7}", 0.7),  # not \box{}: the plain number reads it
    ("\\box{0.3} and <answer>0.9</answer>", 0.3),  # the box first
    ("Score: 10", 0.0),  # nothing: 10 is not a 0-1 number
    ("I give 2", 0.0),
    ("1.5", 1.0),  # plain number 1.5, clamped
    ("**Total Wrong Steps**: 3", 1.0),  # wrong steps 3, clamped
    ("**Total Wrong Steps**: 0", 0.0),
    ("The score is 0.6.", 0.6),
    ("</think><answer>0.95</answer>", 0.0),  # plain number first: the 0 of 0.95
    ("</think> 2.5.", 0.0),  # after </think>: "2.5." is no number, the release fails and scores 0
    ("</think> 2", 1.0),  # after </think>: 2, clamped
    ("**2 wrong steps**", 1.0),
    ("**Logic Wrong Steps**: 0", 0.0),
    ("", 0.0),
    (None, 0.0),
    ("good reasoning", 0.0),
    ("<answer>0.3</answer> then 1", 0.3),
]


@pytest.mark.parametrize("reply, expected", REPLIES)
def test_the_released_chain_on_a_table_of_replies(reply, expected):
    assert parse_score_sophiavl_r1(reply) == expected


def test_the_released_chain_agrees_with_the_stand_in_code():
    extract_score = standin_functions(EXTRACTORS, {"re": re})["extract_score"]
    pieces = ["<answer>", "</answer>", "</think>", "\\box{", "\\boxes{", "}", "0", "1", "0.4", "1.0", "2", "7.", ".",
              " ", "**", "Total Wrong Steps**: ", " wrong steps**", "Logic Wrong Steps**: ", "score", "\n"]  # fmt: skip
    rng = random.Random(0)
    for _ in range(3000):
        reply = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        try:
            expected = float(extract_score(reply))
        except ValueError:  # the release's call fails on every retry and scores 0
            expected = 0.0
        assert parse_score_sophiavl_r1(reply) == expected, reply


def test_the_template_chooses_the_parser():
    assert JudgePrompt().parse_score("good reasoning") is None
    assert JudgePrompt(score_parser="sophiavl-r1").parse_score("good reasoning") == 0.0
    assert parse_score("<answer>0.75</answer>") == 0.75
    with pytest.raises(ValueError, match="score_parser='mine'"):
        JudgePrompt(score_parser="mine")


def test_a_template_reads_the_question_or_the_policy_prompt_not_both():
    with pytest.raises(ValueError, match="both"):
        JudgePrompt(user="{question} {policy_prompt} {response}")
    prompt = JudgePrompt(system=None, user="{policy_prompt}|{response}", policy_prompt_image_prefix="<image> ")
    assert prompt.render("Q", "R$1$", has_image=True) == (None, "", "<image> Q|R$1$")
    assert prompt.render("<image>Q", "R", has_image=True)[2] == "<image>Q|R"  # the tag is there already
    assert prompt.render("Q", "R", has_image=False)[2] == "Q|R"


# ---------------------------------------------------------------------------------------------------------------------
# The policy prompt read from the release, and the judge's question in training
# ---------------------------------------------------------------------------------------------------------------------

STANDIN_QUESTION_TEMPLATE = (
    "\nStand-in instruction: think it over aloud, check yourself, then reason inside <think> </think> and answer inside "
    "<answer> </answer>."
)


def test_the_policy_prompt_is_read_from_the_dataset_module(clean_env, standin_hashes, monkeypatch):
    monkeypatch.setenv(release.SOURCE_ENV, str(CHECKOUT))
    messages = prompts.build_prompt("Which one?", "multiple choice", ["A. 1", "B. 2"], "Be brief.", "sophiavl-r1")
    # By hand, as __getitem__ assembles it: options joined with "; " onto the question, the template, the type's text.
    user = (
        "Which one?A. 1; B. 2"
        + STANDIN_QUESTION_TEMPLATE
        + " Stand-in: write one option letter in <answer> </answer>."
    )
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user}]
    [numerical] = prompts.build_prompt("<image>How many?", "numerical", policy_prompt="sophiavl-r1")
    assert (
        numerical["content"]
        == "How many?" + STANDIN_QUESTION_TEMPLATE + " Stand-in: write the number in <answer> </answer>."
    )
    with pytest.raises(ValueError, match="policy_prompt"):
        prompts.build_prompt("Q", "numerical", policy_prompt="mine")


def test_the_recipe_rebuilds_the_prompt_column(clean_env, standin_hashes, monkeypatch):
    monkeypatch.setenv(release.SOURCE_ENV, str(CHECKOUT))
    rows = {
        "prompt": [prompts.build_prompt("How many?", "numerical", system_prompt="Be brief.")],
        "problem": ["How many?"],
        "problem_type": ["numerical"],
        "options": [[]],
    }
    dataset = Dataset.from_dict(rows)
    assert apply_policy_prompt(dataset, "sophia_trl") is dataset
    rebuilt = apply_policy_prompt(dataset, "sophiavl-r1")
    assert rebuilt[0]["prompt"] == prompts.build_prompt("How many?", "numerical", [], "Be brief.", "sophiavl-r1")
    with pytest.raises(ValueError, match=r"no \['problem_type'\].*data_prep/sophiavl_130k.py"):
        apply_policy_prompt(dataset.remove_columns("problem_type"), "sophiavl-r1", "data/mine")
    with pytest.raises(ValueError, match="policy_prompt='mine'"):
        TrustGRPOScriptArguments(dataset_name="d", judge_backend="none", policy_prompt="mine")


def test_the_trainer_sends_the_decoded_policy_prompt_to_a_policy_prompt_template(tiny_vlm_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    prompt = [{"role": "system", "content": "Think first."}, {"role": "user", "content": "How many? Reason."}]
    decoded = decoded_policy_prompt(processor, prompt)
    rendered = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>" in rendered and "<|im_start|>" not in decoded
    assert decoded == rendered.replace("<|im_start|>", "").replace("<|im_end|>", "")

    image = Image.new("RGB", (8, 8))
    completion = [{"role": "assistant", "content": "<answer>3</answer>"}]
    trainer = SimpleNamespace(
        processing_class=processor,
        thinking_judge=SimpleNamespace(judge_prompt=JudgePrompt(system=None, user="{policy_prompt} {response}")),
    )
    args = ([{"image": image}], [prompt], [completion], [0])
    assert TrustGRPOTrainer._judge_inputs(trainer, *args) == ([decoded], ["<answer>3</answer>"], [image])
    trainer.thinking_judge.judge_prompt = JudgePrompt()  # this project's template: the bare question
    assert TrustGRPOTrainer._judge_inputs(trainer, *args) == (["How many? Reason."], ["<answer>3</answer>"], [image])


def test_trust_grpo_sends_the_decoded_policy_prompt_to_the_released_template(tiny_vlm_dir, tmp_path):
    from transformers import AutoProcessor

    from sophia_trl.configs import TrustGRPOConfig
    from sophia_trl.rewards import format_reward
    from sophia_trl.tiny.scenes import make_synthetic_dataset

    class RecordingJudge:
        judge_prompt = JudgePrompt(
            system=None, user="{policy_prompt}\n{response}", policy_prompt_image_prefix="<image> "
        )
        questions: list[str] = []

        def score(self, questions, responses, images=None):
            self.questions.extend(questions)
            return [0.5] * len(responses)

    dataset = make_synthetic_dataset(8, seed=0)
    judge = RecordingJudge()
    args = TrustGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=4,
        report_to="none",
        save_strategy="no",
    )
    TrustGRPOTrainer(str(tiny_vlm_dir), format_reward, args=args, thinking_judge=judge, train_dataset=dataset).train()
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    decoded = {decoded_policy_prompt(processor, row["prompt"]) for row in dataset}
    assert len(judge.questions) == 4 and set(judge.questions) <= decoded
    assert all(q.rstrip().endswith("assistant") and "<|im_start|>" not in q for q in judge.questions)
