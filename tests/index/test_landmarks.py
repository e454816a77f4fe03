"""The landmark table against a brute-force oracle: exact hash equality, add/remove, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.errors import FormatError
from guard.index.landmarks import LandmarkIndex


def oracle(stored: list[tuple[int, np.ndarray, np.ndarray]], query: np.ndarray, max_bucket: int) -> set[tuple]:
    """Every (query position, reference, time) whose hashes are equal, comparing all with all."""
    rows = [(int(h), ref, float(np.float32(t))) for ref, times, hashes in stored for t, h in zip(times, hashes)]
    bucket = {}
    for h, _, _ in rows:
        bucket[h] = bucket.get(h, 0) + 1
    return {(i, ref, t) for i, q in enumerate(query.tolist()) for h, ref, t in rows
            if h == q and bucket[h] <= max_bucket}


def found(index: LandmarkIndex, query: np.ndarray) -> set[tuple]:
    hits = index.search(query)
    return set(zip(hits.query_index.tolist(), hits.ref_ids.tolist(), hits.ref_times.tolist()))


references = st.lists(
    st.tuples(st.integers(0, 5), st.lists(st.tuples(st.floats(0, 3600, width=32), st.integers(0, 40)), max_size=30)),
    max_size=6)


@settings(max_examples=60, deadline=None)
@given(references, st.lists(st.integers(0, 45), max_size=20), st.integers(1, 6), st.sampled_from([None, 0, 3]))
def test_search_equals_the_oracle(refs, query, max_bucket, removed):
    index = LandmarkIndex(max_bucket=max_bucket)
    stored = []
    for ref, rows in refs:
        times = np.array([t for t, _ in rows], np.float64)
        hashes = np.array([h for _, h in rows], np.uint32)
        index.add(ref, times, hashes)
        stored.append((ref, times, hashes))
    if removed is not None:
        count = sum(len(t) for r, t, _ in stored if r == removed)
        assert index.remove(removed) == count
        stored = [s for s in stored if s[0] != removed]
    q = np.array(query, np.uint32)
    assert found(index, q) == oracle(stored, q, max_bucket)
    assert len(index) == sum(len(t) for _, t, _ in stored)
    hits = index.search(q)
    assert np.all(np.diff(hits.query_index) >= 0)  # grouped by query landmark, in order


def test_appends_while_serving_and_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    index = LandmarkIndex()
    index.add(1, rng.uniform(0, 60, 500), rng.integers(0, 1 << 20, 500))
    query = rng.integers(0, 1 << 20, 200).astype(np.uint32)
    first = found(index, query)
    index.add(2, np.arange(5.0), query[:5])  # a live reference grows; no rebuild asked for
    grown = found(index, query)
    assert first < grown and {(i, 2, float(i)) for i in range(5)} <= grown
    path = tmp_path / "audio.landmarks"
    index.save(path)
    loaded = LandmarkIndex.load(path)
    assert len(loaded) == len(index) and found(loaded, query) == grown
    assert loaded.references().tolist() == [1, 2]
    assert loaded.memory_bytes() == 12 * len(loaded)


def test_files_of_another_kind_or_version_are_refused(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("guard-landmarks"), version=np.array(99), max_bucket=np.array(1),
             hashes=np.zeros(0, np.uint32), ref_ids=np.zeros(0, np.int32), times=np.zeros(0, np.float32))
    with pytest.raises(FormatError, match="version 99"):
        LandmarkIndex.load(other)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a table")
    with pytest.raises(FormatError):
        LandmarkIndex.load(junk)


def test_bad_additions_are_refused():
    index = LandmarkIndex()
    with pytest.raises(ValueError):
        index.add(1, [0.0, 1.0], [5])
    with pytest.raises(ValueError):
        index.add(-1, [0.0], [5])
    assert len(index.search(np.zeros(0, np.uint32))) == 0
