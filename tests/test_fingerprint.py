"""Fingerprinting, and what of a reference the matcher can find (ingest warnings, issue 16)."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from guard import decode
from guard_synth import broadcast as synth
from guard.fingerprint import Fingerprinter, QuerySession, distinctive_frames, reference_warnings
from guard.signals import DEFAULT_SIGNAL, get_signal
from tests import media

SIZE, FPS = (320, 180), 10


def _still(path, seconds):
    """One broadcast picture held for ``seconds``: informative, but never changing."""
    picture = next(iter(media.reference_frames(5, fps=FPS, start=3.0, seconds=0.1)))
    return synth.make_video(path, itertools.repeat(picture, int(seconds * FPS)), FPS)


def _colour_bars(path, seconds):
    """A test card: SMPTE-like colour bars, the same in every frame."""
    bars = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    colours = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    for i, colour in enumerate(colours):
        bars[:, i * SIZE[0] // 7 : (i + 1) * SIZE[0] // 7] = colour
    return synth.make_video(path, itertools.repeat(bars, int(seconds * FPS)), FPS)


@pytest.mark.parametrize("make", [_still, _colour_bars], ids=["still", "test card"])
def test_a_reference_whose_picture_never_changes_is_registered_with_a_warning(empty_guard, tmp_path, caplog, make):
    path = make(tmp_path / "still.mp4", 12.0)
    with caplog.at_level(logging.WARNING, logger="guard.service"):
        ref = empty_guard.ingest(path)
    (warning,) = ref.warnings
    assert "barely changes" in warning and "will not be reported" in warning
    assert any("barely changes" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # What the warning says: not even its own file is found.
    assert empty_guard.scan(path).segments == []
    assert ref.to_dict().keys() == empty_guard.reference(ref.id).to_dict().keys()  # not stored


def test_a_reference_shorter_than_its_minimum_match_length_is_registered_with_a_warning(empty_guard, tmp_path):
    path = synth.make_video(tmp_path / "short.mp4", media.reference_frames(1, fps=FPS, seconds=3.0), FPS)
    ref = empty_guard.ingest(path, min_seconds=5.0)
    (warning,) = ref.warnings
    assert "shorter than its minimum match length of 5 s" in warning
    assert "minimum match length of 3 s or less" in warning
    assert empty_guard.scan(path).segments == []
    assert empty_guard.update_reference(ref.id, min_seconds=2.5).min_seconds == 2.5
    assert len(empty_guard.scan(path).segments) == 1  # as the warning says


def test_ordinary_programme_gets_no_warning(empty_guard, tmp_path):
    path = synth.make_video(tmp_path / "programme.mp4", media.reference_frames(2, fps=FPS, seconds=12.0), FPS)
    ref = empty_guard.ingest(path)
    assert ref.warnings == []
    assert len(empty_guard.scan(path).segments) == 1


def test_slow_slides_are_mostly_not_distinctive(empty_guard, tmp_path):
    """Slides held 3 s: a frame looks like the picture 1.5 s away; slides of 1 s do not."""
    pictures = list(synth.frames_at("photo", 4, SIZE, [0.0, 7.0, 20.0, 33.0, 47.0, 61.0, 70.0, 80.0]))

    def slides(hold):
        return (pictures[int(k / FPS / hold) % len(pictures)] for k in range(int(12 * FPS)))

    slow = empty_guard.fingerprint(synth.make_video(tmp_path / "slow.mp4", slides(3.0), FPS))
    fast = empty_guard.fingerprint(synth.make_video(tmp_path / "fast.mp4", slides(1.0), FPS))
    settings = empty_guard.settings.match
    assert distinctive_frames(slow, settings).mean() < 0.1
    assert distinctive_frames(fast, settings).mean() > 0.9
    assert reference_warnings(slow, 5.0, settings) and not reference_warnings(fast, 5.0, settings)


def test_the_ingest_job_result_carries_the_warnings(empty_guard, tmp_path):
    path = _still(tmp_path / "still.mp4", 8.0)
    job = empty_guard.jobs.submit("ingest", owner="league", role="admin",
                                  params={"_path": str(path), "owner": "league", "filename": "still.mp4"})
    done = empty_guard.jobs.wait(job.id, timeout=120)
    assert done.status == "done", done.error
    assert done.result["reference"]["title"] == "still"
    assert len(done.result["warnings"]) == 1 and "barely changes" in done.result["warnings"][0]


# -- one query session for files and live streams (issue 11) --------------------------------------


@pytest.fixture(scope="module")
def panel_batches(tmp_path_factory):
    """12 s of programme under a still panel covering a quarter of the picture, as sampled batches."""
    frames = (synth.overlay(f, 0.25, "tl", seed=1) for f in media.reference_frames(23, fps=FPS, seconds=12.0))
    path = synth.make_video(tmp_path_factory.mktemp("panel") / "panel.mp4", frames, FPS)
    return list(decode.sample_frames(path))


def _rebatched(batches, sizes):
    """The same frames in batches of the given sizes (repeated)."""
    times = np.concatenate([b.times for b in batches])
    grey = np.concatenate([b.grey for b in batches])
    at = 0
    for size in itertools.cycle(sizes):
        if at >= len(times):
            return
        yield decode.FrameBatch(times[at:at + size], grey[at:at + size])
        at += size


def test_a_query_session_reads_the_same_however_the_frames_are_batched(panel_batches):
    """The session keeps the motion context across batches: a file read in batches of 32 and
    the same frames arriving two or three at a time give the same plain and masked readings."""
    signal = get_signal(DEFAULT_SIGNAL)
    whole = Fingerprinter(signal).fingerprint_batches(iter(panel_batches), overlays=True)
    small = Fingerprinter(signal).fingerprint_batches(_rebatched(panel_batches, [2, 3, 1]), overlays=True)
    np.testing.assert_array_equal(whole.times, small.times)
    np.testing.assert_array_equal(whole.codes, small.codes)
    assert whole.masked is not None
    np.testing.assert_array_equal(whole.masked.masks, small.masked.masks)
    np.testing.assert_array_equal(whole.masked.codes, small.masked.codes)


def test_a_live_session_finds_a_still_panel_over_its_trailing_window(panel_batches):
    """Live, each frame is judged on the frames before it (the panel is there from the first
    frame, so from the second on) and its masked reading shows the cells the whole file's
    analysis shows, give or take the panel's edge."""
    signal = get_signal(DEFAULT_SIGNAL)
    whole = Fingerprinter(signal).fingerprint_batches(iter(panel_batches), overlays=True)
    session = QuerySession(signal, overlays="live")
    readings = [session.add(batch) for batch in _rebatched(panel_batches, [1, 2])]
    times = np.concatenate([r.times for r in readings])
    masks = np.concatenate([r.masked.masks if r.masked is not None else np.zeros_like(r.codes) for r in readings])
    np.testing.assert_array_equal(times, whole.times)
    np.testing.assert_array_equal(np.concatenate([r.codes for r in readings]), whole.codes)
    overlaid = masks.any(axis=1)
    assert not overlaid[0] and overlaid[1:].mean() > 0.95
    shown = np.unpackbits(masks[overlaid], axis=1).mean()
    assert 0.6 < shown < 0.85, "a quarter of the cells is left out"
    differ = np.unpackbits(masks[overlaid] ^ whole.masked.masks[overlaid], axis=1).mean()
    assert differ < 0.12, "the trailing analysis leaves out mostly the cells the whole file's does"
