"""RequestBodyEncoder: the bytes of `json.dumps(body).encode()`, each long image data URL JSON-encoded once per batch."""

import copy
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sophia_trl.judges import request_body
from sophia_trl.judges.messages import build_openai_messages, image_to_data_url
from sophia_trl.judges.request_body import SPLICE_MIN_CHARS, RequestBodyEncoder


def long_url(seed: int, size: int = 64) -> str:
    """A PNG data URL of random pixels, longer than SPLICE_MIN_CHARS."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
    url = image_to_data_url(image)
    assert len(url) >= SPLICE_MIN_CHARS
    return url


URLS = [long_url(0), long_url(1)]
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['"', "\\", "\x00", 'sophia-image-"', "\n\t", "é ☃ 😀", '"sophia-image-0"']
)
blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(lambda i: {"type": "image_url", "image_url": {"url": URLS[i]}}, st.integers(0, 1)),
    st.builds(lambda t: {"type": "image_url", "image_url": {"url": "data:image/png;base64," + t}}, texts),  # short
    st.builds(lambda t: {"type": "image_url", "image_url": t}, texts),  # not a dict: left to json.dumps
)
messages = st.lists(
    st.one_of(
        st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user"]), texts),
        st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["user", "assistant"]), st.lists(blocks)),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(messages=messages, max_tokens=st.integers(1, 64), extra=st.dictionaries(st.sampled_from(["a", "é"]), texts))
def test_bytes_equal_json_dumps(messages, max_tokens, extra):
    body = {"model": "judge", "messages": messages, "max_tokens": max_tokens, **extra}
    before = copy.deepcopy(body)
    encoder = RequestBodyEncoder()
    assert encoder.encode(body) == json.dumps(body).encode()
    assert encoder.encode(body) == json.dumps(body).encode()  # again, from the cache
    assert body == before  # the caller's messages are not modified


def encode_recording_dumps(encoder, bodies, monkeypatch):
    """Each body through `encoder`, and every object the encoder passed to `json.dumps` on the way."""
    dumped = []
    real_dumps = json.dumps
    monkeypatch.setattr(
        request_body.json, "dumps", lambda obj, *a, **k: dumped.append(obj) or real_dumps(obj, *a, **k)
    )
    encoded = [encoder.encode(body) for body in bodies]
    monkeypatch.undo()
    return encoded, dumped


def test_a_group_of_judge_requests_encodes_its_image_once(monkeypatch):
    rng = random.Random(2)
    image = Image.frombytes("RGB", (48, 48), bytes(rng.randrange(256) for _ in range(48 * 48 * 3)))
    url = image_to_data_url(image)
    assert len(url) >= SPLICE_MIN_CHARS
    bodies = [
        {"model": "judge", "messages": build_openai_messages("Q?", f"<think>step {i}</think>", image, image_url=url)}
        for i in range(8)
    ]
    encoder = RequestBodyEncoder()
    encoded, dumped = encode_recording_dumps(encoder, bodies, monkeypatch)
    assert encoded == [json.dumps(body).encode() for body in bodies]
    assert sum(1 for obj in dumped if obj == url) == 1  # the URL's JSON: once for the 8 requests
    assert all(url not in json.dumps(obj) for obj in dumped if obj != url)  # the bodies went without it
    encoder.clear()
    assert encoder.encode(bodies[0]) == encoded[0]


def test_a_row_with_several_images_splices_each_one(monkeypatch):
    images = [Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")]  # URLs stand-ins: URLS[0], URLS[1]
    bodies = [
        {"model": "judge", "messages": build_openai_messages("Q?", f"r{i}", images, image_url=URLS)} for i in range(3)
    ]
    encoder = RequestBodyEncoder()
    encoded, dumped = encode_recording_dumps(encoder, bodies, monkeypatch)
    assert encoded == [json.dumps(body).encode() for body in bodies]
    assert [obj for obj in dumped if isinstance(obj, str)] == URLS  # each URL's JSON once, in order of first use
    assert all(u not in json.dumps(obj) for obj in dumped if not isinstance(obj, str) for u in URLS)  # no fallback


def test_the_marker_in_the_text_falls_back_to_plain_encoding():
    encoder = RequestBodyEncoder()
    marker = encoder._marker
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f'"{marker}0"'},
                    {"type": "image_url", "image_url": {"url": URLS[0]}},
                ],
            }
        ]
    }
    assert encoder.encode(body) == json.dumps(body).encode()


@pytest.mark.parametrize(
    "url", ["data:image/png;base64,AAAA", "https://example.com/image.png" + "x" * SPLICE_MIN_CHARS]
)
def test_short_and_remote_urls_are_encoded_with_the_body(url):
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    encoder = RequestBodyEncoder()
    assert encoder.encode(body) == json.dumps(body).encode()
    assert not encoder._encoded
