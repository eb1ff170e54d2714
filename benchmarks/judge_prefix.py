"""One prefill per group: a local judge's time to score a group with and without `share_prefix`, in one run.

One judge (a Qwen2.5-VL built offline with random weights: the tiny tokenizer, a text model and a vision tower of the
given width and depths, and an image processor that keeps a 448x448 image at 448x448, 256 image tokens) scores the
same group, one question with its image and G responses, with `share_prefix` on and off in turn, round after round, so
that a shared or throttled machine slows both alike. It prints the median of each setting after the warm-up rounds,
their ratio, the prompt's token counts and the largest score difference between the two settings (they must agree).

```bash
# CPU (~2-4 minutes): 8 responses to one question with a 448x448 image. One torch thread keeps a machine shared with
# other jobs from thrashing torch's thread pool, which slows the shared path's small batches most (docs/scaling.md).
OMP_NUM_THREADS=1 python benchmarks/judge_prefix.py --rounds 5
OMP_NUM_THREADS=1 python benchmarks/judge_prefix.py --judge scalar --rounds 5
```
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/judge_prefix.py` from the repo root

from benchmarks.step_time import build_policy  # noqa: E402


def build_judge(
    output_dir: Path, hidden_size: int, num_layers: int, vision_depth: int, image_size: int, seed: int = 0
) -> Path:
    """A Qwen2.5-VL judge (random weights) whose image processor keeps an `image_size` square image at full size."""
    from transformers import AutoProcessor

    build_policy(output_dir, hidden_size, num_layers, seed=seed, vision_depth=vision_depth)
    processor = AutoProcessor.from_pretrained(output_dir)
    processor.image_processor.size = {"shortest_edge": 28 * 28, "longest_edge": image_size * image_size}
    processor.save_pretrained(output_dir)
    return output_dir


def build_group(num_responses: int, image_size: int, seed: int = 0) -> tuple[list[str], list[str], list]:
    """One synthetic question with its image, and `num_responses` different responses to it (the judge's rows)."""
    from sophia_trl.tiny.responses import FLAWS, write_response
    from sophia_trl.tiny.scenes import sample_problem

    rng = random.Random(seed)
    problem = sample_problem(rng, "numerical", image_size=image_size)
    responses: list[str] = []
    while len(responses) < num_responses:  # all different: the judge scores equal rows once
        response = write_response(problem, rng, rng.choice([None, *FLAWS]))[0]
        if response not in responses:
            responses.append(response)
    return [problem.problem] * num_responses, responses, [problem.image] * num_responses


def token_counts(judge, questions, responses, images) -> tuple[int, float]:
    """The shared prefix's tokens and the mean tokens of each row after it."""
    from sophia_trl.judges.messages import render_judge_texts
    from sophia_trl.judges.prefix import split_shared_prefix, tokenize_group

    image_token_id = judge.model.config.image_token_id
    texts = render_judge_texts(judge.processor, questions, responses, images, judge.judge_prompt)
    group = split_shared_prefix(*tokenize_group(judge.processor, texts, images[0], image_token_id), image_token_id)
    return len(group.prefix_ids), statistics.mean(len(s) for s in group.suffixes)


def format_report(times: dict[bool, list[float]], warmup_rounds: int) -> str:
    """The medians after the warm-up rounds and their ratio (unshared / shared)."""
    shared, unshared = (statistics.median(times[key][warmup_rounds:]) for key in (True, False))
    return (
        f"share_prefix off: median {unshared:.3f} s | share_prefix on: median {shared:.3f} s | "
        f"ratio {unshared / shared:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", choices=["generative", "scalar"], default="generative")
    parser.add_argument("--readout", choices=["expected", "greedy"], default="expected", help="Generative judge.")
    parser.add_argument("--hidden_size", type=int, default=256, help="Width of the judge's text model.")
    parser.add_argument("--num_layers", type=int, default=4, help="Layers of the judge's text model.")
    parser.add_argument(
        "--vision_depth", type=int, default=4, help="Blocks of the vision tower (as wide as the text model)."
    )
    parser.add_argument("--image_size", type=int, default=448, help="Width and height of the group's image.")
    parser.add_argument("--num_responses", type=int, default=8, help="Responses in the group (G).")
    parser.add_argument("--batch_size", type=int, default=8, help="Rows per forward pass.")
    parser.add_argument("--rounds", type=int, default=7, help="Measured calls per setting (after the warm-up).")
    parser.add_argument(
        "--warmup_rounds", type=int, default=1, help="Rounds of both settings left out of the medians."
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from sophia_trl.judges import ScalarJudge, TransformersJudge

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        judge_dir = build_judge(
            Path(tmp) / "judge", args.hidden_size, args.num_layers, args.vision_depth, args.image_size
        )
        if args.judge == "scalar":
            judge = ScalarJudge(judge_dir, batch_size=args.batch_size, device=args.device, cache_size=0)
        else:
            judge = TransformersJudge(
                judge_dir, batch_size=args.batch_size, device=args.device, cache_size=0, readout=args.readout
            )
    questions, responses, images = build_group(args.num_responses, args.image_size)
    prefix, suffix = token_counts(judge, questions, responses, images)
    print(
        f"{args.judge} judge ({args.readout if args.judge == 'generative' else 'scalar head'}), hidden "
        f"{args.hidden_size} x {args.num_layers} layers, vision tower {args.vision_depth} blocks; "
        f"G = {args.num_responses} responses to one question with a "
        f"{args.image_size}x{args.image_size} image: shared prefix {prefix} tokens, {suffix:.0f} tokens per response"
    )
    times: dict[bool, list[float]] = {True: [], False: []}
    scores: dict[bool, list] = {}
    for _ in range(args.warmup_rounds + args.rounds):
        for share in (True, False):
            judge.share_prefix = share
            start = time.perf_counter()
            scores[share] = judge.score(questions, responses, images)
            times[share].append(time.perf_counter() - start)
    difference = max(abs(a - b) for a, b in zip(scores[True], scores[False]) if a is not None and b is not None)
    print(format_report(times, args.warmup_rounds))
    print(f"largest score difference between the settings: {difference:.2e}")


if __name__ == "__main__":
    main()
