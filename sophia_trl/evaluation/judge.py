"""An optional LLM judge for the benchmarks whose official scoring uses one (MathVista, MathVerse).

MathVista's official pipeline asks GPT-4 to extract the answer from a free-form response before comparing it;
MathVerse's also asks it whether the extracted answer matches the reference. Here the judge is any OpenAI-compatible
chat server (OpenAI, `vllm serve`, `transformers serve`), called through the thinking judges' `OpenAIChatClient`
transport: a timeout, bounded retries and bounded concurrency. It is only asked when the rule-based reading is not
already clean (a bare option letter or number), as the official code's quick checks do. A call that still fails after
its retries leaves the rule-based result in place and is counted, so a flaky server never stops an evaluation or
silently changes a number (a refused key or unknown model does stop it, with `JudgeServerError`).
"""

from __future__ import annotations

import re
from typing import Any

from sophia_trl.evaluation.report import JUDGE_MODE, RULE_MODE
from sophia_trl.judges import OpenAIChatClient

EXTRACTION_PROMPT = """\
Below is a question and a model's response to it. Copy out the model's final answer and nothing else.
- For a multiple-choice question, write the option letter the model chose (for example: B).
- For a numeric answer, write the number only, without units (for example: 1.5).
- Otherwise write the answer as short as the model gave it.
- If the response gives no final answer, write: NONE

Question:
{question}

Model response:
{response}

Final answer:"""

EQUIVALENCE_PROMPT = """\
Decide whether a student's answer to a math question means the same as the reference answer. Equivalent forms count
as the same (0.5 and 1/2; 60 and 60°; x=2 and 2 when the question asks for x). For a multiple-choice question, the
answers are the same only if they pick the same option. Reply with a single digit: 1 if they are the same, 0 if not.

Question:
{question}

Reference answer: {reference}
Student's answer: {prediction}

Same (1 or 0):"""


class ChatJudge:
    """A client for an OpenAI-compatible chat-completions server, used to read and compare answers.

    Requests go through [`~sophia_trl.judges.OpenAIChatClient`] (the thinking judges' transport):
    the same timeout per attempt, bounded retries with backoff, bounded concurrency, and a clear error for a wrong API
    key, URL or model name.

    Args:
        base_url (`str`):
            The server's API root, e.g. `"https://api.openai.com/v1"` or `"http://localhost:8000/v1"`.
        model (`str`):
            The model name the server expects.
        api_key (`str`, *optional*):
            Defaults to the `OPENAI_API_KEY` environment variable, or `"EMPTY"` for local servers that need none.
            Never logged.
        timeout (`float`, *optional*, defaults to `60.0`):
            Seconds allowed per request attempt.
        max_retries (`int`, *optional*, defaults to `2`):
            Retries per request (with exponential backoff) before the call counts as failed.
        max_concurrency (`int`, *optional*, defaults to `8`):
            Requests in flight at once.
        max_tokens (`int`, *optional*, defaults to `64`):
            Reply budget; extracted answers and 0/1 judgements are short.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_concurrency: int = 8,
        max_tokens: int = 64,
    ):
        self._client = OpenAIChatClient(
            base_url,
            model,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            max_new_tokens=max_tokens,
        )
        self.num_calls = 0
        self.num_failures = 0

    def settings(self) -> dict[str, Any]:
        """What the output JSON records about the judge (never the key)."""
        client = self._client
        return {
            "base_url": client.base_url,
            "model": client.model,
            "timeout": client.timeout,
            "max_retries": client.max_retries,
        }

    def close(self) -> None:
        """Closes the HTTP connections; the judge cannot be used afterwards."""
        self._client.close()

    def complete(self, prompts: list[str]) -> list[str | None]:
        """Sends each prompt as one user message (greedy); returns the replies in order, `None` for failed calls."""
        replies = self._client.complete([[{"role": "user", "content": prompt}] for prompt in prompts])
        self.num_calls += len(prompts)
        self.num_failures += sum(reply is None for reply in replies)
        return replies

    def extract_answers(self, questions: list[str], responses: list[str]) -> list[str | None]:
        """The final answer the judge reads in each response: `""` when the judge found none, `None` when the call
        failed (the caller then keeps its rule-based reading)."""
        replies = self.complete(
            [EXTRACTION_PROMPT.format(question=q, response=r) for q, r in zip(questions, responses)]
        )
        return [parse_extraction(reply) for reply in replies]

    def judge_equivalence(
        self, questions: list[str], references: list[str], predictions: list[str]
    ) -> list[bool | None]:
        """Whether each prediction means the same as its reference; `None` when the call failed or was unreadable."""
        replies = self.complete(
            [
                EQUIVALENCE_PROMPT.format(question=q, reference=ref, prediction=pred)
                for q, ref, pred in zip(questions, references, predictions)
            ]
        )
        return [parse_judgement(reply) for reply in replies]


def parse_extraction(reply: str | None) -> str | None:
    """The judge's extracted answer, stripped of a leading label and quotes: `None` for a failed call (no reply),
    `""` when the judge says the response has no answer."""
    if reply is None:
        return None
    text = re.sub(r"^\s*(?:final answer|answer|extracted answer)\s*:\s*", "", reply.strip(), flags=re.IGNORECASE)
    text = text.strip().strip("\"'`").strip()
    return "" if text.upper().rstrip(".") == "NONE" else text


def parse_judgement(reply: str | None) -> bool | None:
    """Reads the judge's 0/1 verdict (the first standalone 0 or 1); `None` when there is none."""
    if reply is None:
        return None
    match = re.search(r"(?<![\d.])([01])(?![\d.])", reply)
    if match is None:
        return None
    return match.group(1) == "1"


class JudgedItems:
    """Per-item record of the judge's part in scoring a benchmark: which mode decided each item (`"rule"` or
    `"judge"`), whether the judge was asked, and whether its call failed (the rule-based result then stands).

    Args:
        judge (`ChatJudge` or `None`):
            The judge; with `None` nothing is asked and every item stays rule-based.
        num_items (`int`):
            Number of items being scored.
    """

    def __init__(self, judge: ChatJudge | None, num_items: int):
        self.judge = judge
        self.modes = [RULE_MODE] * num_items
        self.asked = [False] * num_items
        self.failed = [False] * num_items

    def extract(self, indices: list[int], questions: list[str], responses: list[str], texts: list[str]) -> None:
        """Replaces `texts[i]` with the judge's reading of `responses` for the items `indices` (in place)."""
        if self.judge is not None and indices:
            self._settle(indices, self.judge.extract_answers(questions, responses), texts)

    def check(
        self,
        indices: list[int],
        questions: list[str],
        references: list[str],
        predictions: list[str],
        correct: list[bool],
    ) -> None:
        """Replaces `correct[i]` with the judge's equivalence verdict for the items `indices` (in place)."""
        if self.judge is not None and indices:
            self._settle(indices, self.judge.judge_equivalence(questions, references, predictions), correct)

    def _settle(self, indices: list[int], values: list[Any], target: list[Any]) -> None:
        for i, value in zip(indices, values):
            self.asked[i] = True
            if value is None:
                self.failed[i] = True
            else:
                target[i], self.modes[i] = value, JUDGE_MODE

    def record_fields(self, i: int) -> dict[str, Any]:
        """What item `i`'s record says about the judge."""
        return {"mode": self.modes[i], "judge_asked": self.asked[i], "judge_failed": self.failed[i]}
