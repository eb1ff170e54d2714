"""Throughput of the thinking judges: completions scored per second, and the two readouts of a generative judge.

1. `OpenAIJudge` against a loopback OpenAI-compatible server with a fixed service time per request, at concurrency 1
   (one request at a time, as the released SophiaVL-R1 code queries its judge) and at 8, 32 and 64. The server's own
   capacity is measured in the same run (a raw keep-alive load generator, no service time), and each throughput is
   reported as a fraction of its limit min(concurrency / service time, server capacity), with the client's CPU time
   per request and, alternating with it round by round, what the raw load generator gets from the same server at the
   same concurrency and service time, so the table says which side is the bottleneck. Two servers: the threaded
   [`LoopbackJudgeServer`] (the tests' server) and a uvicorn + uvloop + httptools one (`--server fast`).
2. The local judges on the tiny Qwen2.5-VL (built offline): the generative `TransformersJudge` with its greedy and
   expected-score readouts, and the scalar-head `ScalarJudge` (one forward pass).
3. `--readout_judge DIR`: greedy against expected-score readout of a trained generative judge on held-out problems
   (time per response, unparsable fraction, MAE, pairwise accuracy within a question).

```bash
python benchmarks/judge_throughput.py                      # ~5 minutes on 2 CPU cores (~3 with --skip_local)
python benchmarks/judge_throughput.py --service_time 0.1 --num_requests 512 --concurrency 1 8 32 64 128
python benchmarks/judge_throughput.py --readout_judge outputs/demo/judge --readout_problems 32
```

The threaded server is [`~sophia_trl.judges.loopback.LoopbackJudgeServer`], the judge server the tests run against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image


def _serve_forever(service_time: float, queue: Any) -> None:
    from sophia_trl.judges.loopback import LoopbackJudgeServer

    with LoopbackJudgeServer(service_time=service_time) as server:
        queue.put(server.url)
        threading.Event().wait()


_SCORE_BYTES_RE = re.compile(rb"score=([0-9.]+)")


def _fast_app(service_time: float) -> Any:
    """A minimal ASGI app answering chat requests like [`LoopbackJudgeServer`] (score from `score=x`, else 0.5)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET":
            data: dict[str, Any] = {"object": "list", "data": [{"id": "judge", "object": "model"}]}
        else:
            found = _SCORE_BYTES_RE.search(body)
            content = f"<answer>{float(found.group(1)) if found else 0.5}</answer>"
            if service_time:
                await asyncio.sleep(service_time)
            data = {
                "id": "chatcmpl-loopback",
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
            }
        payload = json.dumps(data).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def _serve_fast_forever(service_time: float, queue: Any) -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _fast_app(service_time),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="auto",  # uvloop and httptools when installed (uvicorn[standard]), asyncio and h11 otherwise
        http="auto",
        backlog=2048,
    )
    queue.put(f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def loopback_server_process(service_time: float, fast: bool = False) -> Iterator[str]:
    """A loopback judge server in its own process (as a real server is), so it does not share the client's GIL.

    `fast=False` runs [`LoopbackJudgeServer`] (threads, the tests' server); `fast=True` a uvicorn + uvloop + httptools
    server with the same replies to well-formed requests, whose own cost per request is several times lower.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    target = _serve_fast_forever if fast else _serve_forever
    process = context.Process(target=target, args=(service_time, queue), daemon=True)
    process.start()
    try:
        url = queue.get(timeout=60)
        _wait_until_up(url)
        yield url
    finally:
        process.terminate()
        process.join(timeout=10)


def _wait_until_up(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/models", timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _chat_request(url: str) -> tuple[str, int, bytes]:
    """(host, port, raw HTTP request) of one judge request as OpenAIJudge sends it, image included."""
    from urllib.parse import urlsplit

    from sophia_trl.judges import build_openai_messages

    image = Image.new("RGB", (56, 56), (128, 30, 30))
    messages = build_openai_messages("How many red shapes are there? score=0.5", "<think>step</think>3", image)
    body = json.dumps({"model": "judge", "messages": messages, "max_tokens": 16, "temperature": 0.0}).encode()
    parts = urlsplit(url)
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.hostname}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return parts.hostname, parts.port, head.encode() + body


def server_capacity(url: str, connections: int = 64, duration: float = 3.0) -> float:
    """Requests per second the server answers at most: a raw keep-alive load generator with `connections` clients.

    The generator sends pre-encoded requests and reads replies by their Content-Length, so its own cost is a fraction
    of a real client's: the figure is the server's limit (on this machine, beside this generator), not the client's.
    """
    host, port, request = _chat_request(url)
    length_re = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)

    async def run() -> float:
        count = 0
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal count
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while time.perf_counter() < stop:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(int(length_re.search(head).group(1)))
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"The loopback server answered {head[:40]!r} to the capacity test.")
                    count += 1
            finally:
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return count / (time.perf_counter() - start)

    return asyncio.run(run())


def bench_openai(
    service_time: float, num_requests: int, concurrencies: list[int], fast: bool = True, rounds: int = 3
) -> tuple[float, list[dict[str, float]]]:
    """The server's capacity and OpenAIJudge's completions per second at each concurrency against the loopback server.

    Each throughput is reported against its limit, min(concurrency / service_time, server capacity): the capacity is
    measured on a server of the same kind without the service time, in the same run. Beside it, the raw load generator
    of `server_capacity` runs at the same concurrency against the same server (service time included): what a client
    that costs almost nothing gets, i.e. the part of the limit the server and the loopback themselves take away. The
    two clients alternate for `rounds` rounds; the medians are reported.
    """
    from sophia_trl.judges import OpenAIJudge

    with loopback_server_process(0.0, fast=fast) as url:
        server_capacity(url, duration=0.5)  # warm-up
        capacity = server_capacity(url)
    image = Image.new("RGB", (56, 56), (128, 30, 30))
    # "score=0.5" makes the server answer without decoding the image: the benchmark measures the client.
    questions = ["How many red shapes are there? score=0.5"] * num_requests
    responses = [f"<think>step {i}</think><answer>{i}</answer>" for i in range(num_requests)]
    measured: dict[int, dict[str, list[float]]] = {c: {"judge": [], "raw": [], "cpu": []} for c in concurrencies}
    with loopback_server_process(service_time, fast=fast) as url:
        for _ in range(rounds):
            for concurrency in concurrencies:
                # At most 64 waves of requests per run (concurrency 1 would take minutes otherwise); the raw client
                # runs as long as the judge's run, so both see the same share of ramp-up and tail.
                n = min(num_requests, 64 * concurrency)
                duration = max(1.0, n / concurrency * service_time)
                measured[concurrency]["raw"].append(server_capacity(url, connections=concurrency, duration=duration))
                # Distinct responses and no cache: every row is a request.
                with OpenAIJudge(url, "judge", max_concurrency=concurrency, cache_size=0, timeout=30) as judge:
                    judge.score(questions[:concurrency], ["warm-up"] * concurrency, [image] * concurrency)
                    start, cpu_start = time.perf_counter(), time.process_time()
                    scores = judge.score(questions[:n], responses[:n], [image] * n)
                    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                if any(s != 0.5 for s in scores):
                    raise RuntimeError(
                        f"{sum(s != 0.5 for s in scores)} requests failed at concurrency {concurrency}."
                    )
                measured[concurrency]["judge"].append(n / elapsed)
                # The client's own CPU per request (the server runs in another process): its ceiling is 1 / this on
                # one free core, as its requests run on one event loop.
                measured[concurrency]["cpu"].append(cpu / n * 1000)
    rows = []
    for concurrency, m in measured.items():
        ideal = min(concurrency, num_requests) / service_time
        per_second = statistics.median(m["judge"])
        rows.append(
            {
                "concurrency": concurrency,
                "requests": min(num_requests, 64 * concurrency),
                "per_second": per_second,
                "ideal_per_second": ideal,
                "limit_per_second": min(ideal, capacity),
                "raw_per_second": statistics.median(m["raw"]),
                "client_cpu_ms": statistics.median(m["cpu"]),
            }
        )
    return capacity, rows


def bench_local(num_rows: int, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds per completion of the generative and the scalar-head judge on the tiny models (CPU)."""

    from sophia_trl.judges import ScalarJudge, TransformersJudge
    from sophia_trl.judges.scalar_model import load_scalar_reward_model
    from sophia_trl.tiny.models import build_tiny_vlm

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
            (
                "generative, greedy",
                TransformersJudge(judge_dir, batch_size=batch_size, device="cpu", cache_size=0, readout="greedy"),
            ),
            (
                "generative, expected",
                TransformersJudge(judge_dir, batch_size=batch_size, device="cpu", cache_size=0, readout="expected"),
            ),
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


def grouped_heldout_rows(num_problems: int, start_index: int, seed: int = 0) -> list[dict[str, Any]]:
    """Judge data with several responses per question: the problems of the stage-1 test split (`data_prep/synthetic.py
    --kind thinking` rows `start_index`, `start_index + 1`, ...), each answered once soundly and once with each flaw.

    The stage-1 test split has one response per question, so no pair within a question to rank; these rows are the
    same held-out problems with responses whose labelled scores differ, which is what GRPO asks of a judge.
    """
    import random

    from sophia_trl.tiny.responses import FLAWS, judge_row, write_response
    from sophia_trl.tiny.scenes import draw_problem, resolve_problem_types

    rows = []
    for index in range(start_index, start_index + num_problems):
        problem, _ = draw_problem(seed, index, "thinking", resolve_problem_types(None), 56, 0.0)
        for k, flaw in enumerate((None, *FLAWS)):
            rng = random.Random(seed * 1_000_003 + index * 10 + k)
            rows.append(judge_row(problem, *write_response(problem, rng, flaw)))
    return rows


def bench_readouts(
    judge_dir: str, num_problems: int, start_index: int, batch_size: int
) -> dict[str, dict[str, float]]:
    """Greedy against expected-score readout of one trained generative judge on held-out judge data."""
    from sophia_trl.judges import TransformersJudge, evaluate_judge

    rows = grouped_heldout_rows(num_problems, start_index)
    results = {}
    for readout in ("greedy", "expected"):
        judge = TransformersJudge(judge_dir, batch_size=batch_size, device="cpu", cache_size=0, readout=readout)
        judge.score([rows[0]["question"]], [rows[0]["response"]], [rows[0]["image"]])  # warm-up
        start = time.perf_counter()
        metrics = evaluate_judge(judge, rows, batch_size=64)
        metrics["ms_per_response"] = (time.perf_counter() - start) / len(rows) * 1000
        results[readout] = metrics
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service_time", type=float, default=0.05, help="Seconds per request of the loopback server.")
    parser.add_argument(
        "--num_requests",
        type=int,
        default=4096,
        help="Completions scored per OpenAIJudge run (at most 64 x the concurrency).",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="Concurrencies to run.")
    parser.add_argument("--local_rows", type=int, default=64, help="Completions scored per local-judge run.")
    parser.add_argument("--local_batch_size", type=int, default=8, help="Batch size of the local judges.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each local judge (the median is reported).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each concurrency (medians reported).")
    parser.add_argument("--skip_local", action="store_true", help="Only benchmark OpenAIJudge.")
    parser.add_argument(
        "--server", choices=["threaded", "fast", "both"], default="both", help="Loopback server(s) to run against."
    )
    parser.add_argument(
        "--readout_judge", default=None, help="A trained generative judge: compare its greedy and expected readouts."
    )
    parser.add_argument(
        "--readout_start", type=int, default=512, help="First held-out problem (the judge's --num_train)."
    )
    parser.add_argument("--readout_problems", type=int, default=64, help="Held-out problems (7 responses each).")
    args = parser.parse_args()

    if args.readout_judge:
        results = bench_readouts(args.readout_judge, args.readout_problems, args.readout_start, args.local_batch_size)
        print(
            f"Readouts of {args.readout_judge} on held-out problems {args.readout_start}-"
            f"{args.readout_start + args.readout_problems - 1}, 7 responses each"
        )
        print("| readout | ms per response | unparsable | MAE | pairwise accuracy (pairs) | mean score |")
        print("|---|---:|---:|---:|---:|---:|")
        for readout, m in results.items():
            print(
                f"| {readout} | {m['ms_per_response']:.1f} | {m['failed_fraction']:.1%} | {m['mae']:.3f} | "
                f"{m['pairwise_accuracy']:.3f} ({m['num_pairs']}) | {m['mean_score']:.3f} |"
            )
        return

    for fast in [False, True] if args.server == "both" else [args.server == "fast"]:
        capacity, rows = bench_openai(
            args.service_time, args.num_requests, args.concurrency, fast=fast, rounds=args.rounds
        )
        base = rows[0]["per_second"]
        kind = "uvicorn" if fast else "threaded"
        print(
            f"\nOpenAIJudge against the {kind} loopback server, {args.service_time * 1000:.0f} ms per request, "
            f"{args.num_requests} completions, median of {args.rounds} rounds; server capacity {capacity:.0f} "
            "requests/s"
        )
        print(
            "| concurrency | completions per run | completions/s | limit: min(concurrency / S, capacity) | of limit | "
            "raw client, of limit | of raw client | speed-up vs first | client CPU ms/request |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print(
                f"| {row['concurrency']} | {row['requests']} | {row['per_second']:.1f} | "
                f"{row['limit_per_second']:.0f} | {row['per_second'] / row['limit_per_second']:.0%} | "
                f"{row['raw_per_second'] / row['limit_per_second']:.0%} | "
                f"{row['per_second'] / row['raw_per_second']:.0%} | {row['per_second'] / base:.1f}x | "
                f"{row['client_cpu_ms']:.2f} |"
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
    print(
        f"\nper completion, scalar is {local['generative, greedy'] / local['scalar']:.1f}x and the expected readout "
        f"{local['generative, greedy'] / local['generative, expected']:.1f}x faster than greedy generation"
    )


if __name__ == "__main__":
    main()
