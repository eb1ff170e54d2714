"""A loopback OpenAI-compatible judge server that answers in a controlled way: the server judge's test double.

[`LoopbackJudgeServer`] answers chat requests with the score written in the request or read from its image, and on
request slowly, with HTTP errors, with garbage, or not at all, as a real server sometimes does. The tests and the
throughput benchmark (`benchmarks/judge_throughput.py`) run it; so can a user checking a client against a known server:

```python
from sophia_trl.judges import OpenAIJudge
from sophia_trl.judges.loopback import LoopbackJudgeServer

with LoopbackJudgeServer(service_time=0.05) as server, OpenAIJudge(server.url, "judge") as judge:
    judge.score(["How many shapes? score=0.7"], ["<think>...</think><answer>3</answer>"])  # [0.7]
```
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

# Behaviour markers a request's text can carry, e.g. "[[error]]" or "[[flaky:2]]".
_MODE_RE = re.compile(r"\[\[(\w+)(?::(\d+))?\]\]")
_SCORE_RE = re.compile(r"score=([0-9.]+)")


def _request_text(body: dict[str, Any]) -> tuple[str, list[str]]:
    """All text of the request's messages, and the data URLs of its images."""
    texts, urls = [], []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content or []:
            if block.get("type") == "text":
                texts.append(block["text"])
            elif block.get("type") == "image_url":
                urls.append(block["image_url"]["url"])
    return "\n".join(texts), urls


def decode_data_url(url: str) -> Image.Image:
    """The image in a base64 data URL."""
    header, _, data = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ValueError(f"Not a base64 image data URL: {header[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def _logprobs_choice(score: float, body: dict[str, Any]) -> dict[str, Any]:
    """A reply with `logprobs`, as vLLM gives to a request that continues a final assistant message `<answer>...`.

    The judge's distribution for a row with score x: after `<answer>`, "1" with probability x and "0" with 1 - x; after
    `<answer>0.`, the digit "5" for sure. Its expected score is therefore x + (1 - x) * 0.5, its greedy path "1.0"
    when x >= 0.5 and "0.5" otherwise.
    """
    prefix = body["messages"][-1]["content"] if body["messages"][-1].get("role") == "assistant" else ""

    def entry(token: str, top: dict[str, float]) -> dict[str, Any]:
        alternatives = [{"token": t, "logprob": math.log(p)} for t, p in top.items() if p > 0]
        return {"token": token, "logprob": math.log(top[token]), "top_logprobs": alternatives}

    if prefix.endswith("0."):
        tokens = [entry("5", {"5": 1.0})]
    else:
        first = "1" if score >= 0.5 else "0"
        tokens = [entry(first, {"1": score, "0": 1.0 - score}), entry(".", {".": 1.0})]
        tokens.append(entry("0", {"0": 1.0}) if first == "1" else entry("5", {"5": 1.0}))
    tokens = tokens[: body.get("max_tokens", len(tokens))]
    text = "".join(t["token"] for t in tokens)
    return {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": {"content": tokens},
        "finish_reason": "length",
    }


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server for many concurrent clients that shuts down without waiting for hung handlers."""

    request_queue_size = 1024  # the default backlog of 5 drops connections when many clients connect at once
    daemon_threads = True
    block_on_close = False  # hung handlers must not hold up shutdown


class LoopbackJudgeServer:
    """An OpenAI-compatible judge server on 127.0.0.1 (a free port) that answers in a controlled way.

    `POST /v1/chat/completions` waits `service_time` seconds, then replies `<answer>x</answer>` where x is the
    `score=x` written in the request's text or, failing that, the red channel of the top-left pixel of the request's
    image divided by 255 (so a test can check that the image arrived intact), or 0.5. A marker in the text changes the
    behaviour: `[[error]]` HTTP 500, `[[flaky:k]]` HTTP 500 for the first k attempts of that text then a normal reply,
    `[[garbage]]` a reply without a score, `[[badjson]]` a body that is not JSON, `[[hang]]` a reply only after
    `hang_time` seconds, `[[unauthorized]]` HTTP 401, `[[badrequest]]` HTTP 400. `GET /v1/models` lists `model`;
    `GET /health` answers 200.

    Args:
        service_time (`float`, *optional*, defaults to `0.0`):
            Seconds every chat request takes.
        hang_time (`float`, *optional*, defaults to `30.0`):
            Seconds a `[[hang]]` request takes.
        model (`str`, *optional*, defaults to `"judge"`):
            The model name the server reports.
        list_models (`bool`, *optional*, defaults to `True`):
            Whether `GET /v1/models` works; `False` answers HTTP 500 there, as some servers do.
        record_bodies (`bool`, *optional*, defaults to `False`):
            Keep the JSON body of every chat request in `bodies` (for tests of what a client sends).

    Attributes:
        url (`str`): The OpenAI API root, `http://127.0.0.1:<port>/v1`.
        requests (`Counter`): Chat requests received per mode (`"ok"` for requests without a marker).
        max_in_flight (`int`): Most chat requests handled at the same time.
        images (`list[PIL.Image.Image]`): The images received.
        authorizations (`set[str]`): The `Authorization` headers received.
        bodies (`list[dict]`): The chat requests' JSON bodies in arrival order, when `record_bodies`.
    """

    def __init__(
        self,
        service_time: float = 0.0,
        hang_time: float = 30.0,
        model: str = "judge",
        list_models: bool = True,
        record_bodies: bool = False,
    ):
        self.service_time = service_time
        self.list_models = list_models
        self.hang_time = hang_time
        self.model = model
        self.requests: Counter[str] = Counter()
        self.max_in_flight = 0
        self.images: list[Image.Image] = []
        self.authorizations: set[str] = set()
        self.record_bodies = record_bodies
        self.bodies: list[dict[str, Any]] = []
        self._attempts: Counter[str] = Counter()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = LoopbackHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackJudgeServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-judge", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _reply(self, body: dict[str, Any]) -> tuple[int, bytes, float]:
        """(HTTP status, body, delay before answering) for one chat request."""
        text, urls = _request_text(body)
        marker = _MODE_RE.search(text)
        mode, arg = (marker.group(1), int(marker.group(2) or 0)) if marker else ("ok", 0)
        with self._lock:
            if self.record_bodies:
                self.bodies.append(body)
            self.requests[mode] += 1
            self._attempts[text] += 1
            attempt = self._attempts[text]
        delay = self.hang_time if mode == "hang" else self.service_time
        if mode == "error" or (mode == "flaky" and attempt <= arg):
            return 500, json.dumps({"error": {"message": "internal error", "type": "server_error"}}).encode(), delay
        if mode == "unauthorized":
            return 401, json.dumps({"error": {"message": "invalid key", "type": "auth"}}).encode(), delay
        if mode == "badrequest":
            return 400, json.dumps({"error": {"message": "bad request", "type": "invalid"}}).encode(), delay
        if mode == "badjson":
            return 200, b"<html>this is not json", delay

        if mode == "garbage":
            content = "The reasoning looks fine to me."
        else:
            found = _SCORE_RE.search(text)
            if found:
                score = float(found.group(1))
            elif urls:
                image = decode_data_url(urls[0]).convert("RGB")
                with self._lock:
                    self.images.append(image)
                score = round(image.getpixel((0, 0))[0] / 255, 1)
            else:
                score = 0.5
            content = f"<answer>{score}</answer>"
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        if body.get("logprobs") and mode != "garbage":
            choice = _logprobs_choice(score, body)
        completion = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, json.dumps(completion).encode(), delay

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers
            # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed
            # ACK (~40 ms), which would dwarf the service time.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the reply

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/health":
                    self._send(200, b'{"status": "ok"}')
                elif self.path.rstrip("/").endswith("/models") and not server.list_models:
                    self._send(500, b'{"error": {"message": "cannot list models"}}')
                elif self.path.rstrip("/").endswith("/models"):
                    data = {"object": "list", "data": [{"id": server.model, "object": "model", "owned_by": "test"}]}
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b"{}")
                    return
                with server._lock:
                    server.authorizations.add(self.headers.get("Authorization", ""))
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    status, payload, delay = server._reply(body)
                    time.sleep(delay)
                finally:
                    with server._lock:
                        server._in_flight -= 1
                self._send(status, payload)

        return Handler
