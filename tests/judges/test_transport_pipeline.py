"""How `OpenAIChatClient` keeps its slots busy: a slot's next request goes out as soon as its reply is read, a request
waiting to retry leaves its slot to the others, and a group's shared image is hashed once."""

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sophia_trl.judges import OpenAIChatClient, image_hash
from sophia_trl.judges import base as judges_base
from sophia_trl.judges.base import row_image_hashes


class _WaveSession:
    """Stands in for the aiohttp session: holds the replies until `wave` requests wait, then releases them all in one
    loop iteration, as the replies of a server's batch arrive together. Logs `send i` and `read i`."""

    def __init__(self, wave: int):
        self.wave = wave
        self.events: list[str] = []
        self.waiting: list[asyncio.Future] = []

    def post(self, url, data, **kwargs):
        session = self
        index = json.loads(data)["messages"][0]["content"]

        class Response:
            status = 200

            async def read(self):
                session.events.append(f"read {index}")
                return json.dumps({"choices": [{"message": {"content": f"reply {index}"}}]}).encode()

        class Post:
            async def __aenter__(self):
                session.events.append(f"send {index}")
                arrived = asyncio.get_running_loop().create_future()
                session.waiting.append(arrived)
                if len(session.waiting) == session.wave:
                    wave, session.waiting = session.waiting, []
                    asyncio.get_running_loop().call_soon(lambda: [f.set_result(None) for f in wave])
                await arrived
                return Response()

            async def __aexit__(self, *exc_info):
                return False

        return Post()


def test_a_slots_next_request_goes_out_as_soon_as_its_reply_is_read():
    # One task per request would read the whole wave before any slot's next request went out (read 0-3, send 4-7):
    # the next wave would then start only after the last reply of this one had been read.
    with OpenAIChatClient("http://127.0.0.1:9/v1", "judge", max_concurrency=4) as client:

        async def start_session():  # on the client's loop, which its session belongs to
            client._ensure_client()

        client._loop_thread.run(start_session())
        session = _WaveSession(wave=4)
        client._session = session
        replies = client.complete([[{"role": "user", "content": str(i)}] for i in range(8)])
    assert replies == [f"reply {i}" for i in range(8)]
    assert session.events[:4] == ["send 0", "send 1", "send 2", "send 3"]
    assert session.events[4:12] == ["read 0", "send 4", "read 1", "send 5", "read 2", "send 6", "read 3", "send 7"]


def test_a_request_waiting_to_retry_leaves_its_slot_to_the_others(loopback_server):
    server = loopback_server(service_time=0.2)
    arrivals = []  # (request text, chat requests in flight when it arrived)
    reply = server._reply

    def recording_reply(body):
        arrivals.append((body["messages"][-1]["content"][-1]["text"], server._in_flight))
        return reply(body)

    server._reply = recording_reply
    conversations = [[{"role": "user", "content": [{"type": "text", "text": "[[flaky:1]] q"}]}]] + [
        [{"role": "user", "content": [{"type": "text", "text": f"q{i} score=0.3"}]}] for i in range(6)
    ]
    # A backoff far longer than the 5 other requests take on 2 slots (0.6 s), so a loaded machine does not change the
    # count below.
    with OpenAIChatClient(
        server.url, "judge", max_concurrency=2, max_retries=1, backoff=3.0, max_backoff=3.0
    ) as client:
        replies = client.complete(conversations)
    assert replies == ["<answer>0.5</answer>"] + ["<answer>0.3</answer>"] * 6  # no score and no image: 0.5
    texts = [text for text, _ in arrivals]
    assert texts.count("[[flaky:1]] q") == 2 and client.num_retries == 1
    # While the flaky request waits out its 3 s backoff, both slots keep serving the other requests.
    first, retry = (i for i, text in enumerate(texts) if text == "[[flaky:1]] q")
    assert first in (0, 1)  # its first attempt went out with the first pair of requests, in either order
    during_backoff = arrivals[2:retry]  # after that pair, before the retry
    assert len(during_backoff) == 5 and max(in_flight for _, in_flight in during_backoff) == 2


_IMAGES = [Image.new("RGB", (8, 8), color) for color in ("red", "red", "blue")]  # two equal, one different


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(_IMAGES), st.lists(st.sampled_from(_IMAGES), max_size=3))))
def test_row_image_hashes_equal_image_hash_of_each_row(rows):
    assert row_image_hashes(rows) == [image_hash(row) for row in rows]


def test_a_shared_image_is_hashed_once(monkeypatch):
    calls = []
    monkeypatch.setattr(judges_base, "image_hash", lambda images: calls.append(images) or "h")
    group = Image.new("RGB", (8, 8), "red")
    other = Image.new("RGB", (8, 8), "red")  # equal pixels, another object: hashed again (a hash decides equality)
    assert row_image_hashes([group] * 8 + [other, [group, other], [group, other], None]) == ["h"] * 11 + ["h"]
    assert calls == [group, other, [group, other], None]
