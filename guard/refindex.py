"""The searchable view of the catalog: FAISS index + reference frames in memory, kept in sync.

The index file is a cache of the catalog. It carries the catalog generation it reflects in
``index.json``; on open, or whenever another process changed the catalog, a stale or
unreadable index is rebuilt from the fingerprints stored in SQLite.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from guard.errors import FormatError, StoreError
from guard.index import FaissBinaryIndex, Hits
from guard.index.brute import masked_search
from guard.match import RefFrames, vector_ids
from guard.models import Fingerprint, Reference
from guard.signals import FrameSignal
from guard.store import Catalog

log = logging.getLogger(__name__)

INDEX_FORMAT = 1


class ReferenceIndex:
    """FAISS over every reference frame, plus each reference's frames for alignment checks."""

    def __init__(self, catalog: Catalog, home: Path, signal: FrameSignal):
        self.catalog = catalog
        self.signal = signal
        self.index_path = Path(home) / "index.faiss"
        self.meta_path = Path(home) / "index.json"
        self._lock = threading.RLock()
        self._generation = -1
        self._revision = -1
        self._flat: tuple[int, np.ndarray, np.ndarray] | None = None  # generation, ids, codes
        self.index = FaissBinaryIndex(signal.bits)
        self.refs: dict[int, RefFrames] = {}
        self.sync()

    # -- consistency --------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the in-memory view up to the catalog (load or rebuild the index if stale)."""
        with self._lock:
            generation, revision = self.catalog.versions()
            if generation != self._generation:
                self._load_frames()
                if not self._load_index(generation):
                    self._rebuild(generation)
                self._generation = generation
            elif revision != self._revision:
                self._refresh_policies()
            self._revision = revision

    def _load_frames(self) -> None:
        refs = {r.id: r for r in self.catalog.references()}
        frames: dict[int, RefFrames] = {}
        for ref_id, fp in self.catalog.fingerprints():
            self._check_signal(fp, ref_id)
            ref = refs[ref_id]
            frames[ref_id] = RefFrames(ref.title, ref.min_seconds, fp.times, fp.codes)
        self.refs = frames

    def _refresh_policies(self) -> None:
        for ref in self.catalog.references():
            if ref.id in self.refs:
                self.refs[ref.id].title = ref.title
                self.refs[ref.id].min_seconds = ref.min_seconds

    def _check_signal(self, fp: Fingerprint, ref_id: int) -> None:
        if (fp.signal, fp.signal_version) != (self.signal.name, self.signal.version):
            raise FormatError(
                f"reference {ref_id} was fingerprinted with {fp.signal} v{fp.signal_version}; "
                f"this store uses {self.signal.name} v{self.signal.version}"
            )

    def _load_index(self, generation: int) -> bool:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("format") != INDEX_FORMAT or meta.get("generation") != generation:
            log.info("index is stale (generation %s, catalog %s): rebuilding", meta.get("generation"), generation)
            return False
        try:
            index = FaissBinaryIndex.load(self.index_path, self.signal.bits)
        except StoreError as exc:
            log.warning("%s: rebuilding", exc)
            return False
        if len(index) != sum(len(r.times) for r in self.refs.values()):
            log.warning("index size disagrees with the catalog: rebuilding")
            return False
        self.index = index
        return True

    def _rebuild(self, generation: int) -> None:
        total = sum(len(r.times) for r in self.refs.values())
        index = FaissBinaryIndex(self.signal.bits, size_hint=total)
        for ref_id, ref in self.refs.items():
            index.add(vector_ids(ref_id, len(ref.times)), ref.codes)
        self.index = index
        self._save(generation)

    def _save(self, generation: int) -> None:
        self.index.save(self.index_path)
        meta = {"format": INDEX_FORMAT, "generation": generation, "kind": self.index.kind,
                "signal": self.signal.describe(), "vectors": len(self.index)}
        # a name of its own: writers in other processes or threads never share the file
        fd, tmp = tempfile.mkstemp(dir=self.meta_path.parent, prefix=f".{self.meta_path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(meta))
            os.replace(tmp, self.meta_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- changes ------------------------------------------------------------------------------

    def added(self, ref: Reference, fp: Fingerprint) -> None:
        """Reflect a reference the catalog just committed."""
        with self._lock:
            if self.catalog.generation() != self._generation + 1:
                self.sync()  # someone else changed the catalog too: take everything
                return
            self.index.add(vector_ids(ref.id, len(fp)), fp.codes)
            self.refs[ref.id] = RefFrames(ref.title, ref.min_seconds, fp.times, fp.codes)
            self._generation += 1
            self._save(self._generation)

    def removed(self, ref_id: int) -> None:
        """Reflect a reference the catalog just deleted."""
        with self._lock:
            if self.catalog.generation() != self._generation + 1:
                self.sync()
                return
            ref = self.refs.pop(ref_id, None)
            if ref is not None:
                self.index.remove(vector_ids(ref_id, len(ref.times)))
            self._generation += 1
            self._save(self._generation)

    # -- queries ------------------------------------------------------------------------------

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Index hits for query codes (see :meth:`FaissBinaryIndex.search`)."""
        with self._lock:
            return self.index.search(codes, radius, max_hits)

    def search_masked(self, codes: np.ndarray, masks: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Hits for partly hidden query frames over the bits their masks show (brute force)."""
        with self._lock:
            if self._flat is None or self._flat[0] != self._generation:
                ids = [vector_ids(ref_id, len(ref.times)) for ref_id, ref in self.refs.items()]
                stored = [ref.codes for ref in self.refs.values()]
                self._flat = (self._generation,
                              np.concatenate(ids) if ids else np.zeros(0, np.int64),
                              np.concatenate(stored) if stored else np.zeros((0, self.signal.code_bytes), np.uint8))
            _, ids, stored = self._flat
        return masked_search(codes, masks, ids, stored, radius, max_hits)

    def __len__(self) -> int:
        return len(self.index)
