"""The FAISS index answers exactly like the brute-force oracle, through adds, removals and reloads."""

import numpy as np
import pytest

from guard.errors import StoreError
from guard.index import BruteForceIndex, FaissBinaryIndex
from guard.index import faiss_binary

BITS = 256


def _codes(rng, n):
    return rng.integers(0, 256, (n, BITS // 8), dtype=np.uint8)


def _near(rng, codes, flips):
    """Copies of ``codes`` with ``flips`` random bits flipped in each."""
    bits = np.unpackbits(codes, axis=1)
    for row in bits:
        row[rng.choice(BITS, flips, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _assert_same(a, b):
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.distances, b.distances)


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    codes = _codes(rng, 4000)
    ids = np.arange(4000, dtype=np.int64) * 11 + 5
    fast, oracle = FaissBinaryIndex(BITS), BruteForceIndex(BITS)
    fast.add(ids, codes)
    oracle.add(ids, codes)
    return rng, codes, ids, fast, oracle


@pytest.mark.parametrize("radius,flips", [(0, 0), (40, 20), (72, 60), (100, 90)])
def test_radius_search_matches_oracle(pair, radius, flips):
    rng, codes, _, fast, oracle = pair
    queries = _near(rng, codes[rng.choice(len(codes), 60, replace=False)], flips)
    result = fast.search(queries, radius, max_hits=16)
    _assert_same(result, oracle.search(queries, radius, max_hits=16))
    assert len(result.ids) >= 60 if flips <= radius else True


def test_remove_matches_oracle_and_hides_vectors(pair):
    rng, codes, ids, fast, oracle = pair
    gone = ids[::3]
    assert fast.remove(gone) == oracle.remove(gone) == len(gone)
    assert len(fast) == len(oracle) == len(ids) - len(gone)
    result = fast.search(codes[:30], 0, max_hits=4)
    _assert_same(result, oracle.search(codes[:30], 0, max_hits=4))
    assert not np.isin(result.ids, gone).any()


def test_save_and_load_round_trip(pair, tmp_path):
    rng, codes, _, fast, oracle = pair
    path = tmp_path / "index.faiss"
    fast.save(path)
    loaded = FaissBinaryIndex.load(path, BITS)
    queries = _near(rng, codes[:50], 10)
    _assert_same(loaded.search(queries, 30, 8), oracle.search(queries, 30, 8))


def test_load_refuses_damaged_file_and_other_width(pair, tmp_path):
    _, _, _, fast, _ = pair
    broken = tmp_path / "broken.faiss"
    broken.write_bytes(b"not an index at all")
    with pytest.raises(StoreError, match="unreadable index"):
        FaissBinaryIndex.load(broken, BITS)
    path = tmp_path / "index.faiss"
    fast.save(path)
    with pytest.raises(StoreError, match="256-bit"):
        FaissBinaryIndex.load(path, 64)


def test_multihash_kind_for_large_indexes_finds_seeds_and_removes(monkeypatch):
    monkeypatch.setattr(faiss_binary, "MULTIHASH_FROM", 1000)
    rng = np.random.default_rng(5)
    codes = _codes(rng, 3000)
    ids = np.arange(3000, dtype=np.int64)
    index = FaissBinaryIndex(BITS, size_hint=len(codes))
    assert index.kind == "multihash"
    index.add(ids, codes)
    oracle = BruteForceIndex(BITS)
    oracle.add(ids, codes)
    queries = _near(rng, codes[:200], 6)
    got = index.search(queries, 20, 4)
    want = oracle.search(queries, 20, 4)
    recall = np.isin(want.ids, got.ids).mean()
    assert recall >= 0.95
    assert np.array_equal(got.distances[np.isin(got.ids, want.ids)],
                          want.distances[np.isin(want.ids, got.ids)])
    assert index.remove(ids[:100]) == 100
    assert not np.isin(index.search(codes[:100], 0, 4).ids, ids[:100]).any()
    exact = index.search(codes[100:300], 0, 4)  # kept codes survive the rebuild unchanged
    assert np.array_equal(exact.ids, ids[100:300]) and not exact.distances.any()


def test_multihash_survives_save_load_and_shrinking_to_flat(monkeypatch, tmp_path):
    monkeypatch.setattr(faiss_binary, "MULTIHASH_FROM", 1000)
    rng = np.random.default_rng(6)
    codes, ids = _codes(rng, 1500), np.arange(1500, dtype=np.int64)
    index = FaissBinaryIndex(BITS, size_hint=len(codes))
    index.add(ids, codes)
    index.save(tmp_path / "mh.faiss")
    loaded = FaissBinaryIndex.load(tmp_path / "mh.faiss", BITS)
    assert loaded.kind == "multihash"
    queries = _near(rng, codes[:50], 3)
    assert np.array_equal(loaded.search(queries, 3, 2).ids, ids[:50])
    loaded.remove(ids[:800])  # 700 left: rebuilt as flat, codes unshuffled
    assert loaded.kind == "flat"
    oracle = BruteForceIndex(BITS)
    oracle.add(ids[800:], codes[800:])
    q = _near(rng, codes[800:900], 10)
    _assert_same(loaded.search(q, 24, 4), oracle.search(q, 24, 4))


def test_brute_force_oracle_agrees_with_scipy(pair):
    """The oracle itself is checked against SciPy's exact Hamming distances over unpacked bits."""
    from scipy.spatial.distance import cdist

    rng, codes, ids, _, oracle = pair
    queries = _near(rng, codes[:40], 12)
    radius = 20
    dist = np.rint(cdist(np.unpackbits(queries, axis=1).astype(bool), np.unpackbits(codes, axis=1).astype(bool),
                         metric="hamming") * BITS).astype(int)
    ours = oracle.search(queries, radius, max_hits=1000)
    for i in range(len(queries)):
        got_ids, got_dist = ours.for_query(i)
        near = np.flatnonzero(dist[i] <= radius)
        order = np.lexsort((ids[near], dist[i][near]))
        assert np.array_equal(got_ids, ids[near][order])
        assert np.array_equal(got_dist, dist[i][near][order])
