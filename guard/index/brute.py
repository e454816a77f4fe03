"""Brute-force NumPy search: the oracle the FAISS index is tested against, and masked search."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from guard.index.base import BinaryIndex, Hits, limit_hits
from guard.signals.base import hamming, masked_hamming


class BruteForceIndex(BinaryIndex):
    """Exact Hamming radius search by comparing every query with every stored code."""

    def __init__(self, bits: int):
        self.bits = bits
        self.ids = np.zeros(0, dtype=np.int64)
        self.codes = np.zeros((0, bits // 8), dtype=np.uint8)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        self.codes = np.concatenate([self.codes, np.asarray(codes, dtype=np.uint8)])

    def remove(self, ids: np.ndarray) -> int:
        keep = ~np.isin(self.ids, ids)
        removed = int((~keep).sum())
        self.ids, self.codes = self.ids[keep], self.codes[keep]
        return removed

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        distances = (hamming(self.codes, code[None, :]) for code in codes)
        return _within(distances, self.ids, radius, max_hits)

    def __len__(self) -> int:
        return len(self.ids)


def masked_search(
    codes: np.ndarray, masks: np.ndarray, ids: np.ndarray, stored: np.ndarray, radius: int, max_hits: int
) -> Hits:
    """Radius search over the bits each query's mask shows (:func:`masked_hamming`), brute
    force: FAISS cannot leave bits out. Queries with an empty mask get no hits. The cost is
    one pass over ``stored`` per masked query, so callers search only partly hidden frames."""
    empty = np.full(len(ids), radius + 1, np.int32)
    distances = (masked_hamming(stored, code[None, :], mask[None, :]) if mask.any() else empty
                 for code, mask in zip(codes, masks))
    return _within(distances, ids, radius, max_hits)


def _within(distances: Iterable[np.ndarray], ids: np.ndarray, radius: int, max_hits: int) -> Hits:
    """Hits from each query's distances to every stored code."""
    offsets, found, dists = [0], [], []
    for d in distances:
        hit = np.flatnonzero(d <= radius)
        found.append(ids[hit])
        dists.append(d[hit])
        offsets.append(offsets[-1] + len(hit))
    return limit_hits(
        np.asarray(offsets, np.int64),
        np.concatenate(found) if found else np.zeros(0, np.int64),
        np.concatenate(dists) if dists else np.zeros(0, np.int32),
        max_hits,
    )
