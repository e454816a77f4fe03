"""A file's picture and sound fingerprinted in one pass (guard.audio_fingerprint, issue 12)."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from guard import decode
from guard.audio_fingerprint import AudioFingerprinter, fingerprint_media
from guard.fingerprint import Fingerprinter
from guard_synth import broadcast as synth
from guard_synth.encode import write_audio_only, write_video


@pytest.fixture(scope="module")
def fingerprinters():
    return Fingerprinter("mhash16"), AudioFingerprinter()


@pytest.mark.parametrize("query", [False, True])
def test_one_pass_gives_the_picture_and_the_sound_of_two(tmp_path, fingerprinters, query):
    picture, sound = fingerprinters
    path = write_video(tmp_path / "song.mp4", synth.broadcast(2, (320, 180), 10, 8.0), 10,
                       audio=synth.audio_track(2, 8.0, 16000, "music"))
    stills, alone_stills = decode.Stills(2.0, 64), decode.Stills(2.0, 64)
    video, landmarks, end = fingerprint_media(picture, sound, path, query=query, stills=stills)
    alone = picture.fingerprint_file(path, overlays=query, stills=alone_stills)
    heard, heard_end = sound.landmarks_of_file(path, query=query)
    np.testing.assert_array_equal(video.times, alone.times)
    np.testing.assert_array_equal(video.codes, alone.codes)
    assert video.pipeline == alone.pipeline and video.duration == alone.duration
    assert [t for t, _ in stills.frames] == [t for t, _ in alone_stills.frames]
    assert landmarks is not None and len(landmarks) > 100 and end == heard_end
    np.testing.assert_array_equal(landmarks.times, heard.times)
    np.testing.assert_array_equal(landmarks.hashes, heard.hashes)
    np.testing.assert_array_equal(landmarks.speeds, heard.speeds)


def test_files_without_sound_or_picture(tmp_path, fingerprinters):
    picture, sound = fingerprinters
    silent = write_video(tmp_path / "silent.mp4", synth.broadcast(3, (320, 180), 10, 4.0), 10)
    video, landmarks, end = fingerprint_media(picture, sound, silent)
    assert len(video) > 0 and landmarks is None and end == 0.0
    only_sound = write_audio_only(tmp_path / "song.m4a", synth.audio_track(3, 6.0, 16000, "music"), 16000)
    video, landmarks, end = fingerprint_media(picture, sound, only_sound)
    assert len(video) == 0 and landmarks is not None and len(landmarks) > 50 and end == pytest.approx(6.0, abs=0.2)


def test_a_sound_that_does_not_decode_costs_nothing_of_the_picture(tmp_path, fingerprinters, caplog):
    picture, sound = fingerprinters
    path = write_video(tmp_path / "song.ts", synth.broadcast(4, (320, 180), 10, 4.0), 10,
                       audio=synth.audio_track(4, 4.0, 16000, "music"))
    video, landmarks, _ = fingerprint_media(picture, sound, path)
    assert landmarks is not None  # the sound decodes before it is broken
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as container:
        pid = container.streams.audio[0].id
    for at in range(0, len(data) - 187, 188):
        if ((data[at + 1] & 0x1F) << 8 | data[at + 2]) == pid:
            data[at + 4: at + 188] = bytes(184)  # every audio packet's payload gone
    broken = tmp_path / "broken.ts"
    broken.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="guard.audio_fingerprint"):
        video, landmarks, end = fingerprint_media(picture, sound, broken)
    alone = picture.fingerprint_file(broken)
    np.testing.assert_array_equal(video.codes, alone.codes)
    assert landmarks is None and end == 0.0
    assert "audio left out" in caplog.text and "no decodable audio" in caplog.text
