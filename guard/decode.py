"""Media input and output through PyAV: the only module of guard that imports ``av``.

Decoding yields *sampled* frames: every decoded frame goes through the decoder (H.264 needs
them), but only frames at the sampling rate are converted, by FFmpeg's swscale, to small
grey images. Everything downstream is NumPy.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import av.error
import numpy as np

from guard.errors import InputError

log = logging.getLogger(__name__)

#: Size of the grey images handed to preprocessing (bar detection, then hashing).
GREY_SIZE = 128
#: How many sampled frames travel together; hashing is batched over these.
BATCH_SIZE = 32


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode a source.

    ``sample_fps``: frames per second kept for fingerprinting.
    ``fast``: let FFmpeg skip the in-loop deblocking filter and non-reference frames, which
    cuts decode cost without moving any sampled frame by more than one or two frame periods.
    ``threads``: decoder threads (0 lets FFmpeg choose).
    """

    sample_fps: float = 4.0
    fast: bool = True
    threads: int = 0
    open_timeout: float = 10.0
    read_timeout: float = 10.0


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, as far as guard cares."""

    duration: float
    width: int
    height: int
    fps: float
    has_audio: bool


@dataclass
class FrameBatch:
    """Consecutive sampled frames: their times (s, from the first frame) and grey pixels."""

    times: np.ndarray  # (n,) float64
    grey: np.ndarray  # (n, GREY_SIZE, GREY_SIZE) uint8


def _open(source: str | os.PathLike, options: DecodeOptions, av_options: dict | None = None):
    name = os.fspath(source)
    if not _is_url(name):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise InputError(f"{name}: empty file")
    try:
        return av.open(
            name,
            mode="r",
            options=av_options or {},
            timeout=(options.open_timeout, options.read_timeout),
        )
    except av.error.FFmpegError as exc:
        raise InputError(f"{name}: cannot be opened as media ({_reason(exc)})") from exc


def _is_url(name: str) -> bool:
    return "://" in name


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".")


def _video_stream(container, name: str):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise InputError(f"{name}: no video stream (holds {', '.join(kinds)})")
    return container.streams.video[0]


def _configure_decoder(stream, options: DecodeOptions) -> None:
    stream.thread_type = "AUTO"
    stream.thread_count = options.threads
    if options.fast:
        stream.codec_context.options = {"skip_loop_filter": "all"}
        stream.codec_context.skip_frame = "NONREF"


def probe(source: str | os.PathLike) -> MediaInfo:
    """Read container metadata without decoding; raise :class:`InputError` if there is no video."""
    name = os.fspath(source)
    with _open(name, DecodeOptions()) as container:
        stream = _video_stream(container, name)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rate = stream.average_rate or stream.guessed_rate or 0
        return MediaInfo(
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate),
            has_audio=bool(container.streams.audio),
        )


def sample_frames(
    source: str | os.PathLike,
    options: DecodeOptions = DecodeOptions(),
    av_options: dict | None = None,
) -> Iterator[FrameBatch]:
    """Decode ``source`` and yield batches of grey frames sampled at ``options.sample_fps``.

    Raises :class:`InputError` when the source cannot be opened, has no video stream, or
    yields no decodable frame. Damaged packets in the middle of a file are skipped.
    """
    name = os.fspath(source)
    container = _open(name, options, av_options)
    try:
        stream = _video_stream(container, name)
        _configure_decoder(stream, options)
        sampler = _Sampler(options.sample_fps)
        emitted = 0
        for frame in _decoded_frames(container, stream, name):
            t = _frame_time(frame, stream)
            if t is None or not sampler.take(t):
                continue
            grey = frame.reformat(
                width=GREY_SIZE, height=GREY_SIZE, format="gray", interpolation="AREA"
            ).to_ndarray()
            batch = sampler.add(grey)
            if batch is not None:
                emitted += len(batch.times)
                yield batch
        tail = sampler.flush()
        if tail is not None:
            emitted += len(tail.times)
            yield tail
        if emitted == 0:
            raise InputError(f"{name}: no decodable video frames")
    finally:
        container.close()


def _decoded_frames(container, stream, name: str):
    """Decode packet by packet so that one damaged packet costs one frame, not the file."""
    errors = 0
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                errors += 1
                if errors > 1000:
                    raise InputError(f"{name}: too many damaged packets") from None
    except av.error.FFmpegError as exc:
        # Truncated or corrupt containers end the demux early; keep what was decoded.
        log.warning("%s: stopped reading after an error (%s)", name, _reason(exc))
    if errors:
        log.warning("%s: skipped %d damaged packets", name, errors)


def _frame_time(frame, stream) -> float | None:
    if frame.pts is None:
        return None
    return float(frame.pts * stream.time_base)


class _Sampler:
    """Keeps frames at a fixed rate in media time and groups them into batches."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.origin: float | None = None
        self.next_time = 0.0
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []

    def take(self, t: float) -> bool:
        if self.origin is None:
            self.origin = t
        rel = t - self.origin
        # Half a period of slack: keep the frame closest to each sampling instant.
        if rel + self.period / 2 < self.next_time:
            return False
        if rel > self.next_time + self.period:  # a gap: restart the grid here
            self.next_time = rel
        self.times.append(round(rel, 4))
        self.next_time += self.period
        return True

    def add(self, grey: np.ndarray) -> FrameBatch | None:
        self.frames.append(grey)
        if len(self.frames) >= BATCH_SIZE:
            return self.flush()
        return None

    def flush(self) -> FrameBatch | None:
        if not self.frames:
            return None
        batch = FrameBatch(np.asarray(self.times, dtype=np.float64), np.stack(self.frames))
        self.times, self.frames = [], []
        return batch


def decode_all_frames(source: str | os.PathLike, threads: int = 0) -> int:
    """Plain full decode of every video frame, no options: the baseline benchmarks compare to."""
    name = os.fspath(source)
    container = _open(name, DecodeOptions())
    try:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        return sum(1 for _ in container.decode(stream))
    finally:
        container.close()


def rgb_frames(source: str | os.PathLike, sample_fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time, RGB array)`` sampled at ``sample_fps``: for thumbnails and per-frame baselines."""
    name = os.fspath(source)
    container = _open(name, DecodeOptions())
    try:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        sampler = _Sampler(sample_fps)
        for frame in _decoded_frames(container, stream, name):
            t = _frame_time(frame, stream)
            if t is not None and sampler.take(t):
                yield sampler.times.pop(), frame.to_ndarray(format="rgb24")
    finally:
        container.close()


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
) -> Path:
    """Encode RGB ``frames`` (H×W×3 uint8, all the same size) into ``path``.

    ``audio``, when given, is mono float32 PCM in [-1, 1] muxed as AAC (or the container's
    default audio codec). Used by ``guard demo``, the tests and the corpus scripts.
    """
    path = Path(path)
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
                if bit_rate:
                    stream.bit_rate = bit_rate
                if options:
                    stream.options = dict(options)
                if audio is not None:
                    audio_stream = container.add_stream("aac", rate=sample_rate)
                    audio_stream.layout = "mono"
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
