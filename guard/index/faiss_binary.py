"""The FAISS binary index guard uses, persisted as a FAISS file beside the catalog.

Index type by size (measured by ``scripts/bench_index.py``, documented in docs/scale.md):
``IndexBinaryFlat`` is exact and fast enough below ``MULTIHASH_FROM`` vectors; above it,
``IndexBinaryMultiHash`` answers radius queries in a fraction of the time for the strict seed
radius guard searches with. The relaxed matching stage never asks the index (it compares
aligned frames directly), so the approximate index only needs to find seeds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from guard.errors import StoreError
from guard.index.base import BinaryIndex, Hits, limit_hits

#: Above this many vectors, a freshly built index is multi-hash instead of flat (docs/scale.md:
#: at 1 M real codes, flat takes ~55 ms per batch of 32 queries, permuted multi-hash ~24 ms
#: with full recall at the seed radius; multi-hash needs ~23× the memory of flat).
MULTIHASH_FROM = 500_000
MULTIHASH_TABLES = 8
MULTIHASH_FLIPS = 2
#: Fewer query codes than this are searched on the calling thread alone: FAISS starts its
#: OpenMP threads for every search, and their start and spin-down cost more than a live
#: decision's few codes take (a search of 2 codes: 7 ms of CPU with 2 threads, 0.06 ms with
#: one; docs/live.md).
PARALLEL_QUERIES = 64


@functools.cache
def _bit_permutation(bits: int) -> np.ndarray:
    """A fixed shuffle of code bits for the multi-hash tables.

    Neighbouring bits of a median hash are neighbouring pixels; whole rows that are dark,
    bright or a ticker band are shared by many frames, so unshuffled 32-bit substrings fill a
    few hash buckets enormously. Shuffling keeps Hamming distances and spreads the buckets.
    Saved multi-hash index files hold shuffled codes: their permutation is recorded with them
    (:func:`permutation_id`) and a file shuffled otherwise is refused on load.
    """
    permutation = np.random.default_rng(bits).permutation(bits)
    permutation.flags.writeable = False
    return permutation


@functools.cache
def permutation_id(bits: int) -> str:
    """The identity of the bit shuffle multi-hash indexes of ``bits``-bit codes use: a digest
    of the permutation itself, so a change of seed or of NumPy's generator shows."""
    digest = hashlib.sha256(_bit_permutation(bits).astype("<i8").tobytes()).hexdigest()
    return f"sha256:{digest[:16]}"


def _shuffle(codes: np.ndarray, bits: int) -> np.ndarray:
    unpacked = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)
    return np.ascontiguousarray(np.packbits(unpacked[:, _bit_permutation(bits)], axis=1))


def _unshuffle(codes: np.ndarray, bits: int) -> np.ndarray:
    unpacked = np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1)
    original = np.empty_like(unpacked)
    original[:, _bit_permutation(bits)] = unpacked
    return np.packbits(original, axis=1)


def _new_index(bits: int, size_hint: int) -> faiss.IndexBinaryIDMap2:
    inner: faiss.IndexBinary
    if size_hint >= MULTIHASH_FROM:
        inner = faiss.IndexBinaryMultiHash(bits, MULTIHASH_TABLES, bits // MULTIHASH_TABLES)
        inner.nflip = MULTIHASH_FLIPS
    else:
        inner = faiss.IndexBinaryFlat(bits)
    return faiss.IndexBinaryIDMap2(inner)


class FaissBinaryIndex(BinaryIndex):
    """Binary codes with ids in a FAISS ``IndexBinaryIDMap2`` (flat or multi-hash inside)."""

    def __init__(self, bits: int, size_hint: int = 0):
        self.bits = bits
        self._index = _new_index(bits, size_hint)

    @property
    def kind(self) -> str:
        """``flat`` or ``multihash``: which FAISS structure answers queries."""
        inner = faiss.downcast_IndexBinary(self._index.index)
        return "multihash" if isinstance(inner, faiss.IndexBinaryMultiHash) else "flat"

    def describe(self) -> dict[str, Any]:
        """What a saved file needs beside it to be read back right: its kind, code width and,
        for a multi-hash index, the bit permutation its codes are stored under (else None)."""
        return {"kind": self.kind, "bits": self.bits,
                "permutation": permutation_id(self.bits) if self.kind == "multihash" else None}

    def _prepare(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        return _shuffle(codes, self.bits) if self.kind == "multihash" else codes

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(self._prepare(codes), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == "flat":
            return int(self._index.remove_ids(ids))  # type: ignore[arg-type]  # faiss wraps it to take ids too
        # Multi-hash tables cannot remove: rebuild them from the codes that stay.
        stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = faiss.downcast_IndexBinary(self._index.index)
        storage = inner.storage  # type: ignore[attr-defined]  # faiss's stub omits IndexBinaryMultiHash.storage
        codes = faiss.vector_to_array(storage.xb).reshape(-1, self.bits // 8)
        codes = _unshuffle(codes, self.bits)
        keep = ~np.isin(stored, ids)
        self._index = _new_index(self.bits, int(keep.sum()))
        self.add(stored[keep], codes[keep])
        return int((~keep).sum())

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        if len(self) == 0 or len(codes) == 0:
            return Hits(np.zeros(len(codes) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
        threads = faiss.omp_get_max_threads()
        small = len(codes) < PARALLEL_QUERIES and threads > 1
        if small:  # OpenMP's threads cost more to start and spin down than a few queries take
            faiss.omp_set_num_threads(1)  # this calling thread's setting only
        try:
            # FAISS binary range search keeps distances strictly below the radius.
            lims, dist, ids = self._index.range_search(self._prepare(codes), radius + 1)
        finally:
            if small:
                faiss.omp_set_num_threads(threads)
        return limit_hits(lims.astype(np.int64), ids.astype(np.int64), dist.astype(np.int32), max_hits)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves either the old or the new file, never half of one."""
        tmp = None
        try:
            # a name of its own: writers in other processes or threads never share the file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            os.chmod(tmp, 0o644)
            faiss.write_index_binary(self._index, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise StoreError(f"{path}: cannot write index ({exc})") from exc

    @classmethod
    def load(cls, path: Path, bits: int, permutation: str | None = None) -> "FaissBinaryIndex":
        """Read an index written by :meth:`save`; :class:`StoreError` if unreadable or of other width.

        ``permutation`` is the one :meth:`describe` recorded when the file was saved: a
        multi-hash index recorded under another one (or none) is refused, since its codes
        would be searched in the wrong bit order. ``None`` skips the check (counting only).
        """
        try:
            raw = faiss.read_index_binary(str(path))
        except RuntimeError as exc:
            raise StoreError(f"{path}: unreadable index ({str(exc).splitlines()[0]})") from exc
        if raw.d != bits:
            raise StoreError(f"{path}: index holds {raw.d}-bit codes, expected {bits}")
        if not isinstance(raw, faiss.IndexBinaryIDMap2):
            raise StoreError(f"{path}: not an index with ids ({type(raw).__name__})")
        index = cls(bits)
        index._index = raw
        if permutation is not None and index.kind == "multihash" and permutation != permutation_id(bits):
            raise StoreError(f"{path}: multi-hash index stored under bit permutation {permutation!r}, "
                             f"this guard uses {permutation_id(bits)!r}")
        return index
