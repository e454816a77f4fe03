"""Tests of guard_synth (broadcast and encode): determinism, time consistency, transforms, audio, encode round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from guard_synth import broadcast as synth

SIZE = (320, 180)
GENERATORS = ["photo_pan", "sports", "shapes", "concert", "broadcast"]


def _take(gen, n):
    return list(itertools.islice(gen, n))


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return next(synth.broadcast(3, SIZE, 25, 0.04, start=1.0))


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_shape_count_and_determinism(name):
    fn = getattr(synth, name)
    a = list(fn(5, SIZE, 25, 2.0))
    b = list(fn(5, SIZE, 25, 2.0))
    assert len(a) == 50
    for x in a:
        assert x.shape == (180, 320, 3) and x.dtype == np.uint8
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # The picture moves: consecutive frames differ and the clip is not a still.
    assert _mad(a[0], a[25]) > 1.0


@pytest.mark.parametrize("name", GENERATORS)
def test_different_seeds_give_different_content(name):
    fn = getattr(synth, name)
    diffs = []
    for s1, s2 in [(1, 2), (3, 4), (10, 11)]:
        a = list(fn(s1, SIZE, 5, 3.0))
        b = list(fn(s2, SIZE, 5, 3.0))
        diffs.append(np.mean([_mad(x, y) for x, y in zip(a, b)]))
    # Dark concert frames differ less in absolute terms than bright ones.
    assert min(diffs) > (8.0 if name == "concert" else 15.0), diffs


@pytest.mark.parametrize("name", GENERATORS)
def test_frame_is_a_function_of_time_not_of_fps(name):
    fn = getattr(synth, name)
    at25 = list(fn(9, SIZE, 25, 2.04))[50]  # t = 2.0
    at30 = list(fn(9, SIZE, 30, 2.04))[60]  # t = 2.0
    assert np.array_equal(at25, at30)
    # Starting inside the timeline yields the same frames as the full run.
    full = list(fn(9, SIZE, 25, 14.0))
    tail = list(fn(9, SIZE, 25, 4.0, start=10.0))
    assert len(tail) == 100
    assert all(np.array_equal(x, y) for x, y in zip(full[250:], tail))


def test_broadcast_cuts_between_styles():
    frames = list(synth.broadcast(2, SIZE, 2, 120))
    jumps = [_mad(a, b) for a, b in zip(frames, frames[1:])]
    assert sum(j > 30 for j in jumps) >= 5  # hard cuts every 5–14 s
    renderer = synth._renderer("broadcast", 2, SIZE)
    renderer.render(119.0)
    assert len(set(renderer.timeline.info)) >= 3


def test_photo_lists_are_respected_and_validated():
    renderer = synth._renderer("broadcast", 4, SIZE, photos=["coins", "brick"])
    renderer.render(200.0)
    for i, style in enumerate(renderer.timeline.info):
        if style == "photo":
            assert set(renderer.segments.get(i).timeline.info) <= {"coins", "brick"}
    pinned = synth._renderer("photo", 4, SIZE, photo="moon")
    pinned.render(40.0)
    assert set(pinned.timeline.info) == {"moon"}
    with pytest.raises(ValueError):
        next(synth.broadcast(1, SIZE, 25, 1, photos=["no-such-photo"]))
    assert "cat" not in synth.PHOTOS  # it is the same picture as chelsea


def test_frames_have_content_everywhere():
    for name in ["photo_pan", "sports", "shapes", "broadcast"]:
        for f in list(getattr(synth, name)(6, SIZE, 1, 30)):
            grey = f.mean(axis=2)
            # No near-black band along any edge (that would look like letterboxing).
            for band in (grey[:12], grey[-12:], grey[:, :12], grey[:, -12:]):
                assert band.mean() > 20 or band.std() > 8, name


def test_letterbox_bars_are_black_and_aspect_is_kept(frame):
    out = synth.letterbox(frame, (320, 240))
    assert out.shape == (240, 320, 3)
    # 16:9 content 320×180 centred: 30-row bars top and bottom.
    assert out[:30].max() == 0 and out[-30:].max() == 0
    assert out[30:210].mean() > 20
    assert out[30].mean() > 0 and out[209].mean() > 0
    assert _mad(out[30:210], frame) < 3.0


def test_pillarbox_bars_are_black_and_aspect_is_kept():
    narrow = next(synth.shapes(2, (240, 180), 25, 0.04))
    out = synth.pillarbox(narrow, (320, 180))
    assert out.shape == (180, 320, 3)
    assert out[:, :40].max() == 0 and out[:, -40:].max() == 0
    assert _mad(out[:, 40:280], narrow) < 3.0


def test_frame_transforms_shapes_and_effects(frame):
    h, w = frame.shape[:2]
    outputs = {
        "scale": synth.scale(frame, 0.5),
        "crop": synth.crop(frame, 0.2),
        "grey": synth.greyscale(frame),
        "sepia": synth.sepia(frame),
        "bc": synth.brightness_contrast(frame, 0.1, 1.3, 0.8),
        "logo": synth.logo(frame, "tr", 0.15, seed=3),
        "overlay": synth.overlay(frame, 0.25),
        "ticker": synth.ticker(frame, 3.0),
        "mirror": synth.mirror(frame),
        "pip": synth.picture_in_picture(frame, next(synth.shapes(1, SIZE, 25, 0.04)), 0.4),
        "rot": synth.rotate_zoom(frame, 5.0, 1.1),
        "cam": synth.camcord(frame, seed=1),
        "resize": synth.resize(frame, (200, 112)),
    }
    for name, out in outputs.items():
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
        assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0, name
    assert outputs["scale"].shape == (90, 160, 3)
    assert outputs["resize"].shape == (112, 200, 3)
    for name in ["crop", "grey", "sepia", "bc", "logo", "overlay", "ticker", "mirror", "pip", "rot", "cam"]:
        assert outputs[name].shape == frame.shape, name
        assert _mad(outputs[name], frame) > 1.0, name  # every transform changes the picture
    g = outputs["grey"]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    assert np.array_equal(outputs["mirror"][:, ::-1], frame)
    # The logo sits in the top-right corner and leaves the rest alone.
    diff = np.abs(outputs["logo"].astype(int) - frame).sum(axis=2) > 0
    rows, cols = np.nonzero(diff)
    assert rows.max() < h // 4 and cols.min() > w // 2 and cols.max() > w * 0.9
    assert 0.1 * w < cols.max() - cols.min() + 1 <= 0.15 * w
    assert diff[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].mean() > 0.6  # opaque box
    # Overlay covers about the requested area.
    changed = (np.abs(outputs["overlay"].astype(int) - frame).sum(axis=2) > 0).mean()
    assert 0.15 < changed <= 0.26
    # Ticker moves with time.
    assert _mad(synth.ticker(frame, 3.0)[-14:], synth.ticker(frame, 3.5)[-14:]) > 5
    # Transforms never modify their input.
    before = frame.copy()
    synth.logo(frame), synth.overlay(frame), synth.ticker(frame, 1.0), synth.camcord(frame)
    assert np.array_equal(frame, before)


def test_brightness_contrast_identity_and_direction(frame):
    assert np.array_equal(synth.brightness_contrast(frame), frame)
    assert synth.brightness_contrast(frame, brightness=0.2).mean() > frame.mean() + 20


def test_time_transforms():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(30)]  # 1 s at 30 fps
    out = [int(f[0, 0, 0]) for f in synth.change_fps(frames, 30, 25)]
    assert len(out) == 25
    # Output frame j shows the input frame nearest to time j/25.
    assert out == [int(np.ceil(j * 30 / 25 - 0.5)) for j in range(25)]
    assert len(set(out)) == 25 and out[-1] == 29  # five frames dropped, none repeated
    up = [int(f[0, 0, 0]) for f in synth.change_fps(frames[:10], 10, 20)]
    assert up == [k // 2 for k in range(20)]
    fast = [int(f[0, 0, 0]) for f in synth.speed(frames, 2.0)]
    assert fast == list(range(0, 30, 2))
    slow = list(synth.speed(frames, 0.5))
    assert len(slow) == 60
    kept = list(synth.drop_frames(frames, 0.3, seed=4))
    kept_ids = [int(f[0, 0, 0]) for f in kept]
    assert kept_ids == sorted(kept_ids) and 10 <= len(kept_ids) <= 28
    assert kept_ids == [int(f[0, 0, 0]) for f in synth.drop_frames(frames, 0.3, seed=4)]
    joined = list(synth.splice([frames[:3], (f for f in frames[10:12])]))
    assert [int(f[0, 0, 0]) for f in joined] == [0, 1, 2, 10, 11]


def test_copy_composition_matches_reference():
    ref = list(synth.broadcast(1, SIZE, 25, 6.0))
    parts = synth.splice([synth.shapes(7, SIZE, 25, 1.0),
                          (synth.logo(f) for f in synth.broadcast(1, SIZE, 25, 2.0, start=3.0)),
                          synth.shapes(8, SIZE, 25, 1.0)])
    copy = list(parts)
    assert len(copy) == 100
    # Away from the logo the middle part is exactly the reference from t = 3 s.
    assert np.array_equal(copy[25][:, :200], ref[75][:, :200])
    assert _mad(copy[0], ref[0]) > 15


@pytest.mark.parametrize("style", ["music", "crowd", "speech"])
def test_audio(style):
    a = synth.audio_track(3, 4.0, 16000, style)
    assert a.dtype == np.float32 and a.shape == (64000,)
    assert np.all(np.abs(a) <= 1.0)
    assert 0.02 < float(np.sqrt(np.mean(a**2))) < 0.8
    assert np.array_equal(a, synth.audio_track(3, 4.0, 16000, style))
    b = synth.audio_track(4, 4.0, 16000, style)
    assert np.corrcoef(a, b)[0, 1] < 0.5
    tail = synth.audio_track(3, 2.0, 16000, style, start=2.0)
    assert np.allclose(tail, a[32000:], atol=1e-4)
    # The level changes over time (beats, swells, syllables), in 50 ms windows.
    env = np.sqrt(np.mean(a.reshape(-1, 800) ** 2, axis=1))
    assert env.max() > 1.5 * env.min() + 1e-3


def test_encode_round_trip(tmp_path, frame):
    from guard import decode

    frames = synth.broadcast(5, SIZE, 25, 2.0)
    audio = synth.audio_track(5, 2.0, 16000, "music")
    path = synth.make_video(tmp_path / "clip.mp4", frames, 25, audio=audio)
    info = decode.probe(path)
    assert (info.width, info.height) == SIZE
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.0, abs=0.15)
    assert info.has_audio
    # The decoded picture matches what was encoded (lossy, so only roughly).
    first = next(synth.broadcast(5, SIZE, 25, 0.04))
    t0, decoded = next(decode.rgb_frames(path, 4.0))
    assert t0 == 0.0 and _mad(decoded, first) < 12.0


def test_synth_does_not_import_av():
    import subprocess
    import sys

    code = "import sys, guard_synth.broadcast; assert 'av' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- issue 12: the audio distortions of the accuracy corpus, and the real recordings ---------------


def _band_power(pcm: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


def test_mix_at_snr_sets_the_ratio_over_the_span_only():
    from guard_synth import music

    pcm = synth.audio_track(5, 3.0, 16000, "music")
    talk = synth.audio_track(6, 3.0, 16000, "speech")
    span = (16000, 40000)
    for snr in (0.0, 5.0):
        mixed, gain = music.mix_at_snr(pcm, talk, snr, span)
        assert np.allclose(mixed - pcm, gain * talk, atol=1e-6)
        assert music.snr_db(pcm[span[0]:span[1]], (mixed - pcm)[span[0]:span[1]]) == pytest.approx(snr, abs=0.05)
    assert float(np.abs(music.fit_level(pcm * 4)).max()) == pytest.approx(0.95)


def test_fan_recording_has_crowd_at_5_db_and_a_phone_band():
    from guard_synth import music

    sr = 32000  # room above the phone's 7 kHz edge to see it
    pcm = synth.audio_track(7, 4.0, sr, "music")
    span = (sr, 3 * sr)
    recording = music.fan_recording(pcm, sr, seed=3, snr=5.0, span=span)
    heard = music.fan_recording(pcm, sr, seed=3, snr=None)
    crowd = recording - heard
    assert music.snr_db(heard[span[0]:span[1]], crowd[span[0]:span[1]]) == pytest.approx(5.0, abs=1.0)
    assert np.array_equal(recording, music.fan_recording(pcm, sr, seed=3, snr=5.0, span=span))

    def attenuation(lo, hi):  # dB lost in a band, relative to the 500 Hz–2 kHz passband
        ref = _band_power(recording, sr, 500, 2000) / _band_power(pcm, sr, 500, 2000)
        return 10 * np.log10(ref / (_band_power(recording, sr, lo, hi) / _band_power(pcm, sr, lo, hi)))

    assert attenuation(20, 70) > 20  # below the 150 Hz edge
    assert attenuation(11000, 16000) > 15  # above the 7 kHz edge
    assert abs(attenuation(300, 5000)) < 3


def test_room_echo_adds_a_decaying_tail_and_the_80_ms_echo():
    from guard_synth import music

    sr = 16000
    click = np.zeros(sr, np.float32)
    click[0] = 1.0
    response = music.room_echo(click, sr, seed=1, rt60=0.5, wet=1.0)
    energy = response.astype(np.float64) ** 2
    early, late = energy[: int(0.1 * sr)].sum(), energy[int(0.4 * sr): int(0.5 * sr)].sum()
    assert late > 0 and early > 100 * late  # decays by 60 dB over RT60: tens of dB by 0.4 s
    assert abs(response[int(0.08 * sr)]) > 2.5 * np.abs(response[int(0.06 * sr): int(0.075 * sr)]).max()


def test_change_speed_moves_time_and_pitch_together():
    from guard_synth import music

    sr = 16000
    tone = np.sin(2 * np.pi * 1000 * np.arange(2 * sr) / sr).astype(np.float32)
    fast = music.change_speed(tone, 1.05)
    assert len(fast) == round(2 * sr / 1.05)
    freqs = np.fft.rfftfreq(len(fast), 1 / sr)
    assert freqs[np.argmax(np.abs(np.fft.rfft(fast)))] == pytest.approx(1050, abs=2)


def test_write_video_muxes_mono_aac_at_the_asked_bit_rate(tmp_path):
    import av

    from guard_synth.encode import write_video

    audio = synth.audio_track(2, 3.0, 16000, "music")
    path = write_video(tmp_path / "a.mp4", synth.shapes(2, (64, 36), 10, 3.0), 10, audio=audio,
                       audio_bit_rate=64000)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 1
        assert 40_000 <= stream.bit_rate <= 72_000


def test_recordings_are_pure_functions_of_time_when_installed():
    from guard_synth import recordings

    if not (recordings.available("ktuberling") and recordings.available("asc-music")):
        pytest.skip(f"real recordings not installed ({recordings.INSTALL_HINT})")
    files = recordings.speech_files("reference")
    whole = recordings.speech(4, 0.0, 6.0, 16000, files)
    assert np.array_equal(whole[32000:], recordings.speech(4, 2.0, 4.0, 16000, files))
    assert 0.03 < float(np.sqrt(np.mean(whole ** 2))) < 0.3
    assert not np.array_equal(whole, recordings.speech(5, 0.0, 6.0, 16000, files))
    assert not set(files) & set(recordings.speech_files("other"))
    tracks = recordings.music_tracks()
    assert len(tracks) >= 3
    song = recordings.music(tracks[0], 10.0, 2.0, 16000)
    assert len(song) == 32000 and np.array_equal(song[16000:], recordings.music(tracks[0], 11.0, 1.0, 16000))
    assert recordings.describe("asc-music")["licence"] == "GPL-2+"
