"""Audio copies found, localized and attributed: landmarks → table → votes → segments.

Three synthetic songs are references; each query is speech, then 12 s of one reference
(from its second 8) put through a pirate's distortion, then crowd noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from guard import decode
from guard.audio_match import AudioMatchSettings, _extended, find_segments, vote
from guard.index.landmarks import LandmarkIndex
from guard.models import Segment
from guard.signals.audio import SHIFTED, AudioLandmarks, QueryPicking
from guard_synth import music
from guard_synth.broadcast import audio_track, make_video, shapes

RATE = 8000
REFERENCES = {1: 301, 2: 302, 3: 303}  # reference id → song seed
COPY_START, COPY_SECONDS, LEAD_IN = 8.0, 12.0, 3.0

DISTORTIONS = {
    "volume -20 dB": lambda pcm, seed: music.volume(pcm, -20),
    "volume +6 dB": lambda pcm, seed: music.volume(pcm, 6),
    "phone band": lambda pcm, seed: music.phone_band(pcm, RATE),
    "room echo": lambda pcm, seed: music.room_echo(pcm, RATE, seed),
    "crowd 5 dB": lambda pcm, seed: music.add_noise(pcm, music.crowd(len(pcm), seed + 50, RATE), 5),
    "pink 5 dB": lambda pcm, seed: music.add_noise(pcm, music.pink_noise(len(pcm), seed), 5),
    "speed +5 %": lambda pcm, seed: music.change_speed(pcm, 1.05),
    "speed -5 %": lambda pcm, seed: music.change_speed(pcm, 0.95),
    "speed +2.5 %": lambda pcm, seed: music.change_speed(pcm, 1.025),
}
SPEEDS = {"speed +5 %": 1.05, "speed -5 %": 0.95, "speed +2.5 %": 1.025}


@pytest.fixture(scope="module")
def signal() -> AudioLandmarks:
    return AudioLandmarks()


@pytest.fixture(scope="module")
def songs() -> dict[int, np.ndarray]:
    return {ref: audio_track(seed, 30.0, RATE) for ref, seed in REFERENCES.items()}


@pytest.fixture(scope="module")
def table(signal, songs) -> LandmarkIndex:
    index = LandmarkIndex()
    for ref, pcm in songs.items():
        landmarks = signal.landmarks(pcm)
        index.add(ref, landmarks.times, landmarks.hashes)
    return index


def search(signal: AudioLandmarks, table: LandmarkIndex, pcm: np.ndarray, start: float = 0.0) -> list[Segment]:
    query = signal.landmarks(pcm, start=start, query=True)
    return find_segments(query, table.search(query.hashes), signal.params,
                         titles={ref: f"song {ref}" for ref in REFERENCES})


def pirate_copy(songs: dict[int, np.ndarray], ref: int, distortion: str, seed: int) -> np.ndarray:
    clip = songs[ref][int(COPY_START * RATE): int((COPY_START + COPY_SECONDS) * RATE)]
    return np.concatenate([audio_track(700 + seed, LEAD_IN, RATE, "speech"), DISTORTIONS[distortion](clip, seed),
                           audio_track(800 + seed, 3.0, RATE, "crowd")])


def assert_found(segments: list[Segment], ref: int, speed: float = 1.0, lead_in: float = LEAD_IN) -> Segment:
    assert len(segments) == 1, [s.to_dict() for s in segments]
    found = segments[0]
    assert found.reference_id == ref and found.reference_title == f"song {ref}" and found.modality == "audio"
    assert found.query_start == pytest.approx(lead_in, abs=1.0)
    assert found.query_end == pytest.approx(lead_in + COPY_SECONDS / speed, abs=1.0)
    assert found.reference_start == pytest.approx(COPY_START, abs=1.0)
    assert found.rate == pytest.approx(speed, abs=0.015)
    assert 0 < found.score <= 1 and 0 < found.matched_fraction <= 1
    return found


@pytest.mark.parametrize("distortion", list(DISTORTIONS))
def test_each_distortion_is_found_localized_and_attributed(signal, songs, table, distortion):
    for seed, ref in enumerate(REFERENCES):
        segments = search(signal, table, pirate_copy(songs, ref, distortion, seed))
        assert_found(segments, ref, SPEEDS.get(distortion, 1.0))


@pytest.mark.parametrize("style", ["music", "speech", "crowd"])
def test_unrelated_music_speech_and_crowds_match_nothing(signal, table, style):
    for seed in range(400, 406):
        assert search(signal, table, audio_track(seed, 25.0, RATE, style)) == []


def test_a_recurring_chorus_counts_once(signal):
    """verse 1 · chorus · verse 2 · chorus: a copy of the chorus is one alignment (either
    time it is sung), and a copy of verse 2 running into the chorus is one segment, not two."""
    song, sections = music.song_with_chorus(31, 8.0, 8.0, RATE)
    starts = dict(sections[:3])
    index = LandmarkIndex()
    reference = signal.landmarks(song)
    index.add(7, reference.times, reference.hashes)
    titles = {7: "song with chorus"}

    chorus = song[int(24 * RATE): int(32 * RATE)]
    query = signal.landmarks(music.add_noise(chorus, music.pink_noise(len(chorus), 3), 10), query=True)
    hypotheses = vote(query, index.search(query.hashes), signal.params.query_speeds)
    assert {round(h.offset) for h in hypotheses if h.votes >= 14} >= {8, 24}  # both times it is sung vote
    segments = find_segments(query, index.search(query.hashes), signal.params, titles)
    assert len(segments) == 1, [s.to_dict() for s in segments]
    assert min(abs(segments[0].reference_start - 8.0), abs(segments[0].reference_start - 24.0)) < 1.0

    verse_and_chorus = song[int(16 * RATE):]
    query = signal.landmarks(verse_and_chorus, query=True)
    segments = find_segments(query, index.search(query.hashes), signal.params, titles)
    assert len(segments) == 1, [s.to_dict() for s in segments]
    assert segments[0].reference_start == pytest.approx(starts["verse2"], abs=1.0)
    assert segments[0].query_end == pytest.approx(16.0, abs=1.0)


def test_two_copies_in_one_query_are_two_segments(signal, songs, table):
    first = songs[1][int(2 * RATE): int(10 * RATE)]
    second = music.phone_band(songs[3][int(15 * RATE): int(25 * RATE)], RATE)
    segments = search(signal, table, np.concatenate([first, audio_track(9, 4.0, RATE, "speech"), second]))
    assert [s.reference_id for s in segments] == [1, 3]
    assert [s.reference_start for s in segments] == [pytest.approx(2.0, abs=1.0), pytest.approx(15.0, abs=1.0)]


def test_a_copy_interrupted_by_4_s_of_loud_speech_stays_one_segment(signal, songs, table):
    """A streamer talks for 4 s, the copied sound muted meanwhile: no landmark of the copy
    survives there, and the copy is still one segment (it used to be split in two)."""
    clip = songs[2][4 * RATE: 26 * RATE].copy()
    talk = slice(11 * RATE, 15 * RATE)
    clip[talk] = music.volume(audio_track(712, 4.0, RATE, "speech"), 6)
    query = np.concatenate([audio_track(702, LEAD_IN, RATE, "speech"), clip])
    segments = search(signal, table, query)
    assert len(segments) == 1, [s.to_dict() for s in segments]
    assert segments[0].query_start == pytest.approx(LEAD_IN, abs=1.0)
    assert segments[0].query_end == pytest.approx(LEAD_IN + 22.0, abs=1.0)
    assert segments[0].reference_start == pytest.approx(4.0, abs=1.0)
    landmarks = signal.landmarks(query, query=True)
    hits = table.search(landmarks.hashes)
    on_copy = (hits.ref_ids == 2) & (np.abs(hits.ref_times - landmarks.times[hits.query_index] - 1.0) < 0.2)
    heard = np.sort(landmarks.times[hits.query_index[on_copy]])
    assert np.diff(heard).max() > 3.0  # a gap the former max_gap (3 s) split the copy at


@pytest.mark.parametrize("ref", list(REFERENCES))
def test_an_echoed_fan_recording_is_found_and_localized(signal, songs, table, ref):
    """Room echo (RT60 0.5 s), crowd 5 dB, phone band, 2 % fast: found and localized ±1 s; with
    the time-difference tolerance, by more than twice the landmarks of a query picked like a
    reference."""
    clip = songs[ref][int(COPY_START * RATE): int((COPY_START + COPY_SECONDS) * RATE)]
    heard = music.change_speed(music.fan_recording(clip, RATE, ref + 1, snr=5.0), 1.02)
    query = np.concatenate([audio_track(720 + ref, LEAD_IN, RATE, "speech"), heard,
                            audio_track(820 + ref, 3.0, RATE, "crowd")])
    assert_found(search(signal, table, query), ref, 1.02)
    tolerant = AudioLandmarks(query_picking=QueryPicking(peaks_per_chunk=8, fan_out=12, dt_tolerance=1))
    found = assert_found(search(tolerant, table, query), ref, 1.02)
    plain = AudioLandmarks(query_picking=QueryPicking(peaks_per_chunk=6, fan_out=8, dt_tolerance=0))
    landmarks = plain.landmarks(query, query=True)
    sparse = find_segments(landmarks, table.search(landmarks.hashes), plain.params)
    assert all(found.matched_frames > 2 * other.matched_frames for other in sparse)


def test_shifted_time_differences_extend_a_copy_but_never_vote(signal, songs, table):
    """Hits of pairs hashed with a shifted time difference alone find nothing."""
    tolerant = AudioLandmarks(query_picking=QueryPicking(peaks_per_chunk=8, fan_out=12, dt_tolerance=1))
    clip = songs[3][int(COPY_START * RATE): int((COPY_START + COPY_SECONDS) * RATE)]
    query = tolerant.landmarks(music.room_echo(clip, RATE, 3), query=True)
    shifted = query.take((query.speeds & SHIFTED) != 0)
    hits = table.search(shifted.hashes)
    assert len(hits) > 100
    assert vote(shifted, hits, tolerant.params.query_speeds) == []
    assert find_segments(shifted, hits, tolerant.params) == []
    assert len(find_segments(query, table.search(query.hashes), tolerant.params)) == 1


def test_a_copy_whose_start_is_buried_in_crowd_noise_is_localized_from_its_sparse_hits(signal, songs, table):
    # The copy's first 6 s under a crowd as loud as the song, with echo: few landmarks survive
    # there, too sparse for the densest span; the edge moves out over them (likelier from a
    # weak copy than from chance), not into the speech before the copy.
    clip = songs[2][int(COPY_START * RATE): int((COPY_START + COPY_SECONDS) * RATE)]
    first, rest = clip[: 6 * RATE], clip[6 * RATE:]
    buried = music.room_echo(music.add_noise(first, music.crowd(len(first), 62, RATE), 0), RATE, 2)
    query = np.concatenate([audio_track(702, LEAD_IN, RATE, "speech"), buried, rest, audio_track(802, 3.0, RATE, "crowd")])
    landmarks = signal.landmarks(query, query=True)
    hits = table.search(landmarks.hashes)
    assert_found(find_segments(landmarks, hits, signal.params, titles={2: "song 2"}), 2)
    (dense,) = find_segments(landmarks, hits, signal.params, settings=AudioMatchSettings(extend_evidence=np.inf))
    assert dense.query_start > LEAD_IN + 4.0  # what the densest span alone keeps


def test_an_edge_moves_over_hits_chance_would_not_give_and_no_further():
    chance, settings = 0.05, AudioMatchSettings()  # hits per second at the alignment by chance
    # One stray hit 3 s out, or two far apart: nothing moves.
    assert _extended(10.0, np.array([13.0]), chance, settings) == 10.0
    assert _extended(10.0, np.array([12.0, 14.5]), chance, settings) == 10.0
    # A landmark a second for 4 s: the edge moves to the last of them, not to a stray 4 s further.
    sparse = np.array([10.8, 11.9, 13.1, 14.0, 18.5])
    assert _extended(10.0, sparse, chance, settings) == 14.0
    # Beyond max_gap nothing is reached, however many hits wait there.
    assert _extended(10.0, np.arange(16.0, 20.0, 0.25), chance, settings) == 10.0


def test_shorter_than_the_minimum_is_not_a_segment(signal, songs, table):
    clip = songs[2][int(8 * RATE): int(20 * RATE)]
    query = signal.landmarks(clip, query=True)
    hits = table.search(query.hashes)
    assert len(find_segments(query, hits, signal.params)) == 1
    assert find_segments(query, hits, signal.params, min_seconds={2: 15.0}) == []
    assert find_segments(query, hits, signal.params, settings=AudioMatchSettings(min_votes=1000)) == []


def test_a_64_kbps_aac_copy_under_another_picture_is_found_through_pyav(tmp_path, signal):
    """Files on both sides: a 16 kHz AAC reference, and a video whose picture is unrelated and
    whose 64 kb/s AAC soundtrack is the reference heard through a phone in a crowd, 2 % fast."""
    song = audio_track(305, 30.0, 16000)
    reference_file = music.write_aac(tmp_path / "reference.m4a", song, 16000, 128000)
    copied = song[8 * 16000: 22 * 16000]
    heard = music.change_speed(music.add_noise(music.phone_band(copied, 16000), music.crowd(len(copied), 5, 16000), 10),
                               1.02)
    soundtrack = np.concatenate([audio_track(705, 4.0, 16000, "speech"), heard])
    duration = len(soundtrack) / 16000
    query_file = tmp_path / "fan.mp4"
    make_video(query_file, shapes(9, (160, 90), 10, duration), 10, audio=soundtrack)
    music.write_aac(tmp_path / "check.m4a", soundtrack, 16000, 64000)

    def landmarks(path, query):
        extractor = signal.extractor(query)
        parts = [extractor.feed(block.samples, block.start) for block in decode.sample_audio(path)]
        return parts[0].concat(parts + [extractor.flush()])

    index = LandmarkIndex()
    reference = landmarks(reference_file, query=False)
    index.add(1, reference.times, reference.hashes)
    for path in (query_file, tmp_path / "check.m4a"):
        query = landmarks(path, query=True)
        segments = find_segments(query, index.search(query.hashes), signal.params, {1: "song"})
        assert len(segments) == 1, path
        found = segments[0]
        assert found.reference_id == 1 and found.rate == pytest.approx(1.02, abs=0.015)
        assert found.query_start == pytest.approx(4.0, abs=1.0)
        assert found.reference_start == pytest.approx(8.0, abs=1.0)


@pytest.mark.parametrize("scale", [1, 2**40])  # packed into one int64 key, or too wide for one
def test_unique_rows_is_numpys_unique_of_rows(scale):
    from guard.audio_match import _unique_rows

    rng = np.random.default_rng(scale % 97)
    columns = [rng.integers(-3, 4, 500) * scale, rng.integers(0, 3, 500), rng.integers(-5, 5, 500) * scale]
    rows, inverse, counts = _unique_rows(columns)
    expected, expected_inverse, expected_counts = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True,
                                                            return_counts=True)
    np.testing.assert_array_equal(np.stack(rows, axis=1), expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))
    np.testing.assert_array_equal(counts, expected_counts)


@pytest.mark.parametrize("ordered", [True, False])
def test_distinct_is_numpys_unique(ordered):
    from guard.audio_match import _distinct

    rng = np.random.default_rng(7)
    for size in (0, 1, 2, 50, 500):
        values = rng.integers(-20, 20, size)
        values = np.sort(values) if ordered else values
        np.testing.assert_array_equal(_distinct(values), np.unique(values))
