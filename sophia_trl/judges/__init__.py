"""Thinking judges: score the reasoning of a response to a (multimodal) question, as SophiaVL-R1's thinking reward.

One job per module:

- `template.py`: the judge prompt ([`JudgePrompt`]: ours by default, a user's template file, or the released judge's
  `sophiavl-r1` read from the release, [`load_judge_prompt`]).
- `release_prompt.py`: `python -m sophia_trl.judges.release_prompt` writes the released judge prompt as a template
  file.
- `messages.py`: [`judge_inputs`] (what the judge reads from an item, on every path) and the judge conversation's
  renderings for local models, SFT rows and OpenAI-compatible servers.
- `scores.py`: the score format and parsers (ours, and the released extractor chain), and the expected-score readout
  over the score tokens.
- `base.py`: [`ThinkingJudge`], the `score(questions, responses, images)` interface with its cache; [`image_hash`].
- `local.py`: the in-process backends [`TransformersJudge`], [`ScalarJudge`] and [`VLLMJudge`].
- `prefix.py`: one prefill per group for the local judges (`share_prefix`): a group's shared prompt prefix computed
  once and its key/value cache reused for each response.
- `transport.py`: [`OpenAIChatClient`], the HTTP client of an OpenAI-compatible server (timeouts, retries,
  concurrency, replicas), and [`JudgeServerError`].
- `server.py`: [`OpenAIJudge`], the judge behind such a server.
- `loading.py`: [`load_thinking_judge`], the backend a run's `judge_*` script arguments name.
- `carried_prompt.py`: the prompt a judge folder carries (`judge_prompt.yaml`, written by stage 1) and the choice of a
  judge's prompt (`resolve_judge_prompt`). Import it from `sophia_trl.judges.carried_prompt`.
- `metrics.py`: [`evaluate_judge`] and the pairwise ranking accuracy within a question.
- `loopback.py`: [`~loopback.LoopbackJudgeServer`], an OpenAI-compatible judge server on 127.0.0.1 that answers in a
  controlled way, for tests, benchmarks and checking a client. Import it from `sophia_trl.judges.loopback`.
- `scalar_model.py`: the scalar-head model `Qwen2_5_VLForScalarReward` and `load_scalar_reward_model`. Import them from
  `sophia_trl.judges.scalar_model`: it loads transformers' Qwen2.5-VL model code, which the other judges do not need.
"""

from .base import ThinkingJudge, image_hash
from .loading import load_thinking_judge
from .local import ScalarJudge, TransformersJudge, VLLMJudge
from .messages import (
    build_judge_inputs,
    build_judge_messages,
    build_openai_messages,
    decoded_policy_prompt,
    format_judge_sft_example,
    image_of,
    image_to_data_url,
    judge_inputs,
    question_of,
    response_of,
)
from .metrics import evaluate_judge, pairwise_accuracy, question_group_id
from .scores import SCORE_PARSERS, expected_score, format_score, parse_score, parse_score_sophiavl_r1, score_token_ids
from .server import OpenAIJudge
from .template import (
    DEFAULT_JUDGE_PROMPT,
    JUDGE_SYSTEM_PROMPT,
    JUDGE_USER_TEMPLATE,
    JudgePrompt,
    load_judge_prompt,
    release_judge_prompt,
)
from .transport import JudgeServerError, OpenAIChatClient

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "JudgePrompt",
    "JudgeServerError",
    "SCORE_PARSERS",
    "OpenAIChatClient",
    "OpenAIJudge",
    "ScalarJudge",
    "ThinkingJudge",
    "TransformersJudge",
    "VLLMJudge",
    "build_judge_inputs",
    "build_judge_messages",
    "build_openai_messages",
    "decoded_policy_prompt",
    "expected_score",
    "evaluate_judge",
    "format_judge_sft_example",
    "format_score",
    "image_hash",
    "image_of",
    "image_to_data_url",
    "judge_inputs",
    "load_judge_prompt",
    "load_thinking_judge",
    "pairwise_accuracy",
    "parse_score",
    "parse_score_sophiavl_r1",
    "question_group_id",
    "question_of",
    "release_judge_prompt",
    "response_of",
    "score_token_ids",
]
