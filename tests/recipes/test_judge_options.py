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


@pytest.mark.parametrize("flags, overlap", [([], None), (["--judge_overlap", "false"], False)])
def test_overlap_setting_reaches_the_trainer(tmp_path, monkeypatch, flags, overlap):
    grpo = import_recipe("grpo")
    seen = {}

    class Stop(Exception):
        pass

    def fake_trainer(**kwargs):
        seen.update(kwargs)
        raise Stop

    # Everything before the trainer is stubbed: this checks the wiring of one argument, not training.
    monkeypatch.setattr(grpo, "TrustGRPOTrainer", fake_trainer)
    monkeypatch.setattr(grpo, "check_local_paths", lambda paths: None)
    monkeypatch.setattr(grpo, "load_train_test_splits", lambda *a, **k: (["row"], None))
    monkeypatch.setattr(grpo, "load_processor", lambda *a, **k: None)
    monkeypatch.setattr(
        grpo, "get_model", lambda *a, **k: type("M", (), {"config": type("C", (), {"model_type": "x"})})()
    )
    monkeypatch.setattr(grpo, "load_thinking_judge", lambda script_args, judge_prompt=None: None)
    monkeypatch.setattr(grpo, "check_images", lambda dataset, *a, **k: (dataset, 0))
    parser = TrlParser((TrustGRPOScriptArguments, TrustGRPOConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(
        args=[
            "--output_dir",
            str(tmp_path),
            "--use_cpu",
            "--bf16",
            "false",
            "--dataset_name",
            "data",
            "--model_name_or_path",
            "m",
            "--judge_backend",
            "none",
            *flags,
        ]
    )
    with pytest.raises(Stop):
        grpo.main(script_args, training_args, model_args)
    assert seen["overlap_judge"] is overlap


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
