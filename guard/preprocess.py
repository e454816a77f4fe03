"""Frame preprocessing between decoding and hashing: bar removal and resizing, in NumPy.

Letterbox and pillarbox bars are found per batch of sampled frames (a bar is a band of rows or
columns at the border that stays dark and flat across the batch) and cropped away, so a copy
boxed into another aspect ratio hashes like the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: A row or column is "flat" when its pixels vary less than this (grey levels, std).
FLAT_STD = 8.0
#: ... and "dark" when its mean is below this.
DARK_MEAN = 48.0
#: Share of the batch's frames in which a border line must be flat and dark to be a bar.
BAR_AGREEMENT = 0.9
#: Never crop more than this share of a dimension from one side.
MAX_BAR_FRACTION = 0.35
#: Frames whose content varies less than this (std) carry no usable picture (black, fades).
MIN_CONTENT_STD = 6.0


@dataclass(frozen=True)
class Box:
    """A crop box in pixel coordinates of the grey frame: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int


def _leading_bars(is_bar: np.ndarray, limit: int) -> int:
    count = 0
    for flag in is_bar[:limit]:
        if not flag:
            break
        count += 1
    return count


def _bar_lines(lines_mean: np.ndarray, lines_std: np.ndarray) -> np.ndarray:
    flat = (lines_std < FLAT_STD) & (lines_mean < DARK_MEAN)
    return flat.mean(axis=0) >= BAR_AGREEMENT


def detect_bars(grey: np.ndarray) -> Box:
    """Find the content box of a batch ``(n, h, w)`` of grey frames, excluding border bars."""
    n, h, w = grey.shape
    frames = grey.astype(np.float32)
    row_bar = _bar_lines(frames.mean(axis=2), frames.std(axis=2))
    col_bar = _bar_lines(frames.mean(axis=1), frames.std(axis=1))
    top = _leading_bars(row_bar, int(h * MAX_BAR_FRACTION))
    bottom = _leading_bars(row_bar[::-1], int(h * MAX_BAR_FRACTION))
    left = _leading_bars(col_bar, int(w * MAX_BAR_FRACTION))
    right = _leading_bars(col_bar[::-1], int(w * MAX_BAR_FRACTION))
    # Scaling blurs the bar edge over a pixel or so: trim one more line where a bar was found.
    top, bottom, left, right = (v + 1 if v else 0 for v in (top, bottom, left, right))
    return Box(top, h - bottom, left, w - right)


def crop_resize(grey: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Crop every frame of ``grey`` to ``box`` and resize to ``size`` = (width, height)."""
    region = grey[:, box.top : box.bottom, box.left : box.right]
    out = np.empty((len(grey), size[1], size[0]), dtype=np.uint8)
    for i, frame in enumerate(region):
        out[i] = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
    return out


def informative(grey: np.ndarray) -> np.ndarray:
    """Boolean mask of frames with enough picture to hash meaningfully (not black, not flat)."""
    flat = grey.reshape(len(grey), -1).astype(np.float32)
    return flat.std(axis=1) >= MIN_CONTENT_STD
