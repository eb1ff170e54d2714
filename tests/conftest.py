import os

import pytest

# Nothing in the test suite may reach a hub: every model and dataset is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from intra-op threads, and tests that start servers or torchrun workers would oversubscribe
# the cores: one thread per process keeps the suite's run time stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL policy checkpoint, built offline once per test session."""
    from sophia_trl.tiny.models import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), seed=0)


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL judge checkpoint (same architecture, other weights), built offline once per session. Like a
    judge of recipes/thinking_reward.py, its folder carries this project's judge prompt (judge_prompt.yaml)."""
    from sophia_trl.judges.carried_prompt import save_judge_prompt
    from sophia_trl.tiny.models import build_tiny_vlm

    judge_dir = build_tiny_vlm(tmp_path_factory.mktemp("tiny-judge"), seed=1)
    save_judge_prompt(None, judge_dir)
    return judge_dir


@pytest.fixture
def closed_port_url():
    """An OpenAI API root on 127.0.0.1 where nothing listens: connections are refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="session")
def tiny_grpo_config():
    """Builds the TrustGRPOConfig of a 2-step CPU run on the tiny VLM, two prompt groups of 4 per step:
    `tiny_grpo_config(output_dir, **overrides)`."""
    from sophia_trl.configs import TrustGRPOConfig

    def build(output_dir, **overrides):
        defaults = dict(
            output_dir=str(output_dir),
            per_device_train_batch_size=8,
            num_generations=4,
            max_completion_length=12,
            max_steps=2,
            learning_rate=1e-3,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            report_to="none",
            logging_steps=1,
            save_strategy="no",
            seed=0,
        )
        return TrustGRPOConfig(**{**defaults, **overrides})

    return build


@pytest.fixture
def tiny_grpo_dataset():
    """Eight image prompts in four colours, for the trainer tests: "How many shapes are <colour>?" with a solution."""
    from datasets import Dataset
    from PIL import Image

    colours = ["red", "green", "blue", "yellow"]
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": f"How many shapes are {colours[i % 4]}?"}] for i in range(8)],
            "image": [Image.new("RGB", (56, 56), colours[i % 4]) for i in range(8)],
            "solution": [str(i) for i in range(8)],
        }
    )


@pytest.fixture(scope="session")
def thinking_rows():
    """Builds judge-data rows, two responses per question (sound 0.9, flawed 0.1), questions alternating between image
    and text-only: `thinking_rows(num_questions=6)`."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature
    from PIL import Image

    features = Features(
        {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
    )
    sound = "<think>There are 2 red circles and 1 blue square, so 2 + 1 = 3 shapes.</think><answer>3</answer>"
    flawed = "<think>" + "Shapes are nice, I like shapes. " * 30 + "</think><answer>7</answer>"  # redundant filler

    def build(num_questions=6):
        rows = []
        for q in range(num_questions):
            image = Image.new("RGB", (56, 56), (40 * q % 256, 100, 200)) if q % 3 != 2 else None
            for response, score in ((sound, 0.9), (flawed, 0.1)):
                rows.append(
                    {
                        "question": f"How many shapes are in scene {q}?",
                        "image": image,
                        "response": response,
                        "score": score,
                    }
                )
        return Dataset.from_list(rows, features=features)

    return build


def faulty_server_class():
    """`LoopbackJudgeServer` with fault injection by the order of chat requests (see `FaultyJudgeServer`)."""
    import json
    import threading

    from sophia_trl.judges.loopback import LoopbackHTTPServer, LoopbackJudgeServer

    class FaultyJudgeServer(LoopbackJudgeServer):
        """
        The loopback judge server, failing chat requests by their arrival order.

        `faults` is a cycle of modes, one per chat request (attempt), from the first: `"ok"` (a normal reply),
        `"503"` (HTTP 503), `"timeout"` (a normal reply after `fault_delay` seconds, past the client's timeout),
        `"no_choices"` (HTTP 200, JSON without `choices`), `"null_message"` (HTTP 200, `"message": null`), `"html"`
        (HTTP 200, an HTML error page). `go_away_after=n` makes the server go away from the n-th chat request on
        (0-based): it closes each connection without a reply, and after `back_after` such requests it answers again
        (`None`: never; `go_away()` also closes the port, so that new connections are refused).

        Attributes:
            served (`Counter`): Chat requests per fault mode (`"dropped"` while away).
        """

        def __init__(self, faults=("ok",), fault_delay=30.0, go_away_after=None, back_after=None, **kwargs):
            super().__init__(**kwargs)
            from collections import Counter

            self.faults = tuple(faults)
            self.fault_delay = fault_delay
            self.go_away_after = go_away_after
            self.back_after = back_after
            self.served = Counter()
            self._chat_index = 0
            self._away = False

        def _reply(self, body):
            with self._lock:
                index = self._chat_index
                self._chat_index += 1
                if self.go_away_after is not None and index >= self.go_away_after:
                    dropped = index - self.go_away_after
                    self._away = self.back_after is None or dropped < self.back_after
                if self._away:
                    self.served["dropped"] += 1
                    if self.back_after is None and self.served["dropped"] == 1:
                        threading.Thread(target=self.go_away, daemon=True).start()
                    return None, b"", 0.0
                mode = self.faults[index % len(self.faults)]
                self.served[mode] += 1
            if mode == "503":
                return 503, json.dumps({"error": {"message": "overloaded"}}).encode(), 0.0
            status, payload, delay = super()._reply(body)
            if mode == "timeout":
                return status, payload, self.fault_delay
            if mode == "no_choices":
                return 200, json.dumps({"object": "chat.completion", "usage": {}}).encode(), delay
            if mode == "null_message":
                return 200, json.dumps({"choices": [{"index": 0, "message": None}]}).encode(), delay
            if mode == "html":
                return 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", delay
            return status, payload, delay

        def go_away(self):
            """Closes the port: new connections are refused (kept-alive ones are dropped by `_reply`)."""
            with self._lock:
                self._away, self.back_after = True, None
            self._server.shutdown()
            self._server.server_close()

        def come_back(self):
            """Opens the same port again and answers normally."""
            port = self._server.server_address[1]
            with self._lock:
                self._away, self.go_away_after = False, None
            self._server = LoopbackHTTPServer(("127.0.0.1", port), self._handler_class())
            self.__enter__()

        def _handler_class(self):
            base = super()._handler_class()

            class Handler(base):
                def _send(self, status, payload):
                    if status is None:  # away: drop the connection without a reply
                        self.close_connection = True
                        return
                    super()._send(status, payload)

            return Handler

        def __exit__(self, *exc_info):
            if self._server.socket.fileno() != -1:
                super().__exit__(*exc_info)

    return FaultyJudgeServer


@pytest.fixture
def loopback_server():
    """Starts loopback judge servers (`LoopbackJudgeServer(**kwargs)`), stopped after the test. With any of the fault
    arguments of `FaultyJudgeServer` (`faults`, `fault_delay`, `go_away_after`, `back_after`) it injects faults."""
    from sophia_trl.judges.loopback import LoopbackJudgeServer

    fault_args = {"faults", "fault_delay", "go_away_after", "back_after"}

    def start(**kwargs):
        cls = faulty_server_class() if fault_args & set(kwargs) else LoopbackJudgeServer
        server = cls(**kwargs)
        servers.append(server.__enter__())
        return server

    servers = []
    yield start
    for server in servers:
        server.__exit__(None, None, None)
