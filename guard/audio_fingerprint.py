"""Audio tracks of files: the first audio stream → landmarks → a fingerprint track (references)
or query landmarks (scans), next to the picture's track.

A file with picture and sound is read once: its first audio stream is demuxed in the
picture's packet loop (:class:`guard.decode.AudioTap`); docs/audio.md ("Wiring") gives what
it costs. A landmark's time is on the audio stream's media clock, which for ordinary files
starts where the picture's does (0, or -0.064 s of AAC priming, clamped to 0 for references).

An audio track is a :class:`guard.models.Fingerprint` like a picture's: one row per landmark
(sorted by time, then hash), its time, and its 32-bit hash as 4 big-endian bytes, so the
reference repository, the exchange format and the index files carry it unchanged.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import numpy.typing as npt

from guard import decode
from guard.fingerprint import Fingerprinter
from guard.models import Fingerprint
from guard.pipeline import AUDIO_CODE_BITS, audio_pipeline_description
from guard.signals.audio import AudioLandmarks, LandmarkExtractor, Landmarks

log = logging.getLogger(__name__)


def codes_of(hashes: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Landmark hashes (uint32) as track codes: one row of 4 big-endian bytes each."""
    return np.asarray(hashes, dtype=np.uint32).astype(">u4").view(np.uint8).reshape(-1, AUDIO_CODE_BITS // 8)


def hashes_of(codes: np.ndarray) -> npt.NDArray[np.uint32]:
    """The landmark hashes of an audio track's codes (inverse of :func:`codes_of`)."""
    rows = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, AUDIO_CODE_BITS // 8)
    return rows.view(">u4").reshape(-1).astype(np.uint32)


class AudioFingerprinter:
    """Landmarks of a file's first audio stream with one audio signal."""

    def __init__(self, signal: AudioLandmarks | None = None, block_seconds: float = decode.AUDIO_BLOCK_SECONDS):
        self.signal = signal or AudioLandmarks()
        self.block_seconds = block_seconds

    @property
    def sample_rate(self) -> int:
        """The mono rate audio is resampled to."""
        return self.signal.params.sample_rate

    def pipeline(self) -> dict:
        """What shapes this fingerprinter's landmarks (see :func:`guard.pipeline.audio_pipeline_description`)."""
        return audio_pipeline_description(self.signal.describe(), sample_rate=self.sample_rate,
                                          block_seconds=self.block_seconds,
                                          frames_per_second=1.0 / self.signal.params.frame_seconds)

    def landmarks_of_file(self, path: str | os.PathLike[str], query: bool = False) -> tuple[Landmarks, float]:
        """Landmarks of the file's first audio stream (a query's under every assumed speed) and
        the time its audio ends; :class:`InputError` when it has none that decodes."""
        listener = self.listener(query)
        for block in decode.sample_audio(path, self.sample_rate, self.block_seconds):
            listener(block)
        return listener.landmarks(), listener.end

    def listener(self, query: bool = False) -> LandmarkListener:
        """A :class:`LandmarkListener` to hand a file's audio blocks to."""
        return LandmarkListener(self.signal.extractor(query))

    def tap(self, listener: LandmarkListener) -> decode.AudioTap:
        """An :class:`guard.decode.AudioTap` at this fingerprinter's rate and block length that
        hands its blocks to ``listener`` (a file's sound read in its picture's pass)."""
        return decode.AudioTap(listener, self.sample_rate, self.block_seconds)

    def track(self, landmarks: Landmarks, duration: float) -> Fingerprint:
        """A reference's audio track of its landmarks (times clamped at 0, sorted)."""
        times = np.maximum(landmarks.times, 0.0)
        order = np.lexsort((landmarks.hashes, times))
        times = times[order]
        last = float(times[-1]) if len(times) else 0.0
        return Fingerprint(
            signal=self.signal.name, signal_version=self.signal.version, bits=AUDIO_CODE_BITS,
            sample_fps=1.0 / self.signal.params.frame_seconds, duration=round(max(duration, last), 3),
            times=times.astype(np.float64), codes=codes_of(landmarks.hashes[order]), pipeline=self.pipeline(),
        )


class LandmarkListener:
    """Landmarks of audio blocks handed in one by one (a file's, in order)."""

    def __init__(self, extractor: LandmarkExtractor):
        self.extractor = extractor
        self.parts: list[Landmarks] = []
        self.end = 0.0  # where the last block ends (s)

    def __call__(self, block: decode.AudioBlock) -> None:
        """Take the next block."""
        self.parts.append(self.extractor.feed(block.samples, block.start))
        self.end = block.start + block.duration

    def landmarks(self) -> Landmarks:
        """Every landmark of the blocks handed in (the extractor's held-back ones included)."""
        return Landmarks.concat([*self.parts, self.extractor.flush()])


def empty_video_track(fingerprinter: Fingerprinter) -> Fingerprint:
    """The picture track of a file without video: no frames (the store keeps one per reference)."""
    signal = fingerprinter.signal
    return Fingerprint(signal=signal.name, signal_version=signal.version, bits=signal.bits,
                       sample_fps=fingerprinter.sample_fps, duration=0.0, times=np.zeros(0),
                       codes=np.zeros((0, signal.code_bytes), np.uint8), pipeline=fingerprinter.pipeline())


def fingerprint_media(
    fingerprinter: Fingerprinter,
    audio: AudioFingerprinter | None,
    path: str | os.PathLike[str],
    progress: Callable[[float], None] | None = None,
    *,
    query: bool = False,
    stills: decode.Stills | None = None,
) -> tuple[Fingerprint, Landmarks | None, float]:
    """A file's picture track (empty when it has no video; a query's with its overlay
    readings), its audio landmarks (None without ``audio`` or an audio stream that decodes),
    and where its audio ends (s). Picture and sound are read in one pass over the file."""
    has_video, has_audio = decode.stream_kinds(path)
    if audio is None or not has_audio:
        return fingerprinter.fingerprint_file(path, progress, overlays=query, stills=stills), None, 0.0
    if not has_video:  # sound alone (unreadable, it is an InputError: there is nothing else to match)
        landmarks, end = audio.landmarks_of_file(path, query=query)
        return empty_video_track(fingerprinter), landmarks, end
    listener = audio.listener(query)
    tap = audio.tap(listener)
    video = fingerprinter.fingerprint_file(path, progress, overlays=query, stills=stills, audio=tap)
    if tap.error is not None:  # a broken soundtrack must not cost the picture
        log.warning("%s: audio left out (%s)", os.fspath(path), tap.error)
        return video, None, 0.0
    return video, listener.landmarks(), listener.end
