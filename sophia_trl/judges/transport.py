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
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .request_body import RequestBodyEncoder

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


def split_base_urls(base_url: str | list[str]) -> list[str]:
    """The replica URLs of a `base_url` setting: one URL, several separated by commas, or a list (from YAML)."""
    items = [base_url] if isinstance(base_url, str) else list(base_url)
    urls = [url.strip() for item in items for url in str(item).split(",") if url.strip()]
    if not urls:
        raise ValueError(f"base_url={base_url!r} holds no URL; give one, e.g. http://localhost:8001/v1.")
    if len(set(urls)) < len(urls):
        raise ValueError(f"base_url={base_url!r} names a replica more than once; list each judge server once.")
    return urls


@dataclass
class _Replica:
    """One judge server of several: its requests in flight, its counts and until when it is set aside."""

    url: str
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    set_aside_until: float = 0.0
    chat_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.chat_url = self.url.rstrip("/") + "/chat/completions"


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

    With several servers (replicas of one judge), each request goes to the replica with the fewest requests in flight;
    requests given the same key (a GRPO group's, which share the judge prompt's image and question) go to the replica
    the first of them went to, so that its prefix cache serves the others.
    A replica that fails a request (refused or dropped connection, timeout, HTTP 5xx) is set aside for
    `replica_backoff` seconds, and the request is sent again at once to another replica (not counted as one of its
    `max_retries`), so no reply is lost while one replica answers; a replica set aside gets requests again when its
    back-off ends (or when every replica is set aside). Per-replica request and failure counts are logged after each
    batch ([`OpenAIChatClient.replica_counts`]).

    Args:
        base_url (`str` or `list[str]`):
            The server's OpenAI API root, e.g. `"http://localhost:8001/v1"`; several replicas as a list or separated by
            commas.
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
        replica_backoff (`float`, *optional*, defaults to `30.0`):
            Seconds a failing replica is set aside (several replicas only).

    Attributes:
        base_url (`str`): The replica URLs, separated by commas (one URL for one server).
        base_urls (`list[str]`): The replica URLs.
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
        request_kwargs: dict[str, Any] | None = None,
        replica_backoff: float = 30.0,
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}.")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}.")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}.")
        if replica_backoff < 0:
            raise ValueError(f"replica_backoff must be >= 0 seconds, got {replica_backoff}.")
        self.base_urls = split_base_urls(base_url)
        self.base_url = ",".join(self.base_urls)
        self._replicas = [_Replica(url) for url in self.base_urls]
        self.replica_backoff = replica_backoff
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
        self._body_encoder = RequestBodyEncoder()  # a batch's image data URLs are JSON-encoded once
        self._request_errors: tuple[type[BaseException], ...] = ()  # an attempt's failures (aiohttp's, when loaded)
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
                proxy, proxy_auth = get_env_proxy_for_url(URL(self._replicas[0].chat_url))
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
            self._request_errors = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _close_session, self._loop_thread, self._session)
        return self._session

    def close(self) -> None:
        """Closes the HTTP clients and stops the client's event loop; the client cannot be used afterwards."""
        self._finalizer()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def check_server(self, timeout: float | None = None) -> list[str]:
        """Asks the server (every replica) for its models, to fail early with a clear message when it is down or
        misconfigured.

        Args:
            timeout (`float` or `None`, *optional*, defaults to `None`):
                Seconds to wait for the answer; the client's `timeout` when `None`.

        Returns:
            `list[str]`: The served model ids (empty when the server answers but cannot list them; some servers,
            e.g. `transformers serve` without a Hub cache, answer HTTP 500 there). A warning is logged when `model`
            is not among them. With several replicas, those of the first.

        Raises:
            `ConnectionError`: The server, or some replicas (named in the message), did not answer within the timeout
            (or refused the connection).
            [`JudgeServerError`]: The server refused the request (wrong API key).
        """
        models: list[list[str]] = []
        down: list[tuple[str, BaseException]] = []
        for replica in self._replicas:
            try:
                models.append(self._check_one(replica.url, timeout))
            except ConnectionError as err:
                down.append((replica.url, err.__cause__ or err))
        if down and len(self._replicas) == 1:
            raise ConnectionError(
                f"The judge server at {self.base_url} did not answer ({type(down[0][1]).__name__}). Start it (see "
                "scripts/serve_judge.sh) or fix the base URL."
            ) from down[0][1]
        if down:
            names = ", ".join(f"{url} ({type(err).__name__})" for url, err in down)
            raise ConnectionError(
                f"{len(down)} of the {len(self._replicas)} judge replicas did not answer: {names}. Start them (see "
                "scripts/serve_judge.sh) or remove them from the base URLs."
            ) from down[0][1]
        return models[0]

    def _check_one(self, url: str, timeout: float | None) -> list[str]:
        """The model list of one replica (see `check_server`); `ConnectionError` from the connection's error."""
        import aiohttp

        async def list_models() -> tuple[int, bytes]:
            session = self._ensure_client()
            limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
            async with session.get(url.rstrip("/") + "/models", timeout=limit, **self._proxy) as response:
                return response.status, await response.read()

        try:
            status, body = self._loop_thread.run(list_models())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as err:
            raise ConnectionError(url) from err
        if status in (401, 403):
            raise JudgeServerError(
                f"The judge server at {url} refused the request (HTTP {status}): check the API "
                "key (api_key or OPENAI_API_KEY)."
            )
        try:
            model_ids = [m["id"] for m in json.loads(body)["data"]] if status < 400 else None
        except (ValueError, KeyError, TypeError):
            model_ids = None
        if model_ids is None:
            logger.warning("The judge server at %s answers but could not list its models (HTTP %d).", url, status)
            return []
        if self.model not in model_ids:
            logger.warning(
                "The judge server at %s does not list the model %r (it lists %s).", url, self.model, model_ids
            )
        return model_ids

    def complete(self, conversations: list[list[dict[str, Any]]], keys: list[Any] | None = None) -> list[str | None]:
        """Sends chat conversations to the server, with the client's timeout, retries and bounded concurrency.

        Neither cached nor parsed: [`~sophia_trl.judges.OpenAIJudge`] builds its own conversations and reads the score
        from these replies; other users of the same server (e.g. the evaluation's answer extractor) send theirs.

        Args:
            conversations (`list[list[dict]]`):
                One list of OpenAI chat messages per request.
            keys (`list` or `None`, *optional*, defaults to `None`):
                One hashable per request: with several replicas, requests with the same key go to one replica.

        Returns:
            `list[str | None]`: Each reply's text, in order; `None` for a request that failed after its retries or was
            rejected, or whose reply holds no text.

        Raises:
            [`JudgeServerError`]: The server answered HTTP 401, 403 or 404 (wrong API key, URL or model name).
        """
        if not conversations:
            return []
        return self._loop_thread.run(self._complete_all(conversations, keys=keys))

    def complete_choices(
        self,
        conversations: list[list[dict[str, Any]]],
        request_fields: dict[str, Any] | None = None,
        keys: list[Any] | None = None,
    ) -> list[dict[str, Any] | None]:
        """As [`OpenAIChatClient.complete`], with extra fields in each request body and the whole first choice of each
        reply (e.g. its `logprobs`) instead of its text.

        Args:
            conversations (`list[list[dict]]`):
                One list of OpenAI chat messages per request.
            request_fields (`dict` or `None`, *optional*, defaults to `None`):
                Fields added to (or replacing those of) every request body, e.g. `{"logprobs": True}`.
            keys (`list` or `None`, *optional*, defaults to `None`):
                As in [`OpenAIChatClient.complete`].

        Returns:
            `list[dict | None]`: Each reply's `choices[0]`, in order; `None` where `complete` gives `None`.
        """
        if not conversations:
            return []
        return self._loop_thread.run(
            self._complete_all(conversations, request_fields or {}, whole_choice=True, keys=keys)
        )

    async def _complete_all(
        self,
        conversations: list[list[dict[str, Any]]],
        fields: dict[str, Any] | None = None,
        whole_choice: bool = False,
        keys: list[Any] | None = None,
    ) -> list[Any]:
        self._ensure_client()
        keys = keys if keys is not None else [None] * len(conversations)
        affinity: dict[Any, _Replica] = {}  # the replica each key's first request went to, in this batch
        results: list[Any] = [None] * len(conversations)
        todo = iter(range(len(conversations)))  # shared by the workers: each takes the next request not yet sent
        workers: list[asyncio.Future] = []

        # One worker per slot, each sending its next request as soon as it has read a reply, rather than one task per
        # request: a released slot would wake another task only after the loop has read every reply that arrived
        # with it, so when replies come in waves (a server's batch) each wave's next requests would all wait for the
        # last reply of the wave to be read.
        async def work() -> None:
            for i in todo:
                try:
                    results[i] = await self._complete_one(
                        conversations[i], fields, whole_choice, keys[i], affinity, add_worker
                    )
                except Exception as err:  # raised after the whole batch, as asyncio.gather(return_exceptions=True)
                    results[i] = err

        def add_worker() -> None:
            workers.append(asyncio.ensure_future(work()))

        for _ in range(min(self.max_concurrency, len(conversations))):
            add_worker()
        num_awaited = 0
        try:
            while num_awaited < len(workers):  # a request waiting to retry starts another worker (`_complete_one`)
                started = len(workers)
                await asyncio.gather(*workers[num_awaited:])
                num_awaited = started
        finally:
            self._body_encoder.clear()  # the batch's encoded image URLs
        if len(self._replicas) > 1:
            logger.info("Judge replicas (requests, failures): %s", self.replica_counts())
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def replica_counts(self) -> dict[str, tuple[int, int]]:
        """`{url: (requests sent, requests failed)}` of each replica since the client was built."""
        return {r.url: (r.requests, r.failures) for r in self._replicas}

    def _pick_replica(self, tried: list[_Replica], preferred: _Replica | None = None) -> _Replica | None:
        """`preferred` (the replica of the request's key) if it is ready, else the replica with the fewest requests in
        flight among those neither tried by this request nor set aside; None when there is none."""
        now = time.monotonic()
        ready = [r for r in self._replicas if r not in tried and r.set_aside_until <= now]
        if preferred in ready:
            return preferred
        return min(ready, key=lambda r: (r.in_flight, r.requests), default=None)

    def _set_aside(self, replica: _Replica, error: str) -> None:
        if replica.set_aside_until <= time.monotonic():  # warn once per back-off, not once per failed request
            logger.warning(
                "Judge replica %s failed (%s): set aside for %.0f s, its requests go to the other replicas.",
                replica.url,
                error,
                self.replica_backoff,
            )
        replica.set_aside_until = time.monotonic() + self.replica_backoff

    def _encode(self, messages: list[dict[str, Any]], fields: dict[str, Any] | None) -> bytes:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            **self.request_kwargs,
            **(fields or {}),
        }
        return self._body_encoder.encode(body)

    async def _complete_one(
        self,
        messages: list[dict[str, Any]],
        fields: dict[str, Any] | None = None,
        whole_choice: bool = False,
        key: Any = None,
        affinity: dict[Any, _Replica] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Any:
        """One request with its retries; `on_wait` is called before each backoff wait (outside the request's slot)."""
        payload: bytes | None = None
        error = ""
        attempt = 0  # failed attempts that count against max_retries
        tried: list[_Replica] = []  # replicas that failed this attempt (several replicas only)
        first = True
        while attempt <= self.max_retries:
            if not first and not tried:
                self.num_retries += 1
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                if on_wait is not None:
                    on_wait()
                await asyncio.sleep(delay * (1.0 + 0.1 * random.random()))
            elif not first:
                self.num_retries += 1  # sent again at once to another replica
            first = False
            async with self._slots:
                if payload is None:
                    # Encoded once a slot is free: a batch's first requests go out at once instead of after all of
                    # the batch has been encoded, and the rest is encoded while the first wait for their replies.
                    payload = self._encode(messages, fields)
                # Every replica set aside: the one whose back-off ends first (the retries bound the wait).
                preferred = affinity.get(key) if affinity is not None and key is not None else None
                if len(self._replicas) == 1:
                    replica = self._replicas[0]
                else:
                    replica = self._pick_replica(tried, preferred) or min(
                        self._replicas, key=lambda r: r.set_aside_until
                    )
                if affinity is not None and key is not None:
                    affinity[key] = replica
                self.num_attempts += 1
                replica.requests += 1
                replica.in_flight += 1
                try:
                    # The session's timeout bounds the whole attempt: connecting, sending and reading the reply.
                    async with self._session.post(replica.chat_url, data=payload, **self._proxy) as response:
                        status, body = response.status, await response.read()
                # Timeouts, refused or dropped connections, malformed replies: a failed attempt, never an exception
                # that would stop the caller.
                except self._request_errors as err:
                    status, error = None, type(err).__name__
                finally:
                    replica.in_flight -= 1
            if status is None or status >= 500:  # the replica is down or broken: the others take its requests
                error = error if status is None else f"HTTP {status}"
                replica.failures += 1
                logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                if len(self._replicas) > 1:
                    self._set_aside(replica, error)
                    tried.append(replica)
                    if self._pick_replica(tried) is not None:
                        continue
                attempt, tried = attempt + 1, []
                continue
            if status in (401, 403, 404):
                raise JudgeServerError(
                    f"The judge server at {replica.url} answered HTTP {status} for model {self.model!r}: check the "
                    "base URL, the served model name and the API key."
                )
            if status in (408, 409, 429):  # busy for now: worth another try
                error = f"HTTP {status}"
                replica.failures += 1
                logger.debug("Judge request attempt %d/%d failed: %s", attempt + 1, self.max_retries + 1, error)
                attempt, tried = attempt + 1, []
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
