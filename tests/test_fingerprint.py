"""Fingerprinting, and what of a reference the matcher can find (ingest warnings, issue 16)."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from guard import synth
from guard.fingerprint import distinctive_frames, reference_warnings
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
