"""The fingerprint exchange format: hash-only references a rights holder ships instead of video.

A file is UTF-8 JSON (gzip-compressed when its name ends in ``.gz``)::

    {
      "format": "guard-fingerprint",
      "format_version": 1,
      "signal": {"name": "phash16", "version": 1, "bits": 256},
      "sample_fps": 4.0,
      "duration": 95.25,
      "title": "Finals, game 7",
      "frames": 380,
      "times": "<base64 of little-endian float64 seconds>",
      "codes": "<base64 of frames × bits/8 bytes, MSB-first hash bits>",
      "sha256": "<hex digest of the decoded times bytes followed by the codes bytes>"
    }

Readers accept every ``format_version`` up to their own and refuse newer ones.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

from guard.errors import FormatError
from guard.models import Fingerprint

FORMAT_NAME = "guard-fingerprint"
FORMAT_VERSION = 1


def dump(fp: Fingerprint, title: str, path: Path) -> Path:
    """Write ``fp`` to ``path`` in the exchange format."""
    times = np.asarray(fp.times, dtype="<f8").tobytes()
    codes = np.ascontiguousarray(fp.codes, dtype=np.uint8).tobytes()
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "signal": {"name": fp.signal, "version": fp.signal_version, "bits": fp.bits},
        "sample_fps": fp.sample_fps,
        "duration": fp.duration,
        "title": title,
        "frames": len(fp),
        "times": base64.b64encode(times).decode(),
        "codes": base64.b64encode(codes).decode(),
        "sha256": hashlib.sha256(times + codes).hexdigest(),
    }
    data = json.dumps(doc).encode()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def load(path: Path) -> tuple[Fingerprint, str]:
    """Read and validate an exchange file; return the fingerprint and its title."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse(raw, str(path))


def parse(raw: bytes, name: str) -> tuple[Fingerprint, str]:
    """Validate exchange-format bytes (plain or gzip) named ``name`` in error messages."""
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{name}: not a guard fingerprint file ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{name}: not a guard fingerprint file (no 'format': '{FORMAT_NAME}')")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(f"{name}: missing or invalid format_version")
    if version > FORMAT_VERSION:
        raise FormatError(f"{name}: format version {version} is newer than this guard reads ({FORMAT_VERSION})")
    try:
        signal = doc["signal"]
        bits = int(signal["bits"])
        times_raw = base64.b64decode(doc["times"], validate=True)
        codes_raw = base64.b64decode(doc["codes"], validate=True)
        frames = int(doc["frames"])
        fp = Fingerprint(
            signal=str(signal["name"]),
            signal_version=int(signal["version"]),
            bits=bits,
            sample_fps=float(doc["sample_fps"]),
            duration=float(doc["duration"]),
            times=np.frombuffer(times_raw, dtype="<f8").astype(np.float64),
            codes=np.frombuffer(codes_raw, dtype=np.uint8).reshape(-1, bits // 8).copy(),
        )
        title = str(doc["title"])
        digest = str(doc["sha256"])
    except (KeyError, TypeError, ValueError, binascii.Error, ZeroDivisionError) as exc:
        raise FormatError(f"{name}: malformed fingerprint file ({type(exc).__name__}: {exc})") from exc
    if hashlib.sha256(times_raw + codes_raw).hexdigest() != digest:
        raise FormatError(f"{name}: checksum mismatch (file damaged or edited)")
    if len(fp.times) != frames or len(fp.codes) != frames:
        raise FormatError(f"{name}: header says {frames} frames, data holds {len(fp.times)} times and {len(fp.codes)} codes")
    if frames and (not np.isfinite(fp.times).all() or np.any(np.diff(fp.times) <= 0) or fp.times[0] < 0):
        raise FormatError(f"{name}: frame times must be finite, non-negative and increasing")
    if fp.sample_fps <= 0 or fp.duration < 0:
        raise FormatError(f"{name}: invalid sample_fps or duration")
    return fp, title
