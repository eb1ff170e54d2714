"""A thinking judge behind an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted
APIs): the judge prompt and score parser on top of [`~sophia_trl.judges.transport.OpenAIChatClient`]."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import ThinkingJudge
from .prompt import build_openai_messages, image_to_data_url, parse_score
from .transport import OpenAIChatClient


class OpenAIJudge(ThinkingJudge):
    """A judge behind an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted APIs).

    Each row becomes one chat request with the judge prompt ([`~sophia_trl.judges.build_openai_messages`], the image as
    a base64 data URL) and the score is read from the reply ([`~sophia_trl.judges.parse_score`]). The requests go
    through an [`~sophia_trl.judges.OpenAIChatClient`] (`self.client`): at most `max_concurrency` at a time, on an
    event loop in its own thread (so `score` works from any thread, including one that runs an event loop), each
    attempt bounded by `timeout`; timeouts, connection errors, HTTP 429 and 5xx are retried up to `max_retries` times
    with exponential backoff and jitter; a request that still fails, or whose reply holds no score, gives `None`.
    Authentication, permission and not-found errors mean the configuration is wrong and raise
    [`~sophia_trl.judges.JudgeServerError`] at once.

    Args:
        base_url (`str`):
            The server's OpenAI API root, e.g. `"http://localhost:8001/v1"`.
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

    Attributes:
        client ([`~sophia_trl.judges.OpenAIChatClient`]): The transport; its settings read through the judge too
            (`base_url`, `model`, `timeout`, `max_retries`, `max_concurrency`, `max_new_tokens`, `temperature`).
        num_attempts (`int`): HTTP requests sent, retries included.
        num_retries (`int`): Attempts that were retries.
    """

    def __init__(
        self,
        base_url: str,
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
    ):
        super().__init__(cache_size=cache_size)
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

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    # The transport's settings and counters, read through the judge (the model card names `model`).
    base_url = property(lambda self: self.client.base_url)
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
        self.client.close()

    def __enter__(self) -> OpenAIJudge:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def check_server(self) -> list[str]:
        """Asks the server for its models, to fail early with a clear message when it is down or misconfigured.

        See [`~sophia_trl.judges.OpenAIChatClient.check_server`].
        """
        return self.client.check_server()

    def complete(self, conversations: list[list[dict[str, Any]]]) -> list[str | None]:
        """Sends chat conversations to the server, neither cached nor parsed.

        See [`~sophia_trl.judges.OpenAIChatClient.complete`].
        """
        return self.client.complete(conversations)

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[Image.Image | None]
    ) -> list[float | None]:
        # One encoding per distinct image object: a group's completions share their prompt's image.
        urls: dict[int, str] = {}
        for img in images:
            if img is not None and id(img) not in urls:
                urls[id(img)] = image_to_data_url(img, self.image_format)
        requests = [
            build_openai_messages(q, r, img, image_url=urls.get(id(img)))
            for q, r, img in zip(questions, responses, images)
        ]
        return [parse_score(reply) for reply in self.client.complete(requests)]
