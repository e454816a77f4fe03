"""Sampling decoder: rate, timing, options, metadata."""

import os
import threading

import av
import numpy as np
import pytest

from guard import decode
from guard_synth import broadcast as synth
from guard_synth import encode
from guard.errors import InputError


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


def test_stills_are_taken_in_the_fingerprinting_decode_on_its_clock(clip):
    """One decode gives the grey batches and a small picture every 2 s, at sampled instants."""
    stills = decode.Stills(2.0, 160)
    batches = list(decode.sample_frames(clip, decode.DecodeOptions(sample_fps=4.0), stills=stills))
    times = np.concatenate([b.times for b in batches])
    taken = np.array([t for t, _ in stills.frames])
    np.testing.assert_allclose(taken, np.arange(0.0, 10.0, 2.0), atol=2.5 / 30)
    assert set(taken.tolist()) <= set(times.tolist())
    assert {rgb.shape for _, rgb in stills.frames} == {(90, 160, 3)}
    # Each still shows its own instant: it is closer to the grey frame sampled then than to one 2 s on.
    grey = np.concatenate([b.grey for b in batches]).astype(np.float32)
    for k, (t, rgb) in enumerate(stills.frames[:-1]):
        small = np.asarray(rgb, np.float32).mean(axis=2)[::9, ::16][:10, :10]
        here = grey[np.flatnonzero(times == t)[0]][::13, ::13][:10, :10]
        later = grey[np.flatnonzero(times == stills.frames[k + 1][0])[0]][::13, ::13][:10, :10]
        assert np.abs(small - here).mean() < np.abs(small - later).mean()


def test_probe(clip):
    info = decode.probe(clip)
    assert (info.width, info.height, info.has_audio) == (320, 180, True)
    assert info.fps == pytest.approx(30)
    assert info.duration == pytest.approx(10.0, abs=0.2)


def test_full_decode_counts_every_frame(clip):
    assert decode.decode_all_frames(clip) == 300


# -- timestamp resets and jumps inside a file (issue 16) ----------------------------------------


def concatenated_ts(path, parts, fps, start_offsets=None):
    """Byte-concatenate MPEG-TS files, one per frame sequence of ``parts``: each restarts its
    timestamps (a reset), or starts them at ``start_offsets[i]`` seconds (a jump)."""
    pieces = []
    for i, frames in enumerate(parts):
        piece = path.with_name(f"{path.stem}.part{i}.ts")
        offset = (start_offsets or [0.0] * len(parts))[i]
        container_options = {"output_ts_offset": str(offset)} if offset else None
        encode.write_video(piece, frames, fps, container_options=container_options)
        pieces.append(piece.read_bytes())
        piece.unlink()
    path.write_bytes(b"".join(pieces))
    return path


def _times(path):
    return np.concatenate([b.times for b in decode.sample_frames(path)])


@pytest.mark.parametrize("offsets,gap", [
    (None, 0.0),  # the second part restarts at 0: a reset
    ([0.0, 600.0], 0.0),  # the second part starts 10 minutes on: a jump, collapsed
    ([0.0, 8.5], 2.5),  # a 2.5 s hold, under MAX_TIMESTAMP_JUMP: real time, kept
])
def test_time_runs_on_across_a_reset_or_jump_in_a_file(tmp_path, offsets, gap):
    size, fps = (320, 180), 15
    path = concatenated_ts(tmp_path / "joined.ts",
                           [synth.shapes(1, size, fps, 6.0), synth.shapes(2, size, fps, 6.0)], fps, offsets)
    times = _times(path)
    steps = np.diff(times)
    assert np.all(steps > 0)
    assert times[-1] == pytest.approx(12.0 + gap, abs=0.5)
    # Every frame of both parts is sampled: no step beyond the sampling period but the hold.
    assert np.sort(steps)[-2] <= 0.25 + 2.5 / fps
    assert steps.max() == pytest.approx(max(gap, 0.25), abs=0.2)
    assert len(times) == pytest.approx(12 * 4, abs=4)
    rgb_times = np.array([t for t, _ in decode.rgb_frames(path, 4.0)])  # thumbnails share the clock
    assert np.all(np.diff(rgb_times) > 0) and rgb_times[-1] == pytest.approx(times[-1], abs=2.5 / fps)


def test_the_file_clock_re_anchors_like_the_live_one():
    """One StreamClock: without a wall clock, a discontinuity continues one period on."""
    clock = decode.StreamClock(period=0.1)
    times = [clock(t) for t in (5.0, 5.1, 5.2, 0.3, 0.4, 99.0, 99.1, 102.0)]
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 3.5])
    assert clock.rebases == 2


# -- what is not a media file ---------------------------------------------------------------------


@pytest.mark.parametrize("kind,message", [
    ("fifo", "is a FIFO"),
    ("device", "is a character device"),
    ("directory", "is a directory"),
    ("missing", "no such file"),
])
def test_a_path_that_is_no_media_file_is_named_for_what_it_is(tmp_path, kind, message):
    path = {"fifo": tmp_path / "pipe.mp4", "device": "/dev/null", "directory": tmp_path,
            "missing": tmp_path / "gone.mp4"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block: the check must not
    for read in (decode.probe, lambda p: list(decode.sample_frames(p))):
        with pytest.raises(InputError, match=message):
            read(path)


# -- one decode loop for files and live sources (issue 11) ---------------------------------------


def test_a_file_pulled_as_a_live_source_samples_the_frames_a_scan_samples(clip):
    """Files and live sources share the decode loop: the live path adds wall-clock arrivals and
    thumbnails, and samples the same frames at the same times."""
    scanned = list(decode.sample_frames(clip))
    options = decode.LiveOptions(reconnect=False, flush_interval=0.0, thumbnail_width=96)
    batches = list(decode.live_batches(str(clip), options, threading.Event()))
    assert all(isinstance(b, decode.LiveBatch) and isinstance(b, decode.FrameBatch) for b in batches)
    pulled = [b for b in batches if len(b.times)]  # the others carry sound only
    assert all(len(b.times) == 1 for b in pulled), "flush_interval 0 hands on every frame at once"
    np.testing.assert_array_equal(np.concatenate([b.times for b in pulled]), np.concatenate([b.times for b in scanned]))
    np.testing.assert_array_equal(np.concatenate([b.grey for b in pulled]), np.concatenate([b.grey for b in scanned]))
    arrivals = np.concatenate([b.arrivals for b in pulled])
    assert np.all(np.diff(arrivals) >= 0)
    assert {(b.width, b.height) for b in pulled} == {(320, 180)}
    assert {t.shape for b in pulled for t in b.thumbs} == {(54, 96, 3)}


def _sound(batches) -> list:
    return [block for b in batches for block in b.audio]


def test_a_live_source_hands_on_its_sound_on_the_pictures_clock_across_a_reset(tmp_path):
    """One packet loop for picture and sound: the sound follows the picture's clock, which
    starts at the first frame and runs on across a timestamp reset (two byte-concatenated
    MPEG-TS files, each starting at 0), so sound and frames keep agreeing."""
    size, fps, pieces = (160, 90), 10, []
    for i in range(2):
        piece = tmp_path / f"part{i}.ts"
        encode.write_video(piece, synth.shapes(i, size, fps, 4.0), fps, audio=synth.audio_track(i, 4.0))
        pieces.append(piece.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(pieces))
    batches = list(decode.live_batches(str(joined), decode.LiveOptions(reconnect=False), threading.Event()))
    times = np.concatenate([b.times for b in batches])
    blocks = _sound(batches)
    assert {b.rate for b in blocks} == {decode.AUDIO_RATE} and all(isinstance(b, decode.LiveAudioBlock) for b in blocks)
    starts = np.array([b.start for b in blocks])
    ends = starts + np.array([b.duration for b in blocks])
    assert np.all(np.diff(times) > 0) and times[-1] == pytest.approx(8.0, abs=0.5)
    assert abs(starts[0]) < 0.2 and ends[-1] == pytest.approx(times[-1], abs=0.5)
    assert np.all(starts[1:] >= ends[:-1] - 0.5), "the sound after the reset is placed after the sound before it"
    assert sum(b.duration for b in blocks) == pytest.approx(8.0, abs=0.6)
    first_after_reset = starts[np.argmax(starts > 3.5)]
    assert first_after_reset == pytest.approx(4.0, abs=0.6), "both parts' sound is where their pictures are"
    arrivals = np.array([b.arrival for b in blocks])
    assert np.all(np.diff(arrivals) >= 0)


def test_a_live_source_without_a_picture_is_heard_and_one_without_sound_is_seen(tmp_path, clip):
    from guard_synth import music

    song = music.write_aac(tmp_path / "song.ts", synth.audio_track(5, 4.0), 16000, 64000)
    batches = list(decode.live_batches(str(song), decode.LiveOptions(reconnect=False), threading.Event()))
    assert batches and all(len(b.times) == 0 and (b.width, b.height) == (0, 0) for b in batches)
    blocks = _sound(batches)
    assert abs(blocks[0].start) < 0.1 and sum(b.duration for b in blocks) == pytest.approx(4.0, abs=0.2)
    options = decode.LiveOptions(reconnect=False, audio=False)
    seen = list(decode.live_batches(str(clip), options, threading.Event()))
    assert _sound(seen) == [] and sum(len(b.times) for b in seen) == pytest.approx(40, abs=2)
    heard: list[tuple[str, str]] = []
    assert list(decode.live_batches(str(song), options, threading.Event(), lambda *status: heard.append(status))) == []
    assert heard[-1][0] == "ended" and heard[-1][1].endswith("song.ts: no video stream (holds audio)")


def test_a_live_source_whose_sound_does_not_decode_is_seen_all_the_same(tmp_path, caplog):
    good = tmp_path / "good.ts"
    encode.write_video(good, synth.shapes(1, (160, 90), 10, 4.0), 10, audio=synth.audio_track(1, 4.0))
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for i in range(0, len(data), 188):  # garble the sound's TS packets (PID 0x101), PES headers aside
        if ((data[i + 1] & 0x1F) << 8 | data[i + 2]) == 0x101 and not data[i + 1] & 0x40:
            data[i + 4: i + 188] = rng.integers(0, 256, 184, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    with caplog.at_level("INFO", logger="guard.decode"):
        batches = list(decode.live_batches(str(bad), decode.LiveOptions(reconnect=False), threading.Event()))
    assert sum(len(b.times) for b in batches) == pytest.approx(16, abs=1), "every sampled frame is there"
    assert sum(block.duration for block in _sound(batches)) < 1.0
    assert any("sound does not decode" in r.message or "damaged audio" in r.message for r in caplog.records)


# -- audio (issue 12) ------------------------------------------------------------------------------


def test_audio_comes_in_contiguous_mono_blocks_at_the_chosen_rate(clip):
    blocks = list(decode.sample_audio(clip))
    assert {b.rate for b in blocks} == {decode.AUDIO_RATE}
    assert all(b.samples.dtype == np.float32 and b.samples.ndim == 1 for b in blocks)
    assert all(len(b.samples) == decode.AUDIO_RATE for b in blocks[:-1])
    starts = np.array([b.start for b in blocks])
    np.testing.assert_allclose(np.diff(starts), 1.0)
    assert abs(starts[0]) < 0.1 and sum(b.duration for b in blocks) == pytest.approx(10.0, abs=0.2)
    pcm = np.concatenate([b.samples for b in blocks])
    original = synth.audio_track(3, 10.0)
    assert np.sqrt(np.mean(pcm ** 2)) == pytest.approx(np.sqrt(np.mean(original ** 2)), rel=0.2)
    half = list(decode.sample_audio(clip, rate=11025, block_seconds=0.5))
    assert len(half[0].samples) == 5512 and half[1].start - half[0].start == pytest.approx(5512 / 11025)


def test_audio_blocks_hold_the_samples_of_ffmpegs_resampler(clip):
    """The blocks are FFmpeg's resampled samples exactly (read in place from each frame)."""
    with av.open(str(clip)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=decode.AUDIO_RATE)
        frames = [f for packet in container.demux(container.streams.audio[0]) for f in packet.decode()]
        resampled = [out for f in [*frames, None] for out in resampler.resample(f)]
        expected = np.concatenate([out.to_ndarray().reshape(-1) for out in resampled])
    np.testing.assert_array_equal(np.concatenate([b.samples for b in decode.sample_audio(clip)]), expected)


def test_audio_blocks_keep_the_media_clock(tmp_path):
    from guard_synth import music

    path = music.write_aac(tmp_path / "late.ts", synth.audio_track(4, 4.0), 16000, 64000,
                           {"output_ts_offset": "600"})
    blocks = list(decode.sample_audio(path))
    assert blocks[0].start == pytest.approx(600.0, abs=0.1)
    assert sum(b.duration for b in blocks) == pytest.approx(4.0, abs=0.2)


def test_files_without_or_with_broken_audio_are_input_errors(tmp_path):
    silent = synth.make_video(tmp_path / "silent.mp4", synth.shapes(3, (160, 90), 10, 2.0), 10)
    with pytest.raises(InputError, match=r"no audio stream \(holds video\)"):
        list(decode.sample_audio(silent))
    from guard_synth import music

    good = music.write_aac(tmp_path / "song.ts", synth.audio_track(5, 6.0), 16000, 64000).read_bytes()
    rng = np.random.default_rng(0)
    garbled = tmp_path / "garbled.ts"
    garbled.write_bytes(good[:376] + rng.integers(0, 256, len(good) - 376, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="cannot be opened|no decodable audio|no audio stream"):
        list(decode.sample_audio(garbled))
    cut = tmp_path / "cut.ts"
    cut.write_bytes(good[: len(good) // 2])  # a truncated file keeps what decoded
    assert 1.0 < sum(b.duration for b in decode.sample_audio(cut)) < 5.0


def _one_pass(path, **tap_options):
    """Batches of the picture pass and what its audio tap heard."""
    heard: list[decode.AudioBlock] = []
    tap = decode.AudioTap(heard.append, **tap_options)
    return list(decode.sample_frames(path, audio=tap)), tap, heard


def _assert_same_picture(batches, alone):
    np.testing.assert_array_equal(np.concatenate([b.times for b in batches]), np.concatenate([b.times for b in alone]))
    np.testing.assert_array_equal(np.concatenate([b.grey for b in batches]), np.concatenate([b.grey for b in alone]))


def _assert_same_blocks(heard, blocks):
    assert [(b.start, b.rate, len(b.samples)) for b in heard] == [(b.start, b.rate, len(b.samples)) for b in blocks]
    for one, other in zip(heard, blocks):
        np.testing.assert_array_equal(one.samples, other.samples)


@pytest.mark.parametrize("rate,block_seconds,held_packets", [(decode.AUDIO_RATE, 1.0, decode.AUDIO_TAP_PACKETS),
                                                              (11025, 0.5, 1), (decode.AUDIO_RATE, 1.0, 7)])
def test_the_picture_pass_hears_the_sound_a_separate_pass_would(clip, rate, block_seconds, held_packets):
    """One demux for picture and sound: the picture's frames unchanged, the blocks of sample_audio
    (whether the tap decodes each packet as it comes or holds a few)."""
    batches, tap, heard = _one_pass(clip, rate=rate, block_seconds=block_seconds, held_packets=held_packets)
    _assert_same_picture(batches, list(decode.sample_frames(clip)))
    blocks = list(decode.sample_audio(clip, rate=rate, block_seconds=block_seconds))
    _assert_same_blocks(heard, blocks)
    assert tap.error is None and tap.end == blocks[-1].start + blocks[-1].duration


def test_the_picture_pass_hears_sound_across_a_jump_on_its_media_clock(tmp_path):
    parts = []
    for i, offset in enumerate((0.0, 600.0)):
        part = encode.write_video(tmp_path / f"part{i}.ts", synth.shapes(i, (160, 90), 10, 4.0), 10,
                                  audio=synth.audio_track(i, 4.0),
                                  container_options={"output_ts_offset": str(offset)} if offset else None)
        parts.append(part.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    _, tap, heard = _one_pass(joined, held_packets=5)
    blocks = list(decode.sample_audio(joined))
    _assert_same_blocks(heard, blocks)
    assert tap.error is None and heard[-1].start > 600.0


def test_sound_the_picture_pass_cannot_read_is_left_out_with_the_reason(tmp_path):
    silent = synth.make_video(tmp_path / "silent.mp4", synth.shapes(3, (160, 90), 10, 2.0), 10)
    batches, tap, heard = _one_pass(silent)
    assert heard == [] and tap.error is not None and "no audio stream (holds video)" in tap.error
    _assert_same_picture(batches, list(decode.sample_frames(silent)))
    # Every audio packet's payload garbled: whatever comes of the sound, the picture is the same.
    path = encode.write_video(tmp_path / "loud.ts", synth.shapes(4, (160, 90), 10, 4.0), 10,
                              audio=synth.audio_track(4, 4.0))
    with av.open(str(path)) as container:
        pid = container.streams.audio[0].id
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    for at in range(0, len(data) - 187, 188):
        if ((data[at + 1] & 0x1F) << 8 | data[at + 2]) == pid:
            data[at + 12: at + 188] = rng.integers(0, 256, 176, dtype=np.uint8).tobytes()
    garbled = tmp_path / "garbled.ts"
    garbled.write_bytes(bytes(data))
    batches, tap, heard = _one_pass(garbled)
    _assert_same_picture(batches, list(decode.sample_frames(garbled)))
    assert heard == [] and tap.error == f"{garbled}: no decodable audio"
