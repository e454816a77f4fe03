"""The searchable view of the catalog: one index per signal present, kept in sync with it.

Each signal's index file is a cache of the catalog's tracks of that signal. It carries the
catalog generation it reflects (and the signal and index layout it was built for) in a JSON
file beside it; on open, or whenever another process changed the catalog, a stale or
unreadable index is rebuilt from the tracks stored in SQLite.

Opening also checks that every stored track was made by the pipeline this guard runs (see
:mod:`guard.pipeline`): tracks of another signal version, decoder or preprocessing cannot
be compared with fresh codes, and matching against them would only find less, silently.

An audio signal's index (:class:`AudioIndex`, a :class:`guard.index.landmarks.LandmarkIndex`
of every reference's landmarks) lives beside the picture signals' FAISS indexes, in
``index-<signal>.npz`` with the same JSON record of the generation it reflects: it is
loaded, saved, rebuilt and kept in step with additions and removals exactly like them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from guard.audio_fingerprint import AudioFingerprinter, hashes_of
from guard.errors import FormatError, NotFoundError, StoreError
from guard.index import FaissBinaryIndex, Hits
from guard.index.brute import masked_search
from guard.index.landmarks import LandmarkHits, LandmarkIndex
from guard.match import RefFrames, vector_ids
from guard.models import Fingerprint, Reference
from guard.pipeline import REFINGERPRINT_ADVICE, pipeline_differences
from guard.signals import FrameSignal, Signal, get_signal
from guard.signals.audio import AudioLandmarks
from guard.storage.references import ReferenceRepository

log = logging.getLogger(__name__)

#: Layout of the index files; files of another format are rebuilt.
INDEX_FORMAT = 2

PipelineFor = Callable[[FrameSignal], dict[str, Any]]


class _TrackIndex:
    """What every signal's index shares: its signal, its files, the tracks it holds."""

    signal: Signal

    def __init__(self, index_path: Path, meta_path: Path):
        self.index_path = index_path
        self.meta_path = meta_path
        self.refs: dict[int, RefFrames] = {}
        #: The chunk position (see :meth:`ReferenceRepository.chunk_position`) the tracks were read
        #: at, and the one the saved files hold.
        self.chunks = 0
        self.saved_chunks = -1
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def append(self, ref_id: int, times: np.ndarray, codes: np.ndarray) -> bool:
        """Index a live reference's newly aired frames (after those it has); whether it is here."""
        ref = self.refs.get(ref_id)
        if ref is None or not len(times):
            return ref is not None
        start = len(ref.times)
        self._index_more(ref_id, start, times, codes)
        self.refs[ref_id] = ref.grown(*self._extended(ref_id, ref, times, codes))
        return True

    def _index_more(self, ref_id: int, start: int, times: np.ndarray, codes: np.ndarray) -> None:
        raise NotImplementedError

    def _extended(self, ref_id: int, ref: RefFrames, times: np.ndarray, codes: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``ref``'s times and codes followed by these, as views of buffers that double when full:
        a 24 h reference grows by a few frames every half second without being copied each time.
        Earlier views stay valid: only the part past their end is written."""
        n, more = len(ref.times), len(times)
        times_buffer, codes_buffer = self._buffers.get(ref_id, (None, None))
        if times_buffer is None or codes_buffer is None or ref.times.base is not times_buffer \
                or n + more > len(times_buffer):
            capacity = max(2 * (n + more), 64)
            times_buffer = np.empty(capacity, np.float64)
            codes_buffer = np.empty((capacity, ref.codes.shape[1] if ref.codes.ndim == 2 else codes.shape[1]),
                                    np.uint8)
            times_buffer[:n], codes_buffer[:n] = ref.times, ref.codes
            self._buffers[ref_id] = (times_buffer, codes_buffer)
        times_buffer[n:n + more], codes_buffer[n:n + more] = times, codes
        return times_buffer[:n + more], codes_buffer[:n + more]

    def forget_buffers(self) -> None:
        """The tracks were read again: earlier growth buffers are not theirs."""
        self._buffers.clear()

    def meta_fields(self) -> dict[str, Any]:
        """What the JSON beside a saved index records besides the generation."""
        return {"format": INDEX_FORMAT, "signal": self.description, "chunks": self.saved_chunks}

    def reflects(self, meta: Any, generation: int) -> bool:
        """Whether saved files with this JSON record hold the tracks read at ``generation``."""
        return (isinstance(meta, dict) and meta.get("format") == INDEX_FORMAT
                and meta.get("generation") == generation and meta.get("signal") == self.description
                and meta.get("chunks", 0) == self.chunks)

    @property
    def description(self) -> dict:
        """The signal's description as the index files record it."""
        return json.loads(json.dumps(self.signal.describe(), sort_keys=True))

    def vectors(self) -> int:
        """How many codes the tracks hold (what the index must hold)."""
        return sum(len(r.times) for r in self.refs.values())

    def _adopt(self, load: Callable[[], Any], unreadable: type[Exception]) -> bool:
        """Take the saved index ``load()`` reads if it holds every stored code; False (rebuild)
        when it cannot be read (``unreadable``) or disagrees with the catalog."""
        try:
            index = load()
        except unreadable as exc:
            log.warning("%s: rebuilding", exc)
            return False
        if len(index) != self.vectors():
            log.warning("%s index size disagrees with the catalog: rebuilding", self.signal.name)
            return False
        self.index = index
        return True


class SignalIndex(_TrackIndex):
    """One signal's index over every reference's track of it, and those tracks' frames.

    Not thread-safe on its own: :class:`ReferenceIndex` serialises access.
    """

    def __init__(self, signal: FrameSignal, index_path: Path, meta_path: Path):
        super().__init__(index_path, meta_path)
        self.signal: FrameSignal = signal
        self.index = signal.index_factory(size_hint=0)
        self._flat: tuple[np.ndarray, np.ndarray] | None = None  # ids, codes for masked search

    # -- files --------------------------------------------------------------------------------

    def load_or_rebuild(self, generation: int, refs: dict[int, RefFrames], chunks: int = 0) -> None:
        """Take ``refs`` (the catalog's tracks at ``generation``, with live references' chunks
        up to position ``chunks``) and the saved index if it reflects them, else rebuild the
        index and save it."""
        self.refs, self.chunks = refs, chunks
        self.forget_buffers()
        self._flat = None
        if not self._load(generation):
            self._rebuild(generation)

    def _load(self, generation: int) -> bool:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return False
        if not self.reflects(meta, generation):
            log.info("%s index is stale or of another format (generation %s, catalog %s): rebuilding",
                     self.signal.name, meta.get("generation") if isinstance(meta, dict) else None, generation)
            return False
        if not isinstance(self.index, FaissBinaryIndex):
            return False  # other index kinds are not saved: built from the catalog on open
        permutation = meta.get("permutation") or "unrecorded"
        adopted = self._adopt(lambda: FaissBinaryIndex.load(self.index_path, self.signal.bits, permutation=permutation),
                              StoreError)
        self.saved_chunks = self.chunks if adopted else self.saved_chunks
        return adopted

    def _rebuild(self, generation: int) -> None:
        index = self.signal.index_factory(size_hint=self.vectors())
        for ref_id, ref in self.refs.items():
            index.add(vector_ids(ref_id, len(ref.times)), ref.codes)
        self.index = index
        self.save(generation)

    def save(self, generation: int) -> None:
        """Write the index file, then the JSON that says which generation it reflects."""
        if isinstance(self.index, FaissBinaryIndex):
            self.index.save(self.index_path)
        self.saved_chunks = self.chunks
        self.save_meta(generation)

    def save_meta(self, generation: int) -> None:
        """Record that the index (unchanged since it was saved) reflects ``generation``."""
        layout = self.index.describe() if hasattr(self.index, "describe") else {}
        meta = {**layout, **self.meta_fields(), "generation": generation, "vectors": len(self.index)}
        _replace_file(self.meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))

    # -- changes and queries ------------------------------------------------------------------

    def add(self, ref_id: int, frames: RefFrames) -> None:
        """Index one reference's track."""
        self.index.add(vector_ids(ref_id, len(frames.times)), frames.codes)
        self.refs[ref_id] = frames
        self._flat = None

    def _index_more(self, ref_id: int, start: int, times: np.ndarray, codes: np.ndarray) -> None:
        self.index.add(vector_ids(ref_id, start + len(times))[start:], codes)
        self._flat = None

    def remove(self, ref_id: int) -> bool:
        """Take a reference's track out; whether it had one."""
        frames = self.refs.pop(ref_id, None)
        if frames is None:
            return False
        self.index.remove(vector_ids(ref_id, len(frames.times)))
        self._flat = None
        return True

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Index hits for query codes (see :meth:`guard.index.base.BinaryIndex.search`)."""
        return self.index.search(codes, radius, max_hits)

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored code with its vector id, concatenated (for brute-force masked search)."""
        if self._flat is None:
            ids = [vector_ids(ref_id, len(ref.times)) for ref_id, ref in self.refs.items()]
            codes = [ref.codes for ref in self.refs.values()]
            self._flat = (np.concatenate(ids) if ids else np.zeros(0, np.int64),
                          np.concatenate(codes) if codes else np.zeros((0, self.signal.bits // 8), np.uint8))
        return self._flat

    def __len__(self) -> int:
        return len(self.index)


class AudioIndex(_TrackIndex):
    """An audio signal's landmark table over every reference's track of it, and those tracks.

    Saved as ``index_path`` (a versioned ``.npz``, written aside then renamed) with the same
    JSON record as :class:`SignalIndex`; not thread-safe on its own either.
    """

    def __init__(self, signal: AudioLandmarks, index_path: Path, meta_path: Path):
        super().__init__(index_path, meta_path)
        self.signal: AudioLandmarks = signal
        self.index = LandmarkIndex()

    def load_or_rebuild(self, generation: int, refs: dict[int, RefFrames], chunks: int = 0) -> None:
        """Take ``refs`` (the catalog's tracks at ``generation``, with live references' chunks
        up to position ``chunks``) and the saved table if it reflects them, else rebuild the
        table and save it."""
        self.refs, self.chunks = refs, chunks
        self.forget_buffers()
        if not self._load(generation):
            self._rebuild(generation)

    def _load(self, generation: int) -> bool:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return False
        if not self.reflects(meta, generation):
            log.info("%s index is stale or of another format: rebuilding", self.signal.name)
            return False
        adopted = self._adopt(lambda: LandmarkIndex.load(self.index_path), FormatError)
        self.saved_chunks = self.chunks if adopted else self.saved_chunks
        return adopted

    def _rebuild(self, generation: int) -> None:
        index = LandmarkIndex()
        for ref_id, ref in self.refs.items():
            index.add(ref_id, ref.times, hashes_of(ref.codes))
        self.index = index
        self.save(generation)

    def save(self, generation: int) -> None:
        """Write the table (aside, then renamed over the old one), then its JSON record."""
        _replace_file(self.index_path, self.index.save)
        self.saved_chunks = self.chunks
        self.save_meta(generation)

    def save_meta(self, generation: int) -> None:
        """Record that the table (unchanged since it was saved) reflects ``generation``."""
        meta = {"kind": "landmarks", **self.meta_fields(), "generation": generation, "vectors": len(self.index)}
        _replace_file(self.meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))

    def add(self, ref_id: int, frames: RefFrames) -> None:
        """Index one reference's landmarks."""
        self.index.add(ref_id, frames.times, hashes_of(frames.codes))
        self.refs[ref_id] = frames

    def _index_more(self, ref_id: int, start: int, times: np.ndarray, codes: np.ndarray) -> None:
        self.index.add(ref_id, times, hashes_of(codes))

    def remove(self, ref_id: int) -> bool:
        """Take a reference's landmarks out; whether it had any."""
        if self.refs.pop(ref_id, None) is None:
            return False
        self.index.remove(ref_id)
        return True

    def search(self, hashes: np.ndarray) -> LandmarkHits:
        """Every stored landmark with one of these hashes (see :meth:`LandmarkIndex.search`)."""
        return self.index.search(hashes)

    def __len__(self) -> int:
        return len(self.index)


AnyIndex = SignalIndex | AudioIndex


class ReferenceIndex:
    """Every reference's tracks, searchable: one :class:`SignalIndex` per signal present.

    The matcher searches the running signal's (``signal``): :attr:`index`, :attr:`refs`,
    :meth:`search` and :meth:`search_masked` are that one's; :meth:`index_for` gives any.
    ``pipeline_for(signal)`` is the pipeline this guard runs that signal with; a store whose
    tracks differ from it is refused with :class:`FormatError` (see the module docstring).
    """

    def __init__(self, references: ReferenceRepository, home: Path, signal: FrameSignal,
                 pipeline_for: PipelineFor):
        self.references = references
        self.home = Path(home)
        self.signal = signal
        self.pipeline_for = pipeline_for
        self._lock = threading.RLock()
        self._generation = -1
        self._revision = -1
        self._signals: dict[str, Signal] = {signal.name: signal}
        self._indexes: dict[str, AnyIndex] = {signal.name: self._new_index(signal.name)}
        self._match: dict[int, str] = {}  # each reference's match policy
        self._on_air: set[int] = set()  # live references still airing
        self._chunks = 0  # the position of the last live append taken (ReferenceRepository.chunk_position)
        self.last_append = 0.0  # when one was last taken (time.time())
        self.sync()

    # -- the running signal's index (what the matcher uses) -----------------------------------

    @property
    def index(self):
        """The running signal's index."""
        return self._video().index

    @property
    def refs(self) -> dict[int, RefFrames]:
        """Each reference's frames of the running signal, by id."""
        return self._video().refs

    def _video(self) -> SignalIndex:
        index = self._indexes[self.signal.name]
        assert isinstance(index, SignalIndex)  # the running signal is a frame signal
        return index

    def _audio(self) -> AudioIndex | None:
        return next((i for i in self._indexes.values() if isinstance(i, AudioIndex)), None)

    def audio_refs(self) -> dict[int, RefFrames]:
        """Each reference's landmarks (times and codes, see :mod:`guard.audio_fingerprint`), by id."""
        with self._lock:
            audio = self._audio()
            return {} if audio is None else dict(audio.refs)

    def search_landmarks(self, hashes: np.ndarray) -> LandmarkHits:
        """Every stored landmark with one of these hashes, of every reference with audio."""
        with self._lock:
            audio = self._audio()
            if audio is None:
                empty = np.zeros(0, np.int64)
                return LandmarkHits(empty, empty.copy(), np.zeros(0, np.float64))
            return audio.search(hashes)

    def match_policies(self) -> dict[int, str]:
        """Each reference's match policy (``video``, ``audio`` or ``any``), by id."""
        with self._lock:
            return dict(self._match)

    def running_pipeline(self, signal_name: str) -> dict[str, Any]:
        """The pipeline this guard makes ``signal_name``'s tracks with; :class:`FormatError`
        for a signal it does not know or cannot make tracks of."""
        signal = self._signal(signal_name)
        if isinstance(signal, AudioLandmarks):
            return AudioFingerprinter(signal).pipeline()
        if isinstance(signal, FrameSignal):
            return self.pipeline_for(signal)
        raise FormatError(f"signal {signal_name!r} makes no tracks this guard can store")

    def index_for(self, signal_name: str) -> AnyIndex:
        """The index of one signal; :class:`NotFoundError` when no reference has a track of it
        (the running signal's always exists, empty or not)."""
        with self._lock:
            try:
                return self._indexes[signal_name]
            except KeyError:
                raise NotFoundError(f"no reference has a {signal_name} track") from None

    def signals(self) -> list[str]:
        """Names of the signals with an index, the running one first."""
        with self._lock:
            return [self.signal.name, *sorted(n for n in self._indexes if n != self.signal.name)]

    # -- consistency --------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the in-memory view up to the catalog (load or rebuild indexes if stale), and
        take what live references aired since (see :meth:`_follow`)."""
        with self._lock:
            generation, revision = self.references.versions()
            if generation != self._generation:
                self._check_pipelines()
                self._load(generation)
                self._generation = generation
            elif revision != self._revision:
                self._refresh_policies()
            self._revision = revision
            self._follow()

    def _load(self, generation: int) -> None:
        position = self.references.chunk_position()  # before the tracks: no chunk is read twice
        refs = {r.id: r for r in self.references.all()}
        self._match = {r.id: r.match for r in refs.values()}
        self._on_air = {r.id for r in refs.values() if r.live_status == "live"}
        frames: dict[str, dict[int, RefFrames]] = {self.signal.name: {}}
        for ref_id, track in self.references.tracks(through=position):
            ref = refs.get(ref_id)
            if ref is not None:  # None: added after the references were read; the next sync takes it
                frames.setdefault(track.signal, {})[ref_id] = _frames(ref, track)
        indexes = {}
        for name, tracks in frames.items():
            index = self._indexes[name] if name in self._indexes else self._new_index(name)
            index.load_or_rebuild(generation, tracks, position)
            indexes[name] = index
        self._indexes = indexes
        self._chunks = position

    def _follow(self) -> None:
        """Index the frames live references appended since the last look, without a rebuild:
        the chunks are read in the order they were committed, each exactly once."""
        position = self.references.chunk_position()
        if position <= self._chunks:
            return
        for chunk in self.references.chunks_after(self._chunks, through=position):
            index = self._indexes.get(chunk.signal)
            if index is not None:  # a signal no reference had: the reference's next reload takes it
                index.append(chunk.ref_id, chunk.times, chunk.codes)
        self._chunks = position
        for index in self._indexes.values():
            index.chunks = position
        self.last_append = time.time()

    def on_air(self) -> set[int]:
        """Ids of the live references still airing (their tracks grow)."""
        with self._lock:
            return set(self._on_air)

    def _refresh_policies(self) -> None:
        references = self.references.all()
        self._on_air = {r.id for r in references if r.live_status == "live"}
        for ref in references:
            self._match[ref.id] = ref.match
            for index in self._indexes.values():
                if ref.id in index.refs:
                    index.refs[ref.id].title = ref.title
                    index.refs[ref.id].min_seconds = ref.min_seconds

    def _check_pipelines(self) -> None:
        """:class:`FormatError` naming every difference between the pipelines of the stored
        tracks and the ones this guard runs, and what the operator can do."""
        problems = []
        for use in self.references.pipelines():
            who = _references_named(use.reference_ids)
            try:
                running = self.running_pipeline(use.signal)
            except FormatError:
                problems.append(f"{who}: {use.signal} tracks, a signal this guard does not know "
                                f"(is its plugin installed?)")
                continue
            differences = pipeline_differences(use.pipeline, running)
            if differences:
                problems.append(f"{who}: {use.signal} tracks differ ({'; '.join(differences)})")
        missing = self.references.without_track(self.signal.name)
        if missing:
            problems.append(f"{_references_named(missing)}: no {self.signal.name} track, the signal this guard "
                            f"matches with ({self.signal.name} v{self.signal.version})")
        if problems:
            raise FormatError(
                f"{getattr(self.references.database, 'path', 'catalog')}: fingerprints made by another pipeline than this guard runs, "
                f"whose codes cannot be compared with fresh ones — {'; '.join(problems)}. {REFINGERPRINT_ADVICE}")

    def _signal(self, name: str) -> Signal:
        if name not in self._signals:
            self._signals[name] = get_signal(name)
        return self._signals[name]

    def _new_index(self, name: str) -> AnyIndex:
        if name == self.signal.name:  # the first release's file names
            stem = "index"
        else:
            stem = "index-" + (name if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) else name.encode().hex()[:64])
        signal = self._signal(name)
        if isinstance(signal, AudioLandmarks):
            return AudioIndex(signal, self.home / f"{stem}.npz", self.home / f"{stem}.json")
        if not isinstance(signal, FrameSignal):
            raise FormatError(f"signal {name!r} has no index this guard can keep")
        return SignalIndex(signal, self.home / f"{stem}.faiss", self.home / f"{stem}.json")

    # -- changes ------------------------------------------------------------------------------

    def added(self, ref: Reference, tracks: Fingerprint | Sequence[Fingerprint]) -> None:
        """Reflect a reference the catalog just committed with these tracks."""
        tracks = [tracks] if isinstance(tracks, Fingerprint) else list(tracks)
        with self._lock:
            if self.references.generation() != self._generation + 1:
                self.sync()  # someone else changed the catalog too: take everything
                return
            changed = set()
            self._match[ref.id] = ref.match
            if ref.live_status == "live":
                self._on_air.add(ref.id)
            for track in tracks:
                if track.signal not in self._indexes:
                    self._indexes[track.signal] = self._new_index(track.signal)
                self._indexes[track.signal].add(ref.id, _frames(ref, track))
                changed.add(track.signal)
            self._generation += 1
            self._save(changed)

    def removed(self, ref_id: int) -> None:
        """Reflect a reference the catalog just deleted."""
        with self._lock:
            if self.references.generation() != self._generation + 1:
                self.sync()
                return
            changed = {name for name, index in self._indexes.items() if index.remove(ref_id)}
            self._match.pop(ref_id, None)
            self._on_air.discard(ref_id)
            self._generation += 1
            self._save(changed)

    def _save(self, changed: set[str]) -> None:
        for name, index in self._indexes.items():
            if name in changed:
                index.save(self._generation)
            else:
                index.save_meta(self._generation)

    # -- queries ------------------------------------------------------------------------------

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Hits for query codes in the running signal's index."""
        with self._lock:
            return self._video().search(codes, radius, max_hits)

    def search_masked(self, codes: np.ndarray, masks: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Hits for partly hidden query frames over the bits their masks show (brute force),
        in the running signal's tracks."""
        with self._lock:
            ids, stored = self._video().flat()
        return masked_search(codes, masks, ids, stored, radius, max_hits)

    def __len__(self) -> int:
        """Codes indexed over every signal."""
        with self._lock:
            return sum(len(index) for index in self._indexes.values())


def _replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Have ``write(temporary path)`` write the file under a name of its own, then rename it
    over ``path``: readers see the old file or the new one, never half of one, and writers in
    other processes or threads never share the file."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o644)
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _frames(ref: Reference, track: Fingerprint) -> RefFrames:
    return RefFrames(ref.title, ref.min_seconds, track.times, track.codes, ref.owner)


def _references_named(ids: list[int], most: int = 10) -> str:
    """``reference 3`` or ``references 1, 2, 5 and 12 more``."""
    if len(ids) == 1:
        return f"reference {ids[0]}"
    shown = ", ".join(map(str, ids[:most]))
    return f"references {shown}" + (f" and {len(ids) - most} more" if len(ids) > most else "")
