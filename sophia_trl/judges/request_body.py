"""The JSON body of a chat-completions request, with its images' data URLs encoded once per batch, not once per request.

A group's G requests carry the same image, and at paper scale its base64 data URL is most of each body (~700 KB for a
448x448 PNG): `json.dumps` scans every character of it for each request (~2.6 ms on one CPU core), more than everything
else the client does for a request. [`RequestBodyEncoder`] encodes each distinct data URL to JSON once and splices
those bytes into every body that carries it; the bytes it returns are exactly `json.dumps(body).encode()`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

# Data URLs shorter than this are encoded with the rest of the body: splicing them would save less than it costs.
SPLICE_MIN_CHARS = 4096


class RequestBodyEncoder:
    """
    `json.dumps(body).encode()` for chat-completions bodies, each long data URL encoded once.

    Keeps the JSON of the data URLs it has seen until [`clear`] is called (the client clears it after each batch), keyed
    by the URL string: a group's requests share one URL object, whose hash Python computes once.
    """

    def __init__(self) -> None:
        self._encoded: dict[str, bytes] = {}
        # A marker no message text contains by chance; checked after encoding, with a plain fallback.
        self._marker = f"sophia-image-{uuid.uuid4().hex}-"

    def clear(self) -> None:
        self._encoded.clear()

    def encode(self, body: dict[str, Any]) -> bytes:
        """The bytes of `json.dumps(body).encode()`; `body["messages"]` is not modified."""
        urls: list[str] = []
        messages = [self._with_markers(m, urls) for m in body.get("messages", [])]
        if not urls:
            return json.dumps(body).encode()
        text = json.dumps({**body, "messages": messages})
        pieces = text.split(f'"{self._marker}')
        if len(pieces) != len(urls) + 1:  # the marker also occurs in the text itself
            return json.dumps(body).encode()
        out = [pieces[0].encode()]
        for position, (url, piece) in enumerate(zip(urls, pieces[1:])):
            index, _, rest = piece.partition('"')
            if index != str(position):
                return json.dumps(body).encode()
            out.append(self._url_json(url))
            out.append(rest.encode())
        return b"".join(out)

    def _url_json(self, url: str) -> bytes:
        encoded = self._encoded.get(url)
        if encoded is None:
            encoded = self._encoded[url] = json.dumps(url).encode()
        return encoded

    def _with_markers(self, message: Any, urls: list[str]) -> Any:
        """`message` with each long data URL of its `image_url` blocks replaced by a numbered marker (a copy of the
        parts that change), the URLs appended to `urls` in order."""
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return message
        blocks = []
        for block in content:
            image_url = block.get("image_url") if isinstance(block, dict) else None
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if isinstance(url, str) and url.startswith("data:") and len(url) >= SPLICE_MIN_CHARS:
                block = {**block, "image_url": {**block["image_url"], "url": f"{self._marker}{len(urls)}"}}
                urls.append(url)
            blocks.append(block)
        return {**message, "content": blocks}
