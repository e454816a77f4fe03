"""What shaped a fingerprint track, and whether stored tracks still compare with fresh codes.

A track's *pipeline* is a JSON object recorded with its codes::

    {"signal": {...Signal.describe()},
     "decoder": {"sample_fps": 4.0, "fast": true, "grey_size": 128},
     "preprocess": 1}

Codes compare only when the signal description, the grey size the decoder scales frames to
and the preprocessing version (bar cropping, informative-frame filter) are the same. The
sampling rate and the fast-decode flag are recorded but not compared: they move sampled
frames by a frame period at most, which the matcher tolerates as it tolerates any copy's
re-encoding (and a store has always accepted imports sampled at another rate).

A pipeline records what was known when its track was made. Tracks from stores of schema 1
and files of export format 1 know the signal by name, version and bits only; they were all
made by the first release, whose decoder and preprocessing :func:`first_release_pipeline`
states. A signal description without ``params`` is compared by name, version and bits (a
signal's version changes whenever its codes do); anything else a pipeline leaves out (a
fingerprint built by hand) is not compared.

This module is pure: it imports nothing of guard but :mod:`guard.models`.
"""

from __future__ import annotations

import json
from typing import Any

from guard.models import Fingerprint

#: The grey size and preprocessing version of the first release (schema 1, export format 1).
FIRST_RELEASE_GREY_SIZE = 128
FIRST_RELEASE_PREPROCESS = 1

#: Decoder options recorded but not compared (see the module docstring).
UNCOMPARED_DECODER_OPTIONS = ("sample_fps", "fast")

#: What to tell an operator whose store holds tracks of another pipeline.
REFINGERPRINT_ADVICE = ("Re-ingest the references from their sources, or import their exports made with "
                        "the matching version.")


def pipeline_description(signal: dict[str, Any], *, sample_fps: float, fast: bool, grey_size: int,
                         preprocess_version: int) -> dict[str, Any]:
    """A pipeline as tracks record it, from a signal description and the decoder and
    preprocessing settings (normalised through JSON, so it compares equal once stored)."""
    return _json_normalised({
        "signal": signal,
        "decoder": {"sample_fps": float(sample_fps), "fast": bool(fast), "grey_size": int(grey_size)},
        "preprocess": int(preprocess_version),
    })


#: Bits of an audio track's codes: one uint32 landmark hash per row, stored big-endian.
AUDIO_CODE_BITS = 32


def audio_pipeline_description(signal: dict[str, Any], *, sample_rate: int, block_seconds: float,
                               frames_per_second: float) -> dict[str, Any]:
    """The pipeline an audio track records: the signal's description (with the bits its codes
    take), and how the audio was decoded (first audio stream, mixed down to mono and
    resampled by FFmpeg to ``sample_rate``, in blocks of ``block_seconds``). The sample rate
    is compared like a signal parameter (landmarks of other rates differ); ``sample_fps``
    (spectrogram frames per second) is recorded only."""
    return _json_normalised({
        "signal": {**signal, "bits": AUDIO_CODE_BITS},
        "decoder": {"sample_fps": float(frames_per_second), "audio_stream": "first", "channels": "mono",
                    "sample_rate": int(sample_rate), "block_seconds": float(block_seconds),
                    "resampler": "ffmpeg"},
    })


def first_release_pipeline(name: str, version: int, bits: int, sample_fps: float) -> dict[str, Any]:
    """The pipeline of a track made by the first release, which recorded only these four."""
    return {
        "signal": {"name": name, "version": int(version), "bits": int(bits)},
        "decoder": {"sample_fps": float(sample_fps), "grey_size": FIRST_RELEASE_GREY_SIZE},
        "preprocess": FIRST_RELEASE_PREPROCESS,
    }


def track_pipeline(fp: Fingerprint) -> dict[str, Any]:
    """The pipeline ``fp`` records, its signal name, version and bits taken from its fields
    (the fields win where the two disagree) and its sampling rate filled in if missing."""
    pipeline = _json_normalised(fp.pipeline or {})
    signal = _object(pipeline.get("signal"))
    pipeline["signal"] = {**signal, "name": fp.signal, "version": int(fp.signal_version), "bits": int(fp.bits)}
    pipeline["decoder"] = {"sample_fps": float(fp.sample_fps), **_object(pipeline.get("decoder"))}
    return pipeline


def pipeline_differences(recorded: dict[str, Any], running: dict[str, Any]) -> list[str]:
    """How the ``recorded`` pipeline of a track differs from the ``running`` one, in words
    (``"signal.params.levels: 3 recorded, 4 running"``); empty when their codes compare."""
    differences = []
    recorded_signal = _object(recorded.get("signal"))
    running_signal = _object(running.get("signal"))
    if "params" in recorded_signal:
        keys = set(recorded_signal) | set(running_signal)
    else:
        keys = {"name", "version", "bits"}
    differences += _differ("signal", {k: recorded_signal.get(k) for k in keys},
                           {k: running_signal.get(k) for k in keys})
    recorded_decoder, running_decoder = _object(recorded.get("decoder")), _object(running.get("decoder"))
    for key in sorted(set(recorded_decoder) & set(running_decoder) - set(UNCOMPARED_DECODER_OPTIONS)):
        differences += _differ(f"decoder.{key}", recorded_decoder[key], running_decoder[key])
    if "preprocess" in recorded:
        differences += _differ("preprocess", recorded["preprocess"], running.get("preprocess"))
    return differences


def _differ(path: str, recorded: object, running: object) -> list[str]:
    if isinstance(recorded, dict) and isinstance(running, dict):
        out = []
        for key in sorted(set(recorded) | set(running), key=str):
            out += _differ(f"{path}.{key}", recorded.get(key), running.get(key))
        return out
    if recorded == running:
        return []
    return [f"{path}: {_show(recorded)} recorded, {_show(running)} running"]


def _show(value: object) -> str:
    text = "absent" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_normalised(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    normalised: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True))
    return normalised
