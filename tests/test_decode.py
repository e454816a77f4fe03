"""Sampling decoder: rate, timing, options, metadata."""

import numpy as np
import pytest

from guard import decode, synth


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "clip.mp4"
    return synth.make_video(path, synth.shapes(3, (320, 180), 30, 10.0), 30,
                            audio=synth.audio_track(3, 10.0))


@pytest.mark.parametrize("fps", [2.0, 4.0, 5.0])
@pytest.mark.parametrize("fast", [True, False])
def test_sampling_rate_and_times(clip, fps, fast):
    batches = list(decode.sample_frames(clip, decode.DecodeOptions(sample_fps=fps, fast=fast)))
    times = np.concatenate([b.times for b in batches])
    assert len(times) == pytest.approx(10 * fps, abs=2)
    assert times[0] == 0.0 and times[-1] < 10.0
    assert np.all(np.diff(times) > 0)
    # Skipped non-reference frames move a sample by at most a couple of frame periods.
    assert np.abs(np.diff(times) - 1 / fps).max() <= 2.5 / 30
    assert all(b.grey.shape[1:] == (decode.GREY_SIZE, decode.GREY_SIZE) for b in batches)
    assert all(len(b.times) <= decode.BATCH_SIZE for b in batches)


def test_probe(clip):
    info = decode.probe(clip)
    assert (info.width, info.height, info.has_audio) == (320, 180, True)
    assert info.fps == pytest.approx(30)
    assert info.duration == pytest.approx(10.0, abs=0.2)


def test_full_decode_counts_every_frame(clip):
    assert decode.decode_all_frames(clip) == 300
