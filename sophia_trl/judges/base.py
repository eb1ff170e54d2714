"""The thinking judge's interface and its cache.

A thinking judge reads a question (with its image, when there is one) and a model's response, and returns one score in
[0, 1] for the quality of the reasoning, as the thinking reward model of SophiaVL-R1 (arXiv 2505.17018) does. Every
backend implements one interface:

```python
judge.score(questions, responses, images=None) -> list[float | None]
```

`None` marks a failed or unparsable judgement; callers turn it into NaN, never into 0, so a failure is not mistaken for
"bad reasoning". The base class keeps a small cache keyed by (question, response, image hash), so a completion that
is sampled twice is judged once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

from PIL import Image

logger = logging.getLogger(__name__)


# A row's images as the judges take them: `None` (a text-only row), one image, or the row's images in order.
RowImages = Image.Image | Sequence[Image.Image] | None


def image_list(images: RowImages) -> list[Image.Image]:
    """A row's images as a list, in order: `[]` for a text-only row (`None` or an empty list), `[image]` for one."""
    if images is None:
        return []
    # One image: a PIL image, or an image not yet opened (a path, raw bytes, a datasets `{"bytes", "path"}` dict).
    if isinstance(images, Image.Image | str | bytes | dict | os.PathLike):
        return [images]
    return list(images)


def image_hash(images: RowImages) -> str | None:
    """A content hash of a row's images (mode, size and pixels of each, in order), so equal inputs share cache entries;
    `None` for a text-only row."""
    images = image_list(images)
    if not images:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for image in images:
        digest.update(f"{image.mode}:{image.size}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def row_image_hashes(images: Sequence[RowImages]) -> list[str | None]:
    """[`image_hash`] of each row's images, computed once per distinct image object: a GRPO group's rows share their
    prompt's image, and hashing a paper-scale image costs about as much as sending the judge request."""
    hashes: dict[tuple[int, ...], str | None] = {}
    result = []
    for row_images in images:
        ids = tuple(id(image) for image in image_list(row_images))
        if ids not in hashes:
            hashes[ids] = image_hash(row_images)
        result.append(hashes[ids])
    return result


class ThinkingJudge:
    """Base class of the thinking judges: scores the reasoning of responses, with a cache of past judgements.

    Subclasses implement `_score_uncached(questions, responses, images)`, which scores rows the cache does not hold and
    returns one `float | None` per row. [`ThinkingJudge.score`] checks its inputs, serves repeated rows from the cache
    (within one call and across calls) and stores new successful scores. Failures (`None`) are not cached, so a row
    that failed is asked again the next time.

    Args:
        cache_size (`int`, *optional*, defaults to `4096`):
            Number of judgements kept (least recently used evicted first). `0` disables the cache.

    Attributes:
        num_requests (`int`): Rows sent to the backend since creation.
        num_cache_hits (`int`): Rows answered from the cache (including duplicates within one call).
        num_failures (`int`): Rows the backend returned `None` for.
    """

    def __init__(self, cache_size: int = 4096):
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}.")
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str, str | None], float] = OrderedDict()
        # score() may be called from several threads (e.g. a reward function in a thread pool).
        self._lock = threading.Lock()
        self.num_requests = 0
        self.num_cache_hits = 0
        self.num_failures = 0

    def score(
        self,
        questions: list[str],
        responses: list[str],
        images: list[RowImages] | None = None,
    ) -> list[float | None]:
        """Scores the reasoning of each response.

        Args:
            questions (`list[str]`):
                The question of each row.
            responses (`list[str]`):
                The response to judge in each row (the full completion text).
            images (`list[PIL.Image.Image | list[PIL.Image.Image] | None]` or `None`, *optional*, defaults to `None`):
                The image of each row, a list of images for a row with several (all of them reach the judge, in
                order), `None` for a text-only row; `None` for the whole argument when no row has one.

        Returns:
            `list[float | None]`: One score in [0, 1] per row, `None` where the judge failed or gave no score.
        """
        n = len(questions)
        if len(responses) != n:
            raise ValueError(f"Got {n} questions but {len(responses)} responses; pass one question per response.")
        if images is None:
            images = [None] * n
        elif len(images) != n:
            raise ValueError(
                f"Got {n} questions but {len(images)} images; pass one entry per question: an image, a list of the "
                "question's images, or None."
            )
        for i, (q, r) in enumerate(zip(questions, responses)):
            if not isinstance(q, str) or not isinstance(r, str):
                raise TypeError(
                    f"Row {i}: question and response must be strings, got {type(q).__name__} and {type(r).__name__}."
                )

        keys = [(q, r, h) for q, r, h in zip(questions, responses, row_image_hashes(images))]
        results: list[float | None] = [None] * n
        todo: dict[tuple[str, str, str | None], list[int]] = {}  # first occurrence order = request order
        with self._lock:
            for i, key in enumerate(keys):
                if key in self._cache:
                    self._cache.move_to_end(key)
                    results[i] = self._cache[key]
                    self.num_cache_hits += 1
                elif key in todo:
                    todo[key].append(i)
                    self.num_cache_hits += 1
                else:
                    todo[key] = [i]
        if not todo:
            return results

        rows = [idx[0] for idx in todo.values()]
        scores = self._score_uncached(
            [questions[i] for i in rows], [responses[i] for i in rows], [images[i] for i in rows]
        )
        if len(scores) != len(rows):
            raise RuntimeError(f"{type(self).__name__} returned {len(scores)} scores for {len(rows)} rows.")

        num_failed = 0
        with self._lock:
            self.num_requests += len(rows)
            for (key, idx), value in zip(todo.items(), scores):
                for i in idx:
                    results[i] = value
                if value is None:
                    num_failed += 1
                elif self.cache_size > 0:
                    self._cache[key] = value
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            self.num_failures += num_failed
        if num_failed:
            logger.warning(
                "%s: %d of %d judgements failed or had no score.", type(self).__name__, num_failed, len(rows)
            )
        return results

    def _score_uncached(
        self, questions: list[str], responses: list[str], images: list[RowImages]
    ) -> list[float | None]:
        """Scores rows that are not in the cache; one `float | None` per row."""
        raise NotImplementedError(f"{type(self).__name__} must implement _score_uncached.")

    def clear_cache(self) -> None:
        """Forgets every cached judgement."""
        with self._lock:
            self._cache.clear()
