"""End to end: every piracy transformation is found and localized within ±1 s; unrelated video is not."""

from __future__ import annotations

import pytest

from guard_synth import broadcast as synth
from tests import media
from tests.test_decode import concatenated_ts

TOLERANCE = 1.0

# name → (seed, copied from, seconds, transform, before, after, fps, write options)
CASES = {
    "re-encode 150 kb/s": (1, 8.0, 20.0, None, 6.0, 5.0, 30, {"bit_rate": 150_000}),
    "scale 50%": (2, 5.0, 18.0, lambda f: synth.scale(f, 0.5), 6.0, 5.0, 30, {}),
    "letterbox": (3, 12.0, 20.0, lambda f: synth.letterbox(f, (320, 240)), 6.0, 5.0, 30, {}),
    "pillarbox": (1, 15.0, 20.0, lambda f: synth.pillarbox(synth.resize(f, (240, 180)), (320, 180)), 6.0, 5.0, 30, {}),
    "crop 5%": (2, 10.0, 20.0, lambda f: synth.crop(f, 0.05), 6.0, 5.0, 30, {}),
    "greyscale": (3, 3.0, 20.0, synth.greyscale, 6.0, 5.0, 30, {}),
    "corner logo": (1, 20.0, 18.0, lambda f: synth.logo(f, "tr", 0.12, seed=3), 6.0, 5.0, 30, {}),
    "trimmed from the middle": (2, 12.0, 16.0, None, 0.0, 0.0, 30, {}),
    "inside unrelated content": (3, 18.0, 12.0, None, 14.0, 12.0, 30, {}),
    "frame rate 30→25": (1, 6.0, 20.0, None, 6.0, 5.0, 25, {}),
    "mpeg4 in avi": (2, 20.0, 15.0, None, 5.0, 5.0, 30, {"codec": "mpeg4", "pix_fmt": "yuv420p"}),
    "mpeg2 in mpeg-ts": (3, 9.0, 15.0, None, 5.0, 5.0, 25, {"codec": "mpeg2video"}),
    "mjpeg in mkv": (1, 25.0, 12.0, None, 4.0, 4.0, 30, {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
}
SUFFIX = {"mpeg4 in avi": ".avi", "mpeg2 in mpeg-ts": ".ts", "mjpeg in mkv": ".mkv"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_copy_is_found_and_localized(name, guard, loaded_store, tmp_path):
    seed, start, seconds, transform, before, after, fps, options = CASES[name]
    _, ids = loaded_store
    path = media.make_copy(
        tmp_path / f"copy{SUFFIX.get(name, '.mp4')}", seed, start, seconds, transform,
        before=before, after=after, fps=fps, **options,
    )
    result = guard.scan(path)

    assert [s.reference_id for s in result.segments] == [ids[seed]], result.to_dict()
    segment = result.segments[0]
    assert segment.query_start == pytest.approx(before, abs=TOLERANCE)
    assert segment.query_end == pytest.approx(before + seconds, abs=TOLERANCE)
    assert segment.reference_start == pytest.approx(start, abs=TOLERANCE)
    assert segment.reference_end == pytest.approx(start + seconds, abs=TOLERANCE)
    assert segment.offset == pytest.approx(start - before, abs=0.5)
    assert segment.rate == pytest.approx(1.0, abs=0.02)
    assert segment.matched_fraction >= 0.6
    assert 0.0 < segment.score <= 1.0


@pytest.mark.slow
def test_thirty_minutes_of_unrelated_content_match_nothing(guard, tmp_path):
    """Half an hour of video in the references' styles, none of their content."""
    path = synth.make_video(
        tmp_path / "unrelated.mp4",
        synth.broadcast(424242, (160, 90), 10, 30 * 60.0, photos=media.OTHER_PHOTOS),
        10,
    )
    result = guard.scan(path)
    assert result.duration >= 30 * 60 - 1
    assert result.segments == []


def test_each_reference_matches_itself_exactly(guard, loaded_store, reference_files):
    _, ids = loaded_store
    for seed, path in reference_files.items():
        segments = guard.scan(path).segments
        assert [s.reference_id for s in segments] == [ids[seed]]
        assert segments[0].offset == pytest.approx(0.0, abs=0.1)
        assert segments[0].duration == pytest.approx(media.REF_SECONDS, abs=1.0)
        assert segments[0].matched_fraction > 0.95


def test_scan_is_deterministic(guard, loaded_store, tmp_path):
    path = media.make_copy(tmp_path / "copy.mp4", 2, 4.0, 15.0, lambda f: synth.crop(f, 0.05), before=5.0)
    first, second = guard.scan(path).to_dict(), guard.scan(path).to_dict()
    assert first == second


def test_a_mirrored_copy_is_found_and_marked(guard, loaded_store, tmp_path):
    _, ids = loaded_store
    path = media.make_copy(tmp_path / "mirror.mp4", 2, 6.0, 16.0, synth.mirror, before=5.0, after=4.0)
    (segment,) = guard.scan(path).segments
    assert segment.reference_id == ids[2] and segment.modality == "video-mirrored"
    assert segment.query_start == pytest.approx(5.0, abs=TOLERANCE)
    assert segment.query_end == pytest.approx(21.0, abs=TOLERANCE)
    assert segment.reference_start == pytest.approx(6.0, abs=TOLERANCE)


@pytest.mark.slow
def test_a_mirrored_reading_needs_twice_the_reference_min_seconds(guard, loaded_store, tmp_path):
    """Long enough unflipped (min_seconds 5), too short for a flipped reading."""
    path = media.make_copy(tmp_path / "short.mp4", 3, 6.0, 7.0, synth.mirror, before=5.0, after=4.0)
    assert guard.scan(path).segments == []
    path = media.make_copy(tmp_path / "plain.mp4", 3, 6.0, 7.0, None, before=5.0, after=4.0)
    assert [s.modality for s in guard.scan(path).segments] == ["video"]


@pytest.mark.slow
@pytest.mark.parametrize("seed,corner", [(1, "tl"), (3, "tr")])
def test_a_copy_under_a_large_still_panel_is_found_through_its_masked_reading(
        guard, loaded_store, tmp_path, seed, corner):
    """A translucent panel over a quarter of the picture moves the whole hash; the frames'
    masked readings (the panel's still cells left out) find the copy."""
    _, ids = loaded_store
    panel = lambda f: synth.overlay(f, 0.25, corner, seed=seed)  # noqa: E731
    path = media.make_copy(tmp_path / "panel.mp4", seed, 10.0, 18.0, panel, before=5.0, after=4.0)
    fp = guard.fingerprint(path, overlays=True)
    assert fp.masked is not None
    copied = (fp.times >= 6.0) & (fp.times < 22.0)
    assert fp.masked.masks[copied].any(axis=1).mean() > 0.8
    (segment,) = guard.scan(path).segments
    assert segment.reference_id == ids[seed]
    assert segment.query_start == pytest.approx(5.0, abs=TOLERANCE)
    assert segment.query_end == pytest.approx(23.0, abs=TOLERANCE)
    assert segment.reference_start == pytest.approx(10.0, abs=TOLERANCE)


# -- a copy after a timestamp reset or jump (issue 16) -------------------------------------------

SPLICE_FPS = 15


def _spliced(tmp_path, offsets, seed=2, start=8.0, before=12.0, seconds=15.0):
    """Unrelated video, then a copy of reference ``seed``, byte-concatenated as two MPEG-TS files."""
    return concatenated_ts(
        tmp_path / "spliced.ts",
        [media.unrelated_frames(seed + 900, before, fps=SPLICE_FPS),
         media.reference_frames(seed, fps=SPLICE_FPS, start=start, seconds=seconds)],
        SPLICE_FPS, offsets,
    )


@pytest.mark.parametrize("offsets", [None, [0.0, 3600.0]], ids=["reset", "jump"])
def test_a_copy_after_a_timestamp_reset_or_jump_is_found(guard, loaded_store, tmp_path, offsets):
    _, ids = loaded_store
    result = guard.scan(_spliced(tmp_path, offsets))
    assert result.duration == pytest.approx(27.0, abs=0.5)
    (segment,) = result.segments
    assert segment.reference_id == ids[2]
    assert segment.query_start == pytest.approx(12.0, abs=TOLERANCE)
    assert segment.query_end == pytest.approx(27.0, abs=TOLERANCE)
    assert segment.reference_start == pytest.approx(8.0, abs=TOLERANCE)
    assert segment.rate == pytest.approx(1.0, abs=0.02)


def test_ingest_of_a_file_with_a_timestamp_reset_covers_all_of_it(empty_guard, tmp_path):
    ref = empty_guard.ingest(_spliced(tmp_path, None), title="spliced")
    assert ref.duration == pytest.approx(27.0, abs=0.5)
    assert ref.warnings == []
    # The part after the reset is registered, at its place in the file.
    copy = media.make_copy(tmp_path / "after.mp4", 2, 8.0, 15.0, fps=SPLICE_FPS)
    (segment,) = empty_guard.scan(copy).segments
    assert segment.reference_id == ref.id
    assert segment.reference_start == pytest.approx(12.0, abs=TOLERANCE)
    assert segment.duration == pytest.approx(15.0, abs=TOLERANCE)
