"""The judge interface (`sophia_trl.judges.base`): input checks, the cache and the image hash."""

import pytest
from PIL import Image

from sophia_trl.judges import ThinkingJudge, image_hash


def test_image_hash_depends_on_pixels_not_identity():
    a, b = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "red")
    assert image_hash(a) == image_hash(b)
    assert image_hash(a) != image_hash(Image.new("RGB", (8, 8), "blue"))
    assert image_hash(a) != image_hash(Image.new("RGB", (8, 4), "red"))
    assert image_hash(None) is None


class TableJudge(ThinkingJudge):
    """Scores from a dict keyed by response; records what reached the backend."""

    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = table
        self.calls = []

    def _score_uncached(self, questions, responses, images):
        self.calls.append(list(zip(questions, responses, [image_hash(i) for i in images])))
        return [self.table.get(r) for r in responses]


def test_cache_serves_repeats_within_and_across_calls():
    judge = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3})
    red = Image.new("RGB", (8, 8), "red")
    assert judge.score(["q", "q", "q", "q"], ["a", "b", "a", "b"], [None, None, None, red]) == [0.1, 0.2, 0.1, 0.2]
    # "b" with and without the image are different rows; the duplicate "a" was not sent.
    assert [r for _, r, _ in judge.calls[0]] == ["a", "b", "b"]
    assert (judge.num_requests, judge.num_cache_hits) == (3, 1)

    assert judge.score(["q", "q"], ["a", "c"], [None, None]) == [0.1, 0.3]
    assert [r for _, r, _ in judge.calls[1]] == ["c"]
    assert (judge.num_requests, judge.num_cache_hits) == (4, 2)

    # Same response, other question: not a cache hit.
    judge.score(["other"], ["a"])
    assert judge.calls[2] == [("other", "a", None)]


def test_failures_are_none_and_not_cached():
    judge = TableJudge({"a": 0.5})
    assert judge.score(["q", "q"], ["a", "unknown"]) == [0.5, None]
    assert judge.num_failures == 1
    judge.table["unknown"] = 0.0
    assert judge.score(["q"], ["unknown"]) == [0.0]  # asked again, and a real 0 comes back as 0
    assert len(judge.calls) == 2


def test_cache_evicts_least_recently_used():
    judge = TableJudge({"a": 0.1, "b": 0.2, "c": 0.3}, cache_size=2)
    judge.score(["q", "q"], ["a", "b"])
    judge.score(["q"], ["a"])  # touch "a": "b" is now the oldest
    judge.score(["q"], ["c"])  # evicts "b"
    judge.score(["q", "q"], ["a", "b"])
    assert [r for _, r, _ in judge.calls[-1]] == ["b"]


def test_cache_disabled():
    judge = TableJudge({"a": 0.1}, cache_size=0)
    judge.score(["q"], ["a"])
    judge.score(["q"], ["a"])
    assert len(judge.calls) == 2


@pytest.mark.parametrize(
    "questions, responses, images, error, match",
    [
        (["q"], ["a", "b"], None, ValueError, "1 questions but 2 responses"),
        (["q", "q"], ["a", "b"], [None], ValueError, "2 questions but 1 images"),
        (["q", None], ["a", "b"], None, TypeError, "Row 1"),
    ],
)
def test_score_rejects_bad_input(questions, responses, images, error, match):
    with pytest.raises(error, match=match):
        TableJudge({}).score(questions, responses, images)


def test_empty_input():
    judge = TableJudge({})
    assert judge.score([], []) == []
    assert judge.calls == []
