# Copyright 2026 The sophia-trl Authors. Licensed under the Apache License, Version 2.0.
"""Wait until a judge server answers, then check that it scores a response, before a Trust-GRPO run starts.

A judge server (`vllm serve`, `transformers serve`) takes minutes to load its model; a run that starts before it is up
would score its first batches with NaN. This script polls the server's model list until it answers, within a bounded
time, then runs the check `recipes/grpo.py` runs before training (`sophia_trl.judges.preflight.check_judge`: the
server lists the model, and one judge request with a small image gets a score). It exits with a clear message and a
non-zero code when:

- 1: the server did not answer within `--timeout` seconds;
- 2: the server refused the request (wrong API key, unknown model or URL) or lists other models than `--model`;
- 3: the server process (`--server_pid`) exited while we waited: read its log;
- 4: the server answers but its reply holds no score (not a thinking judge, or a wrong prompt format);
- 5: `--judge_prompt_template` cannot be read (read once the server answers, before the probe).

```bash
python scripts/check_judge_server.py --base_url http://127.0.0.1:8001/v1 --model judge --timeout 900 \
    --judge_prompt_template sophiavl-r1
```

The probe is asked with `--judge_prompt_template` (the run's `judge_prompt_template`: a template file, the
`judge_prompt.yaml` of the served judge's folder, or a named template such as `sophiavl-r1`); without it, with this
project's prompt.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from sophia_trl.judges import JudgeServerError, OpenAIJudge, load_judge_prompt
from sophia_trl.judges.preflight import PROBE_QUESTION, PROBE_RESPONSE, JudgeCheckError, check_judge

logger = logging.getLogger(__name__)

EXIT_TIMEOUT, EXIT_REFUSED, EXIT_DIED, EXIT_NO_SCORE, EXIT_BAD_TEMPLATE = 1, 2, 3, 4, 5


class JudgeServerCheckError(RuntimeError):
    """The judge server is not ready; `exit_code` says why (see the module docstring)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def wait_for_judge_server(
    base_url: str,
    model: str,
    timeout: float = 900.0,
    poll_interval: float = 2.0,
    request_timeout: float = 10.0,
    server_pid: int | None = None,
    check_score: bool = True,
    judge_prompt_template: str | None = None,
) -> float | None:
    """
    Poll the judge server until it lists its models, then score one probe response.

    Args:
        base_url (`str`):
            The server's OpenAI API root, e.g. `"http://127.0.0.1:8001/v1"`; several replicas separated by commas,
            all of which must answer.
        model (`str`):
            The served model name.
        timeout (`float`, *optional*, defaults to `900.0`):
            Seconds to wait for the server in all (loading a 3B judge with vLLM takes a few minutes).
        poll_interval (`float`, *optional*, defaults to `2.0`):
            Seconds between two polls.
        request_timeout (`float`, *optional*, defaults to `10.0`):
            Seconds allowed for one poll or probe request.
        server_pid (`int` or `None`, *optional*, defaults to `None`):
            Process id of the server, when this machine started it: stop waiting as soon as it exits.
        check_score (`bool`, *optional*, defaults to `True`):
            Send the probe judge request once the server is up.
        judge_prompt_template (`str` or `None`, *optional*, defaults to `None`):
            The prompt the probe is asked with, the run's `judge_prompt_template` (a template file or a named
            template); this project's when `None`. Read once the server answers.

    Returns:
        `float` or `None`: The probe's score (`None` when `check_score` is `False`).

    Raises:
        [`JudgeServerCheckError`]: The server is not ready; its `exit_code` says why.
    """
    deadline = time.monotonic() + timeout
    judge = OpenAIJudge(
        base_url,
        model,
        timeout=min(request_timeout, timeout),
        max_retries=1,
        cache_size=0,
    )
    try:
        while True:
            if server_pid is not None and not _process_alive(server_pid):
                raise JudgeServerCheckError(
                    f"The judge server process {server_pid} exited before answering at {base_url}: read its log.",
                    EXIT_DIED,
                )
            try:
                models = judge.check_server()
                break
            except JudgeServerError as err:
                raise JudgeServerCheckError(str(err), EXIT_REFUSED) from err
            except ConnectionError as err:
                if time.monotonic() + poll_interval > deadline:
                    replicas = f" ({err})" if len(judge.base_urls) > 1 else ""  # names the replicas that are down
                    raise JudgeServerCheckError(
                        f"The judge server at {base_url} did not answer within {timeout:.0f} s{replicas}. Check "
                        "that it was started (scripts/serve_judge.sh), that the URL and port are right, and read its "
                        "log; a large model may need a longer --timeout.",
                        EXIT_TIMEOUT,
                    ) from None
                time.sleep(poll_interval)
        logger.info("The judge server at %s is up (models: %s).", base_url, models or "not listed")
        if not check_score:
            return None
        try:  # the prompt the run will ask with (a named template may be read from its source)
            judge.judge_prompt = load_judge_prompt(judge_prompt_template)
        except (OSError, RuntimeError, ValueError) as err:
            raise JudgeServerCheckError(
                f"judge_prompt_template={judge_prompt_template}: {err}", EXIT_BAD_TEMPLATE
            ) from err
        # The same check as recipes/grpo.py runs before training: the model is served and a probe gets a score.
        try:
            score = check_judge(judge, question=PROBE_QUESTION, response=PROBE_RESPONSE)
        except JudgeCheckError as err:
            exit_code = EXIT_NO_SCORE if err.reason == "no_score" else EXIT_REFUSED
            raise JudgeServerCheckError(str(err), exit_code) from err
        return score
    finally:
        judge.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base_url", required=True, help="OpenAI API root of the judge, e.g. http://127.0.0.1:8001/v1"
    )
    parser.add_argument("--model", default="judge", help="Served model name (default: judge).")
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds to wait in all (default: 900).")
    parser.add_argument("--poll_interval", type=float, default=2.0, help="Seconds between polls (default: 2).")
    parser.add_argument("--server_pid", type=int, help="Stop waiting when this process (the server) exits.")
    parser.add_argument("--no_score_check", action="store_true", help="Only wait for the server, send no probe.")
    parser.add_argument(
        "--judge_prompt_template",
        default=None,
        help="The prompt of the probe, as the run's judge_prompt_template: a template file (e.g. the judge folder's "
        "judge_prompt.yaml) or a named template (sophiavl-r1); this project's prompt when unset.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        score = wait_for_judge_server(
            args.base_url,
            args.model,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
            server_pid=args.server_pid,
            check_score=not args.no_score_check,
            judge_prompt_template=args.judge_prompt_template,
        )
    except JudgeServerCheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(
        f"The judge server at {args.base_url} is ready"
        + (f" (probe score {score:.2f})." if score is not None else ".")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
