"""math-verify with a hard deadline: a worker process that is killed when an answer takes too long to verify.

Short inputs can be arbitrarily slow to verify: "9^{9^{9}}" (9 characters) ran for minutes against "14". math-verify's
own timeout uses signal.alarm, which only works in the main thread and cannot stop a long C-level operation, so
[`math_verify_match_in_worker`] runs it in a separate process that is killed when it misses its deadline, in any
thread and any process. [`math_verify_match`] runs it in this process, for inputs that cannot be slow.

This module imports nothing from the rest of the package: the worker process loads it by file path.
"""

import atexit
import json
import logging
import os
import queue
import subprocess
import sys
import threading

from math_verify import parse, verify

_MATH_VERIFY_LOCK = threading.Lock()  # math-verify's parsers are not documented as thread-safe
_WORKER_STARTUP_TIMEOUT = 120.0  # seconds to import sympy and math-verify in the worker, on a loaded machine
_WORKER_MEMORY_LIMIT = 2 * 1024**3  # bytes of address space for the worker: a pathological answer fails, not the host


class _QuietTimeoutWarning(logging.Filter):
    # math-verify warns once that its timeout is disabled; here the deadline is enforced around it instead.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutWarning())


def _math_verify_match(solution: str, answer: str) -> tuple[bool, bool]:
    """(solution parsed, answer equals solution) by math-verify, without a time bound: callers bound it."""
    # Wrapping in $...$ makes math-verify read both as LaTeX, which also accepts "\dfrac12", "3*sqrt(2)" and "−3".
    gold = parse(f"${solution}$", parsing_timeout=None)
    if not gold:
        return False, False
    return True, bool(verify(gold, parse(f"${answer}$", parsing_timeout=None), timeout_seconds=None))


def math_verify_match(solution: str, answer: str) -> tuple[bool, bool]:
    """(solution parsed, answer equals solution) by math-verify in this process, without a time bound: for inputs
    that cannot be slow (plain decimal numbers)."""
    with _MATH_VERIFY_LOCK:
        return _math_verify_match(solution, answer)


def _serve_math_verify() -> None:
    """Worker loop: one JSON request `{"solution", "answer"}` per stdin line, one JSON reply per stdout line."""
    logging.basicConfig(level=logging.ERROR)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_LIMIT, _WORKER_MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):  # not POSIX, or a lower hard limit is already set
        pass
    _math_verify_match("1", "1")  # the first parse loads the grammars: pay for it before reporting ready
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            parsed, match = _math_verify_match(request["solution"], request["answer"])
        except MemoryError:
            parsed, match = True, False
        print(json.dumps({"parsed": parsed, "match": match}), flush=True)


_WORKER_COMMAND = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_sophia_trl_math_verify_worker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module._serve_math_verify()
"""


def _pump_lines(stream, replies: queue.Queue) -> None:
    for line in stream:
        replies.put(line)
    replies.put(None)  # end of stream: the worker exited


class _MathVerifyWorker:
    """A math-verify process that answers one request at a time and is killed when a request misses its deadline."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue | None = None

    def _start(self) -> None:
        # Loading this file by path (not `import sophia_trl...`) keeps the worker free of the package's heavy imports.
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_COMMAND, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._replies = queue.Queue()
        threading.Thread(target=_pump_lines, args=(self._process.stdout, self._replies), daemon=True).start()
        try:
            ready = self._replies.get(timeout=_WORKER_STARTUP_TIMEOUT)
        except queue.Empty:
            ready = None
        if ready is None:
            self.close()
            raise RuntimeError(
                "The math-verify worker process did not start (see its error above, on stderr). It runs "
                f"`{sys.executable} -c ...` and imports math_verify: check that this interpreter can import it."
            )

    def close(self) -> None:
        """Stop the worker process, if one is running."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._process = None
        self._replies = None

    def match(self, solution: str, answer: str, timeout: float) -> tuple[bool, bool] | None:
        """(solution parsed, answer equals solution), or `None` when the worker did not answer within `timeout`."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.close()
                self._start()
            request = json.dumps({"solution": solution, "answer": answer}) + "\n"
            try:
                self._process.stdin.write(request)
                self._process.stdin.flush()
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                reply = None
            except OSError:  # the worker died between requests
                reply = None
            if reply is None:
                self.close()
                return None
            reply = json.loads(reply)
            return reply["parsed"], reply["match"]


_WORKER = _MathVerifyWorker()
atexit.register(lambda: _WORKER.close())


def _reset_worker_after_fork() -> None:
    # A forked child must not share the parent's pipes (or a lock another thread held at fork time).
    global _WORKER
    _WORKER = _MathVerifyWorker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_worker_after_fork)


def math_verify_match_in_worker(solution: str, answer: str, timeout: float) -> tuple[bool, bool] | None:
    """(solution parsed, answer equals solution) by math-verify in the worker process, or `None` when it did not
    answer within `timeout` seconds (the worker is then killed, and a new one starts with the next request)."""
    return _WORKER.match(solution, answer, timeout)
