"""The HTTP transport to an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, hosted APIs).

[`OpenAIChatClient`] sends chat conversations and returns the replies' text, with a timeout per attempt, bounded
retries with backoff, bounded concurrency and a clear [`JudgeServerError`] for a wrong key, URL or model name. It knows
nothing of the judge prompt: [`~sophia_trl.judges.OpenAIJudge`] scores reasoning with it, and the evaluation's
`ChatJudge` reads answers with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import weakref
from typing import Any

logger = logging.getLogger(__name__)


class _EventLoopThread:
    """An asyncio loop running in its own daemon thread, so synchronous callers in any thread (with or without a
    running loop of their own) can run coroutines on it."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any) -> Any:
        if threading.current_thread() is self.thread:
            raise RuntimeError("A judge cannot be called from inside its own event loop thread.")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class JudgeServerError(RuntimeError):
    """The judge server rejects the configuration (authentication, permissions, unknown model or URL)."""


def _close_session(loop_thread: _EventLoopThread, session: Any) -> None:
    if session is not None and not loop_thread.loop.is_closed() and loop_thread.thread.is_alive():
        try:
            asyncio.run_coroutine_threadsafe(session.close(), loop_thread.loop).result(timeout=10)
        except Exception:  # closing is best effort: the process may be shutting down
            logger.debug("Closing the judge HTTP session failed.", exc_info=True)
    loop_thread.stop()


class OpenAIChatClient:
    """A client of an OpenAI-compatible chat-completions server: sends conversations, returns the replies' text.

    Requests run concurrently, at most `max_concurrency` at a time over as many keep-alive connections (an `aiohttp`
    session), on an event loop owned by the client (in its own thread, so `complete` works from any thread, including
    one that runs an event loop). Each attempt is bounded by `timeout`; timeouts, connection errors, HTTP 408, 409, 429 and 5xx are retried up
    to `max_retries` times with exponential backoff and jitter; a request that still fails, or whose reply holds no
    text, gives `None`. Authentication, permission and not-found errors mean the configuration is wrong and raise
    [`JudgeServerError`] at once.

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
            Sampling temperature; 0 is greedy.
        backoff (`float`, *optional*, defaults to `0.5`):
            Wait before the first retry in seconds; doubles with each retry (plus up to 10 % jitter).
        max_backoff (`float`, *optional*, defaults to `8.0`):
            Upper bound of one wait.
        request_kwargs (`dict` or `None`, *optional*, defaults to `None`):
            Extra fields of the request body (e.g. `{"top_k": 1}` for vLLM).

    Attributes:
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
        request_kwargs: dict[str, Any] | None = None,
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}.")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}.")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_kwargs = dict(request_kwargs or {})
        self.num_attempts = 0
        self.num_retries = 0
        # Local servers ignore the key but the client requires one.
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._loop_thread = _EventLoopThread(name=f"{type(self).__name__}-loop")
        self._session: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._proxy: dict[str, Any] = {}  # `proxy` and `proxy_auth` of every request, from the environment
        self._finalizer = weakref.finalize(self, _close_session, self._loop_thread, None)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    def _ensure_client(self) -> Any:
        """Creates the HTTP session and the request slots on the client's loop (they belong to the loop that uses them).

        Returns the session.
        """
        if self._session is None:
            import aiohttp
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            # aiohttp rather than httpx or the openai SDK: at 32-64 requests in flight its CPU per request is about a
            # quarter of httpx's (benchmarks/judge_throughput.py), and the SDK's request validation cost ~10 ms of CPU
            # per request. HTTP(S)_PROXY and NO_PROXY apply, as they do for httpx and the SDK, read once here: with
            # `trust_env=True` aiohttp reads them again in a worker thread for every request.
            try:
                proxy, proxy_auth = get_env_proxy_for_url(URL(self._url("chat/completions")))
                self._proxy = {"proxy": proxy, "proxy_auth": proxy_auth}
            except LookupError:  # no proxy for this URL
                self._proxy = {}
            self._session = aiohttp.ClientSession(
                # Headers set once for the session: merging per-request headers costs CPU on every request.
                headers={"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
            )
            self._slots = asyncio.Semaphore(self.max_concurrency)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _close_session, self._loop_thread, self._session)
        return self._session

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path

    def close(self) -> None:
        """Closes the HTTP clients and stops the client's event loop; the client cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def check_server(self, timeout: float | None = None) -> list[str]:
        """Asks the server for its models, to fail early with a clear message when it is down or misconfigured.

        Args:
            timeout (`float` or `None`, *optional*, defaults to `None`):
                Seconds to wait for the answer; the client's `timeout` when `None`.

        Returns:
            `list[str]`: The served model ids (empty when the server answers but cannot list them; some servers,
            e.g. `transformers serve` without a Hub cache, answer HTTP 500 there). A warning is logged when `model`
            is not among them.

        Raises:
            `ConnectionError`: The server did not answer within the timeout (or refused the connection).
            [`JudgeServerError`]: The server refused the request (wrong API key).
        """
        import aiohttp

        async def list_models() -> tuple[int, bytes]:
            session = self._ensure_client()
            limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
            async with session.get(self._url("models"), timeout=limit, **self._proxy) as response:
                return response.status, await response.read()

        try:
            status, body = self._loop_thread.run(list_models())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            raise ConnectionError(
                f"The judge server at {self.base_url} did not answer ({type(err).__name__}). Start it (see "
                "scripts/serve_judge.sh) or fix the base URL."
            ) from err
        if status in (401, 403):
            raise JudgeServerError(
                f"The judge server at {self.base_url} refused the request (HTTP {status}): check the API "
                "key (api_key or OPENAI_API_KEY)."
            )
        try:
            model_ids = [m["id"] for m in json.loads(body)["data"]] if status < 400 else None
        except (ValueError, KeyError, TypeError):
            model_ids = None
        if model_ids is None:
            logger.warning(
                "The judge server at %s answers but could not list its models (HTTP %d).",
                self.base_url,
                status,
            )
            return []
        if self.model not in model_ids:
            logger.warning(
                "The judge server at %s does not list the model %r (it lists %s).",
                self.base_url,
                self.model,
                model_ids,
            )
        return model_ids

    def complete(self, conversations: list[list[dict[str, Any]]]) -> list[str | None]:
        """Sends chat conversations to the server, with the client's timeout, retries and bounded concurrency.

        Neither cached nor parsed: [`~sophia_trl.judges.OpenAIJudge`] builds its own conversations and reads the score
        from these replies; other users of the same server (e.g. the evaluation's answer extractor) send theirs.

        Args:
            conversations (`list[list[dict]]`):
                One list of OpenAI chat messages per request.

        Returns:
            `list[str | None]`: Each reply's text, in order; `None` for a request that failed after its retries or was
            rejected, or whose reply holds no text.

        Raises:
            [`JudgeServerError`]: The server answered HTTP 401, 403 or 404 (wrong API key, URL or model name).
        """
        if not conversations:
            return []
        return self._loop_thread.run(self._complete_all(conversations))

    def complete_choices(
        self, conversations: list[list[dict[str, Any]]], request_fields: dict[str, Any] | None = None
    ) -> list[dict[str, Any] | None]:
        """As [`OpenAIChatClient.complete`], with extra fields in each request body and the whole first choice of each
        reply (e.g. its `logprobs`) instead of its text.

        Args:
            conversations (`list[list[dict]]`):
                One list of OpenAI chat messages per request.
            request_fields (`dict` or `None`, *optional*, defaults to `None`):
                Fields added to (or replacing those of) every request body, e.g. `{"logprobs": True}`.

        Returns:
            `list[dict | None]`: Each reply's `choices[0]`, in order; `None` where `complete` gives `None`.
        """
        if not conversations:
            return []
        return self._loop_thread.run(self._complete_all(conversations, request_fields or {}, whole_choice=True))

    async def _complete_all(
        self,
        conversations: list[list[dict[str, Any]]],
        fields: dict[str, Any] | None = None,
        whole_choice: bool = False,
    ) -> list[Any]:
        self._ensure_client()
        results = await asyncio.gather(
            *(self._complete_one(messages, fields, whole_choice) for messages in conversations),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def _encode(self, messages: list[dict[str, Any]], fields: dict[str, Any] | None) -> bytes:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            **self.request_kwargs,
            **(fields or {}),
        }
        return json.dumps(body).encode()

    async def _complete_one(
        self, messages: list[dict[str, Any]], fields: dict[str, Any] | None = None, whole_choice: bool = False
    ) -> Any:
        import aiohttp

        payload: bytes | None = None
        url = self._url("chat/completions")
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                self.num_retries += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (1.0 + 0.1 * random.random()))
            async with self._slots:
                if payload is None:
                    # Encoded once a slot is free: a batch's first requests go out at once instead of after all of
                    # the batch has been encoded, and the rest is encoded while the first wait for their replies.
                    payload = self._encode(messages, fields)
                self.num_attempts += 1
                try:
                    # The session's timeout bounds the whole attempt: connecting, sending and reading the reply.
                    async with self._session.post(url, data=payload, **self._proxy) as response:
                        status, body = response.status, await response.read()
                # Timeouts, refused or dropped connections, malformed replies: a failed attempt, never an exception
                # that would stop the caller.
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
                    error = type(err).__name__
                    logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                    continue
            if status in (401, 403, 404):
                raise JudgeServerError(
                    f"The judge server at {self.base_url} answered HTTP {status} for model {self.model!r}: check the "
                    "base URL, the served model name and the API key."
                )
            if status in (408, 409, 429) or status >= 500:  # busy or broken for now: worth another try
                error = f"HTTP {status}"
                logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                continue
            if status >= 400:
                logger.debug(
                    "The judge server rejected a request (HTTP %d: %s); its reply is None.",
                    status,
                    body[:300].decode("utf-8", errors="replace"),
                )
                return None
            try:
                choice = json.loads(body)["choices"][0]
                content = choice["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError) as err:
                content = err
            if not isinstance(content, str):  # HTTP 200 with no `choices`, a null message, an HTML error page
                logger.debug(
                    "The judge server sent an unreadable reply (%s); its reply is None.", type(content).__name__
                )
                return None
            return choice if whole_choice else content
        logger.debug(
            "A judge request failed %d times (last error: %s); its reply is None.", self.max_retries + 1, error
        )
        return None
