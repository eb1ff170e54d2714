# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""Apply an overriding recipe YAML (e.g. one of the paper's ablations) to a base recipe and write the merged YAML.

The recipes' parser (`TrlParser`) reads one `--config` file; an ablation file holds only the keys it changes, so
it cannot drift from its base. Keys of the override replace the base's; the result is checked by the recipe's parser
when it runs (an unknown key fails there).

```bash
python scripts/merge_configs.py recipes/Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml \
    recipes/Qwen2.5-VL-7B-Instruct/grpo/ablations/no_trust.yaml -o outputs/no_trust.yaml
```
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The YAML file at `path` as a dict; an empty file is `{}`, anything else than a mapping is an error."""
    with open(path) as f:
        config = yaml.safe_load(f)
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a YAML mapping of setting: value, got {type(config).__name__}.")
    return config


def merge_configs(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """
    `base` with the keys of `override` replaced (a whole value is replaced, lists and mappings are not merged, as on
    the command line).

    Args:
        base (`dict[str, Any]`):
            The base recipe.
        override (`dict[str, Any]`):
            The keys to change.

    Returns:
        `dict[str, Any]`: The merged recipe, keys in the base's order, then the new keys.
    """
    return {**base, **override}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="The base recipe YAML.")
    parser.add_argument("override", help="The YAML with the keys to change.")
    parser.add_argument("-o", "--output", help="Where to write the merged YAML (stdout when unset).")
    args = parser.parse_args(argv)
    for name in ("base", "override"):
        if not Path(getattr(args, name)).is_file():
            parser.error(f"the {name} YAML {getattr(args, name)} does not exist (relative to {Path.cwd()}).")
    merged = merge_configs(load_yaml_mapping(args.base), load_yaml_mapping(args.override))
    header = f"# Merged by scripts/merge_configs.py: {args.base} + {args.override}\n"
    text = header + yaml.safe_dump(merged, sort_keys=False)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
