"""Checks a thinking judge before training starts, so that a run never trains for hours without its thinking reward.

[`check_judge`] is what `recipes/grpo.py` runs before it loads the policy and what `scripts/check_judge_server.py` (the
launch script's health check) runs once the server answers: a server must answer, serve the named model and score one
probe response with an image; a local judge must score the same probe.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from .transport import JudgeServerError

logger = logging.getLogger(__name__)

PROBE_QUESTION = "How many circles are in the image?"
PROBE_RESPONSE = "<think>I look at the image and count the circles one by one: there are 2.</think><answer>2</answer>"
# The longest wait for the server's model list: it answers at once when the server is up.
LIST_MODELS_TIMEOUT = 30.0

START_SERVER_HINT = (
    "Start the judge server first (e.g. `bash scripts/serve_judge.sh vllm <judge checkpoint>`, or let "
    "scripts/launch_trust_grpo.sh start it) and wait until scripts/check_judge_server.py says it is ready, or train "
    "plain GRPO on purpose with --judge_backend none."
)


class JudgeCheckError(RuntimeError):
    """
    The thinking judge failed its check before training.

    Args:
        message (`str`):
            What was wrong and what to do.
        reason (`str`):
            `"unreachable"` (no answer), `"refused"` (wrong API key, URL or model name: the server said so),
            `"unknown_model"` (the server lists other models) or `"no_score"` (the judge answered without a score).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def probe_image() -> Image.Image:
    """The probe's image: small (4 image tokens for Qwen2.5-VL), with two circles to count."""
    from PIL import ImageDraw

    image = Image.new("RGB", (56, 56), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 18, 24, 38), outline="black", width=2)
    draw.ellipse((30, 18, 50, 38), outline="black", width=2)
    return image


def check_judge_server(judge: Any, timeout: float = LIST_MODELS_TIMEOUT) -> list[str]:
    """
    Checks that a judge server answers and serves the judge's model.

    Args:
        judge ([`~sophia_trl.judges.OpenAIJudge`] or [`~sophia_trl.judges.OpenAIChatClient`]):
            The judge (its `base_url`, `model` and `check_server`).
        timeout (`float`, *optional*, defaults to `30.0`):
            Seconds to wait for the model list.

    Returns:
        `list[str]`: The served models (empty when the server cannot list them, as `transformers serve` without a Hub
        cache: the probe request then tells whether the model is served).

    Raises:
        [`JudgeCheckError`]: The server did not answer (`"unreachable"`), refused the request (`"refused"`) or lists
        other models (`"unknown_model"`).
    """
    try:
        models = judge.check_server(timeout=timeout)
    except ConnectionError as err:
        if len(getattr(judge, "base_urls", [judge.base_url])) > 1:  # replicas: the error names the ones down
            down = f"{err} (waited {timeout:.0f} s)."
        else:
            down = f"The judge server at {judge.base_url} did not answer within {timeout:.0f} s: {err.__cause__!r}."
        raise JudgeCheckError(
            f"{down} Check the URL and port (judge_base_url). {START_SERVER_HINT}", "unreachable"
        ) from err
    except JudgeServerError as err:
        raise JudgeCheckError(str(err), "refused") from err
    if models and judge.model not in models:
        raise JudgeCheckError(
            f"The judge server at {judge.base_url} serves {models}, not {judge.model!r}: set judge_model_name_or_path "
            "to the served model name (`vllm serve --served-model-name`), or point judge_base_url at the judge's server.",
            "unknown_model",
        )
    return models


def check_judge(judge: Any, question: str = PROBE_QUESTION, response: str = PROBE_RESPONSE) -> float | None:
    """
    Checks that a thinking judge scores a response before training starts.

    A judge with a `base_url` (a server, [`~sophia_trl.judges.OpenAIJudge`]) must answer within
    `LIST_MODELS_TIMEOUT` seconds, list the judge's model (when it lists models at all), and score one probe response
    with an image, within the judge's own timeout and retries. A local judge (the checkpoint is loaded already) must
    run on the same probe; an answer without a score is a warning only (an undertrained judge may miss the format
    once; the failure budget of [`~sophia_trl.TrustGRPOConfig`] stops a run whose judge keeps missing it). The probe is neither cached nor counted as a training call.

    Args:
        judge (`Any`):
            A judge of `sophia_trl.judges`, or any object with `score(questions, responses, images)`.
        question (`str`, *optional*):
            The probe's question (about `probe_image()`).
        response (`str`, *optional*):
            The probe's response to judge.

    Returns:
        `float` or `None`: The probe's score; `None` when a local judge ran but its answer held no score (a warning
        says so; a server judge raises instead).

    Raises:
        [`JudgeCheckError`]: The judge failed the check; the message names the URL or checkpoint, what was wrong and
        what to do.
    """
    from .health import judge_label

    is_server = isinstance(getattr(judge, "base_url", None), str)
    if is_server:
        check_judge_server(judge, timeout=min(LIST_MODELS_TIMEOUT, getattr(judge, "timeout", LIST_MODELS_TIMEOUT)))
    score_uncached = getattr(judge, "_score_uncached", None)  # ThinkingJudge: keep the probe out of the cache
    score = score_uncached or judge.score
    try:
        [value] = score([question], [response], [probe_image()])
    except JudgeServerError as err:
        raise JudgeCheckError(str(err), "refused") from err
    if value is None and is_server:
        raise JudgeCheckError(
            f"The judge server at {judge.base_url} answers, but its reply to a judge request holds no score (or the "
            f"request failed or timed out). Check that {judge.model!r} is a thinking judge (it must answer "
            "<answer>score</answer>), that the server accepts images (vLLM: --limit-mm-per-prompt) and read its log. "
            "To train plain GRPO on purpose, use --judge_backend none.",
            "no_score",
        )
    if value is None:
        # A local checkpoint that loads and runs is set up right; an undertrained judge may miss the score format on
        # one probe. If it keeps missing it, the failure budget (judge_max_failed_fraction) stops the run.
        logger.warning(
            "The thinking judge (%s) loaded and ran, but its answer to a probe response holds no "
            "<answer>score</answer>. Check that judge_model_name_or_path is a trained thinking judge "
            "(recipes/thinking_reward.py), not a base model; if most of its answers hold no score, training stops "
            "after judge_failure_window steps.",
            judge_label(judge),
        )
        return None
    logger.info("The thinking judge (%s) scored the probe response %.2f.", judge_label(judge), value)
    return float(value)
