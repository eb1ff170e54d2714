"""The private parts of TRL that sophia-trl overrides or reads, checked against the installed TRL.

`TrustGRPOTrainer` (sophia_trl/grpo_trainer.py), the mixins and functions of sophia_trl/trl_compat.py,
`ThinkingRewardTrainer` (sophia_trl/reward_trainer.py) and the learning lab (benchmarks/lab/experiment.py) rely on
private hooks and attributes of TRL's trainers. Each test fails with a message
naming the hook and the file to update the day a TRL release changes it.
"""

import inspect
import math
from collections import defaultdict
from importlib.metadata import version

import pytest
import torch
from datasets import Dataset
from PIL import Image
from trl import GRPOTrainer, RewardTrainer

from sophia_trl.grpo_trainer import TrustGRPOTrainer
from sophia_trl.trl_compat import TRL_VERSION, reward_func_kwargs

G = 4
RED = Image.new("RGB", (56, 56), "red")

# hook -> (the parameters sophia-trl calls or overrides it with, the file that depends on it)
GRPO_HOOKS = {
    "_calculate_rewards": (
        ["self", "inputs", "prompts", "completions", "completion_ids_list"],
        "sophia_trl/grpo_trainer.py (TrustGRPOTrainer._calculate_rewards)",
    ),
    "_generate": (["self", "prompts"], "sophia_trl/trl_compat.py (MultimodalBatchFixes)"),
    "_generate_and_score_completions": (["self", "inputs"], "sophia_trl/trl_compat.py (MultimodalBatchFixes)"),
    "log": (["self", "logs", "start_time"], "sophia_trl/trl_compat.py (VLMCompletionsTableLogging)"),
    "create_model_card": (
        ["self", "model_name", "dataset_name", "tags"],
        "sophia_trl/grpo_trainer.py (TrustGRPOTrainer.create_model_card)",
    ),
    "_log_completion_extra": (
        ["self", "column", "values"],
        "sophia_trl/grpo_trainer.py (TrustGRPOTrainer._calculate_rewards)",
    ),
    # The Trainer's checkpoint hooks (transformers 5.23.0; TRL 1.16.0 overrides the first two for its own state).
    "_save_checkpoint": (["self", "model", "trial"], "sophia_trl/grpo_trainer.py (TrustGRPOTrainer._save_checkpoint)"),
    "_load_optimizer_and_scheduler": (
        ["self", "checkpoint"],
        "sophia_trl/grpo_trainer.py (TrustGRPOTrainer._load_optimizer_and_scheduler)",
    ),
    "_load_from_checkpoint": (
        ["self", "resume_from_checkpoint", "model"],
        "sophia_trl/trl_compat.py (ResumeLoadsCheckpointWeights)",
    ),
}
REWARD_HOOKS = {
    "_prepare_dataset": (
        ["self", "dataset", "processing_class", "args", "dataset_name"],
        "sophia_trl/reward_trainer.py",
    ),
    "_set_signature_columns_if_needed": (["self"], "sophia_trl/reward_trainer.py"),
    "compute_loss": (
        ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
        "sophia_trl/reward_trainer.py",
    ),
    "log": (["self", "logs", "start_time"], "sophia_trl/reward_trainer.py"),
    "_load_from_checkpoint": (
        ["self", "resume_from_checkpoint", "model"],
        "sophia_trl/trl_compat.py (ResumeLoadsCheckpointWeights)",
    ),
}


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_installed_trl_is_the_checked_version():
    installed = version("trl")
    assert installed == TRL_VERSION, (
        f"trl {installed} is installed, but sophia-trl's overrides of private TRL hooks were checked against trl "
        f"{TRL_VERSION}: run tests/trainers/test_trl_contract.py with it, update sophia_trl/trl_compat.py and "
        f"TrustGRPOTrainer._calculate_rewards where it fails, then TRL_VERSION in sophia_trl/trl_compat.py and the trl "
        "pin in pyproject.toml and requirements.txt."
    )


@pytest.mark.parametrize(("trainer_class", "hooks"), [(GRPOTrainer, GRPO_HOOKS), (RewardTrainer, REWARD_HOOKS)])
def test_private_hook_signatures(trainer_class, hooks):
    for name, (expected, where) in hooks.items():
        assert hasattr(trainer_class, name), f"TRL removed {trainer_class.__name__}.{name}; update {where}."
        actual = parameters(getattr(trainer_class, name))
        assert actual == expected, (
            f"TRL changed {trainer_class.__name__}.{name}: its parameters are now {actual}, sophia-trl was written "
            f"for {expected}; update {where}."
        )


def test_overrides_keep_trl_signatures():
    # An override whose parameters drift from TRL's would break when TRL calls it by keyword.
    for name in GRPO_HOOKS:
        owner = next(cls for cls in TrustGRPOTrainer.__mro__ if name in cls.__dict__)
        if owner in GRPOTrainer.__mro__:
            continue  # not overridden
        assert parameters(getattr(TrustGRPOTrainer, name)) == parameters(getattr(GRPOTrainer, name)), (
            f"{owner.__name__}.{name} no longer takes the parameters of GRPOTrainer.{name}; align them."
        )


def test_defaults_of_log_and_create_model_card():
    log = inspect.signature(GRPOTrainer.log).parameters
    assert log["start_time"].default is None, "TRL changed GRPOTrainer.log's start_time default; update trl_compat.py."
    card = inspect.signature(GRPOTrainer.create_model_card).parameters
    assert [card[name].default for name in ("model_name", "dataset_name", "tags")] == [None, None, None], (
        "TRL changed GRPOTrainer.create_model_card's defaults; update TrustGRPOTrainer.create_model_card in "
        "sophia_trl/grpo_trainer.py."
    )


def test_trl_calls_and_reads_what_the_overrides_rely_on():
    # VLMCompletionsTableLogging hides wandb/trackio from TRL's table by editing args.report_to around the call.
    log_source = inspect.getsource(GRPOTrainer.log)
    assert "self.args.report_to" in log_source and "self._logs" in log_source, (
        "TRL changed how GRPOTrainer.log picks the backends of its completions table (it read self.args.report_to) "
        "or where it reads the completions (self._logs); update VLMCompletionsTableLogging in sophia_trl/trl_compat.py."
    )
    # TrustGRPOTrainer.create_model_card writes the card at each checkpoint because TRL's _save_checkpoint calls create_model_card.
    assert "self.create_model_card(" in inspect.getsource(GRPOTrainer._save_checkpoint), (
        "TRL's GRPOTrainer._save_checkpoint no longer calls create_model_card: checkpoints would lose the Trust-GRPO "
        "card; update TrustGRPOTrainer.create_model_card in sophia_trl/grpo_trainer.py."
    )
    # TrustGRPOTrainer._save_checkpoint writes trust_state.json where the Trainer puts the checkpoint, and reads it
    # back in _load_optimizer_and_scheduler, which the Trainer calls with the checkpoint when training resumes.
    from transformers import Trainer

    save_source = inspect.getsource(Trainer._save_checkpoint)
    assert 'f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"' in save_source, (
        "transformers changed where Trainer._save_checkpoint writes a checkpoint; update "
        "TrustGRPOTrainer._save_checkpoint in sophia_trl/grpo_trainer.py."
    )
    assert "self._get_output_dir(trial=trial)" in save_source
    assert "self._load_optimizer_and_scheduler(resume_from_checkpoint)" in inspect.getsource(Trainer), (
        "transformers no longer calls Trainer._load_optimizer_and_scheduler with the checkpoint on resume; update "
        "TrustGRPOTrainer._load_optimizer_and_scheduler in sophia_trl/grpo_trainer.py."
    )
    from trl.trainer import utils

    assert callable(getattr(utils, "get_trackio_space_url", None)), (
        "TRL removed trl.trainer.utils.get_trackio_space_url; update TrustGRPOTrainer.create_model_card in "
        "sophia_trl/grpo_trainer.py."
    )
    assert parameters(utils.get_trackio_space_url) == []
    # ThinkingRewardTrainer reads these RewardTrainer attributes in compute_loss.
    init_source = inspect.getsource(RewardTrainer.__init__)
    for attribute in ("self._metrics", "self._total_train_tokens", "self._tp_size"):
        assert attribute in init_source, (
            f"TRL's RewardTrainer no longer sets {attribute}; update ThinkingRewardTrainer in "
            "sophia_trl/reward_trainer.py."
        )


def outcome_reward(completions, **kwargs):
    return [float(len(c[0]["content"]) % 2) for c in completions]


def judge_score(response: str) -> float:
    return (len(response) % 10) / 10


class LengthJudge:
    def score(self, questions, responses, images=None):
        return [judge_score(r) for r in responses]


@pytest.fixture(scope="module")
def one_step(tiny_vlm_dir, tiny_grpo_config, tmp_path_factory):
    """A 1-step Trust-GRPO run on one image prompt and one text-only prompt, recording what TRL's hooks saw and
    returned."""
    seen = {}
    calculate_rewards, generate = GRPOTrainer._calculate_rewards, GRPOTrainer._generate

    def recording_calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = calculate_rewards(self, inputs, prompts, completions, completion_ids_list)
        seen["rewards"] = dict(inputs=inputs, prompts=prompts, completions=completions, output=rewards.clone())
        return rewards

    def recording_generate(self, prompts):
        output = generate(self, prompts)
        seen["generate"] = dict(prompts=prompts, output=output)
        return output

    def recording_outcome_reward(prompts, completions, completion_ids, **kwargs):
        seen["reward_kwargs"] = kwargs  # what TRL passes besides the three arguments every reward function takes
        return outcome_reward(completions)

    recording_outcome_reward.__name__ = "outcome_reward"  # TRL names the reward column after the function

    # Both prompts in the one generation batch of 2 x 4; the learning rate is GRPOConfig's default (1e-6).
    args = tiny_grpo_config(
        tmp_path_factory.mktemp("contract"), max_completion_length=8, max_steps=1, learning_rate=1e-6
    )
    dataset = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": "q-image"}], [{"role": "user", "content": "q-text"}]],
            "image": [RED, None],
        }
    )
    trainer = TrustGRPOTrainer(
        model=str(tiny_vlm_dir),
        reward_funcs=[recording_outcome_reward],
        thinking_judge=LengthJudge(),
        args=args,
        train_dataset=dataset,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GRPOTrainer, "_calculate_rewards", recording_calculate_rewards)
        patch.setattr(GRPOTrainer, "_generate", recording_generate)
        trainer.train()
    return trainer, seen


def test_calculate_rewards_returns_gathered_rewards_per_function(one_step):
    trainer, seen = one_step
    rewards, prompts, completions = (
        seen["rewards"]["output"],
        seen["rewards"]["prompts"],
        seen["rewards"]["completions"],
    )
    assert len(prompts) == len(completions) == 2 * G
    expected_shape = (len(prompts) * trainer.accelerator.num_processes, 2)  # (B_global, num_reward_funcs) = (8, 2)
    assert tuple(rewards.shape) == expected_shape == (8, 2), (
        f"TRL changed GRPOTrainer._calculate_rewards: it returned shape {tuple(rewards.shape)}, sophia-trl expects "
        f"(B_global, num_reward_funcs) = {expected_shape}; update TrustGRPOTrainer._calculate_rewards in "
        "sophia_trl/grpo_trainer.py."
    )
    # Column j is reward function j (the outcome reward first), row i is completion i, None becomes NaN.
    assert rewards[:, 0].tolist() == outcome_reward(completions), (
        "TRL changed GRPOTrainer._calculate_rewards: column 0 is no longer the first reward function's values in "
        "completion order; update TrustGRPOTrainer._calculate_rewards in sophia_trl/grpo_trainer.py."
    )
    assert torch.isnan(rewards[:, 1]).all(), (
        "TRL changed GRPOTrainer._calculate_rewards: a reward function's None no longer becomes NaN; update "
        "TrustGRPOTrainer._calculate_rewards in sophia_trl/grpo_trainer.py."
    )
    # Each prompt's num_generations completions are consecutive rows (the trust weights are computed per group).
    questions = [prompt[-1]["content"][-1]["text"] for prompt in prompts]
    assert all(len(set(questions[g * G : (g + 1) * G])) == 1 for g in range(2)), (
        f"TRL changed the order of GRPOTrainer._calculate_rewards' rows ({questions}); a group's completions are no "
        "longer consecutive: update sophia_trl/trust.py's grouping and TrustGRPOTrainer._calculate_rewards."
    )


def test_reward_func_kwargs_match_trls(one_step):
    # reward_func_kwargs (sophia_trl/trl_compat.py) rebuilds what _calculate_rewards passes to a reward function.
    trainer, seen = one_step
    trls = seen["reward_kwargs"]
    ours = reward_func_kwargs(trainer, seen["rewards"]["inputs"])
    assert set(ours) == set(trls), (
        f"TRL changed the keyword arguments GRPOTrainer._calculate_rewards passes to reward functions ({sorted(trls)}, "
        f"sophia-trl builds {sorted(ours)}); update reward_func_kwargs in sophia_trl/trl_compat.py."
    )
    assert ours["trainer_state"] is trls["trainer_state"] is trainer.state
    columns = [key for key in trls if key not in ("trainer_state", "log_extra", "log_metric", "environments")]
    assert all(ours[key] == trls[key] for key in columns), (
        "TRL changed how GRPOTrainer._calculate_rewards passes the dataset columns to reward functions; update "
        "reward_func_kwargs in sophia_trl/trl_compat.py."
    )
    assert ours["log_extra"]("column", [1.0]) is None and ours["log_metric"]("metric", 1.0) is None


def test_generate_returns_per_row_images_as_element_6(one_step):
    _, seen = one_step
    output, prompts = seen["generate"]["output"], seen["generate"]["prompts"]
    assert isinstance(output, tuple) and len(output) == 8, (
        f"TRL changed GRPOTrainer._generate: it returns {type(output).__name__} of length {len(output)}, sophia-trl "
        "expects a tuple of 8 with the per-row image lists at index 6; update MultimodalBatchFixes._generate in "
        "sophia_trl/trl_compat.py."
    )
    images = output[6]
    assert isinstance(images, list) and len(images) == len(prompts) == 2 * G, (
        "TRL changed GRPOTrainer._generate: element 6 is no longer one image list per row; update "
        "MultimodalBatchFixes._generate in sophia_trl/trl_compat.py."
    )
    for prompt, row in zip(prompts, images, strict=True):
        if prompt[-1]["content"][-1]["text"] == "q-image":
            assert isinstance(row, list) and len(row) == 1 and isinstance(row[0], Image.Image), (
                f"TRL changed GRPOTrainer._generate: element 6 holds {row!r} for an image row, not its image list; "
                "update MultimodalBatchFixes._generate in sophia_trl/trl_compat.py."
            )
            assert row[0].size == (56, 56)
        else:
            # The reason for MultimodalBatchFixes._generate: the day TRL returns [] here, the mixin can go.
            assert row is None, (
                f"TRL's GRPOTrainer._generate now gives a text-only row {row!r} instead of None: "
                "MultimodalBatchFixes._generate in sophia_trl/trl_compat.py may be unnecessary; check and update it."
            )


def test_logs_metrics_and_extra_columns(one_step):
    trainer, seen = one_step
    completions = seen["rewards"]["completions"]
    logs = trainer._logs
    assert set(logs) >= {"prompt", "completion", "rewards", "advantages", "extra", "images"}, (
        f"TRL changed GRPOTrainer._logs (keys {sorted(logs)}); update sophia_trl/logging_utils.py and "
        "VLMCompletionsTableLogging in sophia_trl/trl_compat.py."
    )
    assert trainer.reward_func_names == ["outcome_reward", "thinking_reward"]
    assert list(logs["rewards"]) == trainer.reward_func_names and len(logs["advantages"]) == 2 * G
    # What _calculate_rewards passes to _log_completion_extra lands in _logs["extra"], in completion order.
    raw = [judge_score(c[0]["content"]) for c in completions]
    assert list(logs["extra"]["thinking_reward_raw"]) == pytest.approx(raw), (
        "TRL changed how _log_completion_extra values reach GRPOTrainer._logs['extra']; update "
        "TrustGRPOTrainer._calculate_rewards in sophia_trl/grpo_trainer.py and sophia_trl/logging_utils.py."
    )
    # The completions table reads one image list per completion ([] for a text-only row, after MultimodalBatchFixes).
    assert [bool(row) for row in logs["images"]] == [
        c == "q-image" for c in (p[-1]["content"][-1]["text"] for p in seen["rewards"]["prompts"])
    ]
    # _metrics[mode][name] lists are averaged into the step's logs: the trust metrics reach every backend that way.
    assert isinstance(trainer._metrics["train"], defaultdict) and trainer._metrics["train"].default_factory is list
    step_logs = next(entry for entry in trainer.state.log_history if "trust/alpha" in entry)
    assert step_logs["trust/alpha"] == pytest.approx(trainer.args.thinking_reward_alpha)  # step 0: exp(-0 / T) = 1
    outcome = seen["rewards"]["output"][:, 0]
    assert step_logs["trust/outcome_reward_mean"] == pytest.approx(outcome.mean().item())
    assert not math.isnan(step_logs["trust/thinking_reward_mean"])
    # The learning lab reads a column's values back from _pending_extra_logs before TRL flushes them.
    trainer._log_completion_extra("probe", [1.0, 2.0])
    assert trainer._pending_extra_logs["probe"] == [1.0, 2.0], (
        "TRL changed GRPOTrainer._pending_extra_logs; update LabTrainer in benchmarks/lab/experiment.py."
    )
    trainer._pending_extra_logs.clear()


def test_attributes_the_overrides_read(one_step):
    trainer, _ = one_step
    args = trainer.args
    expected = {
        "log_completions": args.log_completions,
        "log_unique_prompts": args.log_unique_prompts,
        "log_multimodal": args.log_multimodal,
        "num_generations": G,
        "num_generations_eval": args.num_generations_eval or G,
    }
    for name, value in expected.items():
        assert getattr(trainer, name, object()) == value, (
            f"TRL changed GRPOTrainer.{name}; update sophia_trl/trl_compat.py and sophia_trl/grpo_trainer.py."
        )
    assert hasattr(trainer, "hub_model_id"), (
        "GRPOTrainer lost hub_model_id; update TrustGRPOTrainer.create_model_card."
    )
    assert trainer._tag_names[:2] == GRPOTrainer._tag_names == ["trl", "grpo"]
