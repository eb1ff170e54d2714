# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""Ask a trained policy one question about one image and print its thinking and its answer.

The prompt is the training prompt (`sophia_trl.prompts.build_prompt`: the question, the request to reason inside
<think> </think> and answer inside <answer> </answer>, the answer-format rule of the problem type), decoded greedily
with `transformers`. A full checkpoint and a LoRA adapter folder (a `use_peft` run's output) load the same way.

```bash
python scripts/infer.py --model outputs/Qwen2.5-VL-7B-Instruct-Trust-GRPO --image chart.png \
    --question "Which year had the highest sales?" --problem_type free-form
python scripts/infer.py --model bunny127/SophiaVL-R1-7B --image geo.png --question "Find x." \
    --problem_type "multiple choice" --options 30 45 60 90
```
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from sophia_trl.evaluation.answers import answer_with_fallback
from sophia_trl.evaluation.generation import DEFAULT_MAX_NEW_TOKENS, TransformersGenerator, r1_prompt
from sophia_trl.model_utils import check_local_paths
from sophia_trl.rewards.problem_types import PROBLEM_TYPES

_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL | re.IGNORECASE)
# An option's own letter: "A.", "A)", "(A)", "[A]", "A:".
_OPTION_LABEL_RE = re.compile(r"\s*[(\[]?\s*([A-Z])\s*[)\].:]\s*")


@dataclass
class Inference:
    """What the policy wrote: its raw response, the thinking and the answer taken from it, and how the answer was
    found (`answer_tag`, or a fallback: `after_think`, `full_response`, `empty`)."""

    response: str
    thinking: str | None
    answer: str
    answer_source: str
    truncated: bool


def split_response(response: str, truncated: bool = False) -> Inference:
    """
    The thinking (`<think>...</think>`, or everything after `<think>` when the closing tag is missing) and the answer
    (`sophia_trl.evaluation.answers.answer_with_fallback`) of a response.

    Args:
        response (`str`):
            The policy's raw output.
        truncated (`bool`, *optional*, defaults to `False`):
            Whether generation stopped at the token limit.

    Returns:
        [`Inference`]: The parts of the response.

    Example:
    ```python
    >>> split_response("<think>2 + 3 = 5</think><answer>5</answer>").answer
    '5'
    ```
    """
    think = _THINK_RE.search(response)
    answer = answer_with_fallback(response)
    return Inference(
        response=response,
        thinking=think.group(1).strip() if think else None,
        answer=answer.text,
        answer_source=answer.source,
        truncated=truncated,
    )


def infer(
    generator: TransformersGenerator,
    question: str,
    image: Image.Image | None = None,
    problem_type: str = "free-form",
    options: list[str] | None = None,
    system_prompt: str | None = None,
) -> Inference:
    """
    One greedy response of the policy of `generator` to `question` about `image`.

    Args:
        generator ([`~sophia_trl.evaluation.generation.TransformersGenerator`]):
            The loaded policy.
        question (`str`):
            The question, without format instructions.
        image (`PIL.Image.Image` or `None`, *optional*, defaults to `None`):
            The image; `None` asks a text-only question.
        problem_type (`str`, *optional*, defaults to `"free-form"`):
            Selects the answer-format rule of the training prompt, one of `sophia_trl.rewards.PROBLEM_TYPES`.
        options (`list[str]` or `None`, *optional*, defaults to `None`):
            Options of a multiple-choice question, shown lettered A, B, ...: their texts (`["3", "4"]`), or the texts
            already lettered in that order (`["A. 3", "B. 4"]`, see [`option_texts`]).
        system_prompt (`str` or `None`, *optional*, defaults to `None`):
            A system message, if the policy was trained with one.

    Returns:
        [`Inference`]: The response and its parts.
    """
    prompt = r1_prompt(question, problem_type, [image], system_prompt=system_prompt, options=option_texts(options))
    [generation] = generator.generate([prompt], progress=tqdm(total=1, disable=True))  # one question: no bar
    return split_response(generation.text, generation.truncated)


def option_texts(options: list[str] | None) -> list[str] | None:
    """
    The texts of options given with or without their letters: when every option starts with its own letter in order
    (`A.`, `(B)`, `C:` ...), that letter is taken off, since the prompt letters the options itself; otherwise the
    options are their texts as given (so an option whose text is a letter, such as `"B"`, stays as it is).

    Example:
    ```python
    >>> option_texts(["A. 3", "B. 4"]), option_texts(["3", "4"])
    (['3', '4'], ['3', '4'])
    ```
    """
    if not options:
        return options
    labels = [_OPTION_LABEL_RE.match(option) for option in options]
    if all(label and label.group(1) == chr(ord("A") + i) for i, label in enumerate(labels)):
        return [option[label.end() :].strip() for option, label in zip(options, labels)]
    return options


def load_policy(model_name_or_path: str, **kwargs) -> TransformersGenerator:
    """
    The policy of a run's output folder or a Hub id, as a greedy generator. A LoRA adapter folder (a `use_peft` run)
    is loaded onto its base model (named in `adapter_config.json`): transformers would otherwise read the folder's
    `config.json` as a full checkpoint and look for weights that are not there.

    Args:
        model_name_or_path (`str`):
            A full checkpoint folder, a LoRA adapter folder, or a Hub id.
        kwargs:
            Passed to [`~sophia_trl.evaluation.generation.TransformersGenerator`].

    Returns:
        [`~sophia_trl.evaluation.generation.TransformersGenerator`]: The loaded policy.
    """
    adapter_config = Path(model_name_or_path) / "adapter_config.json"
    if not adapter_config.is_file():
        return TransformersGenerator(model_name_or_path, **kwargs)
    with open(adapter_config) as f:
        base = json.load(f)["base_model_name_or_path"]
    generator = TransformersGenerator(base, **kwargs)
    generator.model.load_adapter(model_name_or_path)
    return generator


def main(argv: list[str] | None = None) -> Inference:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="A trained policy: output_dir of a run, or a Hub id.")
    parser.add_argument("--question", required=True, help="The question, without format instructions.")
    parser.add_argument("--image", help="Path of the image (leave out for a text-only question).")
    parser.add_argument("--problem_type", default="free-form", choices=PROBLEM_TYPES, help="Answer format rule.")
    parser.add_argument(
        "--options",
        nargs="+",
        help='Options of a multiple-choice question, with or without their letters ("30" "45" or "A. 30" "B. 45").',
    )
    parser.add_argument("--system_prompt", help="A system message, if the policy was trained with one.")
    parser.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="Generation budget.")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32.")
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when available).")
    parser.add_argument("--min_pixels", type=int, help="Lower bound on the image's pixels after resizing.")
    parser.add_argument("--max_pixels", type=int, help="Upper bound on the image's pixels after resizing.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    args = parser.parse_args(argv)
    if args.options and args.problem_type != "multiple choice":
        parser.error("--options needs --problem_type 'multiple choice'.")

    try:  # a run's output folder that is not there yet: say so before transformers tries the Hub
        check_local_paths({"model": args.model})
    except FileNotFoundError as err:
        parser.error(
            f"{err} Train a policy first (recipes/grpo.py), or give a Hub id such as bunny127/SophiaVL-R1-7B."
        )
    image = None
    if args.image:
        try:
            image = Image.open(args.image).convert("RGB")
        except (OSError, ValueError) as err:
            parser.error(f"cannot read the image {args.image}: {err}")
    generator = load_policy(
        args.model,
        batch_size=1,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
    )
    result = infer(generator, args.question, image, args.problem_type, args.options, args.system_prompt)
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False))
        return result
    print("Thinking:")
    print(result.thinking if result.thinking is not None else "(no <think> block)")
    print()
    print(f"Answer: {result.answer}")
    if result.answer_source != "answer_tag":
        print(f"(no <answer> tag: the answer was taken from {result.answer_source.replace('_', ' ')})")
        print(f"Raw response: {result.response!r}")
    if result.truncated:
        print(f"(the response was cut at --max_new_tokens {args.max_new_tokens}: raise it for longer reasoning)")
    return result


if __name__ == "__main__":
    main()
