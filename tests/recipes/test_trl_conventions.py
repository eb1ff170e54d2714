"""TRL's conventions users rely on: top-level imports, `args=None`, a config that the trainer leaves unchanged, and
every reward option reachable from the YAML and the command line."""

import copy

import pytest
from recipe_helpers import import_recipe, parse_recipe


def test_top_level_imports_as_from_trl():
    import sophia_trl
    from sophia_trl import (  # noqa: F401
        ThinkingRewardConfig,
        ThinkingRewardTrainer,
        TrustGRPOConfig,
        TrustGRPOTrainer,
        format_reward,
        outcome_reward,
    )
    from sophia_trl.configs import TrustGRPOConfig as Config
    from sophia_trl.grpo_trainer import TrustGRPOTrainer as Trainer

    assert TrustGRPOConfig is Config and TrustGRPOTrainer is Trainer
    assert {"TrustGRPOTrainer", "TrustGRPOConfig", "ThinkingRewardTrainer", "ThinkingRewardConfig"} <= set(
        sophia_trl.__all__
    )


def _dataset():
    from sophia_trl.tiny.scenes import make_synthetic_dataset

    return make_synthetic_dataset(8, seed=0)


def test_args_none_builds_a_default_trust_grpo_config(tiny_vlm_dir, tmp_path, monkeypatch, gpu_parsing):
    # gpu_parsing: the default config asks for bf16, which transformers refuses on a machine without a GPU (as it
    # refuses TRL's own default GRPOConfig there).
    from sophia_trl import TrustGRPOConfig, TrustGRPOTrainer, outcome_reward

    monkeypatch.chdir(tmp_path)  # TRL names the default output folder after the model
    trainer = TrustGRPOTrainer(str(tiny_vlm_dir), outcome_reward, train_dataset=_dataset())
    assert type(trainer.args) is TrustGRPOConfig
    assert trainer.args.output_dir.endswith(f"{tiny_vlm_dir.name}-TrustGRPO")
    assert trainer.args.thinking_reward_alpha == 0.3 and trainer.args.thinking_reward_preset == "paper"


def test_a_config_passed_to_two_trainers_is_not_changed(tiny_vlm_dir, tmp_path):
    from sophia_trl import TrustGRPOConfig, TrustGRPOTrainer, format_reward, outcome_reward

    class ConstantJudge:
        def score(self, questions, responses, images=None):
            return [0.5] * len(responses)

    args = TrustGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=4,
        reward_weights=[1.0, 0.5],
        report_to="none",
    )
    before = copy.deepcopy(args.to_dict())
    for _ in range(2):  # a second trainer on the same args must not grow reward_weights to 3 values
        trainer = TrustGRPOTrainer(
            str(tiny_vlm_dir),
            [outcome_reward, format_reward],
            args=args,
            thinking_judge=ConstantJudge(),
            train_dataset=_dataset(),
        )
        # The trainer weights the thinking column 1 (alpha and gamma are applied inside it).
        assert trainer.reward_weights.tolist() == [1.0, 0.5, 1.0]
    assert args.to_dict() == before and args.reward_weights == [1.0, 0.5]


def test_ocr_mode_is_reachable_from_the_command_line(tmp_path):
    grpo = import_recipe("grpo")
    config = {
        "dataset_name": "d",
        "judge_backend": "none",
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "bf16": False,
    }
    completion = [[{"role": "assistant", "content": "<think>read it</think><answer>hello wide world</answer>"}]]
    row = {"solution": ["<answer>hello world</answer>"], "problem_type": ["OCR"]}
    rewards = {}
    for mode in ("exp", "neg"):
        script_args, _, _ = parse_recipe("grpo", config, tmp_path, "--ocr_mode", mode)
        [outcome] = grpo.get_reward_funcs(script_args)
        assert outcome.__name__ == "outcome_reward"  # TRL logs it under this name
        rewards[mode] = outcome(completion, **row)[0]
    # One insertion against 2 reference words: WER = 0.5.
    assert rewards["neg"] == pytest.approx(-0.5)
    assert rewards["exp"] == pytest.approx(0.6065306597)  # exp(-0.5)
    with pytest.raises(SystemExit):
        parse_recipe("grpo", config, tmp_path, "--ocr_mode", "wer")
