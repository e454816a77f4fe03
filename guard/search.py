"""Query readings → index hits → votes → verified segments, for every reading kind.

A query frame has up to three readings: its plain code, its *masked* code when a still
overlay hides part of it (:class:`guard.models.MaskedCodes`), and its *mirrored* code (the
flipped frame's, when the signal can derive it). Plain and masked readings are two views of
one picture: their hits are merged per frame and a frame counts the closer reading. The
mirrored readings are a second query of their own, whose segments join the plain ones as
``video-mirrored`` (see :func:`guard.match.with_mirrored`).

:class:`Searcher` matches a whole query at once (a scanned file). :class:`LiveSearch` matches
a live stream's sliding window again and again, and gives what :meth:`Searcher.match` would
give for the window, at a fraction of the cost:

- each frame's index hits (plain with masked, and mirrored) are kept while the frame stays in
  the window: the index is asked about new frames only (all of them again only when the
  references changed);
- each hypothesis keeps its frames' alignment (:class:`guard.match.Alignment`, per frame):
  only new frames are aligned, and its segments are worked out again only when it gained
  or lost evidence, i.e. when a frame that joined or left the window counts for it (see
  :func:`guard.match.inert`); the others keep their segments, which are provably the same.

Voting over the kept hits and resolving rival segments run in full at every decision: both
are cheap next to the index and the alignment checks, and what they decide depends on the
whole window.

Files are also matched by their audio (:meth:`Searcher.match_file`): the query's landmarks
go to the landmark index and :func:`guard.audio_match.find_segments`; audio and video
segments that agree are fused (:func:`fuse`), and each reference's match policy then says
which may raise an incident (:func:`allowed_by_policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, cast

import numpy as np

from guard import audio_match, calibration
from guard.audio_fingerprint import hashes_of
from guard.config import MatchSettings
from guard.index.base import Hits, merge_hits
from guard.index.brute import BruteForceIndex, masked_search
from guard.index.landmarks import LandmarkHits, LandmarkIndex
from guard.match import (
    Alignment,
    vector_ids,
    Hypothesis,
    RefFrames,
    align,
    distinct_segments,
    find_segments,
    inert,
    segments_of,
    vote,
    with_mirrored,
    with_regions,
)
from guard.models import Fingerprint, MaskedCodes, RegionReadings, Segment
from guard.regions import LOOK_BACK
from guard.signals import FrameSignal
from guard.signals.audio import AudioLandmarks, Landmarks

#: The readings a live window searches: plain codes (with the masked ones merged) and mirrored codes.
PLAIN, MIRRORED = "plain", "mirrored"

#: Audio and video segments of one reference fuse when their query spans overlap and they
#: agree on the alignment: offsets (reference minus query time, compared in the middle of the
#: overlap) within ``FUSE_MAX_OFFSET`` s, rates within ``FUSE_MAX_RATE`` (relative).
FUSE_MAX_OFFSET = 1.0
FUSE_MAX_RATE = 0.02
#: A fused copy keeps the picture's edges unless its sound reaches further than this (s): audio
#: edges are off by up to about 1 s (docs/audio.md), so only a stretch the picture missed (a
#: scene under an overlay, a cut-away) moves them. On the accuracy corpus the union of both
#: spans lowered the IoU of scale_360p from 0.99 to 0.97; with this rule no family's got lower.
FUSE_EXTEND = 1.0


class IndexView(Protocol):
    """What the searcher needs of the reference index (:class:`guard.refindex.ReferenceIndex`)."""

    @property
    def refs(self) -> Mapping[int, RefFrames]:
        """Each reference's frames of the running signal, by id."""

    def sync(self) -> None:
        """Bring the view up to date with the catalog."""

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Index hits of plain (or mirrored) codes within ``radius`` bits."""

    def search_masked(self, codes: np.ndarray, masks: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Index hits of masked codes over the bits their masks show."""


class AudioIndexView(Protocol):
    """What the audio path needs of the reference index (:class:`guard.refindex.ReferenceIndex`)."""

    def sync(self) -> None:
        """Bring the view up to date with the catalog."""

    def audio_refs(self) -> Mapping[int, RefFrames]:
        """Each reference's landmarks, by id."""

    def search_landmarks(self, hashes: np.ndarray) -> LandmarkHits:
        """Every stored landmark with one of these hashes."""

    def match_policies(self) -> Mapping[int, str]:
        """Each reference's match policy, by id."""


class Searcher:
    """Finds copied segments in query readings: index search, voting, verification."""

    def __init__(self, index: IndexView, settings: MatchSettings, signal: FrameSignal, frame_period: float,
                 audio_signal: AudioLandmarks | None = None):
        self.index = index
        self.settings = settings
        self.signal = signal
        self.frame_period = frame_period
        self.audio_signal = audio_signal or AudioLandmarks()

    def match_file(self, fp: Fingerprint, landmarks: Landmarks | None = None) -> list[Segment]:
        """Copied segments of a scanned file: its picture's (:meth:`match`) and its sound's
        (:meth:`match_audio`), fused where they agree (:func:`fuse`), then only those each
        reference's match policy lets raise an incident (:func:`allowed_by_policy`)."""
        video = self.match(fp.times, fp.codes, fp.masked, raw=True, regions=fp.regions) if len(fp) else []
        audio = self.match_audio(landmarks) if landmarks is not None and len(landmarks) else []
        return self.decide(video, audio)

    def decide(self, video: list[Segment], audio: list[Segment]) -> list[Segment]:
        """What a query's picture segments (before calibration) and sound segments raise, for
        files (:meth:`match_file`) and live windows alike: fused where they agree (:func:`fuse`),
        then those each reference's match policy lets raise an incident (:func:`allowed_by_policy`),
        calibrated."""
        if not audio:  # the video-only path stays exactly as it was
            segments = video
        else:
            segments = fuse(video, audio)
        view = cast(AudioIndexView, self.index)
        if hasattr(view, "match_policies"):
            segments = allowed_by_policy(segments, view.match_policies())
        return calibration.decide(segments, self.settings)  # scores → probabilities, weak ones dropped

    def match_audio(self, landmarks: Landmarks) -> list[Segment]:
        """Copied segments in a query's landmarks (made under every assumed speed, see
        :meth:`guard.signals.audio.AudioLandmarks.extractor`), modality ``audio``."""
        view = cast(AudioIndexView, self.index)
        if not hasattr(view, "search_landmarks"):
            return []
        view.sync()
        refs = dict(view.audio_refs())
        if not refs:
            return []
        hits = view.search_landmarks(landmarks.hashes)
        return self.audio_segments(landmarks, hits, refs)

    def audio_segments(self, landmarks: Landmarks, hits: LandmarkHits, refs: Mapping[int, RefFrames]) -> list[Segment]:
        """Copied segments of query landmarks, given their landmark index hits (see :meth:`match_audio`)."""
        return audio_match.find_segments(landmarks, hits, self.audio_signal.params,
                                         {i: r.title for i, r in refs.items()},
                                         {i: r.min_seconds for i, r in refs.items()})

    def match(self, times: np.ndarray, codes: np.ndarray, masked: MaskedCodes | None = None,
              raw: bool = False, regions: RegionReadings | None = None) -> list[Segment]:
        """Copied segments in a sequence of query frames: times (s), plain codes and the masked
        readings of frames partly hidden by a still overlay, if any; mirrored codes are
        derived and searched too (``settings.mirror``), and the readings of windows inside the
        frames when given (``settings.regions``)."""
        self.index.sync()
        refs, m = dict(self.index.refs), self.settings  # one view, whatever other threads register
        mirrored = self.mirrored(codes)
        hits, flipped_hits = self.search(codes, masked, mirrored)
        segments = find_segments(times, codes, hits, refs, self.frame_period, m, masked)
        if mirrored is not None and flipped_hits is not None:  # search() gives both or neither
            flipped = find_segments(times, mirrored, flipped_hits, refs, self.frame_period, m)
            segments = with_mirrored(segments, flipped, refs, m.mirror_min_factor)
        if regions is not None and len(regions) and m.regions:
            segments = with_regions(segments, self.window_segments(times, regions, refs), refs,
                                    m.region_min_factor)
        return segments if raw else calibration.decide(segments, m)  # raw: before fusion (match_file)

    def window_segments(self, times: np.ndarray, regions: RegionReadings,
                        refs: Mapping[int, RefFrames]) -> list[Segment]:
        """Copied segments in the windows inside the query frames, each window (track) matched
        as a query of its own, so its frames vote together: modality ``video-region``, with the
        window's median box over the segment as ``region``."""
        m = self.settings
        per_reading = split_hits(self.index.search(regions.codes, m.seed_radius, m.max_hits_per_frame))
        found = []
        for track in np.unique(regions.tracks):
            rows = np.flatnonzero(regions.tracks == track)
            frames = regions.rows[rows]
            hits = join_hits([per_reading[r] for r in rows.tolist()])
            for segment in find_segments(times[frames], regions.codes[rows], hits, refs, self.frame_period, m):
                inside = rows[(times[frames] >= segment.query_start) & (times[frames] <= segment.query_end)]
                box = np.median(regions.boxes[inside if len(inside) else rows], axis=0)
                found.append(replace(segment, modality="video-region", region=[float(v) for v in box]))
        return found

    def live(self, seconds: float) -> LiveSearch:
        """An incremental matcher for a live window of the last ``seconds``."""
        return LiveSearch(self, seconds)

    def live_windows(self, seconds: float) -> LiveWindowSearch:
        """An incremental matcher for the windows inside a live window's frames (last ``seconds``)."""
        return LiveWindowSearch(self, seconds)

    def live_audio(self, seconds: float) -> LiveAudioSearch:
        """An incremental matcher for the sound of a live window of the last ``seconds``."""
        return LiveAudioSearch(self, seconds)

    def search(self, codes: np.ndarray, masked: MaskedCodes | None = None,
               mirrored: np.ndarray | None = None, among: Among | None = None) -> tuple[Hits, Hits | None]:
        """Index hits of each frame's readings: its plain code's merged with its masked
        reading's (only frames whose mask shows something are searched masked), and its
        mirrored code's (None without ``mirrored``). Plain and mirrored codes go to the index
        in one query: each query has a fixed cost (FAISS starts its threads). ``among``: search
        these reference frames instead of the index (a live reference's newly aired ones)."""
        m = self.settings
        view: IndexView | Among = self.index if among is None else among
        both = codes if mirrored is None else np.concatenate([codes, mirrored])
        found = view.search(both, m.seed_radius, m.max_hits_per_frame)
        if mirrored is None:
            return self._with_masked(found, masked, view), None
        plain, flipped = _split_at(found, len(codes))
        return self._with_masked(plain, masked, view), flipped

    def _with_masked(self, hits: Hits, masked: MaskedCodes | None, view: IndexView | Among) -> Hits:
        """``hits`` with each masked frame's own merged in (as :func:`merge_hits` would over all)."""
        m = self.settings
        if masked is None:
            return hits
        rows = np.flatnonzero(masked.masks.any(axis=1))
        if not len(rows):
            return hits
        hidden = view.search_masked(masked.codes[rows], masked.masks[rows], m.seed_radius, m.max_hits_per_frame)
        per_frame = split_hits(hits)
        merged = split_hits(merge_hits(join_hits([per_frame[r] for r in rows]), hidden, m.max_hits_per_frame))
        for row, found in zip(rows.tolist(), merged):
            per_frame[row] = found
        return join_hits(per_frame)

    def mirrored(self, codes: np.ndarray) -> np.ndarray | None:
        """The mirrored readings of ``codes``, when they are searched (``settings.mirror``) and
        the signal can derive them."""
        if not self.settings.mirror or not len(codes):
            return None
        return self.signal.mirror(codes)


class Among:
    """A few reference frames searched by brute force, as the index would search them: the
    frames a live reference aired since the last decision, against a window's kept frames."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray):
        self.index = BruteForceIndex(codes.shape[1] * 8)
        self.index.add(ids, codes)

    def search(self, codes: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Hits of plain (or mirrored) codes within ``radius`` bits."""
        return self.index.search(codes, radius, max_hits)

    def search_masked(self, codes: np.ndarray, masks: np.ndarray, radius: int, max_hits: int) -> Hits:
        """Hits of masked codes over the bits their masks show."""
        return masked_search(codes, masks, self.index.ids, self.index.codes, radius, max_hits)


def grown_frames(refs: Mapping[int, RefFrames], seen: Mapping[int, tuple[int, int]]) -> dict[int, int] | None:
    """How each reference changed since ``seen`` (id → ``(lineage, frames)`` at the last look):
    ``{id: frames seen}`` for those that only grew (live references that aired more), or None
    when one was added, removed, reloaded or shortened (then everything is searched again)."""
    if refs.keys() != seen.keys():
        return None
    grown = {}
    for ref_id, ref in refs.items():
        lineage, frames = seen[ref_id]
        if ref.lineage != lineage or len(ref.times) < frames:
            return None
        if len(ref.times) > frames:
            grown[ref_id] = frames
    return grown


def _offset_at(segment: Segment, query_time: float) -> float:
    """Reference minus query time of ``segment``'s alignment at ``query_time``."""
    return segment.reference_start + segment.rate * (query_time - segment.query_start) - query_time


def agree(video: Segment, audio: Segment) -> bool:
    """Whether a video and an audio segment restate one copy: the same reference, query
    spans that overlap, and alignments that agree: offsets within :data:`FUSE_MAX_OFFSET` in the
    middle of the overlap and rates within :data:`FUSE_MAX_RATE`, or offsets within
    :data:`FUSE_MAX_OFFSET` all along the overlap (its two ends): the picture's rate comes from a
    coarse grid (1, 0.95, 1.05 …) and, on a short copy, two rates 5 % apart place it alike."""
    if video.reference_id != audio.reference_id:
        return False
    start, end = max(video.query_start, audio.query_start), min(video.query_end, audio.query_end)
    if end <= start:
        return False
    middle = (start + end) / 2
    if abs(_offset_at(video, middle) - _offset_at(audio, middle)) > FUSE_MAX_OFFSET:
        return False
    if abs(video.rate - audio.rate) <= FUSE_MAX_RATE * max(video.rate, audio.rate):
        return True
    return all(abs(_offset_at(video, t) - _offset_at(audio, t)) <= FUSE_MAX_OFFSET for t in (start, end))


def fused_score(a: float, b: float) -> float:
    """The score of a copy both modalities found: ``1 − (1 − a)(1 − b)`` (as if each were an
    independent chance of being a copy), higher than either when both are above 0 and below
    1. A placeholder until the calibrated probability of issue 12 replaces it."""
    return 1.0 - (1.0 - a) * (1.0 - b)


def fuse(video: list[Segment], audio: list[Segment]) -> list[Segment]:
    """Video and audio segments, where a video segment and an audio one agree (:func:`agree`)
    one ``audio+video`` segment instead of the two, sorted by query start then reference.

    The fused segment spans the video segment, extended to the audio one's edges where they
    reach more than :data:`FUSE_EXTEND` beyond it; its alignment (offset, rate, reference span)
    is the video segment's, which samples the picture every frame (the audio one's anchors are
    sparser under noise); its matched fraction the larger, its matched frames the sum, its score
    :func:`fused_score`. Segments of different references stay apart."""
    used: set[int] = set()
    out: list[Segment] = []
    for v in video:
        partners = [k for k, a in enumerate(audio) if k not in used and agree(v, a)]
        if not partners:
            out.append(v)
            continue
        used.update(partners)
        heard_start = min(audio[k].query_start for k in partners)
        heard_end = max(audio[k].query_end for k in partners)
        start = heard_start if v.query_start - heard_start > FUSE_EXTEND else v.query_start
        end = heard_end if heard_end - v.query_end > FUSE_EXTEND else v.query_end
        score, fraction, matched = v.score, v.matched_fraction, v.matched_frames
        for k in partners:
            score = fused_score(score, audio[k].score)
            fraction = max(fraction, audio[k].matched_fraction)
            matched += audio[k].matched_frames
        reference_start = v.reference_start + v.rate * (start - v.query_start)
        out.append(replace(v, query_start=start, query_end=end, reference_start=reference_start,
                           reference_end=v.reference_start + v.rate * (end - v.query_start),
                           offset=reference_start - start, matched_fraction=fraction, score=score,
                           matched_frames=matched, modality="audio+video"))
    out += [a for k, a in enumerate(audio) if k not in used]
    return sorted(out, key=lambda s: (s.query_start, s.reference_id))


def allowed_by_policy(segments: list[Segment], policies: Mapping[int, str]) -> list[Segment]:
    """The segments whose modality their reference's match policy lets raise an incident:
    ``video`` takes picture matches (``video``, ``video-mirrored``, ``video-region``…) and
    ``audio+video``; ``audio`` takes ``audio`` and ``audio+video``; ``any`` (the default,
    also for a reference the policies do not know) takes every segment."""
    return [s for s in segments if _allowed(s.modality, policies.get(s.reference_id, "any"))]


def _allowed(modality: str, policy: str) -> bool:
    if policy == "video":
        return modality == "audio+video" or modality.startswith("video")
    if policy == "audio":
        return modality in ("audio", "audio+video")
    return True


def _split_at(hits: Hits, n: int) -> tuple[Hits, Hits]:
    """The hits of the first ``n`` queries, and of the others."""
    cut = int(hits.offsets[n])
    return (Hits(hits.offsets[: n + 1], hits.ids[:cut], hits.distances[:cut]),
            Hits(hits.offsets[n:] - cut, hits.ids[cut:], hits.distances[cut:]))


def split_hits(hits: Hits) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each query frame's ``(ids, distances)``."""
    bounds = hits.offsets[1:-1]
    return list(zip(np.split(hits.ids, bounds), np.split(hits.distances, bounds)))


def join_hits(per_frame: list[tuple[np.ndarray, np.ndarray]]) -> Hits:
    """:class:`Hits` of frames given their ``(ids, distances)``, in order."""
    offsets = np.zeros(len(per_frame) + 1, np.int64)
    if not per_frame:
        return Hits(offsets, np.zeros(0, np.int64), np.zeros(0, np.int32))
    np.cumsum([len(ids) for ids, _ in per_frame], out=offsets[1:])
    return Hits(offsets, np.concatenate([ids for ids, _ in per_frame]).astype(np.int64, copy=False),
                np.concatenate([d for _, d in per_frame]).astype(np.int32, copy=False))


@dataclass
class _Verified:
    """What a hypothesis gave at the last decision: its frames' alignment from frame number
    ``first`` on, its segments, and the reference state they were worked out with."""

    ref: RefFrames
    title: str
    min_seconds: float
    first: int
    alignment: Alignment
    segments: list[Segment]


class LiveSearch:
    """The incremental matcher of one live stream's sliding window (see the module docstring).

    :meth:`add` takes readings as they come (the window keeps the last ``seconds`` of them);
    :meth:`segments` decides: the copied segments in the window, exactly those
    :meth:`Searcher.match` would report for the window's frames, and :attr:`queries` counts
    the frames sent to the index (plain, masked and mirrored).
    """

    def __init__(self, searcher: Searcher, seconds: float):
        self.searcher = searcher
        self.seconds = seconds
        code_bytes = searcher.signal.code_bytes
        self.times = np.zeros(0)
        self.codes = np.zeros((0, code_bytes), np.uint8)
        self.masked = MaskedCodes(np.zeros((0, code_bytes), np.uint8), np.zeros((0, code_bytes), np.uint8))
        self.mirrored: np.ndarray | None = None
        self.queries = 0
        self._first = 0  # number of the window's first frame since the stream started
        self._hits: dict[str, list[tuple[np.ndarray, np.ndarray] | None]] = {PLAIN: [], MIRRORED: []}
        self._verified: dict[str, dict[tuple[int, float, float], _Verified]] = {PLAIN: {}, MIRRORED: {}}
        self._refs: dict[int, tuple[int, int]] = {}  # id → (lineage, frames) the kept hits were found with

    def __len__(self) -> int:
        return len(self.times)

    def add(self, times: np.ndarray, codes: np.ndarray, masked: MaskedCodes | None = None) -> None:
        """Append readings of frames later than every frame so far, then drop the frames older
        than the window (``seconds`` before the newest)."""
        if not len(times):
            return
        if masked is None:
            masked = MaskedCodes(np.zeros_like(codes), np.zeros_like(codes))
        mirrored = self.searcher.mirrored(codes)
        self.times = np.concatenate([self.times, times])
        self.codes = np.concatenate([self.codes, codes])
        self.masked = MaskedCodes(np.concatenate([self.masked.codes, masked.codes]),
                                  np.concatenate([self.masked.masks, masked.masks]))
        if mirrored is not None:
            self.mirrored = mirrored if self.mirrored is None else np.concatenate([self.mirrored, mirrored])
        for kind in self._hits:
            self._hits[kind].extend([None] * len(times))
        self._forget(int(np.searchsorted(self.times, self.times[-1] - self.seconds, side="left")))

    def segments(self, raw: bool = False) -> list[Segment]:
        """The copied segments in the window (what :meth:`Searcher.match` would give for it;
        ``raw``: before calibration, to go with the sound's through :meth:`Searcher.decide`)."""
        searcher = self.searcher
        searcher.index.sync()
        refs = dict(searcher.index.refs)  # one view for the decision, whatever other threads register
        self.check_references(refs)
        self._search_new()
        masked = self.masked if self.masked.masks.any() else None
        segments = self._kind_segments(PLAIN, self.codes, masked, refs)
        if self.mirrored is not None and searcher.settings.mirror:
            flipped = self._kind_segments(MIRRORED, self.mirrored, None, refs)
            segments = with_mirrored(segments, flipped, refs, searcher.settings.mirror_min_factor)
        return segments if raw else calibration.decide(segments, searcher.settings)  # as Searcher.match decides

    # -- the window -------------------------------------------------------------------------

    def _forget(self, count: int) -> None:
        """Drop the window's ``count`` oldest frames."""
        if count <= 0:
            return
        self._first += count
        self.times, self.codes = self.times[count:], self.codes[count:]
        self.masked = self.masked.take(slice(count, None))
        if self.mirrored is not None:
            self.mirrored = self.mirrored[count:]
        for kept in self._hits.values():
            del kept[:count]

    def check_references(self, refs: Mapping[int, RefFrames]) -> None:
        """Kept hits and alignments hold for the references they were found with: when one
        was added, removed or reloaded, every frame is searched again; when live references
        only aired more, the kept frames are searched among their new frames alone (a pirate
        ahead of the feed is found as soon as the feed catches up) and their hypotheses are
        aligned again."""
        grown = grown_frames(refs, self._refs)
        self._refs = {ref_id: (ref.lineage, len(ref.times)) for ref_id, ref in refs.items()}
        if grown is None:
            for kind, kept in self._hits.items():
                kept[:] = [None] * len(kept)
                self._verified[kind] = {}
        elif grown:
            self._search_among(grown, refs)

    def _search_among(self, grown: dict[int, int], refs: Mapping[int, RefFrames]) -> None:
        """Merge the hits of the kept (searched) frames among the grown references' new frames."""
        rows = [i for i, hits in enumerate(self._hits[PLAIN]) if hits is not None]
        if not rows:
            return
        ids = np.concatenate([vector_ids(i, len(refs[i].times))[first:] for i, first in grown.items()])
        codes = np.concatenate([refs[i].codes[first:] for i, first in grown.items()])
        mirrored = None if self.mirrored is None else self.mirrored[rows]
        plain, flipped = self.searcher.search(self.codes[rows], self.masked.take(rows), mirrored, Among(ids, codes))
        max_hits = self.searcher.settings.max_hits_per_frame
        for kind, found in ((PLAIN, plain), (MIRRORED, flipped)):
            kept = self._hits[kind]
            if found is None or kept[rows[0]] is None:
                continue
            merged = merge_hits(join_hits([cast("tuple[np.ndarray, np.ndarray]", kept[r]) for r in rows]), found,
                                max_hits)
            for row, hits in zip(rows, split_hits(merged)):
                kept[row] = hits

    def unsearched(self) -> list[int]:
        """The window's frames not searched yet (the newest ones), by row."""
        return [i for i, hits in enumerate(self._hits[PLAIN]) if hits is None]

    def searched(self, rows: list[int], found: Hits) -> None:
        """Keep the plain index hits of ``rows`` (:meth:`unsearched`), searched by the caller
        with others in one query; only for windows read plain (no masked, no mirrored readings)."""
        self.queries += len(rows)
        for row, hits in zip(rows, split_hits(found)):
            self._hits[PLAIN][row] = hits

    def _search_new(self) -> None:
        """Search the index for the frames not searched yet (the newest ones)."""
        rows = self.unsearched()
        if not rows:
            return
        masked = self.masked.take(rows)
        mirrored = None if self.mirrored is None else self.mirrored[rows]
        plain, flipped = self.searcher.search(self.codes[rows], masked, mirrored)
        self.queries += len(rows) * (1 if mirrored is None else 2) + int(masked.masks.any(axis=1).sum())
        for kind, found in ((PLAIN, plain), (MIRRORED, flipped)):
            if found is not None:
                for row, hits in zip(rows, split_hits(found)):
                    self._hits[kind][row] = hits

    # -- decisions ----------------------------------------------------------------------------

    def _kind_segments(self, kind: str, codes: np.ndarray, masked: MaskedCodes | None,
                       refs: Mapping[int, RefFrames]) -> list[Segment]:
        """Vote over the kept hits of one reading kind, verify (incrementally), resolve rivals."""
        settings = self.searcher.settings
        searched = cast("list[tuple[np.ndarray, np.ndarray]]", self._hits[kind])  # every frame: _search_new
        hypotheses = vote(self.times, join_hits(searched), refs, settings)
        previous, verified = self._verified[kind], {}
        segments: list[Segment] = []
        for hypothesis in hypotheses:
            # The same alignment as at the last decision: the offset voting found is the median
            # of a bin's hit offsets, which often stays put as hits come and go.
            key = (hypothesis.ref_id, hypothesis.rate, hypothesis.offset)
            entry = self._verify(hypothesis, refs[hypothesis.ref_id], codes, masked, previous.get(key))
            verified[key] = entry
            segments += entry.segments
        self._verified[kind] = verified
        return distinct_segments(segments, self.times, codes, refs, settings, masked)

    def _verify(self, hypothesis: Hypothesis, ref: RefFrames, codes: np.ndarray, masked: MaskedCodes | None,
                last: _Verified | None) -> _Verified:
        """A hypothesis's segments in the window, reusing what the last decision found for it."""
        settings, period = self.searcher.settings, self.searcher.frame_period
        gone = 0 if last is None else self._first - last.first
        kept = 0 if last is None else len(last.alignment) - gone
        if last is None or kept <= 0 or last.ref is not ref or (last.title, last.min_seconds) != (
                ref.title, ref.min_seconds):
            alignment = align(hypothesis, self.times, codes, ref, settings, masked)
            return _Verified(ref, ref.title, ref.min_seconds, self._first, alignment,
                             segments_of(hypothesis, self.times, alignment, ref, period, settings))
        new = slice(kept, None)
        fresh = align(hypothesis, self.times[new], codes[new], ref, settings,
                      None if masked is None else masked.take(new))
        old = last.alignment.take(slice(gone, None))
        alignment = old.then(fresh)
        if self._changed(old, last.alignment.take(slice(0, gone)), fresh, self.times[new], settings, period):
            segments = segments_of(hypothesis, self.times, alignment, ref, period, settings)
        else:
            segments = last.segments
        return _Verified(ref, ref.title, ref.min_seconds, self._first, alignment, segments)

    def _changed(self, old: Alignment, gone: Alignment, fresh: Alignment, fresh_times: np.ndarray,
                 settings: MatchSettings, period: float) -> bool:
        """Whether frames that left (``gone``) or joined (``fresh``) the window may change a
        hypothesis's segments: one of them counts for it, or a new frame falls inside the
        span a segment of counting old frames would claim (its last frame + one period)."""
        if not (inert(gone, settings).all() and inert(fresh, settings).all()):
            return True
        counting = np.flatnonzero(~inert(old, settings))
        if not len(counting) or not len(fresh_times):
            return False
        last_counting = self.times[counting[-1]]
        return bool(fresh_times[0] < last_counting + period)


class LiveWindowSearch:
    """The windows inside a live stream's frames (a streamer's layout; :mod:`guard.regions`),
    each window's track matched as a query of its own by a :class:`LiveSearch` over the last
    ``seconds`` — what :meth:`Searcher.window_segments` gives for a file, incrementally: a
    window holding the game adds up over its frames, chance hits in other windows do not.

    :meth:`add` takes a batch's window readings; :meth:`with_windows` adds the windows'
    segments (``video-region``, with their box) to the whole frames' (see
    :func:`guard.match.with_regions`). A track gone from view for ``seconds`` is dropped.
    """

    def __init__(self, searcher: Searcher, seconds: float):
        # Windows are read plain, as a file's are (a mirrored copy fills the frame).
        self.searcher = Searcher(searcher.index, searcher.settings.model_copy(update={"mirror": False}), searcher.signal,
                                 searcher.frame_period, searcher.audio_signal)
        self.seconds = seconds
        self._tracks: dict[int, tuple[LiveSearch, np.ndarray]] = {}  # id → (matcher, boxes of its frames)
        self._newest = -np.inf
        self._recent = np.zeros(0)  # times of the last frames, which new windows are read back to

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def queries(self) -> int:
        """Window readings sent to the index so far, by the tracks still followed."""
        return sum(search.queries for search, _ in self._tracks.values())

    def add(self, times: np.ndarray, regions: RegionReadings) -> None:
        """Append the window readings of frames at ``times`` (``regions.rows`` index them;
        negative rows index the frames of earlier batches, -1 the last: a new window read
        back, see :data:`guard.regions.LOOK_BACK`)."""
        if len(times):
            self._newest = max(self._newest, float(times[-1]))
        earlier = len(self._recent)
        known = np.concatenate([self._recent, times])
        self._recent = known[-LOOK_BACK:]
        regions = regions.in_frame_order()
        for track in np.unique(regions.tracks).tolist():
            rows = np.flatnonzero(regions.tracks == track)
            search, boxes = self._tracks.get(track) or (LiveSearch(self.searcher, self.seconds),
                                                        np.zeros((0, 4), np.float32))
            search.add(known[earlier + regions.rows[rows]], regions.codes[rows])
            self._tracks[track] = (search, np.concatenate([boxes, regions.boxes[rows]])[-len(search):])
        self._tracks = {track: kept for track, kept in self._tracks.items()
                        if len(kept[0]) and kept[0].times[-1] >= self._newest - self.seconds}

    def segments(self) -> list[Segment]:
        """The copied segments in the windows (before calibration): modality ``video-region``,
        with the window's median box over the segment as ``region``."""
        self._search_new()
        found = []
        for search, boxes in self._tracks.values():
            if len(search) < self.searcher.settings.min_seed_frames:
                continue
            for segment in search.segments(raw=True):
                inside = (search.times >= segment.query_start) & (search.times <= segment.query_end)
                box = np.median(boxes[inside] if inside.any() else boxes, axis=0)
                found.append(replace(segment, modality="video-region", region=[float(v) for v in box]))
        return found

    def _search_new(self) -> None:
        """The new readings of every track in one index query (each query has a fixed cost)."""
        index = self.searcher.index
        index.sync()
        refs = dict(index.refs)
        for search, _ in self._tracks.values():
            search.check_references(refs)  # what a reference change would search again, first
        pending = [(search, search.unsearched()) for search, _ in self._tracks.values()]
        pending = [(search, rows) for search, rows in pending if rows]
        if not pending:
            return
        codes = np.concatenate([search.codes[rows] for search, rows in pending])
        found, _ = self.searcher.search(codes)
        parts = split_hits(found)
        at = 0
        for search, rows in pending:
            search.searched(rows, join_hits(parts[at:at + len(rows)]))
            at += len(rows)

    def with_windows(self, segments: list[Segment]) -> list[Segment]:
        """The whole frames' ``segments`` (before calibration) with the windows' (see
        :func:`guard.match.with_regions`)."""
        if not self._tracks or not self.searcher.settings.regions:
            return segments
        windowed = self.segments()
        refs = dict(self.searcher.index.refs)
        windowed = [w for w in windowed if w.reference_id in refs]
        return with_regions(segments, windowed, refs, self.searcher.settings.region_min_factor)


class LiveAudioSearch:
    """The incremental matcher of one live stream's sound: the landmarks of the window's last
    ``seconds`` (a query extractor's, under every assumed speed) and their index hits.

    :meth:`add` takes landmarks as the extractor makes them; :meth:`segments` decides: exactly
    what :meth:`Searcher.match_audio` would report for the window's landmarks, asking the
    landmark index about new landmarks only (all of them again when references were added,
    removed or reloaded). Voting and alignment run over the window at every decision (cheap next
    to a lookup: they work on the hits only). :attr:`queries` counts the landmarks looked up.
    """

    def __init__(self, searcher: Searcher, seconds: float):
        self.searcher = searcher
        self.seconds = seconds
        self.landmarks = Landmarks()
        self.queries = 0
        self._first = 0  # number of the window's first landmark since the stream started
        self._searched = 0  # landmarks numbered below this have their hits
        self._hits = _no_landmark_hits()  # query_index: landmark numbers
        self._refs: dict[int, tuple[int, int]] = {}  # id → (lineage, landmarks) the kept hits were found with

    def __len__(self) -> int:
        return len(self.landmarks)

    def add(self, landmarks: Landmarks) -> None:
        """Append landmarks (later than those so far), then drop those older than the window."""
        if not len(landmarks):
            return
        ordered = landmarks.take(np.argsort(landmarks.times, kind="stable"))
        self.landmarks = Landmarks.concat([self.landmarks, ordered])
        inside = self.landmarks.times >= float(ordered.times[-1]) - self.seconds
        self._forget(int(np.argmax(inside)))

    def segments(self) -> list[Segment]:
        """The copied segments in the window's sound (what :meth:`Searcher.match_audio` gives)."""
        view = cast(AudioIndexView, self.searcher.index)
        if not hasattr(view, "search_landmarks"):
            return []
        view.sync()
        refs = dict(view.audio_refs())  # one view for the decision, whatever other threads register
        self._check_references(refs)
        if not refs or not len(self.landmarks):
            return []
        start = max(self._searched - self._first, 0)
        if start < len(self.landmarks):
            found = view.search_landmarks(self.landmarks.hashes[start:])
            self.queries += len(self.landmarks) - start
            self._hits = LandmarkHits(np.concatenate([self._hits.query_index, found.query_index + self._first + start]),
                                      np.concatenate([self._hits.ref_ids, found.ref_ids]),
                                      np.concatenate([self._hits.ref_times, found.ref_times]))
            self._searched = self._first + len(self.landmarks)
        hits = LandmarkHits(self._hits.query_index - self._first, self._hits.ref_ids, self._hits.ref_times)
        return self.searcher.audio_segments(self.landmarks, hits, refs)

    def _forget(self, count: int) -> None:
        """Drop the window's ``count`` oldest landmarks and their hits."""
        if count <= 0:
            return
        self._first += count
        lm = self.landmarks
        self.landmarks = Landmarks(lm.times[count:], lm.hashes[count:], lm.speeds[count:])
        keep = self._hits.query_index >= self._first
        self._hits = LandmarkHits(self._hits.query_index[keep], self._hits.ref_ids[keep], self._hits.ref_times[keep])

    def _check_references(self, refs: Mapping[int, RefFrames]) -> None:
        """Kept hits hold for the references they were found with: when one was added, removed
        or reloaded, every landmark is looked up again; when live references only aired more,
        the looked-up landmarks are matched with their new landmarks alone."""
        grown = grown_frames(refs, self._refs)
        self._refs = {ref_id: (ref.lineage, len(ref.times)) for ref_id, ref in refs.items()}
        if grown is None:
            self._hits = _no_landmark_hits()
            self._searched = self._first
        elif grown:
            self._match_among(grown, refs)

    def _match_among(self, grown: dict[int, int], refs: Mapping[int, RefFrames]) -> None:
        """Add the hits of the looked-up landmarks among the grown references' new landmarks."""
        searched = min(self._searched - self._first, len(self.landmarks))
        if searched <= 0:
            return
        table = LandmarkIndex()
        for ref_id, first in grown.items():
            table.add(ref_id, refs[ref_id].times[first:], hashes_of(refs[ref_id].codes[first:]))
        found = table.search(self.landmarks.hashes[:searched])
        query_index = np.concatenate([self._hits.query_index, found.query_index + self._first])
        ref_ids = np.concatenate([self._hits.ref_ids, found.ref_ids])
        ref_times = np.concatenate([self._hits.ref_times, found.ref_times])
        order = np.lexsort((ref_times, ref_ids, query_index))  # as the index orders them
        query_index, ref_ids, ref_times = query_index[order], ref_ids[order], ref_times[order]
        # a landmark the index already held (it may run ahead of the references' view) counts once
        once = np.ones(len(order), bool)
        once[1:] = (np.diff(query_index) != 0) | (np.diff(ref_ids) != 0) | (np.diff(ref_times) != 0)
        self._hits = LandmarkHits(query_index[once], ref_ids[once], ref_times[once])


def _no_landmark_hits() -> LandmarkHits:
    return LandmarkHits(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
