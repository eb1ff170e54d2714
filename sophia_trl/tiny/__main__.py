"""Build and save a tiny Qwen2.5-VL checkpoint offline, for tests, the CPU demo and benchmarks.

```bash
python -m sophia_trl.tiny --output_dir outputs/tiny-qwen2.5-vl --seed 0
```
"""

import argparse
import logging

from .models import build_tiny_vlm


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sophia_trl.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="Folder to write the checkpoint to.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the tokenizer corpus and the weights.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_tiny_vlm(args.output_dir, seed=args.seed)


if __name__ == "__main__":
    main()
