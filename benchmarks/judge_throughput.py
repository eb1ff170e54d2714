"""Throughput of the thinking judges: completions scored per second.

1. `OpenAIJudge` against a loopback OpenAI-compatible server with a fixed service time per request, at concurrency 1
   (one request at a time, as the released SophiaVL-R1 code queries its judge) and at 8, 32 and 64.
2. The local judges on the tiny Qwen2.5-VL (built offline): the generative `TransformersJudge` (prompt + greedy
   generation of `<answer>x</answer>`) against the scalar-head `ScalarJudge` (one forward pass).

```bash
python benchmarks/judge_throughput.py                      # ~1 minute on 2 CPU cores
python benchmarks/judge_throughput.py --service_time 0.1 --num_requests 512 --concurrency 1 8 32 64 128
```

The loopback server ([`LoopbackJudgeServer`]) is also the test double of `tests/judge/`: besides answering correctly
it can answer slowly, with HTTP errors, with garbage, or not at all, as a real server sometimes does.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import multiprocessing
import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


class _ThreadingServer(ThreadingHTTPServer):
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

    Attributes:
        url (`str`): The OpenAI API root, `http://127.0.0.1:<port>/v1`.
        requests (`Counter`): Chat requests received per mode (`"ok"` for requests without a marker).
        max_in_flight (`int`): Most chat requests handled at the same time.
        images (`list[PIL.Image.Image]`): The images received.
        authorizations (`set[str]`): The `Authorization` headers received.
    """

    def __init__(
        self, service_time: float = 0.0, hang_time: float = 30.0, model: str = "judge", list_models: bool = True
    ):
        self.service_time = service_time
        self.list_models = list_models
        self.hang_time = hang_time
        self.model = model
        self.requests: Counter[str] = Counter()
        self.max_in_flight = 0
        self.images: list[Image.Image] = []
        self.authorizations: set[str] = set()
        self._attempts: Counter[str] = Counter()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = _ThreadingServer(("127.0.0.1", 0), self._handler_class())
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
        completion = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
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


# ---------------------------------------------------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------------------------------------------------


def _serve_forever(service_time: float, queue: Any) -> None:
    with LoopbackJudgeServer(service_time=service_time) as server:
        queue.put(server.url)
        threading.Event().wait()


@contextmanager
def loopback_server_process(service_time: float) -> Iterator[str]:
    """A [`LoopbackJudgeServer`] in its own process (as a real server is), so it does not share the client's GIL."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_serve_forever, args=(service_time, queue), daemon=True)
    process.start()
    try:
        yield queue.get(timeout=60)
    finally:
        process.terminate()
        process.join(timeout=10)


def bench_openai(service_time: float, num_requests: int, concurrencies: list[int]) -> list[dict[str, float]]:
    """Completions per second of OpenAIJudge at each concurrency against the loopback server."""
    from sophia_trl.judges import OpenAIJudge

    rows = []
    image = Image.new("RGB", (56, 56), (128, 30, 30))
    # "score=0.5" makes the server answer without decoding the image: the benchmark measures the client.
    questions = ["How many red shapes are there? score=0.5"] * num_requests
    responses = [f"<think>step {i}</think><answer>{i}</answer>" for i in range(num_requests)]
    with loopback_server_process(service_time) as url:
        for concurrency in concurrencies:
            # Distinct responses and no cache: every row is a request.
            with OpenAIJudge(url, "judge", max_concurrency=concurrency, cache_size=0, timeout=30) as judge:
                judge.score(questions[:4], ["warm-up"] * 4, [image] * 4)  # connection set-up
                start = time.perf_counter()
                scores = judge.score(questions, responses, [image] * num_requests)
                elapsed = time.perf_counter() - start
            if any(s != 0.5 for s in scores):
                raise RuntimeError(f"{sum(s != 0.5 for s in scores)} requests failed at concurrency {concurrency}.")
            rows.append(
                {
                    "concurrency": concurrency,
                    "seconds": elapsed,
                    "per_second": num_requests / elapsed,
                    "ideal_per_second": min(concurrency, num_requests) / service_time,
                }
            )
    return rows


def bench_local(num_rows: int, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds per completion of the generative and the scalar-head judge on the tiny models (CPU)."""

    from sophia_trl.judges import ScalarJudge, TransformersJudge
    from sophia_trl.judges.scalar_model import load_scalar_reward_model
    from sophia_trl.tiny import build_tiny_vlm

    with tempfile.TemporaryDirectory() as tmp:
        judge_dir = build_tiny_vlm(Path(tmp) / "judge", seed=1)
        scalar_dir = Path(tmp) / "scalar"
        load_scalar_reward_model(str(judge_dir)).save_pretrained(scalar_dir)
        from transformers import AutoProcessor

        AutoProcessor.from_pretrained(judge_dir).save_pretrained(scalar_dir)

        images = [Image.new("RGB", (56, 56), (i * 3 % 256, 90, 160)) for i in range(num_rows)]
        questions = [f"How many shapes are in picture {i}?" for i in range(num_rows)]
        responses = [
            f"<think>I count {i % 7} circles and {i % 5} squares, so {i % 7 + i % 5} shapes.</think>"
            f"<answer>{i % 7 + i % 5}</answer>"
            for i in range(num_rows)
        ]
        results = {}
        for name, judge in (
            ("generative", TransformersJudge(judge_dir, batch_size=batch_size, device="cpu", cache_size=0)),
            ("scalar", ScalarJudge(scalar_dir, batch_size=batch_size, device="cpu", cache_size=0)),
        ):
            judge.score(questions[:batch_size], responses[:batch_size], images[:batch_size])  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                judge.score(questions, responses, images)
                times.append(time.perf_counter() - start)
            results[name] = statistics.median(times) / num_rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service_time", type=float, default=0.05, help="Seconds per request of the loopback server.")
    parser.add_argument("--num_requests", type=int, default=256, help="Completions scored per OpenAIJudge run.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="Concurrencies to run.")
    parser.add_argument("--local_rows", type=int, default=64, help="Completions scored per local-judge run.")
    parser.add_argument("--local_batch_size", type=int, default=8, help="Batch size of the local judges.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each local judge (the median is reported).")
    parser.add_argument("--skip_local", action="store_true", help="Only benchmark OpenAIJudge.")
    args = parser.parse_args()

    rows = bench_openai(args.service_time, args.num_requests, args.concurrency)
    base = rows[0]["per_second"]
    print(
        f"OpenAIJudge, loopback server with {args.service_time * 1000:.0f} ms per request, {args.num_requests} completions"
    )
    print("| concurrency | seconds | completions/s | ideal/s | speed-up vs first |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['concurrency']} | {row['seconds']:.2f} | {row['per_second']:.1f} | "
            f"{row['ideal_per_second']:.0f} | {row['per_second'] / base:.1f}x |"
        )
    if args.skip_local:
        return
    local = bench_local(args.local_rows, args.local_batch_size, args.repeats)
    print(
        f"\nLocal judges on the tiny Qwen2.5-VL (CPU, batch {args.local_batch_size}, {args.local_rows} rows with images)"
    )
    print("| judge | ms per completion | completions/s |")
    print("|---|---:|---:|")
    for name, seconds in local.items():
        print(f"| {name} | {seconds * 1000:.1f} | {1 / seconds:.1f} |")
    print(f"\nscalar is {local['generative'] / local['scalar']:.1f}x faster than generative per completion")


if __name__ == "__main__":
    main()
