"""Test helpers for the evaluation tests: local copies of each benchmark in its own layout, a loopback chat server,
and the command line loaded as a module."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import datasets
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
CLI = Path(__file__).parents[2] / "eval" / "evaluate.py"


def load_cli() -> ModuleType:
    """`eval/evaluate.py` as a module (a script folder, not a package; `evaluate` would clash with HF's library)."""
    spec = importlib.util.spec_from_file_location("sophia_eval_cli", CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def square(colour: str, size: int = 56) -> Image.Image:
    """A plain image; 56x56 gives the tiny policy 4 image tokens."""
    return Image.new("RGB", (size, size), colour)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_mathvista(root: Path) -> Path:
    """A JSON-lines data file with image paths relative to it, as a local export of AI4Math/MathVista."""
    (root / "images").mkdir(parents=True)
    rows = [
        {"pid": "1", "question": "How many squares?", "choices": ["1", "2", "3"], "answer": "1", "unit": None,
         "question_type": "multi_choice", "answer_type": "text", "precision": None, "metadata": {"task": "counting"}},
        {"pid": "2", "question": "What is the side length?", "choices": None, "answer": "4", "unit": "cm",
         "question_type": "free_form", "answer_type": "integer", "precision": None, "metadata": {"task": "geometry"}},
        {"pid": "3", "question": "What is the area ratio?", "choices": None, "answer": "0.5", "unit": None,
         "question_type": "free_form", "answer_type": "float", "precision": 1.0, "metadata": {"task": "geometry"}},
    ]  # fmt: skip
    with (root / "testmini.jsonl").open("w") as handle:
        for row, colour in zip(rows, ["red", "green", "blue"]):
            square(colour).save(root / "images" / f"{row['pid']}.png")
            handle.write(json.dumps({**row, "image": f"images/{row['pid']}.png", "query": row["question"]}) + "\n")
    return root / "testmini.jsonl"


def write_mathverse(root: Path) -> Path:
    """A `save_to_disk` DatasetDict with the `testmini` split, as AI4Math/MathVerse's testmini config."""
    rows = {
        "sample_index": ["1", "2"],
        "problem_index": ["1", "1"],
        "problem_version": ["Text Dominant", "Vision Only"],
        "question": ["Find x. Choices: A:1 B:2", ""],
        "image": [square("red"), square("blue")],
        "answer": ["A", "A"],
        "question_type": ["multi-choice", "multi-choice"],
        "question_for_eval": ["Find x.\nChoices:\nA:1\nB:2"] * 2,
        "query_wo": ["Find x."] * 2,
        "query_cot": ["Find x."] * 2,
    }
    features = datasets.Features({k: datasets.Image() if k == "image" else datasets.Value("string") for k in rows})
    datasets.DatasetDict({"testmini": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(root)
    return root


# MMMU's columns: the fields as strings, images in image_1 ... image_7.
MMMU_FEATURES = datasets.Features(
    {
        **{name: datasets.Value("string") for name in ("id", "question", "options", "answer", "question_type")},
        "subfield": datasets.Value("string"),
        **{f"image_{i}": datasets.Image() for i in range(1, 8)},
    }
)


def write_mmmu(root: Path) -> Path:
    """A `save_to_disk` DatasetDict with `dev` and `validation`, MMMU's columns (image_1 ... image_7)."""
    features = MMMU_FEATURES
    no_images = {f"image_{i}": None for i in range(3, 8)}
    dev = {"id": "dev_Art_1", "question": "<image 1> <image 2> Same colour?", "options": "['yes', 'no']",
           "answer": "B", "question_type": "multiple-choice", "subfield": "Painting",
           "image_1": square("red"), "image_2": square("blue"), **no_images}  # fmt: skip
    val = {"id": "validation_Math_1", "question": "<image 1> How many squares?", "options": "[]", "answer": "1",
           "question_type": "open", "subfield": "Counting", "image_1": square("green"), "image_2": None,
           **no_images}  # fmt: skip
    datasets.DatasetDict(
        {
            "dev": datasets.Dataset.from_list([dev], features=features),
            "validation": datasets.Dataset.from_list([val], features=features),
        }
    ).save_to_disk(root)
    return root


def write_mme(root: Path) -> Path:
    """A folder laid out like a clone of lmms-lab/MME (`data/test-*.parquet`), loaded like the Hub repository."""
    rows = {
        "question_id": ["existence/1.png", "existence/1.png"],
        "image": [square("red"), square("red")],
        "question": ["Is there a red square? Please answer yes or no.", "Is there a cat? Please answer yes or no."],
        "answer": ["Yes", "No"],
        "category": ["existence", "existence"],
    }
    features = datasets.Features({k: datasets.Image() if k == "image" else datasets.Value("string") for k in rows})
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


def write_mmstar(root: Path) -> Path:
    """A `save_to_disk` Dataset (one split), Lin-Chen/MMStar's columns."""
    rows = {
        "index": [0, 1],
        "question": ["What colour?\nOptions: A: red, B: blue", "How many?\nOptions: A: 1, B: 2, C: 3, D: 4"],
        "image": [square("red"), square("blue")],
        "answer": ["A", "A"],
        "category": ["coarse perception", "math"],
        "l2_category": ["color", "numeric"],
        "meta_info": ["{}", "{}"],
    }
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).save_to_disk(root)
    return root


def write_chartqa(root: Path) -> Path:
    """A single parquet file, HuggingFaceM4/ChartQA's columns (`label` is a list, `human_or_machine` a class)."""
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "query": datasets.Value("string"),
            "label": datasets.Sequence(datasets.Value("string")),
            "human_or_machine": datasets.ClassLabel(names=["human", "machine"]),
        }
    )
    rows = {
        "image": [square("red"), square("blue")],
        "query": ["What is the highest value?", "Which bar is blue?"],
        "label": [["12"], ["Second"]],
        "human_or_machine": [0, 1],
    }
    root.mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(root / "test.parquet"))
    return root / "test.parquet"


def write_mmbench(root: Path) -> Path:
    """A TSV with base64 images and no rotated copies, like VLMEvalKit's MMBench_DEV_EN.tsv before expansion."""
    root.mkdir(parents=True)
    image = base64.b64encode(_png_bytes(square("yellow"))).decode()
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "split"]
    rows = [
        ["7", "What colour is the image?", "", "red", "yellow", "blue", "", "B", "attribute_recognition", image,
         "synthetic", "dev"],
    ]  # fmt: skip
    path = root / "mmbench_dev_en.tsv"
    path.write_text("\n".join("\t".join(row) for row in [header, *rows]) + "\n")
    return path


LAYOUTS = {
    "mathvista": write_mathvista,
    "mathverse": write_mathverse,
    "mmmu": write_mmmu,
    "mme": write_mme,
    "mmstar": write_mmstar,
    "chartqa": write_chartqa,
    "mmbench": write_mmbench,
}

# Items each local copy yields (MMBench: one 3-option question, expanded into its 3 rotations).
NUM_ITEMS = {"mathvista": 3, "mathverse": 2, "mmmu": 2, "mme": 2, "mmstar": 2, "chartqa": 2, "mmbench": 3}


class LoopbackChatServer:
    """An OpenAI-compatible `/v1/chat/completions` endpoint on 127.0.0.1 whose reply is `reply(prompt)`.

    `reply` may return a string (the completion), an int (an HTTP error status) or a `(seconds, str)` pair (answer
    after a delay). Every request's prompt is recorded in `prompts`.
    """

    def __init__(self, reply: Callable[[str], str | int | tuple[float, str]]):
        self.reply = reply
        self.prompts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                server.prompts.append(prompt)
                answer = server.reply(prompt)
                if isinstance(answer, tuple):
                    time.sleep(answer[0])
                    answer = answer[1]
                if isinstance(answer, int):
                    payload, status = {"error": {"message": "server error"}}, answer
                else:
                    payload, status = _completion(body["model"], answer), 200
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LoopbackChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def _completion(model: str, content: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
