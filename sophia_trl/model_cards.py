"""Model cards of Trust-GRPO policies and thinking reward models: method, run settings, judge, usage and citations.

[`trust_grpo_model_card`] is what `TrustGRPOTrainer.create_model_card` writes to a run's `README.md` at every save and
push; [`thinking_reward_model_card`] is the card of a judge trained with `recipes/thinking_reward.py`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from .judges.carried_prompt import JUDGE_PROMPT_FILE

SOPHIAVL_R1_PAPER = {
    "title": "SophiaVL-R1: Reinforcing MLLMs Reasoning with Thinking Reward",
    "id": "2505.17018",
    "citation": """@article{fan2025sophiavl,
    title   = {{SophiaVL-R1: Reinforcing MLLMs Reasoning with Thinking Reward}},
    author  = {Kaixuan Fan and Kaituo Feng and Haoming Lyu and Dongzhan Zhou and Xiangyu Yue},
    journal = {arXiv preprint arXiv:2505.17018},
    year    = {2025}
}""",
}

TRL_CITATION = """@software{vonwerra2020trl,
    title   = {{TRL: Transformers Reinforcement Learning}},
    author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallouédec, Quentin},
    license = {Apache-2.0},
    url     = {https://github.com/huggingface/trl},
    year    = {2020}
}"""


def hub_name(name_or_path: str | os.PathLike | None) -> str | None:
    """`name_or_path` when it names a Hub repository, `None` for a local folder: a card must not publish local paths."""
    if not name_or_path:
        return None
    name = str(name_or_path)
    if os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None
    return name


def describe_judge(judge: Any) -> str:
    """
    One line saying which thinking judge scored the reasoning, for the model card.

    Args:
        judge (`Any`):
            A judge backend of `sophia_trl.judges` (or any object with `score`), or `None` (plain GRPO).

    Returns:
        `str`: The judge's class and, when it is a Hub model or a served model name, that name. Local paths and server
        URLs are left out.
    """
    if judge is None:
        return "none (plain GRPO: no thinking reward)"
    kind = type(judge).__name__
    model = getattr(judge, "model", None)
    if isinstance(model, str):  # a served model name (OpenAIJudge)
        return f"`{kind}`, served model `{model}`"
    config = getattr(model, "config", None)
    if config is None:
        return f"`{kind}`"
    name = hub_name(getattr(config, "_name_or_path", None))
    return f"`{kind}` with [{name}](https://huggingface.co/{name})" if name else f"`{kind}` with a local checkpoint"


def trust_grpo_settings(args: Any, total_steps: int | None = None) -> list[tuple[str, str, str]]:
    """
    The settings of a Trust-GRPO run that a reader needs to reproduce it, as (setting, value, meaning) rows.

    Args:
        args ([`TrustGRPOConfig`]):
            The run's configuration.
        total_steps (`int` or `None`, *optional*, defaults to `None`):
            The run's number of optimizer steps (`trainer.state.max_steps`); `args.max_steps` when `None`.

    Returns:
        `list[tuple[str, str, str]]`: One row per setting.
    """
    steps = total_steps if total_steps is not None and total_steps > 0 else args.max_steps
    horizon = args.thinking_reward_T if args.thinking_reward_T is not None else f"{steps} (the run's total steps)"
    completions_per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    return [
        ("thinking_reward_alpha", str(args.thinking_reward_alpha), "initial weight alpha of the thinking reward"),
        ("thinking_reward_annealing", args.thinking_reward_annealing, "`exp`: alpha * exp(-step / T); `none`: alpha"),
        ("thinking_reward_T", str(horizon), "annealing horizon T"),
        ("trust_weighting", str(args.trust_weighting), "scale each group's thinking reward by gamma"),
        ("correct_threshold", str(args.correct_threshold), "outcome reward at or above which a response is correct"),
        ("thinking_reward_preset", args.thinking_reward_preset, "`paper` or `official` (the released code's rules)"),
        ("thinking_reward_gate", args.thinking_reward_gate, "`correct`: thinking reward for correct responses only"),
        (
            "thinking_reward_length_neutral",
            str(args.thinking_reward_length_neutral),
            "judge scores less their in-group line in the response length",
        ),
        ("num_generations", str(args.num_generations), "G, responses per prompt"),
        ("beta", str(args.beta), "KL coefficient (k3 estimator against the reference model)"),
        ("loss_type", args.loss_type, "GRPO loss normalisation"),
        ("scale_rewards", str(args.scale_rewards), "advantage normalisation"),
        ("learning_rate", str(args.learning_rate), "peak learning rate"),
        ("temperature", str(args.temperature), "sampling temperature of the rollouts"),
        ("max_completion_length", str(args.max_completion_length), "tokens per response"),
        ("max_steps", str(steps), "optimizer steps"),
        ("prompts per step", str(completions_per_step // max(args.num_generations, 1)), "prompts per optimizer step"),
    ]


def _settings_table(rows: Sequence[tuple[str, str, str]]) -> str:
    lines = ["| setting | value | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {value} | {meaning} |" for name, value, meaning in rows]
    return "\n".join(lines)


def _framework_versions() -> str:
    import datasets
    import torch
    import transformers
    import trl

    return "\n".join(
        f"- {name}: {version}"
        for name, version in [
            ("TRL", trl.__version__),
            ("Transformers", transformers.__version__),
            ("PyTorch", torch.__version__),
            ("Datasets", datasets.__version__),
        ]
    )


def _card_footer() -> str:
    """Framework versions and citations, the end of every card."""
    return f"""### Framework versions

{_framework_versions()}

## Citations

```bibtex
{SOPHIAVL_R1_PAPER["citation"]}
```

```bibtex
{TRL_CITATION}
```"""


def _card(card_data: ModelCardData, body: str) -> ModelCard:
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body.strip()}\n")


def _base_model_sentence(base_model: str | None, dataset_name: str | None) -> str:
    base = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a vision-language model"
    data = f" on [{dataset_name}](https://huggingface.co/datasets/{dataset_name})" if dataset_name else ""
    return f"{base}{data}"


def trust_grpo_model_card(
    args: Any,
    model_name: str,
    total_steps: int | None = None,
    base_model: str | None = None,
    hub_model_id: str | None = None,
    dataset_name: str | None = None,
    judge: str | None = None,
    reward_names: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    wandb_url: str | None = None,
    trackio_url: str | None = None,
    adapter: bool = False,
) -> ModelCard:
    """
    The model card of a policy trained with Trust-GRPO: method, settings of the run, judge, usage and citations.

    Args:
        args ([`TrustGRPOConfig`]):
            The run's configuration.
        model_name (`str`):
            Title of the card.
        total_steps (`int` or `None`, *optional*, defaults to `None`):
            The run's optimizer steps (`trainer.state.max_steps`), which T defaults to.
        base_model (`str` or `None`, *optional*, defaults to `None`):
            Hub id of the model the run started from (local paths are left out).
        hub_model_id (`str` or `None`, *optional*, defaults to `None`):
            Repository the card is pushed to, used in the usage example.
        dataset_name (`str` or `None`, *optional*, defaults to `None`):
            Hub id of the training data (local paths are left out).
        judge (`str` or `None`, *optional*, defaults to `None`):
            The judge, as written by [`describe_judge`].
        reward_names (`Sequence[str]` or `None`, *optional*, defaults to `None`):
            The reward functions, the outcome reward first.
        tags (`Sequence[str]` or `None`, *optional*, defaults to `None`):
            Hub tags.
        wandb_url (`str` or `None`, *optional*, defaults to `None`):
            Link to the wandb run.
        trackio_url (`str` or `None`, *optional*, defaults to `None`):
            Link to the trackio dashboard.
        adapter (`bool`, *optional*, defaults to `False`):
            The folder holds a LoRA adapter (a `use_peft` run), not full weights: the card says so and is tagged for
            PEFT.

    Returns:
        [`~huggingface_hub.ModelCard`]: The card; `card.save(path)` writes it.
    """
    base_model, dataset_name = hub_name(base_model), hub_name(dataset_name)
    card_data = ModelCardData(
        base_model=base_model,
        datasets=[dataset_name] if dataset_name else None,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="image-text-to-text",
        model_name=model_name,
        tags=sorted({"sophia-trl", "trust-grpo", "trl", "grpo", *(["lora"] if adapter else []), *(tags or [])}),
    )
    adapter_note = (
        "\n**This repository holds a LoRA adapter, not full weights.** With `peft` installed, `from_pretrained` below "
        "loads the base model named in `adapter_config.json` and applies the adapter; "
        "`model.merge_and_unload()` folds it into the weights.\n"
        if adapter
        else ""
    )
    repo = hub_model_id or "PATH_OR_REPO_ID"
    links = [
        f"[wandb run]({wandb_url})" if wandb_url else "",
        f"[trackio dashboard]({trackio_url})" if trackio_url else "",
    ]
    links_line = " ".join(link for link in links if link)
    rewards = ", ".join(f"`{name}`" for name in reward_names) if reward_names else "the outcome reward"
    body = f"""
# {model_name}

This model is {_base_model_sentence(base_model, dataset_name)} trained with **Trust-GRPO**, the method of
[{SOPHIAVL_R1_PAPER["title"]}](https://huggingface.co/papers/{SOPHIAVL_R1_PAPER["id"]}), with sophia-trl's
`TrustGRPOTrainer`, built on [TRL](https://github.com/huggingface/trl)'s `GRPOTrainer`.
{adapter_note}
## Method

For each prompt the policy samples G responses, each written as `<think>...</think><answer>...</answer>`. A
rule-based outcome reward checks the answer; a thinking reward model scores the reasoning in [0, 1]. The reward of a
response is

    R = R_outcome + gamma * alpha * exp(-step / T) * R_thinking

where gamma is the trust weight of the response's group: with mu_c and mu_w the mean thinking rewards of its correct
and wrong responses, gamma = exp(mu_c - mu_w) when mu_c < mu_w (the judge prefers the reasoning of wrong answers, so
it is trusted less) and 1 otherwise. The exp(-step / T) factor lets the thinking reward fade as training goes on.
GRPO's group normalisation of R then gives the advantages.

Reward functions: {rewards}. Thinking judge: {judge or "not recorded"}.

## Training settings

{_settings_table(trust_grpo_settings(args, total_steps))}

{links_line}

## Usage

```python
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{repo}", dtype="auto", device_map="auto")
processor = AutoProcessor.from_pretrained("{repo}")
messages = [{{"role": "user", "content": [
    {{"type": "image"}},
    {{"type": "text", "text": "How many circles are there? Think step by step inside <think> </think>, "
                             "then answer inside <answer> </answer>."}},
]}}]
text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
inputs = processor(text=[text], images=[Image.open("image.png")], return_tensors="pt").to(model.device)
output = model.generate(**inputs, max_new_tokens=2048, do_sample=False)
print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```

or, with sophia-trl: `python scripts/infer.py --model {repo} --image image.png --question "How many circles are there?"`.

{_card_footer()}
"""
    return _card(card_data, body)


def _judge_prompt_section(judge_prompt: str | None) -> str:
    """The card's paragraph on the prompt a judge was trained with and how a run reads it."""
    if not judge_prompt:
        return ""
    return f"""
## Judge prompt

It was trained with the prompt in `{JUDGE_PROMPT_FILE}` beside the weights: {judge_prompt}. Ask it with that prompt:
`recipes/grpo.py` reads the file when `judge_model_name_or_path` is a local copy of this folder; for a served judge
give the file's path as `judge_prompt_template`, and in Python pass `judge_prompt=load_judge_prompt(path)`.
"""


def thinking_reward_model_card(
    model_name: str,
    judge_type: str,
    base_model: str | None = None,
    hub_model_id: str | None = None,
    dataset_name: str | None = None,
    eval_metrics: dict[str, float] | None = None,
    tags: Sequence[str] | None = None,
    judge_prompt: str | None = None,
) -> ModelCard:
    """
    The model card of a thinking reward model (the judge of stage 1), trained with `recipes/thinking_reward.py`.

    Args:
        model_name (`str`):
            Title of the card.
        judge_type (`str`):
            `"generative"` (answers `<answer>score</answer>`) or `"scalar"` (a sigmoid head).
        base_model (`str` or `None`, *optional*, defaults to `None`):
            Hub id of the model the judge was trained from (local paths are left out).
        hub_model_id (`str` or `None`, *optional*, defaults to `None`):
            Repository the card is pushed to, used in the usage example.
        dataset_name (`str` or `None`, *optional*, defaults to `None`):
            Hub id of the judge data (local paths are left out).
        eval_metrics (`dict[str, float]` or `None`, *optional*, defaults to `None`):
            The judge's held-out metrics (e.g. `judge_eval_mae`), as the recipe saves them.
        tags (`Sequence[str]` or `None`, *optional*, defaults to `None`):
            Hub tags.
        judge_prompt (`str` or `None`, *optional*, defaults to `None`):
            Where the prompt the judge was trained with comes from (e.g. a template file), for the card's section on
            `judge_prompt.yaml`, the file in the judge's folder that holds it; no section when `None`.

    Returns:
        [`~huggingface_hub.ModelCard`]: The card.
    """
    if judge_type not in ("generative", "scalar"):
        raise ValueError(f"judge_type must be 'generative' or 'scalar', got {judge_type!r}.")
    base_model, dataset_name = hub_name(base_model), hub_name(dataset_name)
    card_data = ModelCardData(
        base_model=base_model,
        datasets=[dataset_name] if dataset_name else None,
        library_name="transformers",
        pipeline_tag="image-text-to-text" if judge_type == "generative" else None,
        model_name=model_name,
        tags=sorted({"sophia-trl", "thinking-reward", judge_type, *(tags or [])}),
    )
    repo = hub_model_id or "PATH_OR_REPO_ID"
    if judge_type == "generative":
        how = (
            "It was fine-tuned (SFT, loss on the answer only) to read a question, its image and a response, and to "
            "answer with one score in {0, 0.1, ..., 1.0} as `<answer>score</answer>`."
        )
        usage = f"""```python
from sophia_trl.judges import TransformersJudge, OpenAIJudge

judge = TransformersJudge("{repo}")  # in-process
# or: scripts/serve_judge.sh vllm {repo} 8001, then
# judge = OpenAIJudge("http://localhost:8001/v1", "judge")
scores = judge.score(["How many circles?"], ["<think>I count 3 circles.</think><answer>3</answer>"], [image])
```"""
    else:
        how = "A linear head on the backbone was trained by regression of sigmoid(logit) to the score."
        usage = f"""```python
from sophia_trl.judges import ScalarJudge

judge = ScalarJudge("{repo}")
scores = judge.score(["How many circles?"], ["<think>I count 3 circles.</think><answer>3</answer>"], [image])
```"""
    metrics = ""
    if eval_metrics:
        metrics = "## Held-out evaluation\n\n| metric | value |\n|---|---|\n" + "\n".join(
            f"| `{name}` | {value:.4g} |" if isinstance(value, float) else f"| `{name}` | {value} |"
            for name, value in sorted(eval_metrics.items())
        )
    body = f"""
# {model_name}

A **thinking reward model** ({judge_type}) for Trust-GRPO, the method of
[{SOPHIAVL_R1_PAPER["title"]}](https://huggingface.co/papers/{SOPHIAVL_R1_PAPER["id"]}): it scores the reasoning of
a response in [0, 1] (logical soundness, correct use of facts and methods, errors, consistent language, no
redundancy), independently of whether the final answer is right. It was trained from
{_base_model_sentence(base_model, dataset_name)}. {how}

Use it as the judge of `recipes/grpo.py` (`judge_backend: transformers`, `scalar` or `openai`).
{_judge_prompt_section(judge_prompt)}
{metrics}

## Usage

{usage}

{_card_footer()}
"""
    return _card(card_data, body)
