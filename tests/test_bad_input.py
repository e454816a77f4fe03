"""Bad media gives one precise error naming the file, and nothing stored changes."""

from __future__ import annotations

import numpy as np
import pytest

from guard_synth import broadcast as synth
from guard_synth import encode
from guard.errors import InputError
from tests import media


def _snapshot(guard):
    return [r.to_dict() for r in guard.references()], len(guard.index), guard.catalog.generation()


@pytest.fixture
def stored(empty_guard, reference_files):
    empty_guard.ingest(reference_files[1], title="kept")
    return empty_guard


def _corrupt(tmp_path, reference_files):
    data = bytearray(reference_files[2].read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(data), 4000):
        data[pos] = rng.integers(0, 256)
    data[:64] = bytes(64)  # no container header left
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(bytes(data))
    return path


BAD_FILES = {
    "empty": (lambda tmp, refs: _write(tmp / "empty.mp4", b""), "empty file"),
    "text": (lambda tmp, refs: _write(tmp / "notes.mp4", b"this is not a video\n" * 50), "cannot be opened as media"),
    "truncated header": (lambda tmp, refs: _write(tmp / "cut.mp4", refs[2].read_bytes()[:2000]), "cannot be opened|no decodable"),
    "corrupt": (_corrupt, "cannot be opened|no decodable"),
    "missing": (lambda tmp, refs: tmp / "nowhere.mp4", "no such file"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_refused_with_its_name_and_store_unchanged(kind, stored, tmp_path, reference_files):
    make, message = BAD_FILES[kind]
    path = make(tmp_path, reference_files)
    before = _snapshot(stored)
    for action in (stored.scan, stored.ingest):
        with pytest.raises(InputError, match=message) as info:
            action(path)
        assert str(path) in str(info.value)
        assert "\n" not in str(info.value)
    assert _snapshot(stored) == before


def test_truncated_tail_keeps_what_decoded(stored, tmp_path, reference_files):
    """A file cut short mid-stream still scans: the decoded part is matched, with a warning."""
    whole = media.make_copy(tmp_path / "whole.ts", 1, 5.0, 20.0, codec="libx264")
    cut = tmp_path / "cut.ts"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = stored.scan(cut)
    assert 5.0 < result.duration < 15.0
    assert len(result.segments) == 1


def test_blank_video_or_silence_cannot_become_a_reference(empty_guard, tmp_path):
    black = synth.make_video(tmp_path / "black.mp4", (np.zeros((90, 160, 3), np.uint8) for _ in range(60)), 10)
    silence = encode.write_audio_only(tmp_path / "silence.m4a", np.zeros(16000 * 3, np.float32))
    for path in (black, silence):
        with pytest.raises(InputError, match="nothing to fingerprint: no informative frames .* and no usable sound"):
            empty_guard.ingest(path)
    assert empty_guard.references() == []


def test_an_audio_only_file_is_a_reference_matched_by_its_sound(empty_guard, tmp_path):
    song = encode.write_audio_only(tmp_path / "song.m4a", synth.audio_track(1, 8.0))
    ref = empty_guard.ingest(song)
    assert [t.signal for t in empty_guard.tracks(ref.id)] == ["audio_landmarks", "mhash16"]
    assert any("audio only" in w for w in ref.warnings)
