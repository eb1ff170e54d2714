"""Writes the released SophiaVL-R1 judge prompt (the named template `sophiavl-r1`) as a template file.

The prompt is read from `get_process_reward` in `verl/workers/reward/custom.py` of github.com/kxfan2002/SophiaVL-R1
at the commit `sophia_trl.release.RELEASE_COMMIT`: from a checkout or the file (`--source`), else downloaded (checked
against its sha256 and cached). The file written loads with `judge_prompt_template: FILE` exactly as
`judge_prompt_template: sophiavl-r1` does, without the release at hand.

```bash
python -m sophia_trl.judges.release_prompt --source ~/src/SophiaVL-R1 --output judge_prompts/sophiavl_r1.yaml
```
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import yaml

from ..release import JUDGE_FILE, RELEASE_COMMIT, RELEASE_REPO
from .template import JudgePrompt, release_judge_prompt

logger = logging.getLogger(__name__)


class _TemplateDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks where YAML can hold them exactly (else quoted)."""


_TemplateDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def write_template(prompt: JudgePrompt, output: str | os.PathLike, header: str = "") -> Path:
    """Writes `prompt` as a template file ([`JudgePrompt.from_file`]) and checks that it reads back the same.

    Args:
        prompt ([`JudgePrompt`]):
            The template.
        output (`str` or `os.PathLike`):
            The file to write (its folder is created).
        header (`str`, *optional*, defaults to `""`):
            Comment lines to put first.

    Returns:
        `Path`: The file written.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.dump(prompt.to_dict(), Dumper=_TemplateDumper, sort_keys=False, allow_unicode=True, width=1 << 20)
    output.write_text("".join(f"# {line}\n" for line in header.splitlines()) + body, encoding="utf-8")
    if JudgePrompt.from_file(output) != prompt:
        raise RuntimeError(f"{output} does not read back as the template written; please report this.")
    return output


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default=None,
        help=f"A checkout of {RELEASE_REPO} (the folder holding verl/) or {JUDGE_FILE} itself; downloaded at "
        f"{RELEASE_COMMIT} (and cached) when unset.",
    )
    parser.add_argument("--output", required=True, help="The template file to write (YAML).")
    parser.add_argument(
        "--allow_checksum_mismatch",
        action="store_true",
        help="Read a local file whose sha256 is not the release's (another version, read knowingly).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    prompt = release_judge_prompt(args.source, allow_checksum_mismatch=args.allow_checksum_mismatch or None)
    header = (
        f"The thinking reward model prompt of {RELEASE_REPO} at {RELEASE_COMMIT},\n"
        f"read from get_process_reward in {JUDGE_FILE} by `python -m sophia_trl.judges.release_prompt`.\n"
        "{policy_prompt} is the policy's decoded prompt; see docs/thinking_reward_model.md."
    )
    path = write_template(prompt, args.output, header)
    logger.info("Wrote %s", path)
    return path


if __name__ == "__main__":
    main()
