"""A thinking judge behind an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted
APIs): the judge prompt and score parser on top of [`~sophia_trl.judges.transport.OpenAIChatClient`]."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .base import RowImages, ThinkingJudge, image_list
from .messages import build_openai_messages, image_to_data_url
from .scores import JUDGE_READOUTS, SCORE_PREFIX, expected_score
from .template import DEFAULT_JUDGE_PROMPT, JudgePrompt
from .transport import OpenAIChatClient

# Request fields of the expected-score readout: the server continues the final assistant message ("<answer>...")
# instead of opening a new one, and returns the top log-probabilities of each generated token. vLLM's
# OpenAI-compatible server accepts them; `transformers serve` (5.23) rejects `logprobs`/`top_logprobs` and always
# adds a generation prompt, so it serves the greedy readout only.
_EXPECTED_READOUT_FIELDS = {
    "continue_final_message": True,
    "add_generation_prompt": False,
    "logprobs": True,
    "top_logprobs": 20,
    "temperature": 0.0,
}


def _top_logprobs(choice: dict[str, Any] | None, position: int) -> tuple[str | None, dict[str, float]] | None:
    """(generated token, {token: log-prob} of its top alternatives) at `position` of a reply, None if absent."""
    try:
        entry = choice["logprobs"]["content"][position]
        top = {item["token"].strip(): float(item["logprob"]) for item in entry["top_logprobs"]}
        return entry["token"].strip(), top
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class OpenAIJudge(ThinkingJudge):
    """A judge behind an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted APIs).

    Each row becomes one chat request with the judge prompt ([`~sophia_trl.judges.build_openai_messages`], each of the
    row's images as a base64 data URL, in order; a server serves as many images per request as it was started with,
    e.g. `vllm serve --limit-mm-per-prompt`) and the score is read from the reply (the template's `score_parser`,
    [`~sophia_trl.judges.parse_score`] by default). The requests go through an [`~sophia_trl.judges.OpenAIChatClient`]
    (`self.client`): at most `max_concurrency` at a time, on an event loop in its own thread (so `score` works from any
    thread, including one that runs an event loop), each attempt bounded by `timeout`; timeouts, connection errors,
    HTTP 429 and 5xx are retried up to `max_retries` times with exponential backoff and jitter; a request that still
    fails, or whose reply holds no score, gives `None`.
    Authentication, permission and not-found errors mean the configuration is wrong and raise
    [`~sophia_trl.judges.JudgeServerError`] at once.

    Args:
        base_url (`str` or `list[str]`):
            The server's OpenAI API root, e.g. `"http://localhost:8001/v1"`; several replicas of the judge as a list or
            separated by commas (see [`~sophia_trl.judges.OpenAIChatClient`]).
        model (`str`):
            The served model name (`vllm serve --served-model-name`, or the path given to the server).
        api_key (`str` or `None`, *optional*, defaults to `None`):
            API key; read from the `OPENAI_API_KEY` environment variable when `None` (local servers accept any value).
            It is sent in the request header only, never logged.
        timeout (`float`, *optional*, defaults to `60.0`):
            Seconds allowed for one attempt, from sending the request to the end of the reply.
        max_retries (`int`, *optional*, defaults to `3`):
            Retries after the first attempt of a request; the total number of attempts is `max_retries + 1`.
        max_concurrency (`int`, *optional*, defaults to `32`):
            Requests in flight at once.
        max_new_tokens (`int`, *optional*, defaults to `16`):
            `max_tokens` of each request.
        temperature (`float`, *optional*, defaults to `0.0`):
            Sampling temperature; 0 is greedy, as the judge should be.
        backoff (`float`, *optional*, defaults to `0.5`):
            Wait before the first retry in seconds; doubles with each retry (plus up to 10 % jitter).
        max_backoff (`float`, *optional*, defaults to `8.0`):
            Upper bound of one wait.
        image_format (`str`, *optional*, defaults to `"PNG"`):
            Encoding of images in the requests.
        request_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra fields of the request body (e.g. `{"top_k": 1}` for vLLM).
        cache_size (`int`, *optional*, defaults to `4096`):
            See [`~sophia_trl.judges.ThinkingJudge`].
        judge_prompt ([`~sophia_trl.judges.JudgePrompt`] or `None`, *optional*, defaults to `None`):
            The prompt the served judge was trained with (e.g. from a template file,
            [`~sophia_trl.judges.load_judge_prompt`]); this project's prompt when `None`.
        readout (`str`, *optional*, defaults to `"greedy"`):
            `"greedy"` parses the reply's text. `"expected"` sends the conversation with a final assistant message
            `<answer>` to continue and asks for the top log-probabilities of 3 tokens ("0", ".", digit); the score is
            [`~sophia_trl.judges.expected_score`] of them. When the greedy path does not write "0." (e.g. it writes
            "1"), a second request continues `<answer>0.` for the digit probabilities. Needs a server with
            `continue_final_message` and `top_logprobs` (vLLM; not `transformers serve` 5.23).

    Attributes:
        client ([`~sophia_trl.judges.OpenAIChatClient`]): The transport; its settings read through the judge too
            (`base_url`, `model`, `timeout`, `max_retries`, `max_concurrency`, `max_new_tokens`, `temperature`).
        num_attempts (`int`): HTTP requests sent, retries included.
        num_retries (`int`): Attempts that were retries.
    """

    def __init__(
        self,
        base_url: str | list[str],
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 32,
        max_new_tokens: int = 16,
        temperature: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        image_format: str = "PNG",
        request_kwargs: dict[str, Any] | None = None,
        cache_size: int = 4096,
        judge_prompt: JudgePrompt | None = None,
        readout: str = "greedy",
    ):
        if readout not in JUDGE_READOUTS:
            raise ValueError(f"readout={readout!r} is not one of {JUDGE_READOUTS}.")
        super().__init__(cache_size=cache_size)
        self.readout = readout
        self.client = OpenAIChatClient(
            base_url,
            model,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            backoff=backoff,
            max_backoff=max_backoff,
            request_kwargs=request_kwargs,
        )
        self.image_format = image_format
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        self._executor: ThreadPoolExecutor | None = None  # created by the first `score_async`

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    # The transport's settings and counters, read through the judge (the model card names `model`).
    base_url = property(lambda self: self.client.base_url)
    base_urls = property(lambda self: self.client.base_urls)
    model = property(lambda self: self.client.model)
    timeout = property(lambda self: self.client.timeout)
    max_retries = property(lambda self: self.client.max_retries)
    max_concurrency = property(lambda self: self.client.max_concurrency)
    max_new_tokens = property(lambda self: self.client.max_new_tokens)
    temperature = property(lambda self: self.client.temperature)
    num_attempts = property(lambda self: self.client.num_attempts)
    num_retries = property(lambda self: self.client.num_retries)

    def close(self) -> None:
        """Closes the HTTP clients and stops the transport's event loop; the judge cannot be used afterwards."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.client.close()

    def score_async(self, questions: list[str], responses: list[str], images: list[RowImages] | None = None) -> Future:
        """Starts [`~sophia_trl.judges.ThinkingJudge.score`] in the background and returns at once.

        The trainer calls it as soon as generation returns, so that the requests are in flight while the policy's
        log-prob passes and the rule-based rewards run; `future.result()` gives what `score` would have returned (and
        raises what it would have raised). The image encoding happens in the background too.

        Returns:
            `concurrent.futures.Future`: resolves to `list[float | None]`, one score per row.
        """
        if self._executor is None:
            # One worker: calls run in order; each call sends its own requests concurrently on the transport's loop.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{type(self).__name__}-score")
        return self._executor.submit(self.score, questions, responses, images)

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def check_server(self, timeout: float | None = None) -> list[str]:
        """Asks the server for its models, to fail early with a clear message when it is down or misconfigured.

        See [`~sophia_trl.judges.OpenAIChatClient.check_server`].
        """
        return self.client.check_server(timeout=timeout)

    def complete(self, conversations: list[list[dict[str, Any]]]) -> list[str | None]:
        """Sends chat conversations to the server, neither cached nor parsed.

        See [`~sophia_trl.judges.OpenAIChatClient.complete`].
        """
        return self.client.complete(conversations)

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        # One encoding per distinct image object: a group's completions share their prompt's images.
        urls: dict[int, str] = {}
        for img in (img for row_images in images for img in image_list(row_images)):
            if id(img) not in urls:
                urls[id(img)] = image_to_data_url(img, self.image_format)
        requests = [
            build_openai_messages(
                q,
                r,
                row_images,
                image_url=[urls[id(img)] for img in image_list(row_images)],
                judge_prompt=self.judge_prompt,
            )
            for q, r, row_images in zip(questions, responses, images)
        ]
        # A group's requests (one question and image) go out together and, with several replicas, to one replica, so
        # that the server's prefix cache (vLLM's --enable-prefix-caching) computes their shared prefix once.
        keys = [(q, tuple(id(img) for img in image_list(row_images))) for q, row_images in zip(questions, images)]
        if self.readout == "expected":
            return self._expected_scores(requests, keys)
        return [self.judge_prompt.parse_score(reply) for reply in self.client.complete(requests, keys)]

    def _expected_scores(self, requests: list[list[dict[str, Any]]], keys: list[Any]) -> list[float | None]:
        """The expected-score readout from the servers' top log-probabilities (see `readout`)."""

        def prefilled(messages: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
            return [*messages, {"role": "assistant", "content": prefix}]

        choices = self.client.complete_choices(
            [prefilled(m, SCORE_PREFIX) for m in requests], {**_EXPECTED_READOUT_FIELDS, "max_tokens": 3}, keys
        )
        firsts: list[dict[str, float] | None] = []
        digits: list[dict[str, float] | None] = []
        for choice in choices:
            first, third = _top_logprobs(choice, 0), _top_logprobs(choice, 2)
            second = _top_logprobs(choice, 1)
            firsts.append(first[1] if first else None)
            on_zero_path = first and second and third and first[0] == "0" and second[0] == "."
            digits.append(third[1] if on_zero_path else None)
        # Rows whose greedy path left "0.": the digit distribution comes from a request that continues "<answer>0.".
        missing = [i for i, (f, d) in enumerate(zip(firsts, digits)) if f is not None and d is None and "0" in f]
        if missing:
            more = self.client.complete_choices(
                [prefilled(requests[i], SCORE_PREFIX + "0.") for i in missing],
                {**_EXPECTED_READOUT_FIELDS, "max_tokens": 1},
                [keys[i] for i in missing],
            )
            for i, choice in zip(missing, more):
                top = _top_logprobs(choice, 0)
                digits[i] = top[1] if top else None
        return [expected_score(f, d) if f is not None else None for f, d in zip(firsts, digits)]
