"""Screen readings (issue 14): a TV filmed by a phone and a stadium's big screen found as
quadrilaterals in grey histories, warped back to rectangles and hashed; no screens in plain
programme, still or flat pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from guard import preprocess
from guard.config import MatchSettings
from guard.regions import EVERY, HISTORY, overlap
from guard.screens import ScreenTrack, ScreenTracker, find_screens, quad_box, rectify
from guard.signals import get_frame_signal, hamming
from guard_synth import broadcast as synth
from guard_synth import layouts
from guard_synth.encode import write_video
from tests.media import store_with_broadcast

SIZE, GREY, FPS = (320, 180), 128, 12
SCALE = np.array([GREY / SIZE[0], GREY / SIZE[1]])


def _grey(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).convert("L").resize((GREY, GREY), Image.Resampling.BOX))


def _filmed(screen, seed: int, seconds: float = 6.0):
    """Originals, filmed greys and the true quads (grey pixels) at 4 sampled fps."""
    originals = list(synth.broadcast(seed, SIZE, 4, seconds))
    greys = np.stack([_grey(screen(f, i / 4)) for i, f in enumerate(originals)])
    truth = np.stack([np.asarray(screen.quad_at(i / 4)) * SCALE for i in range(len(greys))])
    return originals, greys, truth


def _detections(greys: np.ndarray):
    """(end of history, first screen found or None) for each detection."""
    return [(end, (find_screens(greys[end - HISTORY:end]) or [None])[0])
            for end in range(HISTORY, len(greys) + 1, EVERY)]


# Broadcast seeds 2 and 3 show sports and shapes; seed 1 opens on a dark concert, where the TV's
# picture is as dark as its bezel (see the limitations in guard/screens.py's report).
@pytest.mark.parametrize(("seed", "angle", "content"), [(2, 10, 2), (3, 20, 3), (4, 25, 3)])
def test_a_camcorded_tv_is_found_within_a_few_grey_pixels(seed, angle, content):
    tv = layouts.camcorded_tv(seed, angle, SIZE)
    _, greys, truth = _filmed(tv, content)
    close = []
    for end, quad in _detections(greys):
        mean_truth = truth[end - HISTORY:end].mean(axis=0)  # the shake moves it by a pixel or two
        close.append(quad is not None and np.abs(np.asarray(quad) - mean_truth).max() <= 7.5)
    assert np.mean(close) >= 0.6, close


@pytest.mark.parametrize("seed", [2, 3])
def test_a_stadium_screen_is_found(seed):
    stadium = layouts.stadium_screen(seed, SIZE)
    _, greys, truth = _filmed(stadium, seed)
    found = [quad is not None and overlap(quad_box(quad), quad_box(tuple(map(tuple, truth[end - 1])))) >= 0.7
             for end, quad in _detections(greys)]
    assert np.mean(found) >= 0.6, found


def test_the_rectified_screen_hashes_close_to_the_original():
    signal = get_frame_signal()
    radius = MatchSettings().seed_radius
    tv = layouts.camcorded_tv(3, 20, SIZE)
    originals, greys, _ = _filmed(tv, 3, seconds=10.0)
    reference = np.stack([_grey(f) for f in originals])
    ref_codes = signal.hash_batch(preprocess.crop_resize(reference, preprocess.detect_bars(reference),
                                                         signal.input_size))
    whole = signal.hash_batch(preprocess.crop_resize(greys, preprocess.detect_bars(greys), signal.input_size))
    tracker = ScreenTracker()
    rows, quads = [], []
    for row, tracks in enumerate(tracker.add(greys)):
        if tracks:
            rows.append(row)
            quads.append(tracks[0].quad)
    assert len(rows) >= len(greys) // 2
    rows_ = np.asarray(rows)
    screen = signal.hash_batch(rectify(greys[rows_], quads, signal.input_size))
    near, far = hamming(screen, ref_codes[rows_]), hamming(whole[rows_], ref_codes[rows_])
    # measured (mhash16): whole frame ~138 bits, rectified ~68, the true quad itself ~65: glare,
    # moiré and blur keep it above the seed radius (32), which is not reached yet
    assert np.median(near) < np.median(far) - 40, (near, far)
    assert np.median(near) < 2.5 * radius, near


def test_rectify_matches_crop_resize_on_an_axis_aligned_box():
    grey = _grey(next(iter(synth.broadcast(6, SIZE, 4, 1.0))))[None]
    quad = ((20.0, 10.0), (100.0, 10.0), (100.0, 90.0), (20.0, 90.0))
    mine = rectify(grey, [quad], (16, 16)).astype(int)
    theirs = preprocess.crop_resize(grey, np.array([[10, 90, 20, 100]]), (16, 16)).astype(int)
    assert mine.dtype == np.int64 and np.abs(mine - theirs).mean() < 4


def test_no_screens_in_still_or_flat_pictures():
    still = np.repeat(_grey(next(iter(synth.broadcast(5, SIZE, 4, 1.0))))[None], HISTORY, axis=0)
    assert find_screens(still) == []
    assert find_screens(np.full((HISTORY, GREY, GREY), 90, np.uint8)) == []


def test_plain_broadcast_without_quad_shaped_programme_has_no_screens():
    greys = np.stack([_grey(f) for f in synth.broadcast(42, SIZE, 4, 6.0)])
    assert all(quad is None for _, quad in _detections(greys))


def test_a_steady_tv_keeps_one_track_across_batches():
    tv = layouts.camcorded_tv(3, 20, SIZE)
    _, greys, truth = _filmed(tv, 3, seconds=8.0)
    tracker = ScreenTracker()
    in_view = tracker.add(greys[:13]) + tracker.add(greys[13:])
    assert all(not tracks for tracks in in_view[:HISTORY - 1])
    ids = {tracks[0].id for tracks in in_view[HISTORY:] if tracks}
    assert len(ids) == 1
    track = next(tracks[0] for tracks in in_view[::-1] if tracks)
    assert np.abs(np.asarray(track.quad) - truth[-1]).max() <= 5
    top, bottom, left, right = track.box
    assert 0 <= top < bottom <= GREY and 0 <= left < right <= GREY


def test_a_screen_track_is_not_pulled_by_detections_of_the_wrong_line():
    # A side taken from a shelf beside the TV now and then (measured: 5–25 pixels off in 2 of 9
    # detections on a filmed TV whose picture is dark by one side) must not move the screen.
    screen = np.array([(30.0, 20.0), (100.0, 24.0), (100.0, 100.0), (30.0, 104.0)])
    shelf = screen + np.array([(-12.0, -1.0), (0.0, 0.0), (0.0, 0.0), (-12.0, 1.0)])
    further = screen + np.array([(-25.0, -3.0), (0.0, 0.0), (0.0, 0.0), (-25.0, 3.0)])
    as_quad = lambda a: tuple(map(tuple, a))  # noqa: E731
    track = ScreenTrack(0, as_quad(screen), [as_quad(screen)])
    for detection in (shelf, further, screen + 0.5, shelf, screen - 0.5):
        track.saw(as_quad(detection))
        assert np.abs(np.asarray(track.quad) - screen).max() <= 1.0, track.quad
    moved = screen + 10.0  # the phone moved for good: the track follows once detections agree
    for _ in range(3):
        track.saw(as_quad(moved))
    assert np.abs(np.asarray(track.quad) - moved).max() <= 1.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screens")
    guard, ref = store_with_broadcast(folder, 22, SIZE, FPS)
    yield guard, ref, folder
    guard.close()


def _filmed_copy(folder, screen, name: str, copy_seed: int = 22, styles=None):
    """5 s of unrelated shapes, then 10 s of ``copy_seed`` from 10 s, on ``screen``."""
    frames = synth.splice([synth.broadcast(77, SIZE, FPS, 5.0, styles=("shapes",)),
                           synth.broadcast(copy_seed, SIZE, FPS, 10.0, start=10.0, styles=styles)])
    return write_video(folder / name, layouts.map_frames(screen, frames, FPS), FPS)


@pytest.mark.parametrize(("seed", "angle"), [(2, 20), (5, 15)])
def test_a_camcorded_copy_is_found_with_its_screen(store, seed, angle):
    """A TV filmed by a phone at an angle (bezel, moiré, blur, glare, colour cast, shake, noise)
    showing a stretch of the reference with detail (docs/regions.md says which pictures stay
    too far from their reference once filmed): found, localized within ±1 s, the screen's box
    reported as the region."""
    guard, ref, folder = store
    tv = layouts.camcorded_tv(seed, angle, SIZE)
    (segment,) = guard.scan(_filmed_copy(folder, tv, f"tv-{seed}.mp4")).segments
    assert (segment.reference_id, segment.modality) == (ref.id, "video-region")
    assert segment.query_start == pytest.approx(5.0, abs=1.0)
    assert segment.query_end == pytest.approx(15.0, abs=1.0)
    assert segment.reference_start == pytest.approx(10.0, abs=1.0)
    left, top, right, bottom = segment.region
    truth = np.asarray(quad_box(tuple(map(tuple, np.asarray(tv.quad) * SCALE)))) / GREY
    assert overlap((top, bottom, left, right), tuple(truth)) >= 0.8, (segment.region, tv.quad)


def test_an_unrelated_camcorded_programme_gives_nothing(store):
    guard, _, folder = store
    tv = layouts.camcorded_tv(4, 20, SIZE)
    # other sports, shapes and concerts (two seeds of the photo styles may pan the same photo)
    unrelated = _filmed_copy(folder, tv, "tv-unrelated.mp4", copy_seed=123, styles=("sports", "shapes", "concert"))
    assert guard.scan(unrelated).segments == []
