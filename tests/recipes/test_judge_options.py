"""The judge's readout and overlap settings reach the judge and the trainer from the GRPO recipe's command line."""

import pytest
from recipe_helpers import ROOT, import_recipe
from trl import ModelConfig, TrlParser

from sophia_trl.configs import TrustGRPOConfig, TrustGRPOScriptArguments
from sophia_trl.judges import load_thinking_judge


def parse(tmp_path, *extra: str) -> TrustGRPOScriptArguments:
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    script_args, _, _ = parser.parse_args_and_config(
        args=["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--dataset_name", "data", *extra]
    )
    return script_args


OUR_PROMPT = ["--judge_prompt_template", str(ROOT / "recipes/judge_prompts/sophia_trl.yaml")]  # "j" carries none
SERVER = ["--judge_backend", "openai", "--judge_base_url", "http://127.0.0.1:9/v1", "--judge_model_name_or_path", "j"]
SERVER += OUR_PROMPT


@pytest.mark.parametrize("flags, readout", [([], "greedy"), (["--judge_readout", "expected"], "expected")])
def test_server_judge_readout_from_the_command_line(tmp_path, flags, readout):
    # No request is sent: building OpenAIJudge does not contact the server.
    with load_thinking_judge(parse(tmp_path, *SERVER, *flags)) as judge:
        assert judge.readout == readout


def test_readout_of_a_judge_that_has_one_is_refused(tmp_path):
    flags = ["--judge_backend", "scalar", "--judge_model_name_or_path", "j", *OUR_PROMPT, "--judge_readout", "greedy"]
    args = parse(tmp_path, *flags)
    with pytest.raises(ValueError, match="judge_readout='greedy' applies to"):
        load_thinking_judge(args)


def test_bad_readout_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit):
        parse(tmp_path, *SERVER, "--judge_readout", "mean")


class Stop(Exception):
    pass


def run_recipe_until_trainer(tmp_path, monkeypatch, *flags: str) -> dict:
    """`recipes/grpo.py`'s main with everything before the trainer stubbed, up to the trainer's construction: the
    trainer's arguments, and `check_images`'s keyword arguments per split (`"check_images"`)."""
    grpo = import_recipe("grpo")
    seen: dict = {"check_images": []}

    def fake_trainer(**kwargs):
        seen.update(kwargs)
        raise Stop

    def fake_check_images(dataset, split, **kwargs):
        seen["check_images"].append((split, kwargs))
        return dataset, []

    # This checks the wiring of arguments, not training.
    monkeypatch.setattr(grpo, "TrustGRPOTrainer", fake_trainer)
    monkeypatch.setattr(grpo, "check_local_paths", lambda paths: None)
    monkeypatch.setattr(grpo, "load_train_test_splits", lambda *a, **k: (["row"], ["row"]))
    monkeypatch.setattr(grpo, "load_processor", lambda *a, **k: None)
    monkeypatch.setattr(
        grpo, "get_model", lambda *a, **k: type("M", (), {"config": type("C", (), {"model_type": "x"})})()
    )
    monkeypatch.setattr(grpo, "load_thinking_judge", lambda script_args, judge_prompt=None: None)
    monkeypatch.setattr(grpo, "check_images", fake_check_images)
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    args = ["--output_dir", str(tmp_path), "--use_cpu", "--bf16", "false", "--dataset_name", "data"]
    script_args, training_args, model_args = parser.parse_args_and_config(
        args=[*args, "--model_name_or_path", "m", *flags]
    )
    with pytest.raises(Stop):
        grpo.main(script_args, training_args, model_args)
    return seen


@pytest.mark.parametrize("flags, overlap", [([], None), (["--judge_overlap", "false"], False)])
def test_overlap_setting_reaches_the_trainer(tmp_path, monkeypatch, flags, overlap):
    seen = run_recipe_until_trainer(tmp_path, monkeypatch, "--judge_backend", "none", *flags)
    assert seen["overlap_judge"] is overlap


VLLM_JUDGE = ["--judge_backend", "vllm", "--judge_model_name_or_path", "j", *OUR_PROMPT]


@pytest.mark.parametrize(
    "flags, train_limit, eval_limit",
    [
        (["--judge_backend", "none"], None, None),
        (SERVER, None, None),  # a server takes the images it was started for: not known here
        (VLLM_JUDGE, 1, 1),
        ([*VLLM_JUDGE, "--judge_max_images_per_row", "3"], 3, 3),
        ([*VLLM_JUDGE, "--thinking_reward_on_eval", "false"], 1, None),  # eval batches scored by the outcome alone
    ],
)
def test_rows_with_more_images_than_the_vllm_judge_takes_are_checked_before_training(
    tmp_path, monkeypatch, flags, train_limit, eval_limit
):
    seen = run_recipe_until_trainer(tmp_path, monkeypatch, "--eval_strategy", "steps", *flags)
    assert [(split, kwargs["max_images"]) for split, kwargs in seen["check_images"]] == [
        ("train", train_limit),
        ("test", eval_limit),
    ]


@pytest.mark.parametrize("flags, readout", [([], "greedy"), (["--judge_readout", "expected"], "expected")])
def test_in_process_vllm_judge_readout_from_the_command_line(tmp_path, monkeypatch, flags, readout):
    import sys
    from types import SimpleNamespace

    from sophia_trl.tiny.models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()  # writes "<answer>0.7" one token per character, as the readout needs
    llm = SimpleNamespace(get_tokenizer=lambda: tokenizer)
    vllm = SimpleNamespace(LLM=lambda **kwargs: llm, SamplingParams=lambda **kwargs: kwargs)
    monkeypatch.setitem(sys.modules, "vllm", vllm)  # vLLM is not installed here: a stand-in records the settings
    args = parse(tmp_path, "--judge_backend", "vllm", "--judge_model_name_or_path", "j", *OUR_PROMPT, *flags)
    judge = load_thinking_judge(args)
    assert judge.readout == readout
    assert judge.sampling_params["max_tokens"] == (1 if readout == "expected" else args.judge_max_new_tokens)
