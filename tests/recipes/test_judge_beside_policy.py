"""The judge's settings against the policy's: outcome-only evaluation in the paper's recipes, and no second vLLM engine
in the training process (an in-process vLLM judge beside TRL's colocated policy engine is refused)."""

import pytest
from recipe_helpers import GPU_RECIPE_DIRS, RECIPES, import_recipe, load_yaml, make_parser, parse_recipe

from sophia_trl.configs import TrustGRPOConfig, check_one_vllm_engine
from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.judges import VLLMJudge
from sophia_trl.judges.base import ThinkingJudge

GRPO_GPU_RECIPES = sorted(p for d in GPU_RECIPE_DIRS for p in (d / "grpo").glob("*.yaml"))
PAPER_RECIPE = RECIPES / "Qwen2.5-VL-7B-Instruct" / "grpo" / "config_trust_grpo.yaml"


@pytest.mark.parametrize("path", GRPO_GPU_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_paper_recipes_evaluate_by_the_outcome_reward_alone(path, gpu_parsing, tmp_path):
    _, args, _ = parse_recipe("grpo", load_yaml(path), tmp_path)
    assert args.thinking_reward_on_eval is False


def test_the_config_default_scores_eval_batches_as_training_batches(tmp_path):
    assert TrustGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False).thinking_reward_on_eval is True


def assert_names_the_server_backend(message: str) -> None:
    assert "second vLLM engine" in message
    assert "judge_backend: openai" in message and "scripts/serve_judge.sh" in message


def test_an_in_process_vllm_judge_beside_a_colocated_policy_engine_is_refused(tmp_path):
    def args(**vllm):
        return TrustGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **vllm)

    with pytest.raises(ValueError) as info:
        check_one_vllm_engine("vllm", args(use_vllm=True, vllm_mode="colocate"))
    assert_names_the_server_backend(str(info.value))
    # One engine per process: each of these is fine.
    check_one_vllm_engine("vllm", args(use_vllm=True, vllm_mode="server"))
    check_one_vllm_engine("vllm", args(use_vllm=False))
    for backend in ("openai", "transformers", "scalar", "none"):
        check_one_vllm_engine(backend, args(use_vllm=True, vllm_mode="colocate"))


def test_the_recipe_refuses_it_before_loading_anything(gpu_parsing, tmp_path, monkeypatch):
    # The paper recipe generates with a colocated engine; naming the in-process vLLM judge must stop the run at once
    # (the judge, the dataset and the policy are not there: any load would fail with another error).
    monkeypatch.chdir(tmp_path)
    config = load_yaml(PAPER_RECIPE)
    argv = ["--config", str(PAPER_RECIPE), "--output_dir", str(tmp_path / "out")]
    argv += ["--judge_backend", "vllm", "--judge_model_name_or_path", "outputs/judge-3b"]
    parsed = make_parser("grpo", config).parse_args_and_config(argv, fail_with_unknown_args=True)
    with pytest.raises(ValueError) as info:
        import_recipe("grpo").main(*parsed)
    assert_names_the_server_backend(str(info.value))


def test_the_trainer_refuses_it_too(tiny_vlm_dir, tmp_path, tiny_grpo_config, tiny_grpo_dataset):
    # A VLLMJudge without vLLM (not installable here): the trainer only looks at its type.
    judge = VLLMJudge.__new__(VLLMJudge)
    ThinkingJudge.__init__(judge)
    with pytest.raises(ValueError) as info:
        TrustGRPOTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[lambda completions, **kwargs: [0.0] * len(completions)],
            thinking_judge=judge,
            args=tiny_grpo_config(tmp_path, use_vllm=True, vllm_mode="colocate"),
            train_dataset=tiny_grpo_dataset,
        )
    assert_names_the_server_backend(str(info.value))
