"""Temporal alignment of audio landmark hits: (reference, offset, speed) votes → segments.

Each hit of a query landmark heard at an assumed speed ``v`` votes for the offset
``t_ref − v·t_query`` of its reference (dejavu's offset histogram, one histogram per assumed
speed). A bin backed by enough *distinct* query landmarks is a hypothesis; its supporting
hits (within ``tolerance`` of the refined offset) are split at gaps into runs, and a run long
enough and backed by enough landmarks becomes a :class:`guard.models.Segment` (modality
``audio``).

Uniqueness: segments are resolved greedily, best first (most matched landmarks, then speed
closest to 1, reference id, earliest reference time): a segment that restates a stretch of
query already claimed by a kept one (``max_overlap`` of its own length) is dropped. A query
matching a chorus that recurs in one reference therefore reports one alignment (the earlier
occurrence on a tie), the same copy seen at neighbouring assumed speeds counts once, and a
query stretch is attributed to one reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from guard.index.landmarks import LandmarkHits
from guard.models import Segment
from guard.signals.audio import SHIFTED, Landmarks, LandmarkParams


@dataclass(frozen=True)
class AudioMatchSettings:
    """How hits become segments.

    ``offset_bin`` (s): histogram bin width; ``tolerance`` (s): how far a hit's offset may be
    from its hypothesis'; ``vote_slot`` (s): a hypothesis gets one vote per slot of query time
    with a matching landmark; ``min_votes``: votes a hypothesis and a segment need;
    ``empty_slot_cost``: what a slot without a match costs a segment's span (a span keeps
    only stretches where more than 1 slot in ``1 + 1 / empty_slot_cost`` matches);
    ``end_margin`` (s): how far a copy runs on past its last matching anchor; ``min_seconds``: shortest segment (per-reference values override it);
    ``max_gap`` (s): a longer stretch without a matching landmark ends a segment;
    ``max_hypotheses``: how many histogram peaks are verified; ``max_repeats``: a query
    landmark found more often than this in one reference (a chord that recurs every few bars)
    says nothing about where in it the query is, and does not count there (a chorus sung
    twice still does). ``extend_evidence`` (nats): a found segment's edges move out over
    sparser supporting hits whose log-likelihood ratio against chance reaches this (≈ 100 to 1;
    see :func:`_extended`).
    """

    offset_bin: float = 0.064
    vote_slot: float = 0.25
    tolerance: float = 0.1
    min_votes: int = 14
    empty_slot_cost: float = 0.3
    end_margin: float = 0.4
    min_seconds: float = 3.0
    max_gap: float = 5.0
    max_hypotheses: int = 40
    max_overlap: float = 0.5
    max_repeats: int = 2
    extend_evidence: float = 4.6


@dataclass(frozen=True)
class AudioHypothesis:
    """A reference and an alignment ``t_ref = speed·t_query + offset`` backed by ``votes`` landmarks."""

    ref_id: int
    speed_index: int
    offset: float
    votes: int


def vote(query: Landmarks, hits: LandmarkHits, speeds: Sequence[float],
         settings: AudioMatchSettings = AudioMatchSettings()) -> list[AudioHypothesis]:
    """The strongest (reference, assumed speed, offset) bins, best first."""
    hits = distinctive(hits, settings.max_repeats)
    return _vote(query, _take(hits, _exact(query, hits)), speeds, settings)


def _speed_index(query: Landmarks, hits: LandmarkHits) -> npt.NDArray[np.int64]:
    """The assumed speed each hit was heard at (an index in ``query_speeds``)."""
    index: npt.NDArray[np.int64] = (query.speeds[hits.query_index] & ~np.uint8(SHIFTED)).astype(np.int64)
    return index


def _exact(query: Landmarks, hits: LandmarkHits) -> npt.NDArray[np.bool_]:
    """Which hits are of a pair hashed as heard (not with a shifted time difference)."""
    exact: npt.NDArray[np.bool_] = (query.speeds[hits.query_index] & np.uint8(SHIFTED)) == 0
    return exact


def _take(hits: LandmarkHits, which: npt.NDArray[np.bool_]) -> LandmarkHits:
    return LandmarkHits(hits.query_index[which], hits.ref_ids[which], hits.ref_times[which])


def _vote(query: Landmarks, hits: LandmarkHits, speeds: Sequence[float],
          settings: AudioMatchSettings) -> list[AudioHypothesis]:
    """:func:`vote` on hits already left to the :func:`distinctive` ones."""
    if len(hits) == 0:
        return []
    speed_index = _speed_index(query, hits)
    offsets = hits.ref_times - np.asarray(speeds, np.float64)[speed_index] * query.times[hits.query_index]
    bins = np.floor(offsets / settings.offset_bin).astype(np.int64)
    slots = np.floor(query.times[hits.query_index] / settings.vote_slot).astype(np.int64)
    ref_ids = hits.ref_ids
    likely = _in_full_bins(ref_ids, speed_index, bins, settings.min_votes)
    if likely is not None:
        ref_ids, speed_index, bins, slots = ref_ids[likely], speed_index[likely], bins[likely], slots[likely]
        if len(ref_ids) == 0:
            return []
    # One vote per query time slot and bin: a sustained chord, whose many peak pairs all agree
    # on one offset, must not outvote a melody that agrees all along. A bin also counts its
    # right neighbour's votes, so an offset on a bin edge is not split in two.
    keys, _, _ = _unique_rows([ref_ids, speed_index, bins, slots])
    shifted = [keys[0], keys[1], keys[2] - 1, keys[3]]
    spread, _, _ = _unique_rows([np.concatenate(pair) for pair in zip(keys, shifted)])
    cells, _, votes = _unique_rows(spread[:3])
    strong = np.flatnonzero(votes >= settings.min_votes)
    # Cells come sorted by (reference, speed, bin): best first, then in that order.
    order = strong[np.argsort(-votes[strong], kind="stable")][: settings.max_hypotheses]
    hypotheses = [AudioHypothesis(r, v, (b + 1) * settings.offset_bin, n) for r, v, b, n in
                  zip(cells[0][order].tolist(), cells[1][order].tolist(), cells[2][order].tolist(),
                      votes[order].tolist())]
    return hypotheses


def _in_full_bins(ref_ids: npt.NDArray[np.int64], speed_index: npt.NDArray[np.int64], bins: npt.NDArray[np.int64],
                  min_votes: int) -> npt.NDArray[np.bool_] | None:
    """Which hits fall in a bin that, with a neighbour, holds at least ``min_votes`` hits (a
    bin's votes count distinct slots of it and its right neighbour, so no other bin can reach
    ``min_votes``); None when the bins are too many to count directly. Most hits of a long
    unrelated query are scattered by chance and go before the exact count sorts them."""
    low = int(bins.min()) - 1
    width = int(bins.max()) - low + 2
    top = int(ref_ids.max())
    if top >= 8 * len(ref_ids) + (1 << 20):
        return None
    held = np.zeros(top + 1, np.int64)
    held[ref_ids] = 1
    ref_of = np.cumsum(held)[ref_ids] - 1  # references numbered 0, 1, … without sorting
    cells = int(held.sum()) * (int(speed_index.max()) + 1) * width
    if cells > 8 * len(bins) + (1 << 20):
        return None
    cell = (ref_of * (int(speed_index.max()) + 1) + speed_index) * width + (bins - low)
    counts = np.bincount(cell, minlength=cells)
    pair = counts[:-1] + counts[1:]  # bin b with bin b + 1 (the padding keeps cells apart)
    full: npt.NDArray[np.bool_] = (pair[cell] >= min_votes) | (pair[cell - 1] >= min_votes)
    return full


def distinctive(hits: LandmarkHits, max_repeats: int) -> LandmarkHits:
    """The hits of query landmarks found at most ``max_repeats`` times in their reference."""
    if len(hits) == 0:
        return hits
    step = np.diff(hits.query_index)
    if np.all((step > 0) | ((step == 0) & (np.diff(hits.ref_ids) >= 0))):  # the index's order: count runs
        starts = np.flatnonzero(np.concatenate([[True], (step != 0) | (np.diff(hits.ref_ids) != 0)]))
        counts = np.diff(np.append(starts, len(hits)))
        keep = np.repeat(counts, counts) <= max_repeats
    else:
        _, inverse, counts = _unique_rows([hits.query_index, hits.ref_ids])
        keep = counts[inverse] <= max_repeats
    return LandmarkHits(hits.query_index[keep], hits.ref_ids[keep], hits.ref_times[keep])


def _unique_rows(columns: Sequence[npt.NDArray[np.int64]]
                 ) -> tuple[list[npt.NDArray[np.int64]], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The distinct rows of equally long integer columns, in lexicographic order (as columns),
    the place of each row among them, and how often each occurs: ``np.unique(axis=0)``
    without its sort of structured rows, which took seconds on the hits of a long query."""
    columns = [np.asarray(c, np.int64) for c in columns]
    lows = [int(c.min()) for c in columns]
    spans = [int(c.max()) - low + 1 for c, low in zip(columns, lows)]
    if math.prod(spans) < 2**62:  # one int64 key per row, digits in the columns' order
        key = np.zeros(len(columns[0]), np.int64)
        for column, low, span in zip(columns, lows, spans):
            key = key * span + (column - low)
        distinct, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        rows = []
        for low, span in zip(reversed(lows), reversed(spans)):
            distinct, digit = np.divmod(distinct, span)
            rows.append(digit + low)
        return rows[::-1], inverse.reshape(-1), counts
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.flatnonzero(np.concatenate([[True], np.any([np.diff(c) != 0 for c in ordered], axis=0)]))
    counts = np.diff(np.append(starts, len(order)))
    inverse = np.empty(len(order), np.intp)
    inverse[order] = np.repeat(np.arange(len(starts)), counts)
    return [c[starts] for c in ordered], inverse, counts


def find_segments(query: Landmarks, hits: LandmarkHits, params: LandmarkParams,
                  titles: Mapping[int, str] | None = None, min_seconds: Mapping[int, float] | None = None,
                  settings: AudioMatchSettings = AudioMatchSettings()) -> list[Segment]:
    """Copied stretches of the query, at most one per stretch of query, sorted by query start.

    ``query``: the query's landmarks under every assumed speed of ``params.query_speeds``;
    ``hits``: the index's answer to ``query.hashes``; ``titles`` and ``min_seconds`` by reference id (the latter
    overrides ``settings.min_seconds``).
    """
    titles = titles or {}
    min_seconds = min_seconds or {}
    hits = distinctive(hits, settings.max_repeats)
    exact = _exact(query, hits)
    # Only pairs hashed as heard vote: a copy is found as before, and the pairs hashed with a
    # shifted time difference then fill in its support (runs and edges).
    hypotheses = _vote(query, _take(hits, exact), params.query_speeds, settings)
    if not hypotheses:
        return []
    # Hits grouped by (reference, assumed speed), each group in the order of the hits; only the
    # groups of a hypothesis are sorted (most hits of a dense query are scattered chance hits).
    speeds = len(params.query_speeds)
    group = hits.ref_ids.astype(np.int64) * speeds + _speed_index(query, hits)
    wanted = np.unique([h.ref_id * speeds + h.speed_index for h in hypotheses])
    held = np.flatnonzero(np.isin(group, wanted, kind="table" if int(group.max()) < 1 << 24 else None))
    order = held[np.argsort(group[held], kind="stable")]
    grouped = group[order]
    heard = _HeardTimes(query)
    all_exact = bool(exact.all())
    candidates: list[tuple[int, Segment]] = []
    for hypothesis in hypotheses:
        key = hypothesis.ref_id * speeds + hypothesis.speed_index
        rows = order[np.searchsorted(grouped, key, "left"): np.searchsorted(grouped, key, "right")]
        shortest = min_seconds.get(hypothesis.ref_id, settings.min_seconds)
        candidates += _segments_of(hypothesis, query, hits.query_index[rows], hits.ref_times[rows],
                                   None if all_exact else exact[rows], heard, params,
                                   titles.get(hypothesis.ref_id, ""), shortest, settings)
    return _resolve(candidates, settings.max_overlap)


class _HeardTimes:
    """The query's landmark times heard at each assumed speed, sorted, made once per speed asked."""

    def __init__(self, query: Landmarks):
        self.query = query
        self._sorted: dict[int, npt.NDArray[np.float64]] = {}

    def count(self, speed_index: int, start: float, end: float) -> int:
        """How many landmarks heard at ``speed_index`` lie in [``start``, ``end``]."""
        times = self._sorted.get(speed_index)
        if times is None:
            times = np.sort(self.query.times[(self.query.speeds & ~np.uint8(SHIFTED)) == speed_index])
            self._sorted[speed_index] = times
        return int(np.searchsorted(times, end, "right") - np.searchsorted(times, start, "left"))


def _distinct(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``np.unique(values)``, without sorting (or hashing) when they already come in order."""
    if len(values) < 2 or not np.all(values[1:] >= values[:-1]):
        return np.unique(values)
    first: npt.NDArray[np.bool_] = np.concatenate([[True], values[1:] != values[:-1]])
    return values[first]


def _segments_of(hypothesis: AudioHypothesis, query: Landmarks, q_index: npt.NDArray[np.int64],
                 ref_times: npt.NDArray[np.float64], exact: npt.NDArray[np.bool_] | None, heard: _HeardTimes,
                 params: LandmarkParams, title: str, min_seconds: float,
                 settings: AudioMatchSettings) -> list[tuple[int, Segment]]:
    """The runs of the hypothesis' supporting landmarks long and strong enough, with their votes
    (``q_index``, ``ref_times``: the hits of its reference heard at its assumed speed, in the
    index's order; ``exact``: which of them may vote, the others only support; None: all vote)."""
    speed = float(params.query_speeds[hypothesis.speed_index])
    q_times = query.times[q_index]
    offsets = ref_times - speed * q_times
    near = np.abs(offsets - hypothesis.offset) <= settings.tolerance + settings.offset_bin
    if not near.any():
        return []
    # Refine the alignment: the median offset, then a line through the hits near it (the
    # copy's speed is rarely one of the assumed ones), then the hits near that line.
    offset, rate = float(np.median(offsets[near])), speed
    fitted_to: npt.NDArray[np.bool_] | None = None
    on_line: npt.NDArray[np.bool_] | None = None
    for _ in range(2):
        close = np.abs(ref_times - (rate * q_times + offset)) <= settings.tolerance
        if fitted_to is not None and np.array_equal(close, fitted_to):
            on_line = close  # the same hits: the same line again, and these are the hits on it
            break
        fitted = q_times[close]
        if len(fitted) < 2 or np.ptp(fitted) < 1.0:
            break
        rate, offset = (float(v) for v in np.polyfit(fitted, ref_times[close], 1))
        fitted_to = close
    if abs(rate - speed) > 0.02:  # a line that strays from its assumed speed fits noise
        return []
    if on_line is None:
        on_line = np.abs(ref_times - (rate * q_times + offset)) <= settings.tolerance
    support = _distinct(q_index[on_line])
    voter = np.ones(len(support), bool) if exact is None else np.isin(support, q_index[on_line & exact])
    times = query.times[support]
    order = np.argsort(times, kind="stable")
    support, times, voter = support[order], times[order], voter[order]
    breaks = np.flatnonzero(np.diff(times) > settings.max_gap) + 1
    chance = _chance_rate(query, q_times, ref_times, rate, offset, settings)
    segments = []
    for run in np.split(np.arange(len(times)), breaks):
        if len(run) == 0:
            continue
        slots = np.floor(times[run] / settings.vote_slot).astype(np.int64)
        first, last = _densest_span(slots, settings.empty_slot_cost)
        inside = (slots >= first) & (slots <= last)
        # A segment starts and ends at a voting hit: shifted pairs fill in, never stretch it.
        voting = slots[inside & voter[run]]
        if len(voting) == 0:
            continue
        inside &= (slots >= voting.min()) & (slots <= voting.max())
        run, votes = run[inside], len(_distinct(voting))
        start = float(times[run[0]])
        # The last matching anchor is followed by its targets: the copy runs on a little.
        end = float(times[run[-1]]) + settings.end_margin
        matched = len(run)
        if votes < settings.min_votes or end - start < min_seconds:
            continue
        fraction = matched / max(heard.count(hypothesis.speed_index, start, end), 1)
        # Only a segment found as it is moves its edges (extending makes none), and its score
        # stays its dense core's: the sparse hits place the copy, they do not add certainty.
        outside = np.setdiff1d(np.flatnonzero(voter), run, assume_unique=True)
        before, after = times[outside[times[outside] < start]][::-1], times[outside[times[outside] > end]]
        start = -_extended(-start, -before, chance, settings)
        end = _extended(end - settings.end_margin, after, chance, settings) + settings.end_margin
        segments.append((votes, Segment(
            reference_id=hypothesis.ref_id, reference_title=title, query_start=start, query_end=end,
            reference_start=rate * start + offset, reference_end=rate * end + offset,
            offset=rate * start + offset - start, rate=rate, matched_fraction=fraction,
            score=fraction * (1 - math.exp(-matched / 20)), matched_frames=matched, mean_distance=0.0,
            modality="audio")))
    return segments


#: Chance hits at an alignment are counted this far off it (s, each side) beyond
#: :data:`BACKGROUND_NEAR`: hits of the same reference and speed at other offsets.
BACKGROUND_NEAR, BACKGROUND_WIDTH = 1.0, 8.0


def _chance_rate(query: Landmarks, q_times: npt.NDArray[np.float64], ref_times: npt.NDArray[np.float64],
                 rate: float, offset: float, settings: AudioMatchSettings) -> float:
    """Supporting hits per query second that chance gives an alignment: the hits of the same
    reference and speed at offsets 1–9 s off it, per tolerance band, over the query's length
    (one more than counted, so an empty background does not make every hit significant)."""
    away = np.abs(ref_times - (rate * q_times + offset))
    near = int(((away >= BACKGROUND_NEAR) & (away <= BACKGROUND_NEAR + BACKGROUND_WIDTH)).sum())
    span = float(np.ptp(query.times)) if len(query) else 0.0
    return (near + 1) * (2 * settings.tolerance) / (2 * BACKGROUND_WIDTH) / max(span, 1.0)


#: Log-likelihood ratio (nats) an edge's further move must gain over a nearer one.
EXTEND_MARGIN = 1.0


def _extended(edge: float, beyond: npt.NDArray[np.float64], chance: float, settings: AudioMatchSettings) -> float:
    """Where a segment's edge moves out to over the supporting hits ``beyond`` it (coordinates
    increasing outwards, ascending; consecutive hits at most ``max_gap`` apart). For each hit,
    the log-likelihood ratio of "the copy goes on to here, at the density its hits show" against
    "chance" (``chance`` hits per second at the alignment): ``k·ln(k / (λ·d)) − (k − λ·d)`` for
    ``k`` hits over ``d`` seconds. The edge moves to the best hit if its ratio reaches
    ``extend_evidence`` (the nearest within :data:`EXTEND_MARGIN` of it): a landmark a second
    over ten seconds (a copy under echo or noise) moves it; a stray hit or two does not."""
    if not len(beyond):
        return edge
    too_far = np.diff(np.concatenate([[edge], beyond])) > settings.max_gap
    reach = int(np.argmax(too_far)) if too_far.any() else len(beyond)
    if not reach:
        return edge
    hits = np.arange(1, reach + 1, dtype=np.float64)
    expected = max(chance, 1e-6) * (beyond[:reach] - edge + settings.vote_slot)
    ratio = np.where(hits > expected, hits * np.log(hits / expected) - (hits - expected), 0.0)
    if ratio.max() < settings.extend_evidence:
        return edge
    return float(beyond[int(np.argmax(ratio >= ratio.max() - EXTEND_MARGIN))])


def _densest_span(slots: npt.NDArray[np.int64], empty_cost: float) -> tuple[int, int]:
    """First and last slot of the span that maximizes (slots with a match) − ``empty_cost`` ×
    (slots without): a stray match a few seconds beyond the copy does not stretch it, a
    sparse but steady stretch (a copy under loud noise) stays in."""
    distinct = _distinct(slots)
    score = np.full(int(distinct[-1] - distinct[0]) + 1, -empty_cost)
    score[distinct - distinct[0]] = 1.0
    best, best_span, running, run_start = -np.inf, (0, 0), 0.0, 0
    for i, value in enumerate(score.tolist()):  # Kadane's maximum-sum subarray
        if running <= 0:
            running, run_start = 0.0, i
        running += value
        if running > best:
            best, best_span = running, (run_start, i)
    return int(distinct[0]) + best_span[0], int(distinct[0]) + best_span[1]


def _resolve(candidates: list[tuple[int, Segment]], max_overlap: float) -> list[Segment]:
    """Best first (votes, matched landmarks), drop each segment that restates a stretch of
    query a kept one claims."""
    ranked = sorted(candidates, key=lambda c: (-c[0], -c[1].matched_frames, abs(c[1].rate - 1.0),
                                               c[1].reference_id, c[1].reference_start))
    kept: list[Segment] = []
    for _, segment in ranked:
        length = max(segment.duration, 1e-9)
        if all(_overlap(segment, other) / length <= max_overlap for other in kept):
            kept.append(segment)
    return sorted(kept, key=lambda s: (s.query_start, s.reference_id))


def _overlap(a: Segment, b: Segment) -> float:
    return max(0.0, min(a.query_end, b.query_end) - max(a.query_start, b.query_start))
