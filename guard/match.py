"""Temporal matching: frame-level index hits → aligned hypotheses → copied segments.

Two steps, kept apart:

1. :func:`vote` — every index hit (query frame, reference frame) votes for the time offset
   ``t_ref − rate·t_query`` of its reference (dejavu's offset histogram, extended over a few
   playback rates). Offsets backed by enough distinct query frames become hypotheses.
2. :func:`verify` — for each hypothesis, every query frame is compared with the reference
   frame the alignment predicts (:func:`align`, per frame: so a live window can keep what
   its frames gave and align only new ones, see :mod:`guard.search`). A frame is accepted at the *relaxed* ``match_radius``, far
   beyond what the index was asked for: agreement with the offset is the evidence that lets
   an overlaid, cropped or re-encoded frame count. Runs of accepted frames become segments
   when most of their frames are *temporally unique* (closer to the aligned reference frame
   than to the reference a few seconds earlier or later), which rejects look-alike scenes.
   Each segment's edges are then re-drawn by :func:`refine` (a maximal-scoring span).

Segments restating one stretch of query are resolved by which alignment is closer over the
span they share (:func:`find_segments`). Frames may carry a second, masked reading
(:class:`guard.models.MaskedCodes`); a frame counts the closer of its readings.

Everything is deterministic: ties break on reference id, then time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
import numpy.typing as npt

from guard.config import MatchSettings
from guard.index.base import Hits
from guard.models import MaskedCodes, Segment, spread_matches
from guard.signals.base import hamming, masked_hamming

#: Vector ids pack the reference id above the frame number: ``ref_id << ID_SHIFT | frame``.
ID_SHIFT = 24


def vector_ids(ref_id: int, count: int) -> np.ndarray:
    """The index ids of a reference's ``count`` frames."""
    return (np.int64(ref_id) << ID_SHIFT) | np.arange(count, dtype=np.int64)


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference ids and frame numbers of index ids."""
    ids = np.asarray(ids, dtype=np.int64)
    return ids >> ID_SHIFT, ids & ((1 << ID_SHIFT) - 1)


#: Lineages of :class:`RefFrames` (see :attr:`RefFrames.lineage`).
_LINEAGES = itertools.count(1)


@dataclass
class RefFrames:
    """What the matcher needs to know about one reference."""

    title: str
    min_seconds: float
    times: np.ndarray
    codes: np.ndarray
    #: The rights holder: references of different owners may both claim one copy.
    owner: str = ""
    #: Frames that only ever grew from one first view share it (a live reference's appends,
    #: see :meth:`grown`); a reloaded or replaced reference gets a new one.
    lineage: int = field(default_factory=lambda: next(_LINEAGES))

    def grown(self, times: np.ndarray, codes: np.ndarray) -> RefFrames:
        """The same reference with more frames (``times``/``codes`` extend this one's)."""
        return replace(self, times=times, codes=codes)



@dataclass
class Alignment:
    """Each query frame under one hypothesis: its distance to the reference frame the
    alignment predicts (``bits + 1`` where there is none), that frame's time (NaN where there
    is none) and whether the frame is temporally unique there. Every value depends on its own
    frame only. Uniqueness is worked out only where it can matter (distance below
    :func:`counting_radius`); elsewhere it is False."""

    dist: npt.NDArray[np.int32]  # (n,)
    ref_time: npt.NDArray[np.float64]  # (n,)
    unique: npt.NDArray[np.bool_]  # (n,)

    def __len__(self) -> int:
        return len(self.dist)

    def take(self, frames: slice | list[int] | np.ndarray) -> Alignment:
        """The alignment of some frames (a slice, index or boolean selection)."""
        return Alignment(self.dist[frames], self.ref_time[frames], self.unique[frames])

    def then(self, later: Alignment) -> Alignment:
        """This alignment followed by ``later``'s frames."""
        return Alignment(np.concatenate([self.dist, later.dist]), np.concatenate([self.ref_time, later.ref_time]),
                         np.concatenate([self.unique, later.unique]))


@dataclass(frozen=True)
class Hypothesis:
    """A reference and an alignment ``t_ref = rate·t_query + offset`` backed by ``seeds`` frames."""

    ref_id: int
    offset: float
    rate: float
    seeds: int


def vote(
    query_times: np.ndarray,
    hits: Hits,
    refs: Mapping[int, RefFrames],
    settings: MatchSettings,
) -> list[Hypothesis]:
    """Turn index hits into the strongest alignment hypotheses, best first."""
    counts = np.diff(hits.offsets)
    if counts.sum() == 0:
        return []
    query_index = np.repeat(np.arange(len(counts)), counts)
    ref_ids, frames = split_ids(hits.ids)
    ref_times, known = _reference_times(ref_ids, frames, refs)
    query_index, ref_ids, ref_times = query_index[known], ref_ids[known], ref_times[known]
    hypotheses: list[Hypothesis] = []
    for rate in settings.rates:
        offsets = ref_times - rate * query_times[query_index]
        hypotheses += _peaks(ref_ids, offsets, query_index, rate, settings)
    hypotheses.sort(key=lambda h: (-h.seeds, abs(h.rate - 1.0), h.ref_id, h.offset))
    return hypotheses[: settings.max_hypotheses]


def _reference_times(
    ref_ids: np.ndarray, frames: np.ndarray, refs: Mapping[int, RefFrames]
) -> tuple[np.ndarray, np.ndarray]:
    """Times of hit frames, and which hits belong to a known reference (one lookup per reference)."""
    times = np.zeros(len(ref_ids), dtype=np.float64)
    known = np.zeros(len(ref_ids), dtype=bool)
    unique, inverse = np.unique(ref_ids, return_inverse=True)
    for k, ref_id in enumerate(unique.tolist()):
        ref = refs.get(ref_id)
        if ref is not None:
            # frames past the view's end: the index already holds a live reference's newer appends
            mine = (inverse == k) & (frames < len(ref.times))
            known[mine] = True
            times[mine] = ref.times[frames[mine]]
    return times, known


def _peaks(
    ref_ids: np.ndarray,
    offsets: np.ndarray,
    query_index: np.ndarray,
    rate: float,
    settings: MatchSettings,
) -> list[Hypothesis]:
    """Offset-histogram peaks per reference, counting distinct query frames per bin."""
    bins = np.floor(offsets / settings.offset_bin).astype(np.int64)
    # One vote per (reference, bin, query frame): a static scene must not outvote motion.
    triples = np.unique(np.stack([ref_ids, bins, query_index], axis=1), axis=0)
    pairs, votes = np.unique(triples[:, :2], axis=0, return_counts=True)
    found: list[Hypothesis] = []
    for ref_id in np.unique(pairs[:, 0]).tolist():
        mine = pairs[:, 0] == ref_id
        ref_bins, ref_votes = pairs[mine, 1], votes[mine]
        # Neighbouring bins share a peak when the true offset sits on a bin edge.
        smoothed = {
            b: int(ref_votes[np.abs(ref_bins - b) <= 1].sum()) for b in ref_bins.tolist()
        }
        taken: list[int] = []
        for b in sorted(smoothed, key=lambda b: (-smoothed[b], b)):
            if smoothed[b] < settings.min_seed_frames:
                break
            if any(abs(b - t) <= 2 for t in taken):
                continue
            taken.append(b)
            near = (ref_ids == ref_id) & (np.abs(np.floor(offsets / settings.offset_bin) - b) <= 1)
            found.append(Hypothesis(ref_id, float(np.median(offsets[near])), rate, smoothed[b]))
    return found


def aligned_distances(
    query_times: np.ndarray,
    query_codes: np.ndarray,
    ref: RefFrames,
    offset: float,
    rate: float,
    tolerance: float,
    masked: MaskedCodes | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query frame, the closest reference frame near its aligned time.

    Returns ``(distance, reference time)``; frames with no reference frame within
    ``tolerance`` seconds of the predicted time get distance ``bits + 1`` and time NaN.
    A frame with a ``masked`` reading (a still overlay hides part of it) counts the closer
    of its two readings.
    """
    bits = query_codes.shape[1] * 8
    n, count = len(query_times), len(ref.times)
    best = np.full(n, bits + 1, dtype=np.int32)
    best_time = np.full(n, np.nan)
    if n == 0 or count == 0:
        return best, best_time
    # The four reference frames around each predicted time at once (two before, two after);
    # the first closest one wins, as when they were visited in turn.
    expected = rate * query_times + offset
    idx = np.searchsorted(ref.times, expected)[:, None] + np.arange(-2, 2)
    idx_ok = np.clip(idx, 0, count - 1)
    near = (idx >= 0) & (idx < count) & (np.abs(ref.times[idx_ok] - expected[:, None]) <= tolerance)
    rows, cols = np.nonzero(near)
    if not len(rows):
        return best, best_time
    candidates = ref.codes[idx_ok[rows, cols]]
    found = hamming(query_codes[rows], candidates)
    if masked is not None:
        found = np.minimum(found, masked_hamming(masked.codes[rows], candidates, masked.masks[rows]))
    d = np.full(near.shape, bits + 1, dtype=np.int32)
    d[rows, cols] = found
    pick = np.argmin(d, axis=1)
    every = np.arange(n)
    best = d[every, pick]
    seen = near.any(axis=1)
    best_time[seen] = ref.times[idx_ok[every, pick]][seen]
    return best, best_time


def counting_radius(settings: MatchSettings) -> int:
    """Frames at this distance or more from their aligned reference frame can neither be
    accepted (``match_radius``) nor add to a copy when its edges are re-drawn
    (``extend_radius``, see :func:`refine`): whether they are unique never matters."""
    return max(settings.extend_radius, settings.match_radius + 1)


def align(
    hypothesis: Hypothesis,
    query_times: np.ndarray,
    query_codes: np.ndarray,
    ref: RefFrames,
    settings: MatchSettings,
    masked: MaskedCodes | None = None,
) -> Alignment:
    """Every query frame under ``hypothesis`` (see :class:`Alignment`)."""
    dist, ref_time = aligned_distances(
        query_times, query_codes, ref, hypothesis.offset, hypothesis.rate, settings.align_tolerance, masked,
    )
    return _with_uniqueness(hypothesis, query_times, query_codes, ref, settings, masked, dist, ref_time)


def _with_uniqueness(hypothesis: Hypothesis, query_times: np.ndarray, query_codes: np.ndarray, ref: RefFrames,
                     settings: MatchSettings, masked: MaskedCodes | None, dist: np.ndarray,
                     ref_time: np.ndarray) -> Alignment:
    unique = np.zeros(len(dist), bool)
    near = np.flatnonzero(dist < counting_radius(settings))
    if len(near):
        unique[near] = _temporally_unique(query_times[near], query_codes[near], ref, hypothesis, dist[near],
                                          settings, None if masked is None else masked.take(near))
    return Alignment(dist, ref_time, unique)


def inert(alignment: Alignment, settings: MatchSettings) -> np.ndarray:
    """Which frames count for nothing under their hypothesis: not accepted, and scoring at
    most 0 when a copy's edges are re-drawn (see :func:`refine`). Frames like these joining
    or leaving a window change none of its segments (see :mod:`guard.search`)."""
    dist = alignment.dist
    doubtful = (dist > settings.seed_radius) & ~alignment.unique
    return (dist > settings.match_radius) & ((dist >= settings.extend_radius) | doubtful)


def verify(
    hypothesis: Hypothesis,
    query_times: np.ndarray,
    query_codes: np.ndarray,
    ref: RefFrames,
    frame_period: float,
    settings: MatchSettings,
    masked: MaskedCodes | None = None,
) -> list[Segment]:
    """The copied segments an alignment hypothesis explains, if any."""
    dist, ref_time = aligned_distances(
        query_times, query_codes, ref, hypothesis.offset, hypothesis.rate, settings.align_tolerance, masked,
    )
    if not (dist <= settings.match_radius).any():
        return []  # nothing accepted: spare the uniqueness checks
    alignment = _with_uniqueness(hypothesis, query_times, query_codes, ref, settings, masked, dist, ref_time)
    return segments_of(hypothesis, query_times, alignment, ref, frame_period, settings)


def segments_of(
    hypothesis: Hypothesis,
    query_times: np.ndarray,
    alignment: Alignment,
    ref: RefFrames,
    frame_period: float,
    settings: MatchSettings,
) -> list[Segment]:
    """The copied segments of an aligned query (see :func:`verify`)."""
    dist, ref_time, unique = alignment.dist, alignment.ref_time, alignment.unique
    accepted = np.flatnonzero(dist <= settings.match_radius)
    if len(accepted) == 0:
        return []

    def segment_of(frames: np.ndarray) -> Segment | None:
        if unique[frames].mean() < settings.min_uniqueness:
            return None
        segment = _segment(hypothesis, frames, query_times, dist, ref_time, ref, frame_period, settings)
        return None if segment is None else replace(segment, uniqueness=float(unique[frames].mean()))

    found: list[tuple[np.ndarray, Segment]] = []
    for run in _runs(query_times[accepted], settings.max_gap):
        frames = _trim_edges(accepted[run], query_times, settings.edge_window, settings.edge_support)
        segment = segment_of(frames) if len(frames) else None
        if segment is None:
            continue
        # A scene cut or a burst of damage can break one copy into pieces; pieces that each
        # qualify on their own and share this alignment are one copy.
        if found and segment.query_start - found[-1][1].query_end <= settings.merge_gap:
            merged_frames = np.concatenate([found[-1][0], frames])
            merged = segment_of(merged_frames)
            if merged is not None:
                found[-1] = (merged_frames, merged)
                continue
        found.append((frames, segment))
    # Only copies that qualified are re-drawn: growing every candidate run before it qualifies
    # turned look-alike programme into false incidents on the negatives.
    return [segment_of(refine(frames, dist, unique, settings)) or segment for frames, segment in found]


def refine(
    core: np.ndarray,
    dist: np.ndarray,
    unique: np.ndarray,
    settings: MatchSettings,
) -> np.ndarray:
    """Re-draw the edges of a found copy where its frames stop following the alignment.

    The ``core`` frames were found within ``match_radius``. Around them, each frame scores
    ``extend_radius − distance``: positive for frames that resemble the aligned reference
    frame, negative for those that do not; beyond ``seed_radius`` a frame that is not
    temporally unique scores at most 0 (a look-alike programme next to a clean copy resembles
    the reference's neighbouring instants as well). The copy runs from the start to the end
    that maximise the summed score through the core's middle frame — a maximal-scoring
    segment, as in sequence alignment. So a 20 % crop or a 25 % overlay, whose frames sit at
    50–75 bits for whole scenes, stays one copy when clean stretches flank it, and the copy
    ends where the unrelated programme (95+ bits at this alignment) begins. Returns the
    copy's frames: those in the span that score above 0, and the core's own.
    """
    score = (settings.extend_radius - dist).astype(np.float64)
    doubtful = (dist > settings.seed_radius) & ~unique
    score[doubtful] = np.minimum(score[doubtful], 0.0)
    middle = int(core[len(core) // 2])
    before = np.concatenate([[0.0], np.cumsum(score[:middle][::-1])])  # score of start = middle - k
    first = middle - int(np.argmax(before))
    after = np.cumsum(score[middle:])
    last = middle + int(np.argmax(after))
    span = np.arange(first, last + 1)
    return np.union1d(span[score[span] > 0], core[(core >= first) & (core <= last)])


def _temporally_unique(
    query_times: np.ndarray,
    query_codes: np.ndarray,
    ref: RefFrames,
    hypothesis: Hypothesis,
    dist: np.ndarray,
    settings: MatchSettings,
    masked: MaskedCodes | None = None,
) -> np.ndarray:
    """Which query frames match their aligned reference frame clearly better than nearby ones.

    A copy follows the reference's motion: each copied frame is closest to the reference frame
    at its own instant, and seconds away the picture has moved on. A look-alike scene (another
    concert's dark stage, another match's green field) matches every nearby reference frame
    about equally well. A frame counts as unique when its aligned distance beats every
    alignment shifted by ``settings.uniqueness_shifts`` seconds by ``uniqueness_margin`` bits.
    """
    shifted = [
        aligned_distances(query_times, query_codes, ref, hypothesis.offset + shift,
                          hypothesis.rate, settings.align_tolerance, masked)[0]
        for shift in settings.uniqueness_shifts
    ]
    closest_shifted: npt.NDArray[np.int32] = np.min(shifted, axis=0)
    return dist < closest_shifted - settings.uniqueness_margin


def _trim_edges(frames: np.ndarray, query_times: np.ndarray, window: float, support: int) -> np.ndarray:
    """Drop stray accepted frames at the ends of a run.

    At the relaxed radius about one unrelated frame in a hundred is accepted by chance; one
    such frame just before a copy would otherwise stretch the segment back by up to
    ``max_gap``. An edge frame counts only with ``support`` accepted frames (itself included)
    within ``window`` seconds after it (at the start) or before it (at the end).
    """
    times = query_times[frames]
    after = np.searchsorted(times, times + window, side="right") - np.arange(len(times))
    before = np.arange(len(times)) + 1 - np.searchsorted(times, times - window, side="left")
    dense_start = np.flatnonzero(after >= support)
    dense_end = np.flatnonzero(before >= support)
    if len(dense_start) == 0 or len(dense_end) == 0 or dense_start[0] > dense_end[-1]:
        return frames[:0]
    return frames[dense_start[0] : dense_end[-1] + 1]


def _runs(times: np.ndarray, max_gap: float) -> list[slice]:
    if len(times) == 0:
        return []
    breaks = np.flatnonzero(np.diff(times) > max_gap) + 1
    edges = [0, *breaks.tolist(), len(times)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _segment(
    hypothesis: Hypothesis,
    frames: np.ndarray,
    query_times: np.ndarray,
    dist: np.ndarray,
    ref_time: np.ndarray,
    ref: RefFrames,
    frame_period: float,
    settings: MatchSettings,
) -> Segment | None:
    start, end = query_times[frames[0]], query_times[frames[-1]] + frame_period
    if end - start < ref.min_seconds:
        return None
    strict = int((dist[frames] <= settings.seed_radius).sum())
    if strict < settings.min_seed_frames:
        return None
    in_span = int(((query_times >= start) & (query_times < end)).sum())
    fraction = len(frames) / max(in_span, 1)
    if fraction < settings.min_matched_fraction:
        return None
    rate, offset = _fit_alignment(query_times[frames], ref_time[frames], hypothesis)
    mean_distance = float(dist[frames].mean())
    bits = ref.codes.shape[1] * 8
    score = float(np.clip(fraction * (1.0 - mean_distance / (bits / 2)), 0.0, 1.0))
    ref_start = rate * start + offset
    return Segment(
        reference_id=hypothesis.ref_id,
        reference_title=ref.title,
        query_start=float(start),
        query_end=float(end),
        reference_start=float(ref_start),
        reference_end=float(ref_start + rate * (end - start)),
        offset=float(ref_start - start),
        rate=float(rate),
        matched_fraction=float(fraction),
        score=score,
        matched_frames=len(frames),
        mean_distance=mean_distance,
        matches=spread_matches(np.stack([query_times[frames], ref_time[frames]], axis=1).tolist()),
    )


def _fit_alignment(tq: np.ndarray, tr: np.ndarray, hypothesis: Hypothesis) -> tuple[float, float]:
    """Least-squares ``t_ref = rate·t_query + offset`` over matched frames; keep 1.0 when close."""
    if len(tq) >= 8 and np.ptp(tq) >= 4.0:
        rate, offset = np.polyfit(tq, tr, 1)
        if abs(rate - 1.0) < 0.01:
            rate = 1.0
        if abs(rate - hypothesis.rate) < 0.03:
            return float(rate), float(np.median(tr - rate * tq))
    return hypothesis.rate, float(np.median(tr - hypothesis.rate * tq))


def find_segments(
    query_times: np.ndarray,
    query_codes: np.ndarray,
    hits: Hits,
    refs: Mapping[int, RefFrames],
    frame_period: float,
    settings: MatchSettings,
    masked: MaskedCodes | None = None,
) -> list[Segment]:
    """Every copied segment in a query, strongest first, one per stretch of each reference.

    ``masked``: the overlay readings of the query frames, if any (see :class:`MaskedCodes`).
    """
    segments: list[Segment] = []
    for hypothesis in vote(query_times, hits, refs, settings):
        ref = refs[hypothesis.ref_id]
        segments += verify(hypothesis, query_times, query_codes, ref, frame_period, settings, masked)
    return distinct_segments(segments, query_times, query_codes, refs, settings, masked)


def distinct_segments(
    segments: list[Segment],
    query_times: np.ndarray,
    query_codes: np.ndarray,
    refs: Mapping[int, RefFrames],
    settings: MatchSettings,
    masked: MaskedCodes | None = None,
) -> list[Segment]:
    """The verified ``segments`` of a query less those restating another (see :func:`_distinct`),
    in query order."""

    def closer(a: Segment, b: Segment) -> bool:
        """Whether ``a``'s alignment matches the query span it shares with ``b`` clearly closer."""
        shared = (query_times >= max(a.query_start, b.query_start)) & (
            query_times < min(a.query_end, b.query_end))
        if not shared.any():
            return False
        part = None if masked is None else masked.take(shared)
        mean = [
            aligned_distances(query_times[shared], query_codes[shared], refs[s.reference_id],
                              s.reference_start - s.rate * s.query_start, s.rate,
                              settings.align_tolerance, part)[0].mean()
            for s in (a, b)
        ]
        return bool(mean[0] < mean[1] - settings.rival_margin)

    def claims(kept: Segment, candidate: Segment) -> bool:
        """Whether ``candidate``, of another owner than ``kept``, restates enough of its copy to
        claim it too (an ownership conflict, see :mod:`guard.act`)."""
        return (refs[kept.reference_id].owner != refs[candidate.reference_id].owner
                and candidate.duration >= settings.conflict_cover * kept.duration)

    return _distinct(segments, query_codes.shape[1] * 8, closer, claims)


def _distinct(segments: list[Segment], bits: int, closer: Callable[[Segment, Segment], bool],
              claims: Callable[[Segment, Segment], bool] | None = None) -> list[Segment]:
    """Drop segments that restate another (mostly the same query span).

    Candidates are taken strongest first (summed similarity of their matched frames).
    ``closer(a, b)`` says whether ``a``'s alignment matches the query span it shares with
    ``b`` clearly better. A candidate restating kept segments of its own reference replaces
    them only when it is closer than each: among neighbouring playback rates the one that
    aligns the copy best wins, not the one that let look-alike frames around it in. A
    candidate is dropped when a kept segment of another reference is closer over their
    shared span: a query frame shows one picture, and another reference that merely
    resembles it (the same photo, shot differently) explains it worse. Equally close
    references (one containing the other's footage) are both kept, and so is one of another
    owner that ``claims(kept, candidate)`` the kept one's copy (two owners' versions of one
    footage: the league's feed and a broadcaster's, with its own graphics, differ by 15–45
    bits over a copy, more than a look-alike does; see scripts/measure_conflicts.py).
    """
    ranked = sorted(
        segments,
        key=lambda s: (-s.matched_frames * (1.0 - s.mean_distance / (bits / 2)),
                       abs(s.rate - 1.0), s.reference_id, s.query_start),
    )
    kept: list[Segment] = []
    for seg in ranked:
        rivals = [s for s in kept if _overlap(s, seg) > 0.5]
        own = [s for s in rivals if s.reference_id == seg.reference_id]
        if any(s.reference_id != seg.reference_id and not (claims and claims(s, seg)) and closer(s, seg)
               for s in rivals):
            continue
        if own:
            if not all(closer(seg, s) for s in own):
                continue
            kept = [s for s in kept if all(s is not r for r in own)]
        kept.append(seg)
    return sorted(kept, key=lambda s: (s.query_start, s.reference_id))


def with_mirrored(
    segments: list[Segment], mirrored: list[Segment], refs: Mapping[int, RefFrames], min_factor: float
) -> list[Segment]:
    """``segments`` plus the segments found in the horizontally flipped query, marked
    ``modality="video-mirrored"``.

    A flipped reading lasts at least ``min_factor`` times its reference's ``min_seconds``: it
    doubles the chances of a look-alike (on the negatives, symmetric concert stages matched
    their mirror image for 5–7 s), and a pirate who flips a stream flips all of it. A flipped
    reading that restates a segment of the same reference is dropped (a symmetric picture
    matches both ways; the unflipped reading wins).
    """
    extra = [
        replace(m, modality="video-mirrored") for m in mirrored
        if m.duration >= min_factor * refs[m.reference_id].min_seconds
        and not any(s.reference_id == m.reference_id and _overlap(s, m) > 0.5 for s in segments)
    ]
    return sorted(segments + extra, key=lambda s: (s.query_start, s.reference_id))


def _overlap(a: Segment, b: Segment) -> float:
    inter = min(a.query_end, b.query_end) - max(a.query_start, b.query_start)
    return max(inter, 0.0) / max(min(a.duration, b.duration), 1e-9)


def with_regions(
    segments: list[Segment], windowed: list[Segment], refs: Mapping[int, RefFrames], min_factor: float
) -> list[Segment]:
    """``segments`` plus those found in windows inside the query frames (modality
    ``video-region``, with their ``region``), each lasting at least ``min_factor`` times its
    reference's ``min_seconds``; one that restates a segment of the same reference is dropped
    (the whole frame's reading wins; of windows restating each other, the longest)."""
    kept = list(segments)
    for w in sorted(windowed, key=lambda s: (-s.duration, -s.score)):  # a window's variants: the longest
        if w.duration >= min_factor * refs[w.reference_id].min_seconds and not any(
                s.reference_id == w.reference_id and _overlap(s, w) > 0.5 for s in kept):
            kept.append(w)
    return sorted(kept, key=lambda s: (s.query_start, s.reference_id))
