"""Small JPEG pictures of a reference, kept at ingest as evidence of what a copy shows.

Evidence for an incident puts a frame of the copy beside the reference frame it copies; the
reference's file may be gone or elsewhere by then (and a hash-only import never had one), so
the picture is taken once, at ingest, and stored with the reference.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from guard import decode
from guard.models import Keyframe

#: Seconds between a reference's keyframes.
KEYFRAME_INTERVAL = 2.0
#: Width of a keyframe in pixels (height keeps the aspect ratio, rounded to even).
KEYFRAME_WIDTH = 160
KEYFRAME_JPEG_QUALITY = 75


def stills_for_keyframes(interval: float = KEYFRAME_INTERVAL, width: int = KEYFRAME_WIDTH) -> decode.Stills:
    """What to hand to the fingerprinting decode of a reference so that it also collects
    the pictures of its keyframes (see :func:`keyframes_of`)."""
    return decode.Stills(interval, width)


def keyframes_of(stills: decode.Stills) -> list[Keyframe]:
    """The keyframes of the pictures ``stills`` collected, on the fingerprint's media clock."""
    return [keyframe(t, rgb, stills.width) for t, rgb in stills.frames]


def keyframe(media_time: float, rgb: np.ndarray, width: int = KEYFRAME_WIDTH) -> Keyframe:
    """``rgb`` (height × width × 3 uint8) scaled to ``width`` pixels wide, as a JPEG keyframe."""
    height = max(2, int(round(width * rgb.shape[0] / max(rgb.shape[1], 1) / 2)) * 2)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize((width, height), Image.Resampling.BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=KEYFRAME_JPEG_QUALITY)
    return Keyframe(media_time=round(float(media_time), 3), width=width, height=height, jpeg=buffer.getvalue())
