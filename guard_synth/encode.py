"""Test and demo encoders: RGB frames (and mono PCM) → media files through PyAV.

Used by ``guard demo``, the tests and the benchmark scripts to make their media; guard's
runtime only decodes (:mod:`guard.decode`).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from guard.errors import InputError


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "libx264",
    bit_rate: int | None = None,
    pix_fmt: str = "yuv420p",
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    options: dict | None = None,
    container_options: dict | None = None,
    audio_bit_rate: int | None = None,
) -> Path:
    """Encode RGB ``frames`` (H×W×3 uint8, all the same size) into ``path``.

    ``audio``, when given, is mono float32 PCM in [-1, 1] muxed as AAC (or the container's
    default audio codec), at ``audio_bit_rate`` bits per second when given (else the
    encoder's default). ``options`` go to the encoder, ``container_options`` to the muxer
    (e.g. ``{"output_ts_offset": "600"}`` starts the timestamps at 600 s). Used by
    ``guard demo``, the tests and the corpus scripts.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", container_options=container_options or {}) as container:
        stream = None
        for rgb in frames:
            if stream is None:
                added = container.add_stream(codec, rate=rate)
                if not isinstance(added, av.VideoStream):
                    raise InputError(f"{codec}: not a video encoder")
                stream = added
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
                if bit_rate:
                    stream.bit_rate = bit_rate
                if options:
                    stream.options = dict(options)
                if audio is not None:
                    audio_stream = container.add_stream("aac", rate=sample_rate)
                    audio_stream.layout = "mono"
                    if audio_bit_rate:
                        audio_stream.bit_rate = audio_bit_rate
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            container.mux(stream.encode(frame))
        if stream is None:
            raise InputError(f"{path}: no frames to write")
        container.mux(stream.encode(None))
        if audio is not None:
            _write_audio(container, audio_stream, audio, sample_rate)
    return path


def _write_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    pcm = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    chunk = 1024
    for start in range(0, len(pcm), chunk):
        piece = pcm[start : start + chunk].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio_only(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write a mono audio-only file (for tests of inputs without video)."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        _write_audio(container, stream, audio, sample_rate)
    return path
