"""The searcher: readings → index hits → votes → verified segments, for a whole query (scans)
and for a live window matched incrementally, which must give what a full match gives."""

from __future__ import annotations

import numpy as np
import pytest

from guard import decode
from guard_synth import broadcast as synth
from guard.config import MatchSettings, Settings
from guard.index import BruteForceIndex
from guard.index.brute import masked_search
from guard.match import RefFrames, vector_ids
from guard.models import MaskedCodes, RegionReadings, Segment
from guard.search import LiveSearch, Searcher
from guard.service import Guard
from guard.signals import DEFAULT_SIGNAL, get_signal
from tests.live_helpers import encode, reference_frames

FPS = 4.0
SIGNAL = get_signal(DEFAULT_SIGNAL)
BITS = SIGNAL.bits


class OracleIndex:
    """The searcher's view of an index (what :class:`guard.refindex.ReferenceIndex` offers)
    over the brute-force oracle, with references added and removed in memory."""

    def __init__(self):
        self.index = BruteForceIndex(BITS)
        self.refs: dict[int, RefFrames] = {}

    def sync(self) -> None:
        """Nothing to catch up with: changes apply at once."""

    def add(self, ref_id: int, ref: RefFrames) -> None:
        self.refs[ref_id] = ref
        self.index.add(vector_ids(ref_id, len(ref.times)), ref.codes)

    def remove(self, ref_id: int) -> None:
        ref = self.refs.pop(ref_id)
        self.index.remove(vector_ids(ref_id, len(ref.times)))

    def grow(self, ref_id: int, times, codes) -> None:
        """A live reference aired more frames."""
        ref = self.refs[ref_id]
        self.index.add(vector_ids(ref_id, len(ref.times) + len(times))[len(ref.times):], codes)
        self.refs[ref_id] = ref.grown(np.concatenate([ref.times, times]), np.concatenate([ref.codes, codes]))

    def search(self, codes, radius, max_hits):
        return self.index.search(codes, radius, max_hits)

    def search_masked(self, codes, masks, radius, max_hits):
        return masked_search(codes, masks, self.index.ids, self.index.codes, radius, max_hits)


def _random_codes(rng, n):
    return rng.integers(0, 256, (n, BITS // 8), dtype=np.uint8)


def _flip(rng, codes, bits):
    """``codes`` with ``bits`` random bits flipped in each row (``bits`` may vary per row)."""
    bits = np.broadcast_to(bits, len(codes))
    unpacked = np.unpackbits(codes, axis=1)
    for row, count in zip(unpacked, bits):
        row[rng.choice(BITS, int(count), replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


def _world(rng) -> OracleIndex:
    """Three 60 s references of random codes; the third opens on 20 s of one still picture."""
    view = OracleIndex()
    for ref_id in (1, 2):
        view.add(ref_id, RefFrames(f"ref {ref_id}", 4.0, np.arange(240) / FPS, _random_codes(rng, 240)))
    still = np.repeat(_random_codes(rng, 1), 80, axis=0)
    codes = np.concatenate([_flip(rng, still, 4), _random_codes(rng, 160)])
    view.add(3, RefFrames("opens on a still", 4.0, np.arange(240) / FPS, codes))
    return view


def _stream(rng, view: OracleIndex, seconds: float = 60.0):
    """A stream of random codes holding copies of every kind: lightly and heavily damaged,
    broken by bursts of damage, mirrored, and garbled under an overlay with a masked reading
    that shows the picture; plus look-alikes of a reference's still. Frames go missing now
    and then (uninformative frames) and the sampling instants wobble."""
    n = int(seconds * FPS)
    codes = _random_codes(rng, n)
    masked = MaskedCodes(np.zeros_like(codes), np.zeros_like(codes))
    kinds = ["plain", "mirrored", "overlay", "damaged", "look-alike"]
    at = 4
    while at < n - 24:
        kind = kinds.pop(0)
        kinds.append(kind)
        ref = view.refs[int(rng.integers(1, 4))].codes
        shortest = 40 if kind == "mirrored" else 16  # a mirrored copy must last twice min_seconds
        length = int(min(rng.integers(shortest, 64), n - at - 4))
        start = int(rng.integers(0, len(ref) - length))
        copied = ref[start:start + length]
        if kind == "plain":
            piece = _flip(rng, copied, rng.integers(0, 40, length))
        elif kind == "damaged":
            piece = _flip(rng, copied, rng.integers(20, 70, length))
            burst = int(rng.integers(0, length))
            piece[burst:burst + 12] = _random_codes(rng, len(piece[burst:burst + 12]))
        elif kind == "mirrored":
            piece = SIGNAL.mirror(_flip(rng, copied, rng.integers(0, 40, length)))
        elif kind == "overlay":
            piece = _flip(rng, copied, 90)
            piece[::7] = copied[::7]  # a few frames the plain search seeds on
            shown = np.full(copied.shape, 0xFF, np.uint8)
            shown[:, : BITS // 32] = 0  # the top quarter of the grid is hidden
            masked.codes[at:at + length] = _flip(rng, copied, 12) & shown
            masked.masks[at:at + length] = shown
        else:
            still = view.refs[3].codes[:1]
            piece = _flip(rng, np.repeat(still, length, axis=0), 44)
        codes[at:at + length] = piece
        at += length + int(rng.integers(2, 30))
    times = np.arange(n) / FPS + rng.uniform(-0.03, 0.03, n)
    present = rng.random(n) > 0.05
    return times[present], codes[present], masked.take(present)


def _compare_as_it_goes(searcher: Searcher, live: LiveSearch, times, codes, masked, rng, changes=None) -> list:
    """Feed the stream in batches of 1–4 frames; after each, the live decision must equal a
    full match of the window. Returns the segments of every decision."""
    reported = []
    at = 0
    while at < len(times):
        step = int(rng.integers(1, 5))
        part = slice(at, at + step)
        live.add(times[part], codes[part], masked.take(part))
        at += step
        if changes is not None:
            changes(at)
        found = live.segments()
        window = live.masked if live.masked.masks.any() else None
        assert found == searcher.match(live.times, live.codes, window), f"frames up to {at}"
        reported += found
    return reported


@pytest.mark.parametrize("seed", range(3))
def test_a_live_window_matched_incrementally_gives_what_a_full_match_gives(seed):
    rng = np.random.default_rng(seed)
    view = _world(rng)
    times, codes, masked = _stream(rng, view)
    searcher = Searcher(view, MatchSettings(), SIGNAL, 1 / FPS)
    live = searcher.live(12.0)
    found = _compare_as_it_goes(searcher, live, times, codes, masked, rng)
    assert {s.modality for s in found} == {"video", "video-mirrored"}
    # Every frame went to the index once per reading: plain, mirrored, masked where it has one.
    assert live.queries == 2 * len(times) + int(masked.masks.any(axis=1).sum())



def test_the_windows_of_a_live_stream_matched_incrementally_give_what_a_full_match_gives():
    """Two windows in view of every frame (a streamer's layout): one holds damaged copies of
    the references, the other unrelated pictures; fed in batches, the live windows' segments
    equal :meth:`Searcher.window_segments` of the readings still in the window."""
    rng = np.random.default_rng(5)
    view = _world(rng)
    times, copied, _ = _stream(rng, view)
    n = len(times)
    regions = RegionReadings(np.repeat(np.arange(n), 2), np.tile([7, 9], n),
                             np.tile(np.array([[0.1, 0.1, 0.5, 0.5], [0.6, 0.1, 0.9, 0.9]], np.float32), (n, 1)),
                             np.stack([copied, _random_codes(rng, n)], axis=1).reshape(2 * n, -1))
    searcher = Searcher(view, MatchSettings(mirror=False), SIGNAL, 1 / FPS)
    live, seconds, at, found = searcher.live_windows(12.0), 12.0, 0, []
    while at < n:
        step = int(rng.integers(1, 5))
        rows = np.flatnonzero((regions.rows >= at) & (regions.rows < at + step))
        part = RegionReadings(regions.rows[rows] - at, regions.tracks[rows], regions.boxes[rows], regions.codes[rows])
        live.add(times[at:at + step], part)
        at = min(at + step, n)
        first = int(np.searchsorted(times, times[at - 1] - seconds, side="left"))
        kept = np.flatnonzero((regions.rows >= first) & (regions.rows < at))
        window = RegionReadings(regions.rows[kept] - first, regions.tracks[kept], regions.boxes[kept],
                                regions.codes[kept])
        expected = searcher.window_segments(times[first:at], window, view.refs)
        key = lambda s: (s.query_start, s.reference_id)  # noqa: E731
        assert sorted(live.segments(), key=key) == sorted(expected, key=key), f"frames up to {at}"
        found += live.segments()
    assert found and {s.modality for s in found} == {"video-region"}
    assert all(s.region == pytest.approx([0.1, 0.1, 0.5, 0.5]) for s in found)  # the copying window's
    assert live.queries == 2 * n  # every window reading went to the index once

def test_references_added_or_removed_mid_stream_are_searched_for_in_the_whole_window():
    rng = np.random.default_rng(7)
    view = _world(rng)
    times, codes, masked = _stream(rng, view)
    extra = RefFrames("late", 4.0, np.arange(240) / FPS, _random_codes(rng, 240))
    codes[100:160] = extra.codes[20:80]  # the stream copies a reference registered later
    searcher = Searcher(view, MatchSettings(), SIGNAL, 1 / FPS)
    live = searcher.live(20.0)

    def changes(at):
        if at >= 120 and 4 not in view.refs and 1 in view.refs:
            view.add(4, extra)
        if at >= 190 and 1 in view.refs:
            view.remove(1)

    found = _compare_as_it_goes(searcher, live, times, codes, masked, rng, changes)
    assert 4 in view.refs and 1 not in view.refs
    assert any(s.reference_id == 4 for s in found), "the copy already in the window when its reference came"
    assert live.queries > 2 * len(times), "the window was searched again after each change"


def test_a_growing_live_reference_is_matched_as_a_full_match_would_without_searching_the_window_again():
    """A live reference airs its frames as the stream plays: the stream copies it 5 s behind
    the feed, then 8 s ahead of it (caught once the feed airs what it showed)."""
    rng = np.random.default_rng(11)
    view = _world(rng)
    times, codes, masked = _stream(rng, view)
    broadcast = _random_codes(rng, 300)  # what the feed airs: frame k at k / FPS
    for p, t in enumerate(times):
        aired = t - 5.0 if 10.0 <= t < 24.0 else t + 8.0 if 34.0 <= t < 46.0 else None
        if aired is not None:
            codes[p] = _flip(rng, broadcast[int(round(aired * FPS))][None], int(rng.integers(0, 30)))[0]
            masked.masks[p] = 0
    view.add(4, RefFrames("live feed", 4.0, np.zeros(0), np.zeros((0, BITS // 8), np.uint8)))
    searcher = Searcher(view, MatchSettings(), SIGNAL, 1 / FPS)
    live = searcher.live(24.0)

    def air(at):
        aired = len(view.refs[4].times)
        now = int(times[min(at, len(times)) - 1] * FPS) + 1
        if now > aired:
            view.grow(4, np.arange(aired, now) / FPS, broadcast[aired:now])

    found = _compare_as_it_goes(searcher, live, times, codes, masked, rng, air)
    live_copies = sorted({(round(s.offset), s.reference_id) for s in found if s.reference_id == 4})
    assert live_copies == [(-5, 4), (8, 4)], "behind the feed and ahead of it"
    # Frames already searched were matched among the new frames only, never sent to the index again.
    assert live.queries == 2 * len(times) + int(masked.masks.any(axis=1).sum())


def test_a_quiet_window_searches_only_its_new_frames():
    """Between decisions, only frames that arrived since are sent to the index."""
    rng = np.random.default_rng(3)
    view = _world(rng)
    searcher = Searcher(view, MatchSettings(), SIGNAL, 1 / FPS)
    live = searcher.live(24.0)
    for k in range(40):
        live.add(np.array([k / FPS]), _random_codes(rng, 1))
        assert live.segments() == []
    assert live.queries == 2 * 40  # plain and mirrored, once per frame
    assert len(live) == 40


# -- on real media: decode → readings (live session) → incremental search --------------------------


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Two references and a 38 s stream copying them three ways: plainly, under a still panel
    covering a quarter of the picture, and mirrored (320×180, 12 fps, H.264)."""
    folder = tmp_path_factory.mktemp("search")
    references = {seed: encode(folder / f"ref{seed}.mp4", reference_frames(seed, 20)) for seed in (7, 23)}

    def unrelated(seconds, start):
        return synth.broadcast(999, (320, 180), 12, seconds, start=start, styles=("shapes",))

    parts = [
        unrelated(4.0, 0.0),
        synth.broadcast(7, (320, 180), 12, 8.0, start=6.0),  # 4–12 s: plain copy of 7
        unrelated(2.0, 12.0),
        (synth.overlay(f, 0.25, "tl", seed=1) for f in synth.broadcast(23, (320, 180), 12, 10.0, start=4.0)),
        unrelated(2.0, 24.0),  # 14–24 s: copy of 23 under a panel
        (synth.mirror(f) for f in synth.broadcast(7, (320, 180), 12, 10.0, start=8.0)),  # 26–36 s: mirrored
        unrelated(2.0, 36.0),
    ]
    stream = encode(folder / "stream.ts", synth.splice(parts))
    return references, stream


def test_a_live_stream_copying_three_ways_is_matched_incrementally_as_a_full_match_would(copies, tmp_path):
    references, stream = copies
    with Guard(Settings(home=tmp_path / "home")) as guard:
        ids = {seed: guard.ingest(path, title=f"ref{seed}", min_seconds=2.0).id for seed, path in references.items()}
        session = guard.fingerprinter.session(overlays="live")
        live = guard.searcher.live(24.0)
        found = []
        for batch in decode.sample_frames(stream):
            for part in np.array_split(np.arange(len(batch.times)), max(1, len(batch.times) // 2)):
                readings = session.add(decode.FrameBatch(batch.times[part], batch.grey[part]))
                live.add(readings.times, readings.codes, readings.masked)
                segments = live.segments()
                window = live.masked if live.masked.masks.any() else None
                assert segments == guard.searcher.match(live.times, live.codes, window)
                found += segments
    seen = {(s.reference_id, s.modality) for s in found}
    assert seen == {(ids[7], "video"), (ids[23], "video"), (ids[7], "video-mirrored")}, seen
    panel = [s for s in found if s.reference_id == ids[23]]
    assert min(s.query_start for s in panel) == pytest.approx(14.0, abs=2.5)
    assert max(s.query_end for s in panel) == pytest.approx(24.0, abs=1.0)
    assert live.queries < 3.2 * (38 * FPS), "each frame searched once per reading"


# -- audio and video evidence of one copy (issue 12) ----------------------------------------------


def _copy(ref_id, start, end, offset, score, modality="video", rate=1.0):
    return Segment(reference_id=ref_id, reference_title="r", query_start=start, query_end=end,
                   reference_start=start + offset, reference_end=end + offset, offset=offset, rate=rate,
                   matched_fraction=0.9, score=score, matched_frames=40, mean_distance=10.0, modality=modality)


def test_agreeing_audio_and_video_fuse_into_one_stronger_copy_with_the_pictures_edges():
    from guard.search import FUSE_EXTEND, fuse

    video = _copy(1, 8.0, 24.0, 10.0, 0.8)
    near = _copy(1, 7.4, 24.6, 10.3, 0.6, "audio")  # audio edges, within their error of the picture's
    [fused] = fuse([video], [near])
    assert fused.modality == "audio+video" and fused.score > max(video.score, near.score)
    assert (fused.query_start, fused.query_end) == (8.0, 24.0), "the picture's edges"
    further = _copy(1, 8.0 - FUSE_EXTEND - 2.0, 24.0, 10.0, 0.6, "audio")  # sound where the picture was missed
    [fused] = fuse([video], [further])
    assert fused.query_start == further.query_start and fused.reference_start == pytest.approx(further.reference_start)
    other_offset = _copy(1, 8.0, 24.0, 25.0, 0.6, "audio")
    other_reference = _copy(2, 8.0, 24.0, 10.0, 0.6, "audio")
    assert fuse([video], [other_offset, other_reference]) == [video, other_offset, other_reference]
