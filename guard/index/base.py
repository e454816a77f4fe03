"""The vector-index protocol: binary codes with 64-bit ids, searched by Hamming radius."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass
class Hits:
    """Radius-search results in CSR form: query ``i`` owns ``ids[offsets[i]:offsets[i+1]]``.

    Within one query, hits are sorted by distance, then id.
    """

    offsets: np.ndarray  # (n + 1,) int64
    ids: np.ndarray  # (m,) int64
    distances: np.ndarray  # (m,) int32

    def for_query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and distances of the hits of query ``i``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.ids[lo:hi], self.distances[lo:hi]


class BinaryIndex(ABC):
    """What guard needs from an index of binary codes."""

    bits: int

    @abstractmethod
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add ``codes`` ``(n, bits/8)`` uint8 under ``ids`` ``(n,)`` int64."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove the vectors with these ids; return how many were removed."""

    @abstractmethod
    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Every stored code within Hamming distance ``radius`` of each query (at most ``max_hits``)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored vectors."""


def limit_hits(offsets: np.ndarray, ids: np.ndarray, distances: np.ndarray, max_hits: int) -> Hits:
    """Sort each query's hits by (distance, id) and keep the ``max_hits`` closest."""
    out_offsets = [0]
    keep_ids, keep_dist = [], []
    for i in range(len(offsets) - 1):
        lo, hi = offsets[i], offsets[i + 1]
        order = np.lexsort((ids[lo:hi], distances[lo:hi]))[:max_hits]
        keep_ids.append(ids[lo:hi][order])
        keep_dist.append(distances[lo:hi][order])
        out_offsets.append(out_offsets[-1] + len(order))
    if keep_ids:
        all_ids = np.concatenate(keep_ids).astype(np.int64)
        all_dist = np.concatenate(keep_dist).astype(np.int32)
    else:
        all_ids, all_dist = np.zeros(0, np.int64), np.zeros(0, np.int32)
    return Hits(np.asarray(out_offsets, dtype=np.int64), all_ids, all_dist)


def merge_hits(a: Hits, b: Hits, max_hits: int) -> Hits:
    """Both searches' hits per query (same queries, in order); an id found twice keeps its
    smaller distance."""
    offsets, ids, distances = [0], [], []
    for i in range(len(a.offsets) - 1):
        ia, da = a.for_query(i)
        ib, db = b.for_query(i)
        both_ids, both_d = np.concatenate([ia, ib]), np.concatenate([da, db])
        order = np.lexsort((both_d, both_ids))
        first = np.ones(len(order), bool)
        first[1:] = both_ids[order][1:] != both_ids[order][:-1]
        ids.append(both_ids[order][first])
        distances.append(both_d[order][first])
        offsets.append(offsets[-1] + int(first.sum()))
    if not ids:  # no queries at all
        return Hits(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
    return limit_hits(np.asarray(offsets, np.int64), np.concatenate(ids), np.concatenate(distances), max_hits)
