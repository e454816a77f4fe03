"""An exact-key table of audio landmarks (audfprint's layout as sorted NumPy arrays).

Every stored landmark is a row (hash, reference id, reference time). Rows are kept sorted by
hash, so a lookup is two ``np.searchsorted`` calls per query hash; additions wait in a small
pending list and are merged at the next search (a live reference grows without a rebuild).
A hash held by more than ``max_bucket`` rows says nothing about where a query comes from
and is not returned (audfprint caps its buckets the same way).

Memory is 12 bytes per landmark (uint32 hash, int32 reference id, float32 seconds), see
scripts/measure_audio.py for the cost per reference hour. :meth:`LandmarkIndex.save` writes a
versioned ``.npz`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from guard.errors import FormatError

FORMAT_NAME = "guard-landmarks"
FORMAT_VERSION = 1


@dataclass
class LandmarkHits:
    """Matches of query hashes, one row per (query landmark, stored landmark) pair."""

    query_index: npt.NDArray[np.int64]  # position of the query landmark
    ref_ids: npt.NDArray[np.int64]
    ref_times: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.query_index)


class LandmarkIndex:
    """Landmark hashes of many references, looked up by exact equality."""

    def __init__(self, max_bucket: int = 2000):
        self.max_bucket = max_bucket
        self._hashes = np.zeros(0, np.uint32)
        self._ref_ids = np.zeros(0, np.int32)
        self._times = np.zeros(0, np.float32)
        self._pending: list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32], npt.NDArray[np.float32]]] = []

    def add(self, ref_id: int, times: npt.ArrayLike, hashes: npt.ArrayLike) -> None:
        """Add a reference's landmarks (``times`` in seconds, ``hashes`` uint32), or more of them."""
        hash_array = np.asarray(hashes, dtype=np.uint32).reshape(-1)
        time_array = np.asarray(times, dtype=np.float32).reshape(-1)
        if len(hash_array) != len(time_array):
            raise ValueError(f"{len(hash_array)} hashes but {len(time_array)} times")
        if not 0 <= ref_id < 2**31:
            raise ValueError(f"reference id {ref_id} does not fit the table")
        self._pending.append((hash_array, np.full(len(hash_array), ref_id, np.int32), time_array))

    def remove(self, ref_id: int) -> int:
        """Remove every landmark of ``ref_id``; return how many were removed."""
        self._merge()
        keep = self._ref_ids != ref_id
        removed = int(len(keep) - keep.sum())
        self._hashes, self._ref_ids, self._times = self._hashes[keep], self._ref_ids[keep], self._times[keep]
        return removed

    def search(self, hashes: npt.ArrayLike) -> LandmarkHits:
        """Every stored landmark whose hash equals a query hash (buckets over ``max_bucket`` left out),
        ordered by query position, then reference id and time."""
        self._merge()
        query = np.asarray(hashes, dtype=np.uint32).reshape(-1)
        lo = np.searchsorted(self._hashes, query, side="left")
        hi = np.searchsorted(self._hashes, query, side="right")
        counts = hi - lo
        counts[counts > self.max_bucket] = 0
        total = int(counts.sum())
        query_index = np.repeat(np.arange(len(query), dtype=np.int64), counts)
        # Row of each hit: its bucket's start plus its place in the bucket.
        starts = np.repeat(lo, counts)
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = starts + within
        return LandmarkHits(query_index, self._ref_ids[rows].astype(np.int64), self._times[rows].astype(np.float64))

    def references(self) -> npt.NDArray[np.int64]:
        """Ids of the references held, sorted."""
        self._merge()
        return np.unique(self._ref_ids).astype(np.int64)

    def __len__(self) -> int:
        return len(self._hashes) + sum(len(h) for h, _, _ in self._pending)

    def memory_bytes(self) -> int:
        """Bytes the table's arrays hold."""
        self._merge()
        return int(self._hashes.nbytes + self._ref_ids.nbytes + self._times.nbytes)

    def _merge(self) -> None:
        if not self._pending:
            return
        hashes = np.concatenate([self._hashes, *(h for h, _, _ in self._pending)])
        ref_ids = np.concatenate([self._ref_ids, *(r for _, r, _ in self._pending)])
        times = np.concatenate([self._times, *(t for _, _, t in self._pending)])
        self._pending = []
        order = np.lexsort((times, ref_ids, hashes))
        self._hashes, self._ref_ids, self._times = hashes[order], ref_ids[order], times[order]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table to ``path`` (a versioned ``.npz``)."""
        self._merge()
        with open(path, "wb") as out:
            np.savez(out, format=np.array(FORMAT_NAME), version=np.array(FORMAT_VERSION),
                     max_bucket=np.array(self.max_bucket), hashes=self._hashes, ref_ids=self._ref_ids,
                     times=self._times)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LandmarkIndex:
        """Read a table :meth:`save` wrote; :class:`FormatError` for anything else."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT_NAME:
                    raise FormatError(f"{os.fspath(path)}: not a landmark table")
                version = int(data["version"])
                if version != FORMAT_VERSION:
                    raise FormatError(f"{os.fspath(path)}: landmark table version {version} "
                                      f"(this guard reads {FORMAT_VERSION})")
                index = cls(int(data["max_bucket"]))
                hashes = data["hashes"].astype(np.uint32)
                ref_ids = data["ref_ids"].astype(np.int32)
                times = data["times"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise FormatError(f"{os.fspath(path)}: cannot be read as a landmark table ({exc})") from exc
        if not (len(hashes) == len(ref_ids) == len(times)) or np.any(np.diff(hashes.astype(np.int64)) < 0):
            raise FormatError(f"{os.fspath(path)}: damaged landmark table")
        index._hashes, index._ref_ids, index._times = hashes, ref_ids, times
        return index
