"""Generated media with soundtracks for the audio wiring tests (issue 12): short, 320×180, 10 fps.

The reference is 14 s of a synthetic broadcast over synthetic music. Its copies:

- ``audio_only``: an unrelated picture whose sound is 3 s of speech, then the reference's
  soundtrack from 2 s to 12 s re-encoded to 64 kb/s AAC, then 1 s of speech (query 3–13 s);
- ``both``: the reference's picture and sound from 2 s to 12 s (query 0–10 s);
- ``silent``: the same picture without any sound;
- ``still``: a reference whose picture never changes, over other music, and ``still_copy``
  its sound from 1 s to 11 s under another unrelated picture;
- ``sound_only``: a file without video holding a third song, and ``sound_only_copy`` its
  seconds 2–12 under an unrelated picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard import decode
from guard_synth import broadcast as b
from guard_synth import music
from guard_synth.encode import write_audio_only, write_video

SIZE, FPS, RATE = (320, 180), 10, 16000
#: Where the audio-only copy holds the reference's sound: query span, reference start.
AUDIO_ONLY_SPAN, AUDIO_ONLY_REFERENCE_START = (3.0, 13.0), 2.0


def _video(path: Path, frames, audio: np.ndarray | None) -> Path:
    return write_video(path, frames, FPS, audio=audio, sample_rate=RATE)


def _aac_64k(folder: Path, pcm: np.ndarray, name: str) -> np.ndarray:
    """``pcm`` after a round trip through 64 kb/s mono AAC."""
    encoded = music.write_aac(folder / f"{name}.m4a", pcm, RATE, 64000)
    return np.concatenate([block.samples for block in decode.sample_audio(encoded, RATE)])


def _still(seconds: float):
    picture = next(b.photo_pan(11, SIZE, FPS, 0.1))
    return (picture for _ in range(int(seconds * FPS)))


def make_audio_media(folder: Path) -> dict[str, Path]:
    """Every file of the module docstring, by name, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    song = b.audio_track(7, 14, RATE, "music")
    out["reference"] = _video(folder / "reference.mp4", b.broadcast(7, SIZE, FPS, 14), song)
    recoded = _aac_64k(folder, song, "song")
    copied = np.concatenate([b.audio_track(3, 3, RATE, "speech"), recoded[2 * RATE: 12 * RATE],
                             b.audio_track(4, 1, RATE, "speech")])
    out["audio_only"] = _video(folder / "audio_only.mp4", b.shapes(99, SIZE, FPS, 14), copied)
    out["both"] = _video(folder / "both.mp4", b.broadcast(7, SIZE, FPS, 10, start=2.0), song[2 * RATE: 12 * RATE])
    out["silent"] = _video(folder / "silent.mp4", b.broadcast(7, SIZE, FPS, 10, start=2.0), None)
    tune = b.audio_track(21, 12, RATE, "music")
    out["still"] = _video(folder / "still.mp4", _still(12), tune)
    out["still_copy"] = _video(folder / "still_copy.mp4", b.shapes(98, SIZE, FPS, 10), tune[RATE: 11 * RATE])
    third = b.audio_track(33, 14, RATE, "music")
    out["sound_only"] = write_audio_only(folder / "sound_only.m4a", third, RATE)
    out["sound_only_copy"] = _video(folder / "sound_only_copy.mp4", b.shapes(97, SIZE, FPS, 10),
                                    third[2 * RATE: 12 * RATE])
    return out
