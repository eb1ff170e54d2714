"""The client's cost of a group's judge request bodies at paper scale: `json.dumps` per request against
[`~sophia_trl.judges.request_body.RequestBodyEncoder`] (each image data URL JSON-encoded once per batch).

G request bodies of the judge's messages with one 448x448 image (random pixels, so the PNG is about as large as a
photo's), both ways alternating round by round in one run; prints the medians and their ratio. The bytes are checked
equal before timing.

```bash
python benchmarks/judge_request_body.py                      # ~10 s
python benchmarks/judge_request_body.py --image_size 896 --group_size 16
```
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from PIL import Image

from sophia_trl.judges.messages import build_openai_messages, image_to_data_url
from sophia_trl.judges.request_body import RequestBodyEncoder


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_size", type=int, default=448, help="Width and height of the image (pixels).")
    parser.add_argument("--group_size", type=int, default=8, help="Requests per group (G), one image shared.")
    parser.add_argument("--rounds", type=int, default=30, help="Rounds of each way, alternating.")
    args = parser.parse_args(argv)

    rng = random.Random(0)
    size = args.image_size
    image = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    url = image_to_data_url(image)
    bodies = [
        {
            "model": "judge",
            "messages": build_openai_messages("What is shown?", f"<think>step {i}</think>", image, image_url=url),
            "max_tokens": 16,
            "temperature": 0.0,
        }
        for i in range(args.group_size)
    ]
    encoder = RequestBodyEncoder()
    assert [encoder.encode(b) for b in bodies] == [json.dumps(b).encode() for b in bodies]

    def per_request() -> list[bytes]:
        return [json.dumps(b).encode() for b in bodies]

    def once_per_batch() -> list[bytes]:
        encoder.clear()  # a new batch: the image's JSON is encoded again, once
        return [encoder.encode(b) for b in bodies]

    times: dict[str, list[float]] = {"json.dumps per request": [], "RequestBodyEncoder": []}
    for _ in range(args.rounds):
        for name, fn in (("json.dumps per request", per_request), ("RequestBodyEncoder", once_per_batch)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"{args.group_size} request bodies, one {size}x{size} image ({len(url) / 1e3:.0f} kB data URL), "
        f"median of {args.rounds} alternating rounds:"
    )
    for name, m in medians.items():
        print(f"  {name}: {m * 1e3:.2f} ms per group ({m * 1e3 / args.group_size:.3f} ms per request)")
    ratio = medians["json.dumps per request"] / medians["RequestBodyEncoder"]
    print(f"  ratio: {ratio:.1f}x")
    return {**medians, "ratio": ratio}


if __name__ == "__main__":
    main()
