"""The fingerprint exchange format: hash-only references a rights holder ships instead of video.

A file is UTF-8 JSON (gzip-compressed when its name ends in ``.gz``) holding one track per
signal, each with the pipeline that made it (see :mod:`guard.pipeline`)::

    {
      "format": "guard-fingerprint",
      "format_version": 2,
      "title": "Finals, game 7",
      "duration": 95.25,
      "match": "any",
      "tracks": [
        {
          "signal": {"name": "mhash16", "version": 1, "bits": 256, "modality": "video", ...},
          "pipeline": {"decoder": {"fast": true, "grey_size": 128}, "preprocess": 1},
          "sample_fps": 4.0,
          "frames": 380,
          "times": "<base64 of little-endian float64 seconds>",
          "codes": "<base64 of frames × bits/8 bytes, MSB-first hash bits>",
          "sha256": "<hex digest of the decoded times bytes followed by the codes bytes>"
        }
      ]
    }

An audio track (signal ``audio_landmarks``, modality ``audio``) has the same fields: one row
per landmark, its time and its 32-bit hash as 4 big-endian bytes (see
:mod:`guard.audio_fingerprint`); ``sample_fps`` is its spectrogram's frames per second and
its times only need to be non-decreasing (landmarks share anchors). ``match`` is the
reference's match policy (``video``, ``audio`` or ``any``); a file without it (every
format 1 file, and format 2 files written before it) means ``any``.

Format 1 held a single track's fields at the top level, its signal as name, version and
bits only; such files were all written by the first release, whose pipeline they are read
with (:func:`guard.pipeline.first_release_pipeline`). Readers accept every
``format_version`` up to their own and refuse newer ones.

Files come from other parties, so a reader trusts nothing: only regular files are opened
(never a FIFO or a device, which would block or never end), at most :data:`MAX_FILE_BYTES`
are read and at most as many decompressed, JSON must be plain (no ``NaN``/``Infinity``, no
deep nesting), every number lies in a sane range and the title follows the same rule as a
title set through the API (:func:`guard.models.check_name`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import math
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Sequence, TypeGuard

import numpy as np

from guard.errors import FormatError, TooLargeError
from guard.models import MATCH_POLICIES, Fingerprint, check_name
from guard.pipeline import AUDIO_CODE_BITS, first_release_pipeline, track_pipeline
from guard.signals import FrameSignal, get_signal

FORMAT_NAME = "guard-fingerprint"
FORMAT_VERSION = 2

#: Most bytes read from an exchange file, and most bytes its gzip stream may decompress to.
#: A week of video at 4 samples a second is about 130 MB of JSON.
MAX_FILE_BYTES = 256 * 1024**2
#: Longest reference a file may describe, in seconds (7 days).
MAX_DURATION = 7 * 24 * 3600.0
#: Sampling rates a file may declare, in frames per second.
MIN_SAMPLE_FPS, MAX_SAMPLE_FPS = 0.1, 60.0
#: Most frames a file may hold.
MAX_FRAMES = 2**22
#: How far past ``duration`` the last frame time may lie, in seconds.
TIME_SLACK = 1.0
#: Largest signal version a file may declare.
MAX_SIGNAL_VERSION = 10_000
#: Most tracks (signals) one file may hold.
MAX_TRACKS = 8
#: Longest a track's signal description or pipeline may be, as JSON.
MAX_DESCRIPTION_CHARS = 4096
#: Most landmarks an audio track may hold per second of duration (references have about 70).
MAX_LANDMARKS_PER_SECOND = 400


@dataclass
class ExchangeDocument:
    """What an exchange file holds: its tracks, title and match policy."""

    tracks: list[Fingerprint]
    title: str
    match: str = "any"

_CHUNK = 1024**2


def dumps(tracks: Fingerprint | Sequence[Fingerprint], title: str, match: str = "any") -> bytes:
    """A reference's tracks (or its one track), its title and match policy as
    exchange-format JSON bytes (not compressed)."""
    tracks = [tracks] if isinstance(tracks, Fingerprint) else list(tracks)
    if not tracks:
        raise FormatError(f"cannot export {title!r}: it has no fingerprint track")
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "title": title,
        "duration": max(t.duration for t in tracks),
        "match": match,
        "tracks": [_track_document(t) for t in tracks],
    }
    try:
        return json.dumps(doc, allow_nan=False).encode()
    except ValueError:
        raise FormatError(f"cannot export {title!r}: its duration or sample rate is not a finite number") from None


def _track_document(fp: Fingerprint) -> dict[str, Any]:
    times = np.asarray(fp.times, dtype="<f8").tobytes()
    codes = np.ascontiguousarray(fp.codes, dtype=np.uint8).tobytes()
    pipeline = track_pipeline(fp)
    signal = pipeline.pop("signal")
    pipeline["decoder"].pop("sample_fps", None)  # the track's own field says it
    return {
        "signal": signal,
        "pipeline": pipeline,
        "sample_fps": fp.sample_fps,
        "frames": len(fp),
        "times": base64.b64encode(times).decode(),
        "codes": base64.b64encode(codes).decode(),
        "sha256": hashlib.sha256(times + codes).hexdigest(),
    }


def dump(tracks: Fingerprint | Sequence[Fingerprint], title: str, path: Path, match: str = "any") -> Path:
    """Write a reference's tracks (or its one track) to ``path`` in the exchange format."""
    data = dumps(tracks, title, match)
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def load(path: Path, name: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Fingerprint], str]:
    """Read and validate an exchange file; return its tracks and its title.

    ``name`` is what error messages call the file (default: its path).
    """
    document = load_document(path, name, max_bytes)
    return document.tracks, document.title


def load_document(path: Path, name: str | None = None, max_bytes: int = MAX_FILE_BYTES) -> ExchangeDocument:
    """:func:`load` with the file's match policy."""
    path = Path(path)
    name = str(path) if name is None else name
    return parse_document(read_bounded(path, name, max_bytes), name, max_bytes)


def read_bounded(path: Path, name: str, max_bytes: int = MAX_FILE_BYTES) -> bytearray:
    """The bytes of the regular file ``path``: :class:`FormatError` for anything else (a FIFO,
    a device, a directory…), :class:`TooLargeError` past ``max_bytes``.

    The kind is checked before opening (opening a FIFO would block) and again on the open
    descriptor, which is opened non-blocking in case the path was swapped in between.
    """
    try:
        _require_regular(os.stat(path).st_mode, name)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FormatError(f"{name}: cannot read ({exc.strerror})") from exc
    with os.fdopen(fd, "rb", buffering=0) as handle:
        _require_regular(os.fstat(fd).st_mode, name)
        data = bytearray()
        try:
            while chunk := handle.read(min(_CHUNK, max_bytes + 1 - len(data))):
                data += chunk
                if len(data) > max_bytes:
                    raise TooLargeError(f"{name}: larger than the limit of {max_bytes} bytes")
        except OSError as exc:
            raise FormatError(f"{name}: cannot read ({exc.strerror})") from exc
    return data


def _require_regular(mode: int, name: str) -> None:
    if stat.S_ISREG(mode):
        return
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    for is_kind, label in kinds:
        if is_kind(mode):
            raise FormatError(f"{name}: is {label}, not a regular file")
    raise FormatError(f"{name}: not a regular file")


def gunzip_bounded(raw: bytes | bytearray, name: str, max_bytes: int = MAX_FILE_BYTES) -> bytearray:
    """Decompress gzip ``raw`` chunk by chunk, stopping with :class:`TooLargeError` as soon as
    the output passes ``max_bytes`` (a small file may expand a thousandfold)."""
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while chunk := stream.read(min(_CHUNK, max_bytes + 1 - len(out))):
                out += chunk
                if len(out) > max_bytes:
                    raise TooLargeError(f"{name}: decompresses to more than the limit of {max_bytes} bytes")
    except (OSError, EOFError, zlib.error) as exc:
        raise FormatError(f"{name}: not a guard fingerprint file (bad gzip data: {exc})") from exc
    return out


def _refuse_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not allowed: numbers must be finite")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token} is not allowed: numbers must be finite")
    return value


def _json(raw: bytes | bytearray, name: str) -> object:
    """Strict JSON: UTF-8, finite numbers only, bounded nesting."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise FormatError(f"{name}: not a guard fingerprint file (JSON nested too deeply)") from exc
    except ValueError as exc:  # also UnicodeDecodeError and json.JSONDecodeError
        raise FormatError(f"{name}: not a guard fingerprint file ({exc})") from exc


def parse(raw: bytes | bytearray, name: str, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Fingerprint], str]:
    """Validate exchange-format bytes (plain or gzip) named ``name`` in error messages;
    return the tracks (one per signal; one for a file of format 1) and the title.

    Raises :class:`FormatError` for anything but a valid file, :class:`TooLargeError` for one
    whose content passes ``max_bytes``.
    """
    document = parse_document(raw, name, max_bytes)
    return document.tracks, document.title


def parse_document(raw: bytes | bytearray, name: str, max_bytes: int = MAX_FILE_BYTES) -> ExchangeDocument:
    """:func:`parse` with the file's match policy."""
    if len(raw) > max_bytes:
        raise TooLargeError(f"{name}: larger than the limit of {max_bytes} bytes")
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip_bounded(raw, name, max_bytes)
    doc = _json(raw, name)
    del raw
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{name}: not a guard fingerprint file (no 'format': '{FORMAT_NAME}')")
    version = doc.get("format_version")
    if not _is_int(version) or version < 1:
        raise FormatError(f"{name}: missing or invalid format_version")
    if version > FORMAT_VERSION:
        raise FormatError(f"{name}: format version {_show(version)} is newer than this guard reads ({FORMAT_VERSION})")
    try:
        return _document(doc, version, name)
    except KeyError as exc:
        raise FormatError(f"{name}: malformed fingerprint file (missing field {exc})") from exc


def _document(doc: dict[str, Any], version: int, name: str) -> ExchangeDocument:
    duration = _number(doc["duration"], "duration", 0.0, MAX_DURATION, name)
    if version == 1:
        tracks = [_track(doc, duration, name, version)]
    else:
        listed = doc["tracks"]
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_TRACKS:
            raise FormatError(f"{name}: malformed fingerprint file ('tracks' must be a list of 1 to {MAX_TRACKS})")
        tracks = []
        for number, track in enumerate(listed):
            where = f"{name}: track {number}"
            if not isinstance(track, dict):
                raise FormatError(f"{where}: malformed fingerprint file (a track must be an object)")
            try:
                tracks.append(_track(track, duration, where, version))
            except KeyError as exc:
                raise FormatError(f"{where}: malformed fingerprint file (missing field {exc})") from exc
        signals = [t.signal for t in tracks]
        if len(set(signals)) != len(signals):
            raise FormatError(f"{name}: more than one track of one signal ({', '.join(signals)})")
    try:
        title = check_name(doc["title"])
    except ValueError as exc:
        raise FormatError(f"{name}: invalid title ({exc})") from None
    match = doc.get("match", "any") if version >= 2 else "any"
    if match not in MATCH_POLICIES:
        raise FormatError(f"{name}: match policy must be one of {', '.join(MATCH_POLICIES)}, not {_show(match)}")
    return ExchangeDocument(tracks, title, match)


def _track(doc: dict[str, Any], duration: float, name: str, version: int) -> Fingerprint:
    """One track's fields (the top level of a format 1 file), validated; ``name`` leads errors."""
    signal = doc["signal"]
    if not isinstance(signal, dict):
        raise FormatError(f"{name}: malformed fingerprint file ('signal' must be an object)")
    signal_name = _string(signal["name"], "signal.name", name)
    if len(signal_name) > 64:
        raise FormatError(f"{name}: unknown signal {_show(signal_name)}")
    try:
        known = get_signal(signal_name)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    audio = known.modality == "audio"
    if isinstance(known, FrameSignal):
        known_bits = known.bits
    elif audio:
        known_bits = AUDIO_CODE_BITS
    else:
        raise FormatError(f"{name}: signal {signal_name!r} makes no tracks")
    signal_version = _integer(signal["version"], "signal.version", 1, MAX_SIGNAL_VERSION, name)
    bits = _integer(signal["bits"], "signal.bits", 1, 4096, name)
    if bits != known_bits:
        raise FormatError(f"{name}: signal {known.name} has {known_bits} bits, the file says {bits}")
    sample_fps = _number(doc["sample_fps"], "sample_fps", MIN_SAMPLE_FPS, MAX_SAMPLE_FPS, name)
    if version == 1:
        pipeline = first_release_pipeline(signal_name, signal_version, bits, sample_fps)
    else:
        pipeline = _pipeline(signal, doc["pipeline"], sample_fps, name)
    frames = _integer(doc["frames"], "frames", 0, MAX_FRAMES, name)
    if audio and frames > MAX_LANDMARKS_PER_SECOND * (duration + TIME_SLACK) + 16:
        raise FormatError(f"{name}: {frames} landmarks cannot come from {duration:g} s of audio")
    if not audio and frames > 2 * sample_fps * (duration + TIME_SLACK) + 16:
        raise FormatError(f"{name}: {frames} frames cannot come from {duration:g} s sampled at {sample_fps:g} fps")
    times_raw = _base64(doc["times"], "times", name)
    codes_raw = _base64(doc["codes"], "codes", name)
    digest = _string(doc["sha256"], "sha256", name)
    if hashlib.sha256(times_raw + codes_raw).hexdigest() != digest:
        raise FormatError(f"{name}: checksum mismatch (file damaged or edited)")
    code_bytes = bits // 8
    if len(times_raw) != 8 * frames or len(codes_raw) != code_bytes * frames:
        raise FormatError(f"{name}: header says {frames} frames, data holds {len(times_raw) / 8:g} times "
                          f"and {len(codes_raw) / code_bytes:g} codes")
    times = np.frombuffer(times_raw, dtype="<f8").astype(np.float64)
    steps = np.diff(times)
    if frames and (not np.isfinite(times).all() or np.any(steps < 0 if audio else steps <= 0) or times[0] < 0):
        raise FormatError(f"{name}: frame times must be finite, non-negative and "
                          f"{'non-decreasing' if audio else 'increasing'}")
    if frames and times[-1] > duration + TIME_SLACK:
        raise FormatError(f"{name}: frame time {times[-1]:g} s is past the duration of {duration:g} s")
    return Fingerprint(
        signal=signal_name, signal_version=signal_version, bits=bits, sample_fps=sample_fps,
        duration=duration, times=times, codes=np.frombuffer(codes_raw, dtype=np.uint8).reshape(frames, code_bytes).copy(),
        pipeline=pipeline,
    )


def _pipeline(signal: dict[str, Any], pipeline: object, sample_fps: float, name: str) -> dict[str, Any]:
    """A format 2 track's pipeline with its signal description: bounded JSON objects, compared
    with the running pipeline on registration (never trusted beyond that)."""
    if not isinstance(pipeline, dict):
        raise FormatError(f"{name}: malformed fingerprint file ('pipeline' must be an object)")
    for field, value in (("signal", signal), ("pipeline", pipeline)):
        if len(json.dumps(value)) > MAX_DESCRIPTION_CHARS:
            raise FormatError(f"{name}: '{field}' is longer than {MAX_DESCRIPTION_CHARS} characters of JSON")
    decoder = pipeline.get("decoder", {})
    if not isinstance(decoder, dict):
        raise FormatError(f"{name}: malformed fingerprint file ('pipeline.decoder' must be an object)")
    if "preprocess" in pipeline:
        _integer(pipeline["preprocess"], "pipeline.preprocess", 0, MAX_SIGNAL_VERSION, name)
    return {**pipeline, "signal": signal, "decoder": {**decoder, "sample_fps": sample_fps}}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(value: object, field: str, low: int, high: int, name: str) -> int:
    if not _is_int(value):
        raise FormatError(f"{name}: malformed fingerprint file ('{field}' must be an integer, not {_show(value)})")
    if not low <= value <= high:
        raise FormatError(f"{name}: '{field}' must be between {low} and {high} (got {_show(value)})")
    return value


def _number(value: object, field: str, low: float, high: float, name: str) -> float:
    if not (_is_int(value) or isinstance(value, float)):
        raise FormatError(f"{name}: malformed fingerprint file ('{field}' must be a number, not {_show(value)})")
    if not low <= value <= high:  # NaN never passes
        raise FormatError(f"{name}: '{field}' must be between {low:g} and {high:g} (got {_show(value)})")
    return float(value)


def _string(value: object, field: str, name: str) -> str:
    if not isinstance(value, str):
        raise FormatError(f"{name}: malformed fingerprint file ('{field}' must be a string, not {_show(value)})")
    return value


def _base64(value: object, field: str, name: str) -> bytes:
    text = _string(value, field, name)
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise FormatError(f"{name}: malformed fingerprint file ('{field}' is not base64: {exc})") from None
