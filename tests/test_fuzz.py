"""Property-based fuzzing (hypothesis) of the matcher and of the index protocol.

The matcher gets random references, queries with planted copies (shifted, sped up, noisy),
random hit sets and masked readings: it must never raise, and every segment must lie inside
the query's and its reference's time spans with its fraction and score in [0, 1]. The FAISS
index must answer exactly like the brute-force oracle through adds, removals and a save/load;
masked search and hit merging are checked against plain-Python oracles. Bulk codes come from a
drawn seed (fast, reproducible); sizes, radii, rates and layouts are drawn by hypothesis.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.config import MatchSettings
from guard.index import BruteForceIndex, FaissBinaryIndex
from guard.index.base import Hits, limit_hits, merge_hits
from guard.index.brute import masked_search
from guard.match import ID_SHIFT, RefFrames, find_segments, vector_ids, with_mirrored
from guard.models import MaskedCodes
from guard.signals.base import hamming, masked_hamming

BITS = 256
BYTES = BITS // 8
FPS = 4.0
PERIOD = 1.0 / FPS
MATCH = MatchSettings()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The widest property costs the most per example; 100 keep the file well under 30 s.
FUZZ_WIDE = settings(FUZZ, max_examples=100)

seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """FAISS searches of a few hundred codes on one thread: OpenMP workers would spin on the
    shared cores for nothing (restored after the module)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def _flip(rng: np.random.Generator, codes: np.ndarray, bits: int) -> np.ndarray:
    """``codes`` with ``bits`` random bits flipped in each row."""
    unpacked = np.unpackbits(codes, axis=1)
    if bits and len(codes):
        chosen = np.argpartition(rng.random(unpacked.shape), bits - 1, axis=1)[:, :bits]
        np.put_along_axis(unpacked, chosen, 1 - np.take_along_axis(unpacked, chosen, axis=1), axis=1)
    return np.packbits(unpacked, axis=1)


def _increasing_times(draw, rng: np.random.Generator, n: int) -> np.ndarray:
    """Sampled-frame times: the regular 4 fps grid from some start, or irregular steps."""
    start = draw(st.floats(0.0, 60.0, allow_nan=False))
    if draw(st.booleans()):
        return start + np.arange(n) * PERIOD
    steps = rng.uniform(0.01, draw(st.sampled_from([0.5, 3.0, 20.0])), n)
    return np.round(start + np.cumsum(steps), 4)


@st.composite
def worlds(draw):
    """References, a query with planted copies, and the query's hits (from an index or random)."""
    rng = np.random.default_rng(draw(seeds))
    ref_ids = draw(st.lists(st.integers(1, 2**20), min_size=1, max_size=3, unique=True))
    refs: dict[int, RefFrames] = {}
    for ref_id in ref_ids:
        n = draw(st.integers(1, 160))
        codes = rng.integers(0, 256, (n, BYTES), dtype=np.uint8)
        if draw(st.booleans()):  # a static scene: many frames share one picture
            codes[rng.integers(0, n, n // 2)] = codes[0]
        refs[ref_id] = RefFrames(f"ref {ref_id}", draw(st.floats(0.5, 12.0)), _increasing_times(draw, rng, n), codes)

    n_query = draw(st.integers(0, 200))
    times = _increasing_times(draw, rng, n_query)
    codes = rng.integers(0, 256, (n_query, BYTES), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 3)) if n_query else 0):
        ref_id = draw(st.sampled_from(ref_ids))
        ref = refs[ref_id]
        first = draw(st.integers(0, n_query - 1))
        last = draw(st.integers(first, n_query - 1))
        rate = draw(st.sampled_from([1.0, 0.95, 1.05, 0.9, 1.1, 1.03]))
        offset = draw(st.floats(-10.0, 60.0, allow_nan=False))
        noise = draw(st.integers(0, 70))
        predicted = rate * times[first:last + 1] + offset
        nearest = np.clip(np.searchsorted(ref.times, predicted), 0, len(ref.times) - 1)
        codes[first:last + 1] = _flip(rng, ref.codes[nearest], noise)

    masked = None
    if n_query and draw(st.booleans()):
        masks = rng.integers(0, 256, (n_query, BYTES), dtype=np.uint8)
        masks[rng.random(n_query) < 0.5] = 0  # frames without an overlay have no masked reading
        masked = MaskedCodes(_flip(rng, codes, draw(st.integers(0, 40))), masks)

    if draw(st.booleans()):
        index = BruteForceIndex(BITS)
        for ref_id, ref in refs.items():
            index.add(vector_ids(ref_id, len(ref.times)), ref.codes)
        hits = index.search(codes, MATCH.seed_radius, MATCH.max_hits_per_frame)
    else:
        hits = _random_hits(draw, rng, refs, n_query)
    return refs, times, codes, hits, masked


def _random_hits(draw, rng: np.random.Generator, refs: dict[int, RefFrames], n_query: int) -> Hits:
    """Arbitrary hit sets: any frame of any reference, and of references the matcher does not
    know (removed since the search), at any distance within the seed radius."""
    unknown = max(refs) + 1
    counts = rng.integers(0, draw(st.integers(1, MATCH.max_hits_per_frame)) + 1, n_query)
    ids, distances = [], []
    for count in counts:
        for _ in range(count):
            ref_id = int(rng.choice([*refs, unknown]))
            frames = len(refs[ref_id].times) if ref_id in refs else 50
            ids.append((ref_id << ID_SHIFT) | int(rng.integers(0, frames)))
            distances.append(int(rng.integers(0, MATCH.seed_radius + 1)))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return limit_hits(offsets, np.asarray(ids, np.int64), np.asarray(distances, np.int32), MATCH.max_hits_per_frame)


def _assert_sane(segments, refs: dict[int, RefFrames], times: np.ndarray) -> None:
    for s in segments:
        ref = refs[s.reference_id]
        assert times[0] - 1e-9 <= s.query_start < s.query_end <= times[-1] + PERIOD + 1e-9, s
        assert s.duration >= ref.min_seconds - 1e-9, s
        # The reference span is the fitted line at the copy's ends: within the reference's frames,
        # up to the alignment tolerance, one frame period and the fitted rate's freedom (±0.03).
        slack = 2 * MATCH.align_tolerance + max(MATCH.rates) * PERIOD + 0.03 * s.duration + 1e-6
        assert ref.times[0] - slack <= s.reference_start, (s, ref.times[0])
        assert s.reference_end <= ref.times[-1] + slack, (s, ref.times[-1])
        assert s.reference_start <= s.reference_end, s
        assert 0.0 <= s.matched_fraction <= 1.0 and 0.0 <= s.score <= 1.0, s
        assert 1 <= s.matched_frames <= len(times) and 0.0 <= s.mean_distance <= BITS, s
        assert np.isfinite([s.offset, s.rate, s.reference_start, s.reference_end]).all(), s


@FUZZ_WIDE
@given(worlds())
def test_matcher_segments_stay_inside_their_inputs(world):
    refs, times, codes, hits, masked = world
    segments = find_segments(times, codes, hits, refs, PERIOD, MATCH, masked)
    _assert_sane(segments, refs, times)
    assert segments == find_segments(times, codes, hits, refs, PERIOD, MATCH, masked)  # deterministic
    mirrored = with_mirrored(segments, segments[::-1], refs, MATCH.mirror_min_factor)
    assert all(s.modality in ("video", "video-mirrored") for s in mirrored)


@FUZZ
@given(seeds, st.integers(0, 40), st.integers(0, 40), st.floats(0.5, 8.0), st.integers(0, 12))
def test_matcher_finds_a_planted_copy(seed, before, after, min_seconds, noise):
    """An exact-timed copy (a few bits of noise) of a reference with moving pictures, between
    unrelated frames, is found at its offset."""
    rng = np.random.default_rng(seed)
    ref_codes = rng.integers(0, 256, (240, BYTES), dtype=np.uint8)
    refs = {7: RefFrames("ref", min_seconds, np.arange(240) * PERIOD, ref_codes)}
    length = int(np.ceil((min_seconds + 2.0) * FPS))
    start = int(rng.integers(0, 240 - length))
    query = np.concatenate([rng.integers(0, 256, (before, BYTES), dtype=np.uint8),
                            _flip(rng, ref_codes[start:start + length], noise),
                            rng.integers(0, 256, (after, BYTES), dtype=np.uint8)])
    times = np.arange(len(query)) * PERIOD
    index = BruteForceIndex(BITS)
    index.add(vector_ids(7, 240), ref_codes)
    hits = index.search(query, MATCH.seed_radius, MATCH.max_hits_per_frame)
    segments = find_segments(times, query, hits, refs, PERIOD, MATCH)
    _assert_sane(segments, refs, times)
    expected_offset = (start - before) * PERIOD
    found = [s for s in segments if abs(s.offset - expected_offset) <= MATCH.align_tolerance]
    assert len(found) == 1, (segments, expected_offset)
    assert found[0].query_start <= before * PERIOD + 1.0 and found[0].query_end >= (before + length) * PERIOD - 1.0


# -- the index protocol ---------------------------------------------------------------------------


def _assert_same_hits(a: Hits, b: Hits) -> None:
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.distances, b.distances)


@st.composite
def index_runs(draw, widths=(64, 256)):
    """Codes in batches under unique ids, ids to remove, and queries near or far from them."""
    rng = np.random.default_rng(draw(seeds))
    bits = draw(st.sampled_from(widths))
    sizes = draw(st.lists(st.integers(0, 200), min_size=1, max_size=3))
    total = sum(sizes)
    ids = rng.choice(2**40, total, replace=False).astype(np.int64)
    codes = rng.integers(0, 256, (total, bits // 8), dtype=np.uint8)
    if total and draw(st.booleans()):  # duplicated pictures: ties broken by id
        codes[rng.integers(0, total, total // 3)] = codes[0]
    removed = ids[rng.random(total) < draw(st.floats(0.0, 1.0))]
    n_queries = draw(st.integers(0, 40))
    near = codes[rng.integers(0, total, n_queries)] if total else rng.integers(0, 256, (n_queries, bits // 8), np.uint8)
    queries = np.concatenate([_flip(rng, near, draw(st.integers(0, bits // 4))),
                              rng.integers(0, 256, (draw(st.integers(0, 5)), bits // 8), dtype=np.uint8)])
    radius = draw(st.integers(0, bits // 2))
    max_hits = draw(st.integers(1, 60))
    return bits, sizes, ids, codes, removed, queries, radius, max_hits


@FUZZ
@given(index_runs())
def test_faiss_index_answers_like_the_oracle(run):
    bits, sizes, ids, codes, removed, queries, radius, max_hits = run
    fast, oracle = FaissBinaryIndex(bits), BruteForceIndex(bits)
    edges = np.cumsum([0, *sizes])
    for lo, hi in zip(edges[:-1], edges[1:]):
        fast.add(ids[lo:hi], codes[lo:hi])
        oracle.add(ids[lo:hi], codes[lo:hi])
        _assert_same_hits(fast.search(queries, radius, max_hits), oracle.search(queries, radius, max_hits))
    assert fast.remove(removed) == oracle.remove(removed) == len(removed)
    assert len(fast) == len(oracle) == len(ids) - len(removed)
    result = fast.search(queries, radius, max_hits)
    _assert_same_hits(result, oracle.search(queries, radius, max_hits))
    for i in range(len(queries)):
        found, distances = result.for_query(i)
        assert len(found) <= max_hits and (distances <= radius).all()
        assert list(zip(distances, found)) == sorted(zip(distances, found))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.faiss"
        fast.save(path)
        _assert_same_hits(FaissBinaryIndex.load(path, bits).search(queries, radius, max_hits), result)


@FUZZ
@given(index_runs(widths=(BITS,)))
def test_multihash_index_finds_only_true_hits_and_all_close_ones(run):
    """The multi-hash index (large stores) is approximate beyond the seed radius, never wrong:
    its hits are the oracle's, and all of them up to 23 bits (8 tables × 2 flips: some table
    then differs in at most 2 bits)."""
    _, _, ids, codes, removed, queries, radius, _ = run
    fast = FaissBinaryIndex(BITS, size_hint=10**9)
    assert fast.kind == "multihash"
    oracle = BruteForceIndex(BITS)
    fast.add(ids, codes)
    oracle.add(ids, codes)
    fast.remove(removed)
    oracle.remove(removed)
    every = 10**6
    approx, exact = fast.search(queries, radius, every), oracle.search(queries, radius, every)
    for i in range(len(queries)):
        got, got_d = approx.for_query(i)
        want, want_d = exact.for_query(i)
        assert set(zip(got.tolist(), got_d.tolist())) <= set(zip(want.tolist(), want_d.tolist()))
        assert set(want[want_d <= min(radius, 23)].tolist()) <= set(got.tolist())


@FUZZ
@given(seeds, st.integers(0, 120), st.integers(0, 20), st.integers(0, BITS + 1), st.integers(1, 30))
def test_masked_search_agrees_with_a_bitwise_oracle(seed, n_stored, n_queries, radius, max_hits):
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 256, (n_stored, BYTES), dtype=np.uint8)
    ids = rng.choice(2**40, n_stored, replace=False).astype(np.int64)
    queries = rng.integers(0, 256, (n_queries, BYTES), dtype=np.uint8)
    masks = rng.integers(0, 256, (n_queries, BYTES), dtype=np.uint8) & rng.integers(0, 256, (n_queries, BYTES), dtype=np.uint8)
    masks[rng.random(n_queries) < 0.3] = 0
    hits = masked_search(queries, masks, ids, stored, radius, max_hits)
    assert len(hits.offsets) == n_queries + 1
    for i in range(n_queries):
        shown = np.unpackbits(masks[i]).astype(bool)
        expected = []
        if shown.any():
            for j in range(n_stored):
                differ = (np.unpackbits(queries[i]) != np.unpackbits(stored[j]))[shown].sum()
                distance = int(np.rint(differ * BITS / shown.sum()))
                if distance <= radius:
                    expected.append((distance, int(ids[j])))
        got_ids, got_d = hits.for_query(i)
        assert list(zip(got_d.tolist(), got_ids.tolist())) == sorted(expected)[:max_hits]
    if n_queries and n_stored:
        assert masked_hamming(queries[:1], stored[:1], np.zeros((1, BYTES), np.uint8))[0] == BITS + 1
        every_bit = np.full((1, BYTES), 255, np.uint8)
        assert masked_hamming(queries[:1], stored[:1], every_bit)[0] == hamming(queries[:1], stored[:1])[0]


@st.composite
def hit_sets(draw, n_queries: int):
    rows = []
    for _ in range(n_queries):
        pairs = draw(st.dictionaries(st.integers(0, 30), st.integers(0, 64), max_size=8))
        rows.append(pairs)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    ids = np.array([i for r in rows for i in r], np.int64)
    distances = np.array([d for r in rows for d in r.values()], np.int32)
    return limit_hits(offsets, ids, distances, 10**6), rows


@FUZZ
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(hit_sets(n), hit_sets(n))), st.integers(1, 20))
def test_merged_hits_are_the_union_at_the_smaller_distance(pair, max_hits):
    (a, rows_a), (b, rows_b) = pair
    merged = merge_hits(a, b, max_hits)
    for i, (row_a, row_b) in enumerate(zip(rows_a, rows_b)):
        union = {k: min(row_a.get(k, 10**9), row_b.get(k, 10**9)) for k in {*row_a, *row_b}}
        expected = sorted((d, k) for k, d in union.items())[:max_hits]
        ids, distances = merged.for_query(i)
        assert list(zip(distances.tolist(), ids.tolist())) == expected
