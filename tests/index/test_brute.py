"""Masked search (bits hidden under an overlay left out) and merging two searches' hits."""

import numpy as np

from guard.index.base import Hits, merge_hits
from guard.index.brute import BruteForceIndex, masked_search

BITS = 256


def test_masked_search_finds_codes_damaged_only_where_hidden():
    rng = np.random.default_rng(5)
    stored = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    ids = np.arange(3000, dtype=np.int64) * 7
    queries = stored[[10, 20, 30]].copy()
    queries[:, :8] ^= rng.integers(1, 256, (3, 8), dtype=np.uint8)  # a quarter of the bits garbled
    masks = np.full((3, 32), 0xFF, np.uint8)
    masks[:, :8] = 0  # ...and hidden
    masks[2] = 0  # a frame without a masked reading
    hits = masked_search(queries, masks, ids, stored, radius=0, max_hits=5)
    assert hits.for_query(0)[0].tolist() == [70] and hits.for_query(1)[0].tolist() == [140]
    assert len(hits.for_query(2)[0]) == 0
    # Unmasked, the same codes are far from what they were damaged from.
    plain = BruteForceIndex(BITS)
    plain.add(ids, stored)
    assert len(plain.search(queries[:2], 32, 5).ids) == 0


def test_merged_hits_keep_each_id_once_at_its_smaller_distance():
    a = Hits(np.array([0, 2, 2]), np.array([5, 9]), np.array([10, 30]))
    b = Hits(np.array([0, 1, 2]), np.array([9, 4]), np.array([20, 3]))
    merged = merge_hits(a, b, max_hits=10)
    assert merged.offsets.tolist() == [0, 2, 3]
    assert merged.for_query(0)[0].tolist() == [5, 9] and merged.for_query(0)[1].tolist() == [10, 20]
    assert merged.for_query(1)[0].tolist() == [4]
    assert merge_hits(a, b, max_hits=1).for_query(0)[0].tolist() == [5]
