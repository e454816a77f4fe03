"""Frame preprocessing between decoding and hashing: bar removal and resizing, in NumPy.

Letterbox and pillarbox bars (bands of mostly dark rows or columns at the border, found per
frame and smoothed over neighbouring frames) are cropped away, so a copy boxed into another
aspect ratio hashes like the original.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy.ndimage import median_filter

#: Version of what this module does to frames before hashing (bar cropping, resizing, the
#: informative-frame filter). Bump it whenever a frame would reach the signal differently:
#: stored tracks then no longer compare with fresh codes (see guard.pipeline).
PREPROCESS_VERSION = 1
#: A pixel is "dark" (bar-coloured) below this grey level.
DARK_LEVEL = 40
#: A border line is a bar line when at least this share of its pixels is dark; not all of
#: them, because a channel logo or a ticker is often stamped across the bar.
DARK_SHARE = 0.7
#: Bars are judged per frame, then smoothed with a running median over this many frames, so
#: a dark scene does not grow the bars of one frame and a copy's bars are found from its start.
SMOOTH_FRAMES = 5
#: Never crop more than this share of a dimension from one side.
MAX_BAR_FRACTION = 0.35
#: Frames whose content varies less than this (std) carry no usable picture (black, fades).
MIN_CONTENT_STD = 6.0


def _leading_bars(dark_share: np.ndarray, limit: int) -> np.ndarray:
    """Per frame, how many lines from the start of the last axis are bar lines (up to ``limit``)."""
    is_bar = dark_share[:, :limit] >= DARK_SHARE
    return np.where(is_bar.all(axis=1), limit, np.argmin(is_bar, axis=1))


def detect_bars(grey: np.ndarray) -> np.ndarray:
    """Content boxes of a batch ``(n, h, w)`` of grey frames without their border bars.

    Returns ``(n, 4)`` int arrays of ``top, bottom, left, right`` (rows ``top:bottom``,
    columns ``left:right``).
    """
    n, h, w = grey.shape
    dark = grey < DARK_LEVEL
    rows, cols = dark.mean(axis=2), dark.mean(axis=1)
    rl, cl = int(h * MAX_BAR_FRACTION), int(w * MAX_BAR_FRACTION)
    bars = np.stack(
        [_leading_bars(rows, rl), _leading_bars(rows[:, ::-1], rl),
         _leading_bars(cols, cl), _leading_bars(cols[:, ::-1], cl)],
        axis=1,
    )
    if n > 1:
        bars = median_filter(bars, size=(min(SMOOTH_FRAMES, n), 1), mode="nearest")
    # Letterbox and pillarbox bars come in equal pairs; a dark band on one side only is picture
    # (a night sky, a dark stage), so only the part both sides share is cropped.
    bars[:, 0] = bars[:, 1] = np.minimum(bars[:, 0], bars[:, 1])
    bars[:, 2] = bars[:, 3] = np.minimum(bars[:, 2], bars[:, 3])
    # Scaling blurs the bar edge over a pixel or so: trim one more line where a bar was found.
    bars = np.where(bars > 0, bars + 1, 0)
    return np.stack([bars[:, 0], h - bars[:, 1], bars[:, 2], w - bars[:, 3]], axis=1)


def crop_resize(grey: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop each frame of ``grey`` to its box (see :func:`detect_bars`) and resize to ``size`` (w, h)."""
    out = np.empty((len(grey), size[1], size[0]), dtype=np.uint8)
    for i, (frame, (top, bottom, left, right)) in enumerate(zip(grey, boxes)):
        region = Image.fromarray(frame[top:bottom, left:right])
        out[i] = np.asarray(region.resize(size, Image.Resampling.BILINEAR))
    return out


def informative(grey: np.ndarray) -> np.ndarray:
    """Boolean mask of frames with enough picture to hash meaningfully (not black, not flat)."""
    flat = grey.reshape(len(grey), -1).astype(np.float32)
    spread: npt.NDArray[np.float32] = flat.std(axis=1)
    return spread >= MIN_CONTENT_STD


# -- still overlays ---------------------------------------------------------------------------
# A pirate's panel, chat box or banner stays put while the programme under it moves. Over a few
# seconds its cells change far less than the rest of the picture, even when it is translucent.

#: Frames on each side of a frame whose motion is pooled (±2 s at 4 sampled fps).
MOTION_WINDOW = 8
#: A cell is still when it moves less than this share of the frame's median cell motion.
STILL_RATIO = 0.3
#: Still shares outside this range get no masked reading: below, nothing worth hiding (a corner
#: logo is tolerated by the plain hash already); above, the scene itself is still (a studio
#: shot), not an overlay on a moving programme.
STILL_SHARE_RANGE = (0.08, 0.5)
#: Median cell motion (grey levels per sampled frame) below which the whole picture is still.
MIN_MOTION = 1.0


def block_motion(detail: np.ndarray, previous: np.ndarray | None, grid: tuple[int, int]) -> np.ndarray:
    """Mean absolute change of each block of a ``grid`` (w, h) since the frame before.

    ``detail`` is ``(n, h, w)`` grey frames (``w``, ``h`` multiples of the grid), ``previous``
    the frame before the first (``None`` at the start: the first frame copies the second's
    motion). Returns ``(n, grid_h, grid_w)`` float32.
    """
    frames = detail.astype(np.float32)
    before = np.concatenate([frames[:1] if previous is None else previous[None].astype(np.float32),
                             frames[:-1]])
    change = np.abs(frames - before)
    n, h, w = change.shape
    gw, gh = grid
    blocks: npt.NDArray[np.float32] = change.reshape(n, gh, h // gh, gw, w // gw).mean(axis=(2, 4))
    if previous is None and n > 1:
        blocks[0] = blocks[1]
    return blocks


def still_overlay(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which cells show the moving programme, and which frames carry a still overlay.

    ``motion`` is ``(n, gh, gw)`` from :func:`block_motion` over a whole sequence. Returns
    ``(usable, overlaid)``: ``usable`` ``(n, gh, gw)`` bool, ``overlaid`` ``(n,)`` bool for
    frames whose still cells cover :data:`STILL_SHARE_RANGE` of the picture while the rest moves.
    """
    n = len(motion)
    if n == 0:
        return np.zeros(motion.shape, bool), np.zeros(0, bool)
    pooled = median_filter(motion, size=(min(2 * MOTION_WINDOW + 1, n), 1, 1), mode="nearest")
    return _still_cells(pooled)


def trailing_still_overlay(motion: np.ndarray, new: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`still_overlay` of the last ``new`` frames of ``motion``, each judged on the
    frames up to it only (a live stream has no later frames): its motion is pooled by the
    median of the last ``2 * MOTION_WINDOW + 1`` frames (fewer at the start), not of a window
    centred on it. An overlay is found about ``MOTION_WINDOW`` frames after it appears."""
    n, window = len(motion), 2 * MOTION_WINDOW + 1
    if new == 0:
        return np.zeros((0, *motion.shape[1:]), bool), np.zeros(0, bool)
    pooled = np.stack([np.median(motion[max(0, i + 1 - window): i + 1], axis=0) for i in range(n - new, n)])
    return _still_cells(pooled)


def _still_cells(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(usable, overlaid)`` from each frame's pooled cell motion (see :func:`still_overlay`)."""
    n = len(pooled)
    level = np.median(pooled.reshape(n, -1), axis=1)
    usable = pooled >= STILL_RATIO * level[:, None, None]
    still = 1.0 - usable.reshape(n, -1).mean(axis=1)
    low, high = STILL_SHARE_RANGE
    overlaid = (level >= MIN_MOTION) & (still >= low) & (still <= high)
    return usable, overlaid
