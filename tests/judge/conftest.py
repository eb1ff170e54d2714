import sys
from pathlib import Path

import pytest

# The loopback judge server lives with the throughput benchmark (benchmarks/judge_throughput.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def faulty_server_class():
    """`LoopbackJudgeServer` with fault injection by the order of chat requests (see `FaultyJudgeServer`)."""
    import json
    import threading

    from benchmarks.judge_throughput import LoopbackJudgeServer, _ThreadingServer

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
            self._server = _ThreadingServer(("127.0.0.1", port), self._handler_class())
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
    from benchmarks.judge_throughput import LoopbackJudgeServer

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


@pytest.fixture(scope="session")
def constant_judge_dir(tiny_judge_dir, tmp_path_factory):
    """The tiny judge SFT-trained (TRL SFTTrainer, completion-only loss) to answer `<answer>0.7</answer>` to any row.

    A judge whose output is known makes real generation checkable end to end; training takes a while on the CPU, so
    only slow tests use it.
    """
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from sophia_trl.judges import format_judge_sft_example

    rows = [
        {
            "question": f"How many shapes are in picture {i}?",
            "image": Image.new("RGB", (56, 56), (30 * i, 90, 200)) if i % 2 else None,
            "response": f"<think>I count {i} shapes.</think><answer>{i}</answer>",
            "score": 0.7,
        }
        for i in range(8)
    ]
    features = Features(
        {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
    )
    dataset = Dataset.from_list(rows, features=features)
    dataset = dataset.map(format_judge_sft_example, remove_columns=dataset.column_names)
    output_dir = tmp_path_factory.mktemp("constant-judge")
    args = SFTConfig(
        str(output_dir),
        max_steps=CONSTANT_JUDGE_STEPS,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=4,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_judge_dir)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    trainer.train()
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    return output_dir


CONSTANT_JUDGE_STEPS = 80
