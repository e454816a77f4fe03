"""The audio landmark signal: registration, streaming, invariances, speed-mapped hashing."""

from __future__ import annotations

import numpy as np
import pytest

from guard.index.landmarks import LandmarkIndex
from guard.signals import BUILTIN_SIGNALS, get_signal
from guard.signals.audio import DT_BITS, SHIFTED, AudioLandmarks, LandmarkParams, QueryPicking, hash_pairs, pair_span
from guard_synth import music
from guard_synth.broadcast import audio_track

RATE = 8000


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return audio_track(21, 20.0, RATE)


def as_set(landmarks) -> set[tuple[float, int, int]]:
    return set(zip(np.round(landmarks.times, 6).tolist(), landmarks.hashes.tolist(), landmarks.speeds.tolist()))


def test_registered_as_an_audio_signal_with_its_own_index():
    signal = get_signal("audio_landmarks")
    assert isinstance(signal, AudioLandmarks) and BUILTIN_SIGNALS["audio_landmarks"]
    assert signal.describe()["modality"] == "audio" and signal.describe()["params"]["sample_rate"] == RATE
    assert isinstance(signal.index_factory(), LandmarkIndex)
    assert signal.distance(np.array([1, 2]), np.array([1, 3])).tolist() == [0, 1]


def test_blocks_of_any_size_give_the_landmarks_of_the_whole(song):
    signal = AudioLandmarks()
    whole = signal.landmarks(song, start=5.0, query=True)
    extractor = signal.extractor(query=True)
    rng = np.random.default_rng(1)
    parts, at = [], 0
    while at < len(song):
        size = int(rng.integers(1, 12000))
        parts.append(extractor.feed(song[at: at + size], 5.0 + at / RATE))
        at += size
    parts.append(extractor.flush())
    streamed = parts[0].concat(parts)
    assert as_set(streamed) == as_set(whole) and len(streamed) == len(whole)
    # Landmarks come out while the stream runs, not only at its end.
    assert sum(len(p) for p in parts[:-1]) > 0.8 * len(whole)
    assert whole.times.min() >= 5.0 and whole.times.max() <= 25.0


def test_a_jump_in_block_times_restarts_on_the_new_clock(song):
    extractor = AudioLandmarks().extractor()
    first = extractor.feed(song[: 5 * RATE], 0.0)
    rest = extractor.feed(song[5 * RATE: 10 * RATE], 100.0)
    rest = rest.concat([rest, extractor.flush()])
    times = np.concatenate([first.times, rest.times])
    assert times.max() < 100.0 + 5.0 and np.any(times >= 100.0) and not np.any((times > 6.0) & (times < 100.0))


def test_density_and_silence(song):
    landmarks = AudioLandmarks().landmarks(song)
    per_second = len(landmarks) / 20.0
    assert 30 < per_second < 120
    assert len(AudioLandmarks().landmarks(np.zeros(10 * RATE, np.float32))) == 0


def test_volume_does_not_change_the_landmarks(song):
    signal = AudioLandmarks()
    plain = as_set(signal.landmarks(song))
    quiet = as_set(signal.landmarks(music.volume(song, -20)))
    assert len(plain & quiet) >= 0.95 * len(plain)


def test_a_sped_up_copy_hashed_at_its_speed_meets_the_reference():
    """Hashing the query's peaks under the assumed speed maps them back onto the reference's hashes."""
    params = LandmarkParams()
    anchor, target, dt = np.log2([440.0, 1000.0]), np.log2([660.0, 1500.0]), np.array([20.0, 30.0])
    reference, _ = hash_pairs(params, anchor, target, dt)
    heard, _ = hash_pairs(params, anchor + np.log2(1.04), target + np.log2(1.04), np.rint(dt / 1.04), 1.04)
    assert heard.tolist() == reference.tolist()
    np.testing.assert_allclose(pair_span(params, reference), dt * params.frame_seconds)


def test_speed_grid_costs_one_hashing_per_speed(song):
    signal = AudioLandmarks(query_picking=QueryPicking(peaks_per_chunk=6, fan_out=8, dt_tolerance=0))
    reference = signal.landmarks(song)
    query = signal.landmarks(song, query=True)
    assert set(query.speeds.tolist()) == set(range(len(signal.params.query_speeds)))
    at_one = query.take(query.speeds == signal.params.query_speeds.index(1.0))
    assert as_set(at_one) == {(t, h, signal.params.query_speeds.index(1.0)) for t, h, _ in as_set(reference)}


def test_a_query_is_denser_than_a_reference_without_changing_the_stored_signal(song):
    """The default query picking keeps nearly every reference landmark and adds more; it is not
    part of the signal's description, so stored reference tracks stay valid."""
    signal = AudioLandmarks()
    assert signal.describe() == AudioLandmarks(query_picking=QueryPicking(10, 16, 2)).describe()
    reference = {(t, h) for t, h, _ in as_set(signal.landmarks(song))}
    query = signal.landmarks(song, query=True)
    exact_at_one = query.take(query.speeds == signal.params.query_speeds.index(1.0))
    heard = {(t, h) for t, h, _ in as_set(exact_at_one)}
    assert len(reference & heard) >= 0.95 * len(reference)
    assert len(heard) > 1.5 * len(reference)


def test_time_difference_tolerance_adds_flagged_neighbours(song):
    """With ``dt_tolerance`` 1 each pair is also hashed one frame shorter and longer, flagged
    SHIFTED; the pairs hashed as heard are those of tolerance 0."""
    plain = AudioLandmarks(query_picking=QueryPicking(8, 12, 0)).landmarks(song, query=True)
    tolerant = AudioLandmarks(query_picking=QueryPicking(8, 12, 1)).landmarks(song, query=True)
    exact = tolerant.take((tolerant.speeds & SHIFTED) == 0)
    assert as_set(exact) == as_set(plain)
    shifted = tolerant.take((tolerant.speeds & SHIFTED) != 0)
    dt_mask = np.uint32((1 << DT_BITS) - 1)
    neighbours = {(t, int(h & ~dt_mask), int(h & dt_mask) + d, s | SHIFTED)
                  for t, h, s in as_set(plain) for d in (-1, 1) if 1 <= int(h & dt_mask) + d < 1 << DT_BITS}
    assert {(t, int(h & ~dt_mask), int(h & dt_mask), s) for t, h, s in as_set(shifted)} == neighbours


@pytest.mark.parametrize("shape,radius", [((38, 480), (3, 10)), ((7, 33), (3, 10)), ((1, 5), (2, 1)), ((12, 9), (0, 4))])
def test_peak_neighbourhood_maximum_is_scipys_maximum_filter(shape, radius):
    """The peaks' local maximum (two passes of doubling windows) is scipy's 2-D maximum filter
    with -inf beyond the edges, value for value, so the picked peaks (and hashes) are unchanged."""
    from scipy.ndimage import maximum_filter

    from guard.signals.audio import _window_max

    rng = np.random.default_rng(sum(shape))
    values = rng.standard_normal(shape).astype(np.float32)
    values[rng.random(shape) < 0.1] = -np.inf  # frames outside the spectrum held, silence
    values[:, : shape[1] // 3] = np.round(values[:, : shape[1] // 3])  # ties
    expected = maximum_filter(values, size=(2 * radius[0] + 1, 2 * radius[1] + 1), mode="constant", cval=-np.inf)
    got = _window_max(_window_max(values, radius[1], axis=1), radius[0], axis=0)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
