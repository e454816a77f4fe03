"""Media input and output through PyAV: the only module of guard that imports ``av``.

Decoding yields *sampled* frames: every decoded frame goes through the decoder (H.264 needs
them), but only frames at the sampling rate are converted, by FFmpeg's swscale, to small
grey images. Everything downstream is NumPy.

Files and live sources share the clock and the sampling: decoded frames are put on a
:class:`StreamClock`, kept on the sampling grid (a file's through :func:`_sampled` →
:func:`_batches`) and grouped into batches. The live path (:func:`live_batches`) adds
reconnects, real-time pacing, the sound, wall-clock arrival times and thumbnails.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterable, Iterator, cast

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from guard.errors import InputError, StreamError

log = logging.getLogger(__name__)

#: Size of the grey images handed to preprocessing (bar detection, then hashing).
GREY_SIZE = 128
#: How many sampled frames travel together; hashing is batched over these.
BATCH_SIZE = 32
#: A step between consecutive frames' timestamps larger than this (s), or backwards by more
#: than half a second, is a discontinuity (a reset, a splice, a jump), not time that passed:
#: the clock re-anchors (see :class:`StreamClock`). A shorter forward step is kept as real
#: time: a variable-frame-rate file may hold one picture that long (a paused screen, a slide).
#: A longer one kept would shift all that follows: a copy spliced across it would fall into
#: pieces at alignments seconds apart, each needing the reference's ``min_seconds`` (default
#: 5 s) on its own. Live sources use the same value, raised to the wall-clock time that passed.
MAX_TIMESTAMP_JUMP = 5.0


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


def _open(source: str | os.PathLike[str], options: DecodeOptions,
          av_options: dict[str, str] | None = None) -> InputContainer:
    name = os.fspath(source)
    if not _is_url(name):
        check_media_path(name)
    try:
        return av.open(
            name,
            mode="r",
            options=av_options or {},
            timeout=(options.open_timeout, options.read_timeout),
        )
    except av.error.FFmpegError as exc:
        raise InputError(f"{name}: cannot be opened as media ({_reason(exc)})") from exc


#: What a path that is not a regular file is, by the kind of its ``os.stat`` mode.
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_media_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`InputError` unless ``path`` is a non-empty regular file.

    Only ``os.stat`` is used: a FIFO or a device is named for what it is and never opened
    (opening a FIFO blocks until something writes to it).
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((what for test, what in _FILE_KINDS if test(info.st_mode)), None)
        raise InputError(f"{name}: is {kind}, not a regular file" if kind else f"{name}: not a regular file")
    if info.st_size == 0:
        raise InputError(f"{name}: empty file")


def _is_url(name: str) -> bool:
    return "://" in name


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".")


def _video_stream(container: InputContainer, name: str) -> VideoStream:
    if not container.streams.video:
        kinds: list[str] = sorted({s.type for s in container.streams}) or ["nothing"]
        raise InputError(f"{name}: no video stream (holds {', '.join(kinds)})")
    return container.streams.video[0]


def _configure_decoder(stream: VideoStream, options: DecodeOptions | LiveOptions, thread_type: str = "AUTO") -> None:
    stream.thread_type = thread_type
    stream.thread_count = options.threads
    if options.fast:
        stream.codec_context.options = {"skip_loop_filter": "all"}
        stream.codec_context.skip_frame = "NONREF"


def probe(source: str | os.PathLike[str]) -> MediaInfo:
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


def stream_kinds(source: str | os.PathLike[str]) -> tuple[bool, bool]:
    """Whether ``source`` holds a video stream, and an audio stream (container headers only)."""
    name = os.fspath(source)
    with _open(name, DecodeOptions()) as container:
        return bool(container.streams.video), bool(container.streams.audio)


class Stills:
    """Small RGB pictures of a file taken while it is sampled for fingerprinting (one decode
    for both): the first sampled frame at or after every ``interval`` seconds, ``width``
    pixels wide (even height, aspect kept). :attr:`frames` holds ``(time, rgb)`` on the
    fingerprint's clock once the file is read."""

    def __init__(self, interval: float, width: int):
        if interval <= 0 or width < 2:
            raise ValueError("stills need a positive interval and a width of at least 2 pixels")
        self.interval = interval
        self.width = width
        self.frames: list[tuple[float, np.ndarray]] = []
        self._scaler = _Scaler()

    def _watch(self, samples: Iterable[tuple[float, VideoFrame]]) -> Iterator[tuple[float, VideoFrame]]:
        due = 0.0
        for t, frame in samples:
            if t + 1e-6 >= due:
                self.frames.append((t, self._scaler.thumbnail(frame, self.width)))
                due = (np.floor(t / self.interval + 1e-6) + 1) * self.interval
            yield t, frame


def sample_frames(
    source: str | os.PathLike[str],
    options: DecodeOptions = DecodeOptions(),
    av_options: dict[str, str] | None = None,
    stills: Stills | None = None,
    audio: AudioTap | None = None,
) -> Generator[FrameBatch, None, None]:
    """Decode ``source`` and yield batches of grey frames sampled at ``options.sample_fps``;
    ``stills``, when given, also collects small pictures of it in the same pass, and ``audio``
    its sound (the first audio stream, demuxed in the same packet loop).

    Raises :class:`InputError` when the source cannot be opened, has no video stream, or
    yields no decodable frame. Damaged packets in the middle of a file are skipped.
    """
    name = os.fspath(source)
    container = _open(name, options, av_options)
    try:
        stream = _video_stream(container, name)
        _configure_decoder(stream, options)
        if audio is not None:
            audio._attach(container, name)
        emitted = 0
        samples = _file_samples(container, stream, name, options.sample_fps, audio)
        for batch in _batches(samples if stills is None else stills._watch(samples)):
            emitted += len(batch.times)
            yield batch
        if audio is not None:
            audio._finish()
        if emitted == 0:
            raise InputError(f"{name}: no decodable video frames")
    finally:
        container.close()


def _decoded_frames(container: InputContainer, stream: VideoStream, name: str,
                    audio: AudioTap | None = None) -> Iterator[VideoFrame]:
    """Video frames packet by packet (see :func:`_decoded`)."""
    return cast(Iterator[VideoFrame], _decoded(container, stream, name, "packets", audio))


def _decoded_audio(container: InputContainer, stream: AudioStream, name: str) -> Iterator[AudioFrame]:
    """Audio frames packet by packet (see :func:`_decoded`)."""
    return cast(Iterator[AudioFrame], _decoded(container, stream, name, "audio packets"))


def _decoded(container: InputContainer, stream: VideoStream | AudioStream, name: str,
             what: str, audio: AudioTap | None = None) -> Iterator[VideoFrame | AudioFrame]:
    """Decode packet by packet so that one damaged packet costs its own frame or samples, not
    the file; a truncated or corrupt container ends the demux early, keeping what was decoded.
    ``audio``, when attached to a stream, gets that stream's packets of the same demux."""
    errors = 0
    heard = audio.stream if audio is not None else None
    try:
        for packet in container.demux(stream) if heard is None else container.demux(stream, heard):
            if heard is not None and packet.stream is heard:  # the end's flush packets carry index 0
                cast(AudioTap, audio)._decode(cast("av.Packet[AudioStream]", packet))
                continue
            try:
                yield from cast("list[VideoFrame | AudioFrame]", packet.decode())
            except av.error.InvalidDataError:
                errors += 1
                if errors > 1000:
                    raise InputError(f"{name}: too many damaged {what}") from None
    except av.error.FFmpegError as exc:
        log.warning("%s: stopped reading %s after an error (%s)", name, what, _reason(exc))
    if errors:
        log.warning("%s: skipped %d damaged %s", name, errors, what)


def _file_samples(container: InputContainer, stream: VideoStream, name: str, sample_fps: float,
                  audio: AudioTap | None = None) -> Iterator[tuple[float, VideoFrame]]:
    """:func:`_sampled` frames of a file: its clock has no wall time (frames without a
    timestamp are skipped) and continues across timestamp resets and jumps."""
    clock = StreamClock(_frame_interval(stream))
    yield from _sampled(_decoded_frames(container, stream, name, audio), stream, clock, _Sampler(sample_fps))
    if clock.rebases:
        log.info("%s: timestamps re-anchored %d times (reset or jump in the file)", name, clock.rebases)


def _sampled(frames: Iterable[VideoFrame], stream: VideoStream, clock: StreamClock, sampler: _Sampler,
             ) -> Iterator[tuple[float, VideoFrame]]:
    """Each decoded frame of a file goes on ``clock`` and is kept, with its time, when it falls
    on the sampling grid; a frame without a timestamp has no place on a file's clock."""
    for frame in frames:
        raw = _frame_time(frame, stream)
        if raw is not None and sampler.take(clock(raw)):
            yield sampler.time, frame


def _batches(samples: Iterable[tuple[float, VideoFrame]]) -> Iterator[FrameBatch]:
    """Sampled frames → batches of grey images (:class:`FrameBatch`) of up to :data:`BATCH_SIZE`."""
    times: list[float] = []
    greys: list[np.ndarray] = []
    scaler = _Scaler()
    for t, frame in samples:
        times.append(t)
        greys.append(scaler.grey(frame))
        if len(times) >= BATCH_SIZE:
            yield FrameBatch(np.asarray(times, dtype=np.float64), np.stack(greys))
            times, greys = [], []
    if times:
        yield FrameBatch(np.asarray(times, dtype=np.float64), np.stack(greys))


class _Scaler:
    """swscale on the calling thread through one context per output kind, kept for a whole
    decode. ``frame.reformat`` gives every frame a context of its own whose worker threads
    (one per core) start and end with it: thread churn in every live monitor, and cost."""

    def __init__(self) -> None:
        self._grey = VideoReformatter()
        self._rgb = VideoReformatter()

    def grey(self, frame: VideoFrame) -> np.ndarray:
        """``frame`` as a GREY_SIZE² grey image (area averaging)."""
        return self._grey.reformat(frame, width=GREY_SIZE, height=GREY_SIZE, format="gray", interpolation="AREA",
                                   threads=1).to_ndarray()

    def thumbnail(self, frame: VideoFrame, width: int) -> np.ndarray:
        """A small RGB image of ``frame``, ``width`` wide (even height, aspect kept)."""
        height = max(2, int(round(width * frame.height / max(frame.width, 1) / 2)) * 2)
        return self._rgb.reformat(frame, width=width, height=height, format="rgb24", threads=1).to_ndarray()


def _frame_interval(stream: VideoStream) -> float:
    """Seconds between frames by the stream's declared rate (1/25 s when it declares none)."""
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.04


def _frame_time(frame: VideoFrame, stream: VideoStream) -> float | None:
    if frame.pts is None or stream.time_base is None:
        return None
    return float(frame.pts * stream.time_base)


class _Sampler:
    """Keeps frames at a fixed rate on the stream clock (which starts at 0 with the first frame)."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.next_time = 0.0
        self.time = 0.0  # the last kept frame's time, rounded to 0.1 ms

    def take(self, t: float) -> bool:
        """Whether the frame at clock time ``t`` is kept (then :attr:`time` is its time)."""
        # Keep the first frame at or just before each sampling instant (20 ms of slack is less
        # than half a frame at 25 fps, so the grid never drifts early).
        if t + 0.02 < self.next_time:
            return False
        if t > self.next_time + self.period:  # a gap: restart the grid here
            self.next_time = t
        self.time = round(t, 4)
        self.next_time += self.period
        return True


def decode_all_frames(source: str | os.PathLike[str], threads: int = 0) -> int:
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


def rgb_frames(source: str | os.PathLike[str], sample_fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time, RGB array)`` sampled at ``sample_fps``: for thumbnails and per-frame baselines."""
    name = os.fspath(source)
    container = _open(name, DecodeOptions())
    try:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"
        for t, frame in _file_samples(container, stream, name, sample_fps):
            yield t, frame.to_ndarray(format="rgb24")
    finally:
        container.close()


#: Mono rate audio is resampled to for fingerprinting: 8 kHz keeps everything up to 4 kHz,
#: which holds the spectral peaks the landmarks use (150 Hz to 3.9 kHz) and what a phone
#: microphone passes; measured against 11.025 kHz in docs/audio.md.
AUDIO_RATE = 8000
#: Seconds of audio per block handed on (a live source would hand on the same blocks).
AUDIO_BLOCK_SECONDS = 1.0
#: A resampled frame more than this far (s) from where the previous one ended starts a new
#: block at its own time (a gap, a splice or a timestamp reset in the file).
AUDIO_MAX_JUMP = 0.1
#: Audio packets :class:`AudioTap` holds before decoding them together (5 s of 48 kHz AAC, under
#: 100 kB at 128 kb/s): decoded one by one between video frames, the audio decoder, resampler and
#: landmark extractor ran on caches the picture's decoder had just filled, which cost a scan
#: about as much again as the sound's own decoding and extraction (issue 12, measured with
#: scripts/bench_fingerprint.py --tables audio).
AUDIO_TAP_PACKETS = 256


@dataclass
class AudioBlock:
    """Consecutive mono samples: the time of the first on the file's media clock (s, the
    audio stream's own timestamps), the samples (float32 in [-1, 1]) and their rate (Hz)."""

    start: float
    samples: np.ndarray  # (n,) float32
    rate: int

    @property
    def duration(self) -> float:
        """Seconds the block lasts."""
        return len(self.samples) / self.rate


def sample_audio(
    source: str | os.PathLike[str],
    rate: int = AUDIO_RATE,
    block_seconds: float = AUDIO_BLOCK_SECONDS,
    options: DecodeOptions = DecodeOptions(),
    av_options: dict[str, str] | None = None,
) -> Generator[AudioBlock, None, None]:
    """Decode the first audio stream of ``source`` into mono blocks of ``block_seconds`` at
    ``rate`` Hz (FFmpeg's resampler mixes the channels down and resamples).

    Blocks follow each other without gaps unless the stream's timestamps jump (then the next
    block starts at its own time). Raises :class:`InputError` when the source cannot be
    opened, has no audio stream, or yields no decodable audio; damaged packets are skipped.
    """
    name = os.fspath(source)
    if rate <= 0 or block_seconds <= 0:
        raise ValueError("rate and block_seconds must be positive")
    container = _open(name, options, av_options)
    try:
        stream = _audio_stream(container, name)
        emitted = 0
        for block in _audio_blocks(_resampled(_decoded_audio(container, stream, name), rate), rate, block_seconds):
            emitted += len(block.samples)
            yield block
        if emitted == 0:
            raise InputError(f"{name}: no decodable audio")
    finally:
        container.close()


def _audio_stream(container: InputContainer, name: str) -> AudioStream:
    if not container.streams.audio:
        kinds: list[str] = sorted({s.type for s in container.streams}) or ["nothing"]
        raise InputError(f"{name}: no audio stream (holds {', '.join(kinds)})")
    return container.streams.audio[0]


def _resampled(frames: Iterable[AudioFrame], rate: int) -> Iterator[tuple[float | None, np.ndarray]]:
    """``(time or None, mono float32 samples)`` of each resampled frame, the resampler's tail last."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    for frame in frames:
        yield from _mono(resampler.resample(frame))
    yield from _mono(resampler.resample(None))


def _mono(frames: list[AudioFrame]) -> list[tuple[float | None, np.ndarray]]:
    """``(time or None, float32 samples)`` of resampled mono frames (packed ``flt``: one plane,
    read in place; the array keeps its frame alive; ``to_ndarray`` costs 20× more per frame)."""
    return [(out.time, np.frombuffer(memoryview(out.planes[0]), np.float32, out.samples)) for out in frames]


def _audio_blocks(pieces: Iterable[tuple[float | None, np.ndarray]], rate: int,
                  block_seconds: float) -> Iterator[AudioBlock]:
    """Resampled pieces → :class:`AudioBlock` of ``block_seconds`` (the last one shorter)."""
    size = max(1, int(round(block_seconds * rate)))
    start: float | None = None  # time of the first held sample
    held: list[np.ndarray] = []
    count = 0
    for time_, samples in pieces:
        if start is not None and time_ is not None and abs(time_ - (start + count / rate)) > AUDIO_MAX_JUMP:
            if count:
                yield AudioBlock(start, np.concatenate(held), rate)
            start, held, count = None, [], 0
        if start is None:
            start = time_ if time_ is not None else 0.0
        held.append(samples)
        count += len(samples)
        while count >= size:
            pcm = np.concatenate(held)
            yield AudioBlock(start, pcm[:size], rate)
            start += size / rate
            held, count = [pcm[size:]], count - size
    if count and start is not None:
        yield AudioBlock(start, np.concatenate(held), rate)


class AudioTap:
    """The sound of a file read in its picture's pass (``sample_frames(audio=...)``): the first
    audio stream's packets come out of the same demux as the picture's, and ``on_block`` gets
    the blocks :func:`sample_audio` would yield, in order, as they complete (one read of the
    file for picture and sound; docs/audio.md gives what it saves).

    A sound that cannot be read never costs the picture: :attr:`error` then says why it was
    left out (no audio stream, none of it decodes, too many damaged packets), as the
    :class:`InputError` of :func:`sample_audio` would. :attr:`end` is where the sound read ends
    (s, media clock). Packets are decoded ``held_packets`` at a time (the blocks are the same).
    """

    def __init__(self, on_block: Callable[[AudioBlock], None], rate: int = AUDIO_RATE,
                 block_seconds: float = AUDIO_BLOCK_SECONDS, held_packets: int = AUDIO_TAP_PACKETS):
        if rate <= 0 or block_seconds <= 0 or held_packets <= 0:
            raise ValueError("rate, block_seconds and held_packets must be positive")
        self.on_block = on_block
        self.held_packets = held_packets
        self.rate = rate
        self.block_seconds = block_seconds
        self.stream: AudioStream | None = None
        self.error: str | None = None
        self.end = 0.0
        self._name = ""
        self._size = max(1, int(round(block_seconds * rate)))
        self._resampler: av.AudioResampler | None = None
        self._packets: list[av.Packet[AudioStream]] = []  # demuxed, not decoded yet
        self._pieces: list[tuple[float | None, np.ndarray]] = []  # resampled, not in a block yet
        self._pending = 0  # samples in self._pieces
        self._emitted = 0
        self._errors = 0
        self._stopped = False

    def _attach(self, container: InputContainer, name: str) -> None:
        """Listen to ``container``'s first audio stream (or note that it has none)."""
        self._name = name
        try:
            self.stream = _audio_stream(container, name)
        except InputError as exc:
            self.error = str(exc)
            return
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)

    def _decode(self, packet: av.Packet[AudioStream]) -> None:
        """Take one packet; every :attr:`held_packets` they are decoded together."""
        if self._stopped or self._resampler is None:
            return
        self._packets.append(packet)
        if len(self._packets) >= self.held_packets:
            self._decode_held()

    def _decode_held(self) -> None:
        """Decode and resample the packets held, in order; blocks that complete go to ``on_block``."""
        packets, self._packets = self._packets, []
        for packet in packets:
            if self._stopped:
                return
            self._decode_one(packet)

    def _decode_one(self, packet: av.Packet[AudioStream]) -> None:
        resampler = self._resampler
        if resampler is None:  # never: packets are held only once attached
            return
        try:
            for frame in packet.decode():
                self._add(_mono(resampler.resample(frame)))
        except av.error.InvalidDataError:
            self._errors += 1
            if self._errors > 1000:
                self.error, self._stopped = f"{self._name}: too many damaged audio packets", True
            return
        except (av.error.FFmpegError, ValueError) as exc:  # what a separate pass would stop at too
            log.warning("%s: stopped reading audio packets after an error (%s)", self._name, _reason(exc))
            self._stopped = True
            return
        if self._pending >= self._size:
            self._hand_on(final=False)

    def _add(self, pieces: list[tuple[float | None, np.ndarray]]) -> None:
        self._pieces += pieces
        self._pending += sum(len(samples) for _, samples in pieces)

    def _finish(self) -> None:
        """The end of the file: the resampler's tail and the last, shorter block."""
        if self._resampler is None or self.error is not None:
            return
        self._decode_held()
        if not self._stopped:
            try:
                self._add(_mono(self._resampler.resample(None)))
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("%s: stopped reading audio packets after an error (%s)", self._name, _reason(exc))
        self._hand_on(final=True)
        if self._errors:
            log.warning("%s: skipped %d damaged audio packets", self._name, self._errors)
        if self._emitted == 0:
            self.error = f"{self._name}: no decodable audio"

    def _hand_on(self, final: bool) -> None:
        """Blocks of the pieces held (by :func:`_audio_blocks`, as :func:`sample_audio` makes
        them). Until ``final``, the last block is held back, unfinished or as an empty piece
        where it ended, so the next pieces continue it exactly as one pass over them would."""
        blocks = list(_audio_blocks(self._pieces, self.rate, self.block_seconds))
        if not blocks:  # nothing but empty pieces yet
            return
        self._pieces, self._pending = [], 0
        if not final:
            last = blocks[-1]
            if len(last.samples) < self._size:
                blocks.pop()
                self._add([(last.start, last.samples)])
            else:
                self._add([(last.start + last.duration, last.samples[:0])])
        for block in blocks:
            self._emitted += len(block.samples)
            self.end = block.start + block.duration
            self.on_block(block)


# ---------------------------------------------------------------------------------------------
# Live sources: URLs pulled in real time, and files played at real-time pace (rehearsals).


@dataclass(frozen=True)
class LiveOptions:
    """How to pull a live source.

    ``stall_timeout``: a read that waits this long is a stall (the source is reopened).
    ``reconnect_*``: backoff between attempts; the source is given up after ``give_up_after``
    seconds without a frame. ``realtime``: play a file at its own pace (rehearsal mode) and
    end with it. ``flush_interval``: longest a sampled frame waits (wall clock) before its
    batch is handed on. ``protocol_whitelist``: FFmpeg protocols the source may use (see
    :mod:`guard.urlpolicy`). ``max_jump``: a timestamp step larger than this (or backwards)
    is a reset or a jump; the stream clock then continues from the wall-clock gap (see
    :data:`MAX_TIMESTAMP_JUMP`).
    ``hls``: the URL is a live HLS playlist; ``hls_target_duration`` (s, from the playlist)
    lengthens the stall timeout, because FFmpeg's HLS demuxer waits for the next segment
    inside one read; ``hls_ended`` tells whether the playlist really ended (FFmpeg reports an
    interrupted wait as a clean end): a clean end before that reconnects instead.
    ``audio``: also decode the first audio stream, resampled to mono ``audio_rate`` Hz (a
    stream without one is read for its picture alone).
    """

    sample_fps: float = 4.0
    fast: bool = True
    threads: int = 1
    open_timeout: float = 10.0
    stall_timeout: float = 8.0
    reconnect: bool = True
    reconnect_initial: float = 0.5
    reconnect_max: float = 10.0
    give_up_after: float = 300.0
    realtime: bool = False
    flush_interval: float = 0.25
    thumbnail_width: int = 160
    protocol_whitelist: str | None = None
    max_jump: float = MAX_TIMESTAMP_JUMP
    hls: bool = False
    hls_target_duration: float = 0.0
    hls_ended: Callable[[], bool] | None = None
    audio: bool = True
    audio_rate: int = AUDIO_RATE

    @property
    def read_timeout(self) -> float:
        """How long one read may wait: the stall timeout, plus two segments for HLS."""
        if self.hls:
            return self.stall_timeout + 2.0 * max(self.hls_target_duration, 1.0)
        return self.stall_timeout


@dataclass
class LiveBatch(FrameBatch):
    """Sampled frames of a live source: a :class:`FrameBatch` whose ``times`` are seconds on
    the stream clock (monotonic across reconnects and timestamp resets), plus ``arrivals``:
    wall-clock time (``time.time()``) each frame was decoded; ``thumbs``: small RGB images of
    the same frames (evidence); ``width``/``height``: the source picture size (0 without a
    picture); ``audio``: the sound decoded meanwhile, on the same stream clock. A batch may hold
    sound only (no frames: a stream without a picture, or between two sampled frames).
    ``decoded``: when its newest frame (without a picture: its newest sound) was decoded, on the
    steady clock (``time.monotonic()``), which NTP never steps: the monitor's lag is taken on it.
    """

    arrivals: np.ndarray
    thumbs: list[np.ndarray]
    width: int
    height: int
    audio: tuple[LiveAudioBlock, ...] = ()
    decoded: float = 0.0


@dataclass
class LiveAudioBlock(AudioBlock):
    """Mono samples of a live source: ``start`` on the stream clock the picture's frames are
    on (placed by :class:`_LiveSound`), and ``arrival``: the wall-clock time its first sample was
    decoded."""

    arrival: float = 0.0


class StreamClock:
    """Maps source timestamps to one monotonic clock, for live sources and files alike.

    A new connection, a timestamp reset (a step backwards) or a jump (a step forward larger
    than ``max_jump`` and, live, much larger than the wall-clock time that passed) re-anchors
    the clock so it continues from the last time plus the wall-clock gap: the matcher sees the
    real spacing of what was shown. A file has no wall clock (``wall`` is None): after a
    discontinuity its time continues one ``period`` (its frame interval) after the last frame,
    so byte-concatenated or spliced files are timed as they play.
    """

    def __init__(self, period: float, max_jump: float = MAX_TIMESTAMP_JUMP):
        self.period = period
        self.max_jump = max_jump
        self.offset: float | None = None
        self.last: float | None = None
        self.last_wall = 0.0
        self.rebases = 0

    def reconnected(self) -> None:
        """The next timestamp comes from a new connection: re-anchor on it."""
        self.offset = None

    def place(self, raw: float) -> float | None:
        """Clock time of source timestamp ``raw`` under the current anchoring, without moving
        the clock (None before it is anchored): for a second stream of the same source, whose
        timestamps follow the first's anchoring but must not re-anchor it."""
        return None if self.offset is None else raw + self.offset

    def __call__(self, raw: float | None, wall: float | None = None) -> float:
        """Clock time of a frame with source timestamp ``raw`` (s) decoded at ``wall``
        (``time.time()``; None for a file, whose frames then need a timestamp)."""
        if raw is None:  # no timestamp: the wall clock is all there is
            assert wall is not None  # a file's frames have timestamps (see _sampled)
            raw = wall if self.offset is None else wall - self.offset
        offset = self._anchor(raw, wall) if self.offset is None else self.offset
        t = raw + offset
        if self.last is not None:
            step = t - self.last
            wall_step = None if wall is None else wall - self.last_wall
            limit = self.max_jump if wall_step is None else max(self.max_jump, wall_step + 2.0)
            if step < -0.5 or step > limit:
                self.rebases += 1
                log.info("clock re-anchored (timestamp step %.2f s over %s)", step,
                         "a file" if wall_step is None else f"{wall_step:.2f} s")
                t = raw + self._anchor(raw, wall)
        if self.last is None or t > self.last:
            self.last = t
            self.last_wall = wall or 0.0
        return t

    def _anchor(self, raw: float, wall: float | None) -> float:
        """Set and return the offset that continues the clock at timestamp ``raw``."""
        if self.last is None:
            self.offset = -raw
        elif wall is None:
            self.offset = self.last + self.period - raw
        else:
            gap = min(max(wall - self.last_wall, self.period), 3600.0)
            self.offset = self.last + gap - raw
        return self.offset


def live_batches(
    url: str,
    options: LiveOptions,
    stop: threading.Event,
    on_status: Callable[[str, str], None] | None = None,
    av_options: dict[str, str] | None = None,
) -> Iterator[LiveBatch]:
    """Pull ``url`` until it ends for good or ``stop`` is set, yielding sampled frame batches
    with the sound decoded meanwhile (:attr:`LiveBatch.audio`, on the frames' stream clock).

    Reconnects with exponential backoff after errors, stalls and ends (unless ``realtime``:
    a rehearsal file ends once). ``on_status(kind, detail)`` hears ``connected``,
    ``reconnecting``, ``resolution`` and ``ended``. Raises :class:`StreamError` when the
    source cannot be opened or stays unreachable for ``give_up_after`` seconds.
    """
    clock = StreamClock(1.0 / options.sample_fps, options.max_jump)
    sampler = _Sampler(options.sample_fps)
    delay = options.reconnect_initial
    last_frame = time.monotonic()  # not the wall clock, which NTP may step
    ever_connected = False
    notify = on_status or (lambda kind, detail: None)
    warned: set[str] = set()  # what was logged once for the stream (not at every reconnection)
    while not stop.is_set():
        try:
            source = _open_live(url, options, av_options)
        except (InputError, StreamError) as exc:
            if not options.reconnect or options.realtime:
                raise
            if time.monotonic() - last_frame > options.give_up_after:
                raise StreamError(f"{_redacted(url)}: unreachable for {options.give_up_after:.0f} s ({exc})") from None
            notify("reconnecting", f"{exc}; retry in {delay:.1f} s")
            stop.wait(delay)
            delay = min(delay * 2, options.reconnect_max)
            continue
        notify("connected", "reconnected" if ever_connected else "opened")
        clock.reconnected()
        reason = "ended"
        try:
            for batch in _read_live(source, options, stop, clock, sampler, notify, warned):
                ever_connected = True
                last_frame = time.monotonic()
                delay = options.reconnect_initial
                yield batch
        except StreamError as exc:
            reason = str(exc)
        finally:
            source.close()
        if stop.is_set():
            break
        if options.realtime or not options.reconnect:
            notify("ended", reason)
            return
        if options.hls and reason == "ended" and (options.hls_ended is None or options.hls_ended()):
            # FFmpeg's HLS demuxer reloads a live playlist until #EXT-X-ENDLIST, but it also ends
            # "cleanly" when a read is interrupted while it waits for a segment: hls_ended tells.
            notify("ended", "playlist ended")
            return
        if options.hls and reason == "ended":
            reason = "playlist still live after the demuxer ended"
            delay = options.reconnect_initial
        if time.monotonic() - last_frame > options.give_up_after:
            notify("ended", reason)
            raise StreamError(f"{_redacted(url)}: no frames for {options.give_up_after:.0f} s ({reason})")
        notify("reconnecting", f"{reason}; retry in {delay:.1f} s")
        stop.wait(delay)
        delay = min(delay * 2, options.reconnect_max)


def _redacted(url: str) -> str:
    from guard.urlpolicy import redact

    return redact(url) if _is_url(url) else url


class _LiveSource:
    """An open container, plus the relay process feeding it when there is one."""

    def __init__(self, name: str, container: InputContainer, relay: _PipeRelay | None = None):
        self.name = name
        self.container = container
        self.relay = relay

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 — closing a broken container must not mask the cause
            log.debug("%s: error while closing", self.name, exc_info=True)
        if self.relay is not None:
            self.relay.close()


def _live_av_options(url: str, options: LiveOptions) -> dict[str, str]:
    # No fflags=nobuffer: with it, FFmpeg drops every packet read while probing the stream, i.e.
    # the first 1.5–2.7 s after each (re)connection went unmonitored; without it they are
    # decoded in one burst once probing ends, and steady-state delay is the same.
    opts = {"analyzeduration": "1500000", "probesize": "2000000"}
    if options.protocol_whitelist:
        opts["protocol_whitelist"] = options.protocol_whitelist
    scheme = url.split("://", 1)[0].lower() if _is_url(url) else "file"
    if scheme == "udp":
        opts.update({"overrun_nonfatal": "1", "fifo_size": "20000", "buffer_size": "4194304"})
    if options.hls:
        opts.update({"live_start_index": "-1", "http_persistent": "1"})
    if scheme == "rtmp" or scheme == "rtmps":
        opts["rtmp_live"] = "live"
    return opts


def _open_live(url: str, options: LiveOptions, av_options: dict[str, str] | None) -> _LiveSource:
    if _is_url(url) and url.split("://", 1)[0].lower() == "srt":
        return _open_srt_relay(url, options)
    opts = _live_av_options(url, options)
    opts.update(av_options or {})
    if url.startswith("file:"):  # a rehearsal file, spelled so FFmpeg reads no other protocol from its name
        check_media_path(url[5:])
        try:
            container = av.open(url, mode="r", options=opts, timeout=(options.open_timeout, options.stall_timeout))
        except av.error.FFmpegError as exc:
            raise InputError(f"{url[5:]}: cannot be opened as media ({_reason(exc)})") from exc
        return _LiveSource(os.path.basename(url[5:]), container)
    decode_options = DecodeOptions(open_timeout=options.open_timeout, read_timeout=options.read_timeout)
    container = _open(url, decode_options, opts)
    return _LiveSource(_redacted(url), container)


#: Sound of a stream with a picture waits at most this long (wall clock, s) for the picture to
#: place it on the stream clock (before a connection's first frame, or across a timestamp reset
#: the sound shows first); past it, the sound moves the clock itself (no picture comes, or it stalled).
AUDIO_HOLD = 3.0
#: Sound placed further than this (s) from the picture's newest frame is on a timeline the clock
#: does not map yet (a reset the sound shows before the picture does): it waits (see AUDIO_HOLD).
AUDIO_SKEW = 3.0


def _read_live(source: _LiveSource, options: LiveOptions, stop: threading.Event, clock: StreamClock, sampler: _Sampler,
               notify: Callable[[str, str], None], warned: set[str] | None = None) -> Iterator[LiveBatch]:
    """One connection's batches: the picture and the sound of one packet loop (see :class:`_LiveReader`)."""
    yield from _LiveReader(source, options, clock, sampler, notify, set() if warned is None else warned).batches(stop)


class _LiveReader:
    """One connection's packet loop over the first video stream and the first audio stream.

    Picture frames go on the stream clock and the sampling grid exactly as a file's do (the
    same :class:`StreamClock` and :class:`_Sampler`: a live source samples the frames a scan
    samples); sampled ones become grey images and thumbnails. Sound is resampled to mono and
    placed on the same clock by :class:`_LiveSound`. A batch is handed on once a sampled frame
    arrives and the oldest waited ``flush_interval`` (as before sound came along), or when
    anything waited twice that (sound without a picture, a picture that stalled).
    """

    def __init__(self, source: _LiveSource, options: LiveOptions, clock: StreamClock, sampler: _Sampler,
                 notify: Callable[[str, str], None], warned: set[str]):
        container = source.container
        self.container, self.name, self.options = container, source.name, options
        self.clock, self.sampler, self.notify = clock, sampler, notify
        self.video: VideoStream | None = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if options.audio and container.streams.audio else None
        if self.video is None and audio is None:
            kinds: list[str] = sorted({s.type for s in container.streams}) or ["nothing"]
            wanted = "video or audio" if options.audio else "video"
            raise StreamError(f"{self.name}: no {wanted} stream (holds {', '.join(kinds)})")
        if self.video is not None:
            _configure_decoder(self.video, options, "SLICE")  # frame threads would add a frame of latency per thread
        elif "no picture" not in warned:
            warned.add("no picture")
            log.info("%s: no video stream, monitored by its sound alone", self.name)
        if audio is not None:
            audio.codec_context.thread_count = 1  # a few kB of sound per packet: threads only pile up
        self.sound = None if audio is None else _LiveSound(audio, self.name, options.audio_rate, clock,
                                                           self.video is not None, warned)
        self.size: tuple[int, int] | None = None
        self.scaler = _Scaler()
        self.decoded = 0.0  # steady-clock time of the newest sampled frame (or sound without a picture)
        self._clear()

    def _clear(self) -> None:
        self.times: list[float] = []
        self.greys: list[np.ndarray] = []
        self.arrivals: list[float] = []
        self.thumbs: list[np.ndarray] = []

    def batches(self, stop: threading.Event) -> Iterator[LiveBatch]:
        """Decode until the connection ends or ``stop`` is set; errors become :class:`StreamError`."""
        pace = _pacer(stop) if self.options.realtime else None
        sound = self.sound
        streams: list[VideoStream | AudioStream] = [s for s in (self.video, sound.stream if sound else None) if s]
        video_index = -1 if self.video is None else self.video.index
        errors = 0
        try:
            for packet in self.container.demux(*streams):
                if stop.is_set():
                    return
                sampled = False
                if packet.stream.index == video_index:
                    try:
                        frames = cast("list[VideoFrame]", packet.decode())
                    except av.error.InvalidDataError:
                        errors += 1
                        continue
                    for frame in frames:
                        raw = _frame_time(frame, cast(VideoStream, self.video))
                        if pace is not None and not pace(raw):
                            return
                        sampled = self._picture(frame, raw) or sampled
                elif sound is not None:
                    if pace is not None and self.video is None and not pace(_packet_time(packet)):
                        return
                    sound.decode(packet, time.time())
                    if self.video is None:
                        self.decoded = time.monotonic()
                    if sound.failed and self.video is None:
                        raise StreamError(f"{self.name}: its only stream, the sound, does not decode")
                if self._due(time.time(), sampled):
                    yield self._batch()
        except av.error.ExitError:
            raise StreamError(f"{self.name}: stalled (no data within the stall timeout)") from None
        except av.error.FFmpegError as exc:
            raise StreamError(f"{self.name}: read error ({_reason(exc)})") from None
        except OSError as exc:
            raise StreamError(f"{self.name}: read error ({exc})") from None
        finally:
            if errors:
                log.info("%s: skipped %d damaged packets", self.name, errors)
            if sound is not None:
                sound.report()
        if self.times or (sound is not None and sound.placed):
            yield self._batch()

    def _picture(self, frame: VideoFrame, raw: float | None) -> bool:
        """Put a decoded frame on the clock; True when it is sampled (then held for the batch)."""
        wall = time.time()
        t = self.clock(raw, wall)
        if self.sound is not None:
            self.sound.picture_moved(wall)
        if not self.sampler.take(t):
            return False
        if (frame.width, frame.height) != self.size:
            if self.size is not None:
                self.notify("resolution", f"{self.size[0]}x{self.size[1]} -> {frame.width}x{frame.height}")
            self.size = (frame.width, frame.height)
        self.times.append(self.sampler.time)
        self.greys.append(self.scaler.grey(frame))
        self.arrivals.append(wall)
        self.decoded = time.monotonic()
        self.thumbs.append(self.scaler.thumbnail(frame, self.options.thumbnail_width))
        return True

    def _due(self, wall: float, sampled: bool) -> bool:
        flush = self.options.flush_interval
        if self.times and (len(self.times) >= BATCH_SIZE or (sampled and wall - self.arrivals[0] >= flush)):
            return True
        waiting = [self.arrivals[0]] if self.times else []
        if self.sound is not None and self.sound.placed:
            waiting.append(self.sound.placed[0][2])
        return bool(waiting) and wall - min(waiting) >= 2 * flush

    def _batch(self) -> LiveBatch:
        grey = np.stack(self.greys) if self.greys else np.zeros((0, GREY_SIZE, GREY_SIZE), np.uint8)
        width, height = self.size or (0, 0)
        batch = LiveBatch(np.asarray(self.times, dtype=np.float64), grey, np.asarray(self.arrivals, dtype=np.float64),
                          self.thumbs, width, height, () if self.sound is None else self.sound.blocks(),
                          self.decoded)
        self._clear()
        return batch


def _packet_time(packet: av.Packet[av.stream.Stream]) -> float | None:
    if packet.pts is None or packet.time_base is None:
        return None
    return float(packet.pts * packet.time_base)


class _LiveSound:
    """One connection's first audio stream: resampled to mono ``rate`` Hz, placed on the stream
    clock, handed on in :class:`LiveAudioBlock` s.

    With a picture, the picture's frames drive the clock (its anchoring on each connection and
    its re-anchoring at resets and jumps) and the sound only follows it
    (:meth:`StreamClock.place`): the two streams' packets interleave up to a second apart, which
    would look like steps back and forth if both moved the clock. Sound the clock cannot place
    yet waits up to :data:`AUDIO_HOLD`; without a picture (or with one that stalled that long)
    the sound moves the clock itself. Timestamps that jitter by less than
    :data:`AUDIO_MAX_JUMP` are evened out, so the blocks of a steady stream are contiguous.
    A sound that does not decode is left out, logged once per stream (``warned``).
    """

    def __init__(self, stream: AudioStream, name: str, rate: int, clock: StreamClock, has_picture: bool,
                 warned: set[str]):
        self.stream, self.name, self.rate, self.clock = stream, name, rate, clock
        self.has_picture = has_picture
        self.warned = warned
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.last_picture = time.time()  # when the picture last moved the clock
        self.waiting: list[tuple[float | None, np.ndarray, float]] = []  # decoded, not placed yet
        #: Placed sound not handed on yet: (stream time, samples, wall-clock arrival).
        self.placed: list[tuple[float, np.ndarray, float]] = []
        self.end: float | None = None  # stream time the placed sound reaches
        self.dropped = 0.0  # seconds of sound the clock could not place
        self.errors = 0
        self.failed = False

    def decode(self, packet: av.Packet[av.stream.Stream], wall: float) -> None:
        """Decode and resample one packet of the sound, and place what can be placed."""
        if self.failed:
            return
        try:
            for frame in cast("list[AudioFrame]", list(packet.decode())):
                for out in self.resampler.resample(frame):
                    self.waiting.append((out.time, out.to_ndarray().reshape(-1).astype(np.float32, copy=False), wall))
        except av.error.InvalidDataError:
            self.errors += 1
            return
        except (av.error.FFmpegError, ValueError) as exc:
            self.failed = True
            self.waiting.clear()
            if "sound failed" not in self.warned:
                self.warned.add("sound failed")
                log.warning("%s: the sound does not decode (%s); monitoring the picture alone", self.name,
                            _reason(exc))
            return
        self.place(wall)

    def picture_moved(self, wall: float) -> None:
        """The picture moved the clock: place the sound that waited for it."""
        self.last_picture = wall
        if self.waiting:
            self.place(wall)

    def place(self, wall: float) -> None:
        """Place the waiting sound on the clock, in order, as far as it can be placed now."""
        while self.waiting:
            raw, samples, arrived = self.waiting[0]
            t = self._time(raw, arrived, wall)
            if t is None and wall - arrived <= AUDIO_HOLD:
                return
            self.waiting.pop(0)
            if t is None:
                self.dropped += len(samples) / self.rate
                continue
            if self.end is not None and abs(t - self.end) <= AUDIO_MAX_JUMP:
                t = self.end
            self.placed.append((t, samples, arrived))
            self.end = t + len(samples) / self.rate

    def _time(self, raw: float | None, arrived: float, wall: float) -> float | None:
        if raw is None:  # no timestamp: it follows the sound before it
            return self.end
        if not self.has_picture or wall - self.last_picture > AUDIO_HOLD:
            return self.clock(raw, arrived)
        placed = self.clock.place(raw)
        if placed is None or self.clock.last is None or abs(placed - self.clock.last) > AUDIO_SKEW:
            return None
        return placed

    def blocks(self) -> tuple[LiveAudioBlock, ...]:
        """The sound placed since the last call, in blocks of up to :data:`AUDIO_BLOCK_SECONDS`
        (split where it is not contiguous), each with the arrival of its first sample."""
        if not self.placed:
            return ()
        pieces, self.placed = self.placed, []
        ends = np.cumsum([len(samples) for _, samples, _ in pieces])
        out, first = [], 0
        for block in _audio_blocks(((t, samples) for t, samples, _ in pieces), self.rate, AUDIO_BLOCK_SECONDS):
            piece = min(int(np.searchsorted(ends, first, side="right")), len(pieces) - 1)
            out.append(LiveAudioBlock(block.start, block.samples, block.rate, pieces[piece][2]))
            first += len(block.samples)
        return tuple(out)

    def report(self) -> None:
        """Log what the connection's sound lost, if anything."""
        if self.errors:
            log.info("%s: skipped %d damaged audio packets", self.name, self.errors)
        if self.dropped:
            log.info("%s: %.1f s of sound could not be placed on the stream clock", self.name, self.dropped)


def _pacer(stop: threading.Event) -> Callable[[float | None], bool]:
    """Real-time pacing of a rehearsal file: waits until each frame's time has come on a steady
    clock (from the first frame's); False once ``stop`` is set."""
    origin: tuple[float, float] | None = None

    def pace(raw: float | None) -> bool:
        nonlocal origin
        if raw is None:
            return True
        origin = origin or (time.monotonic(), raw)
        wait = origin[0] + (raw - origin[1]) - time.monotonic()
        return not (wait > 0 and stop.wait(wait))

    return pace


# -- SRT: PyAV's FFmpeg has no libsrt, so Debian's ffmpeg CLI relays SRT → MPEG-TS on a pipe.


class _PipeRelay:
    """An ``ffmpeg`` process copying a stream to MPEG-TS on stdout, read with a stall timeout."""

    def __init__(self, args: list[str], stall_timeout: float):
        import subprocess

        self.stall_timeout = stall_timeout
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None  # stdout=PIPE
        self.fd = self.proc.stdout.fileno()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes; ``b""`` (end of stream) after a stall or when the relay exits."""
        import select

        ready, _, _ = select.select([self.fd], [], [], self.stall_timeout)
        if not ready:
            log.info("srt relay stalled for %.1f s", self.stall_timeout)
            return b""
        return os.read(self.fd, size if size > 0 else 65536)

    def close(self) -> None:
        """Stop the relay process and reap it."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def ffmpeg_cli() -> str | None:
    """Path of the ``ffmpeg`` command line tool, if installed (SRT relay, test publishers)."""
    import shutil

    return shutil.which("ffmpeg")


def _open_srt_relay(url: str, options: LiveOptions) -> _LiveSource:
    binary = ffmpeg_cli()
    if binary is None:
        raise StreamError("srt: needs the ffmpeg command line tool with libsrt (apt-get install ffmpeg)")
    timeout_us = str(int(options.open_timeout * 1e6))
    args = [binary, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-protocol_whitelist", options.protocol_whitelist or "srt,udp",
            "-timeout", timeout_us, "-i", url, "-map", "0:v:0?", *(["-map", "0:a:0?"] if options.audio else []),
            "-c", "copy",
            "-f", "mpegts", "-flush_packets", "1", "pipe:1"]
    relay = _PipeRelay(args, max(options.stall_timeout, options.open_timeout))
    try:
        container = av.open(relay, mode="r", format="mpegts",
                            options={"analyzeduration": "1500000", "probesize": "2000000"})
    except (av.error.FFmpegError, OSError) as exc:
        relay.close()
        raise StreamError(f"{_redacted(url)}: cannot be opened over SRT ({_reason(exc)})") from None
    return _LiveSource(_redacted(url), container, relay)


def thumbnail_at(source: str | os.PathLike[str], t: float, width: int = 160) -> np.ndarray | None:
    """An RGB image of the frame shown at ``t`` seconds in a local file (None when unavailable)."""
    name = os.fspath(source)
    if _is_url(name) or not Path(name).is_file():
        return None
    try:
        container = av.open(name, mode="r", timeout=(5.0, 5.0))
    except av.error.FFmpegError:
        return None
    try:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        if stream.time_base is None:
            return None
        start = stream.start_time or 0
        target = start + int(max(t, 0.0) / stream.time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        best = None
        for frame in container.decode(stream):
            best = frame
            if frame.pts is not None and frame.pts >= target - int(0.02 / stream.time_base):
                break
        if best is None:
            return None
        return _Scaler().thumbnail(best, width)
    except av.error.FFmpegError:
        return None
    finally:
        container.close()
