"""ThinkingRewardTrainer saves the judge prompt its rows were rendered with beside the weights, in the final folder and
in every checkpoint, so that any saved judge carries its prompt."""

import inspect

from transformers import Trainer

from sophia_trl.configs import ThinkingRewardConfig
from sophia_trl.judges import JudgePrompt
from sophia_trl.judges.carried_prompt import JUDGE_PROMPT_FILE
from sophia_trl.reward_trainer import ThinkingRewardTrainer

CUSTOM = JudgePrompt(system="Score it.", user="{question}\n{image}\n{response}")


def test_save_model_hook_keeps_its_contract():
    # Written against transformers 5.23: checkpoints are written through save_model, which the trainer extends.
    assert list(inspect.signature(Trainer.save_model).parameters) == ["self", "output_dir", "_internal_call"]
    assert "self.save_model(" in inspect.getsource(Trainer._save_checkpoint)


def test_checkpoints_and_the_final_folder_carry_the_prompt(tiny_judge_dir, thinking_rows, tmp_path):
    args = ThinkingRewardConfig(
        str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=1,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="steps",
        save_steps=1,
        gradient_checkpointing=False,
    )
    trainer = ThinkingRewardTrainer(
        str(tiny_judge_dir), args=args, train_dataset=thinking_rows(2), judge_prompt=CUSTOM
    )
    trainer.train()
    assert JudgePrompt.from_file(tmp_path / "out" / "checkpoint-1" / JUDGE_PROMPT_FILE) == CUSTOM
    trainer.save_model(str(tmp_path / "final"))
    assert JudgePrompt.from_file(tmp_path / "final" / JUDGE_PROMPT_FILE) == CUSTOM
