"""The completion cache on shared storage: per-process segments folded by the driver."""

from __future__ import annotations

import pytest

from helpsteer.llm import segments
from helpsteer.llm.cache import CompletionCache, open_cache
from helpsteer.llm.segments import SEGMENTS, SegmentCache, compact
from helpsteer.llm.types import Completion


def _done(text: str) -> Completion:
    return Completion(texts=[text])


def test_writers_keep_their_own_files_and_read_the_main_database(tmp_path):
    main = CompletionCache(tmp_path)
    main.put("k0", "m", _done("from the driver"))
    main.close()
    one, two = SegmentCache(tmp_path, "host-1"), SegmentCache(tmp_path, "host-2")
    one.put("k1", "m", _done("one"))
    two.put("k2", "m", _done("two"))
    two.put_failed("k3", "m", "400: bad request")
    assert one.get("k0").texts == ["from the driver"]  # the main database
    assert one.get("k1").texts == ["one"] and one.get("k2") is None  # not the other's file
    assert sorted(p.name for p in (tmp_path / SEGMENTS).glob("*.sqlite")) == [
        "host-1.sqlite",
        "host-2.sqlite",
    ]
    one.close()
    two.close()


def test_compact_folds_every_segment_once(tmp_path):
    for name, keys in (("a", ["k1", "k2"]), ("b", ["k2", "k3"])):
        part = SegmentCache(tmp_path, name)
        for key in keys:
            part.put(key, "m", _done(f"{name}:{key}"))
        part.put_failed("bad", "m", "schema never validated")
        part.close()
    assert compact(tmp_path) == 3
    assert not list((tmp_path / SEGMENTS).iterdir())
    main = CompletionCache(tmp_path)
    assert main.keys() == {"k1", "k2", "k3"}
    assert main.get("k2").texts == ["a:k2"]  # the first segment's answer, no duplicate
    assert main.failure("bad") == "schema never validated"
    main.close()
    assert compact(tmp_path) == 0


def test_a_success_in_a_segment_clears_a_recorded_failure(tmp_path):
    main = CompletionCache(tmp_path)
    main.put_failed("k", "m", "400")
    main.close()
    part = SegmentCache(tmp_path, "w")
    assert part.failure("k") == "400"
    part.put("k", "m", _done("fixed with --retry-failed"))
    assert part.failure("k") is None
    part.close()
    compact(tmp_path)
    main = CompletionCache(tmp_path)
    assert main.failure("k") is None and main.get("k").texts == ["fixed with --retry-failed"]
    main.close()


def test_a_worker_sees_what_the_driver_folded_in_later(tmp_path):
    reader = SegmentCache(tmp_path, "reader")
    assert reader.get("k") is None
    other = SegmentCache(tmp_path, "other")
    other.put("k", "m", _done("finished elsewhere"))
    other.close()
    assert reader.get("k") is None  # another worker's segment is not read
    compact(tmp_path)
    assert reader.get("k").texts == ["finished elsewhere"]
    reader.close()


@pytest.fixture()
def as_worker():
    segments.become_writer("test-worker")
    yield
    segments.WRITER = None


def test_open_cache_gives_a_worker_its_segment(tmp_path, as_worker):
    cache = open_cache(tmp_path)
    assert isinstance(cache, SegmentCache)
    assert cache.path == tmp_path / SEGMENTS / "test-worker.sqlite"
    cache.close()
