"""Uploads of a saved model folder to the Hub, and the `python -m sophia_trl.hub` command that does it.

[`push_folder_to_hub`] uploads any saved folder, e.g. a thinking reward model trained with `recipes/thinking_reward.py`
with the card of [`~sophia_trl.model_cards.thinking_reward_model_card`], or a Trust-GRPO policy with the card its run
wrote ([`~sophia_trl.model_cards.trust_grpo_model_card`], saved by `TrustGRPOTrainer.create_model_card`):

```bash
python -m sophia_trl.hub --folder outputs/judge-3b --repo_id me/thinking-judge-3b --kind thinking_reward \
    --base_model Qwen/Qwen2.5-VL-3B-Instruct --dataset_name bunny127/SophiaVL-R1-Thinking-156k
python -m sophia_trl.hub --folder outputs/trust-grpo-7b --repo_id me/trust-grpo-7b --kind policy
```

A run with `push_to_hub: true` uploads while it trains as `hub_strategy` (a `TrainingArguments` field) says, each time
with its card: `end` (only the final model, when `push_to_hub()` is called at the end), `every_save` (the model and
card at each save, asynchronously, and at the end), `checkpoint` (also the latest checkpoint in a `last-checkpoint`
folder, so a run can resume from the Hub), `all_checkpoints` (every checkpoint in its own folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, ModelCard

from .judges import DEFAULT_JUDGE_PROMPT, JudgePrompt
from .judges.carried_prompt import JUDGE_PROMPT_FILE, describe_judge_prompt
from .model_cards import thinking_reward_model_card

logger = logging.getLogger(__name__)

CARD_KINDS = ("policy", "thinking_reward")
# Uploads leave out checkpoints (they have their own hub_strategy) and private files, as Trainer.push_to_hub does.
IGNORE_PATTERNS = ["_*", "checkpoint-*"]


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    card: ModelCard | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload model trained with sophia-trl",
    revision: str | None = None,
) -> CommitInfo:
    """
    Upload a saved model folder to a Hub model repository, creating the repository if needed.

    Args:
        folder (`str` or `os.PathLike`):
            A folder written by `save_pretrained` / `trainer.save_model` (checkpoint folders are not uploaded).
        repo_id (`str`):
            `user/name` or `org/name`.
        card ([`~huggingface_hub.ModelCard`] or `None`, *optional*, defaults to `None`):
            Written to `folder/README.md` before the upload; `None` keeps the folder's README.md.
        private (`bool` or `None`, *optional*, defaults to `None`):
            Visibility of a new repository (`None`: the account's default).
        token (`str` or `None`, *optional*, defaults to `None`):
            Hub token; `None` uses the logged-in token (`hf auth login` or `HF_TOKEN`).
        commit_message (`str`, *optional*, defaults to `"Upload model trained with sophia-trl"`):
            Message of the commit.
        revision (`str` or `None`, *optional*, defaults to `None`):
            Branch to push to (the default branch when `None`).

    Returns:
        [`~huggingface_hub.CommitInfo`]: The commit.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json: pass the folder a training run saved its model to (its output_dir)."
        )
    if card is not None:
        card.save(folder / "README.md")
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    logger.info("Uploading %s to %s", folder, repo_url)
    return api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        revision=revision,
        ignore_patterns=IGNORE_PATTERNS,
    )


def _read_eval_metrics(folder: Path) -> dict[str, float] | None:
    path = folder / "judge_eval_results.json"
    if not path.is_file():
        return None
    with open(path) as f:
        return {k: v for k, v in json.load(f).items() if k.startswith("judge_eval_")}


def _judge_prompt_of(folder: Path) -> str | None:
    """Where the prompt a judge folder carries comes from, for its card; `None` (with a warning) when it has none."""
    path = folder / JUDGE_PROMPT_FILE
    if not path.is_file():
        logger.warning(
            "%s has no %s: users of this judge will have to set judge_prompt_template to the prompt it was trained "
            "with (recipes/thinking_reward.py writes the file).",
            folder,
            JUDGE_PROMPT_FILE,
        )
        return None
    judge_prompt = JudgePrompt.from_file(path)
    return describe_judge_prompt(judge_prompt) if judge_prompt == DEFAULT_JUDGE_PROMPT else "a template of its own"


def _judge_type_of(folder: Path) -> str:
    with open(folder / "config.json") as f:
        architectures = json.load(f).get("architectures") or []
    return "scalar" if any("ScalarReward" in name for name in architectures) else "generative"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Upload a trained policy or thinking reward model to the Hub.")
    parser.add_argument("--folder", required=True, help="The run's output_dir (holds config.json and the weights).")
    parser.add_argument("--repo_id", required=True, help="Target repository, user/name or org/name.")
    parser.add_argument(
        "--kind",
        choices=CARD_KINDS,
        default="policy",
        help="'policy': upload with the README.md the Trust-GRPO run wrote. 'thinking_reward': write a judge card.",
    )
    parser.add_argument("--base_model", help="Hub id the judge was trained from (thinking_reward cards).")
    parser.add_argument("--dataset_name", help="Hub id of the judge data (thinking_reward cards).")
    parser.add_argument("--judge_type", choices=("generative", "scalar"), help="Detected from config.json if unset.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--revision", help="Branch to push to.")
    return parser


def main(argv: Sequence[str] | None = None) -> CommitInfo:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(name)s - %(message)s")
    folder = Path(args.folder)
    card = None
    if args.kind == "thinking_reward":
        card = thinking_reward_model_card(
            model_name=args.repo_id.split("/")[-1],
            judge_type=args.judge_type or _judge_type_of(folder),
            base_model=args.base_model,
            hub_model_id=args.repo_id,
            dataset_name=args.dataset_name,
            eval_metrics=_read_eval_metrics(folder),
            judge_prompt=_judge_prompt_of(folder),
        )
    elif not (folder / "README.md").is_file():
        raise FileNotFoundError(
            f"{folder} has no README.md: a Trust-GRPO run writes its card when it saves (recipes/grpo.py)."
        )
    commit = push_folder_to_hub(folder, args.repo_id, card=card, private=args.private or None, revision=args.revision)
    print(f"Uploaded {folder} to {commit.commit_url}")
    return commit


if __name__ == "__main__":
    main()
