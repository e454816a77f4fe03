"""Region readings: where a copied picture sits inside a larger one (a streamer's layout, a
picture-in-picture), found from the picture's structure, in NumPy.

A window of live video inside a layout shows as a rectangle whose four sides are *persistent
edges* — the same strong grey step in every frame of a few seconds, while the video inside it
changes. :func:`find_windows` looks at a short history of grey frames (the 128×128 greys every
sampled frame already has) for long straight runs of persistent edges, pairs them into
rectangles whose four sides are each mostly drawn, and keeps those whose inside moves.
:class:`RegionTracker` runs it once per second of sampled frames over the trailing frames and
gives each frame the windows in view; each window seen again (same place) keeps its track id,
so the matcher can vote per window: a window holding a copy for many seconds adds up, chance
hits in other windows do not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

#: Frames a detection looks at (2 s at 4 sampled frames per second).
HISTORY = 8
#: Detections run every this many sampled frames (their windows serve the frames until the next).
EVERY = 4
#: A persistent edge: a grey step above this in every frame of the history.
EDGE_LEVEL = 10.0
#: A line is a run of persistent edges at least this share of the frame long.
MIN_LINE = 0.15
#: Each side of a window must be drawn along at least this share of its length.
MIN_SUPPORT = 0.8
#: A window is at least this share of the frame on each axis, and covers this share of its area.
MIN_SIDE, AREA_RANGE = 0.2, (0.06, 0.85)
#: A pixel moves when it changes by more than this between sampled frames, in at least half of them;
#: a window must move over at least this share of its inside.
MOTION_LEVEL, MIN_MOVING = 3.0, 0.15
#: A window or screen first seen at a frame is also read in up to this many kept frames before
#: it (12 s at 4 sampled frames per second): a detection needs its structure to show for a
#: while (a borderless picture-in-picture's motion contrast comes and goes), and a copy's span
#: starts where its picture does, not where the detector first saw it.
LOOK_BACK = 48
#: Two windows are the same when their intersection over union exceeds this.
SAME_WINDOW = 0.6
#: At most this many windows per frame (the most moving first; each read as found and, when
#: they differ, as the largest rectangle around it), chosen among this many rectangles with
#: the most moving inside, once their borders are trimmed.
MAX_WINDOWS, TRIMMED = 4, 16
#: Candidate rectangles this alike (intersection over union) are one before trimming.
NEAR_COPY = 0.85
#: Rectangles around a window moving at least this share of its moving share are that window
#: too, unless a drawn line splits them into parts of at least ``MIN_PART`` of them each.
KEEP_SHARE, MIN_PART = 0.75, 0.2

Box = tuple[int, int, int, int]  # top, bottom, left, right in grey pixels (rows top:bottom)
Shape = TypeVar("Shape")  # what a detection finds: a box, a quadrilateral
ShapeIn = TypeVar("ShapeIn", contravariant=True)
T = TypeVar("T", bound="Track[Any]")


def _line_positions(edges: np.ndarray, min_length: int) -> np.ndarray:
    """Indices of the rows of ``edges`` holding a run of at least ``min_length`` True values
    (gaps of one or two pixels bridged)."""
    bridged = edges.copy()
    for shift in (1, 2):
        bridged[:, shift:-shift] |= edges[:, : -2 * shift] & edges[:, 2 * shift:]
    steps = np.diff(np.pad(bridged.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, ends = np.nonzero(steps == 1), np.nonzero(steps == -1)  # row-major: runs pair up
    return np.unique(starts[0][ends[1] - starts[1] >= min_length]).astype(np.int64)


def find_windows(history: np.ndarray) -> list[Box]:
    """Windows with moving video inside, in a history ``(k, h, w)`` of grey frames (k ≥ 2):
    rectangles of persistent edges (drawn borders), most moving first, boxes the inside of
    the drawn sides; then at most :data:`MOTION_WINDOWS` borderless ones found by motion
    contrast (:func:`motion_windows`) where no drawn window is."""
    drawn, borderless = _windows(history.astype(np.float32))
    return [*drawn, *borderless]


def _windows(frames: np.ndarray, borderless: bool = True) -> tuple[list[Box], list[Box]]:
    """:func:`find_windows` in two lists: the drawn windows and the borderless ones (not
    looked for without ``borderless``)."""
    changes = np.abs(np.diff(frames, axis=0))
    drawn = _drawn_windows(frames, changes)
    if not borderless:
        return drawn, []
    found = [box for box in motion_windows(frames, changes)
             if all(overlap(box, other) < SAME_WINDOW for other in drawn)]
    return drawn, found[:max(0, MAX_WINDOWS - len(drawn))]


def _persistent_edges(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grey steps above :data:`EDGE_LEVEL` in every frame of ``frames`` ``(k, h, w)``: between
    columns ``(h, w - 1)`` (``[:, c]`` lies between ``c`` and ``c + 1``) and between rows ``(h - 1, w)``."""
    vertical = np.abs(np.diff(frames, axis=2)).min(axis=0) > EDGE_LEVEL
    horizontal = np.abs(np.diff(frames, axis=1)).min(axis=0) > EDGE_LEVEL
    return vertical, horizontal


def _drawn_windows(frames: np.ndarray, changes: np.ndarray) -> list[Box]:
    """Rectangles of persistent edges with moving video inside (``changes``: the absolute
    differences of consecutive ``frames``), most moving first."""
    k, h, w = frames.shape
    vertical, horizontal = _persistent_edges(frames)
    columns = _line_positions(vertical.T, int(MIN_LINE * h))
    rows = _line_positions(horizontal, int(MIN_LINE * w))
    if len(columns) < 2 or len(rows) < 2:
        return []
    moving = (changes > MOTION_LEVEL).mean(axis=0) >= 0.5
    boxes = _supported_rectangles(rows, columns, horizontal, vertical, h, w)
    if not len(boxes):
        return []
    summed = np.pad(moving.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    shares = _shares(summed, boxes)
    best = _distinct(boxes[np.argsort(-shares)], TRIMMED)
    mean = frames.mean(axis=0)
    trimmed = np.asarray([_trim_border(tuple(box), moving, mean) for box in best.tolist()])
    shares = _shares(summed, trimmed)
    boxes_of: list[Box] = [(int(a), int(b), int(c), int(d)) for a, b, c, d in trimmed.tolist()]
    areas = (trimmed[:, 1] - trimmed[:, 0]) * (trimmed[:, 3] - trimmed[:, 2])
    chosen: list[Box] = []
    windows = 0
    for i in np.argsort(-shares):
        if shares[i] < MIN_MOVING or windows == MAX_WINDOWS:
            break
        if any(overlap(boxes_of[i], other) >= SAME_WINDOW for other in chosen):
            continue
        windows += 1
        chosen.append(boxes_of[i])
        # A window may hold still graphics of its own along a side (a scoreboard), which the
        # most moving rectangle leaves out; a strip of the layout beside it looks the same.
        # So the largest rectangle around it that moves almost as much is read too (one
        # split by a drawn line across it is two windows side by side, not one).
        alike = [j for j in range(len(boxes_of)) if shares[j] >= KEEP_SHARE * shares[i]
                 and overlap(boxes_of[i], boxes_of[j]) >= SAME_WINDOW
                 and not _split(boxes_of[j], rows, columns, horizontal, vertical)]
        largest = boxes_of[max(alike, key=lambda j: areas[j])] if alike else boxes_of[i]
        if overlap(largest, boxes_of[i]) < NEAR_COPY:
            chosen.append(largest)
    return chosen


#: A window's drawn border is trimmed off line by line: a line that moves over less than
#: :data:`STILL_LINE` of its length and is one flat colour (grey spread under
#: :data:`FLAT_LINE`), at most :data:`MAX_TRIM` lines per side (a border a few pixels wide in
#: the frame is one or two at 128×128; more would eat into a flat part of the video).
STILL_LINE, FLAT_LINE, MAX_TRIM = 0.25, 8.0, 3


def _split(box: Box, rows: np.ndarray, columns: np.ndarray, horizontal: np.ndarray,
           vertical: np.ndarray) -> bool:
    """Whether a line drawn across ``box`` (along :data:`MIN_SUPPORT` of it) divides it into
    two parts of at least :data:`MIN_PART` of it each: two windows side by side, not a
    window with a band of graphics along one side (a scoreboard)."""
    top, bottom, left, right = box
    margin_x, margin_y = MIN_PART * (right - left), MIN_PART * (bottom - top)
    inner_columns = columns[(columns > left + margin_x) & (columns < right - margin_x)]
    inner_rows = rows[(rows > top + margin_y) & (rows < bottom - margin_y)]
    return bool((len(inner_columns) and vertical[top:bottom, inner_columns].mean(axis=0).max() >= MIN_SUPPORT)
                or (len(inner_rows) and horizontal[inner_rows, left:right].mean(axis=1).max() >= MIN_SUPPORT))


def _distinct(boxes: np.ndarray, most: int) -> np.ndarray:
    """The first ``most`` of ``boxes`` that are not near-copies of an earlier one (the two
    edges of one drawn border make many)."""
    kept: list[np.ndarray] = []
    left = boxes
    while len(left) and len(kept) < most:  # the first left is kept, its near-copies dropped
        kept.append(left[0])
        left = left[1:][_overlaps(left[0], left[1:]) < NEAR_COPY]
    return np.asarray(kept, dtype=np.int64).reshape(-1, 4)


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """:func:`overlap` of ``box`` with each of ``boxes`` ``(n, 4)``."""
    inter = (np.maximum(0, np.minimum(box[1], boxes[:, 1]) - np.maximum(box[0], boxes[:, 0]))
             * np.maximum(0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[2], boxes[:, 2])))
    union = (box[1] - box[0]) * (box[3] - box[2]) + (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]) - inter
    shares: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return shares


def _shares(summed: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Moving share inside each box ``(n, 4)``, from the moving mask's summed-area table."""
    top, bottom, left, right = boxes.T
    inside = summed[bottom, right] - summed[top, right] - summed[bottom, left] + summed[top, left]
    shares: np.ndarray = inside / np.maximum((bottom - top) * (right - left), 1)
    return shares


def _trim_border(box: Box, moving: np.ndarray, mean: np.ndarray) -> Box:
    """``box`` without the border band along its sides: its outer edge is a persistent edge,
    the inner one only where the video beside it contrasts with it."""
    top, bottom, left, right = box
    top += _border_lines(moving[top:top + MAX_TRIM, left:right], mean[top:top + MAX_TRIM, left:right])
    bottom -= _border_lines(moving[bottom - MAX_TRIM:bottom, left:right][::-1],
                            mean[bottom - MAX_TRIM:bottom, left:right][::-1])
    left += _border_lines(moving[top:bottom, left:left + MAX_TRIM].T, mean[top:bottom, left:left + MAX_TRIM].T)
    right -= _border_lines(moving[top:bottom, right - MAX_TRIM:right].T[::-1],
                           mean[top:bottom, right - MAX_TRIM:right].T[::-1])
    return top, bottom, left, right


def _border_lines(moving: np.ndarray, mean: np.ndarray) -> int:
    """How many of the lines (rows, outermost first) in a row are a border: still (moving
    along less than :data:`STILL_LINE` of it) and one flat colour (spread under
    :data:`FLAT_LINE`)."""
    border = (moving.mean(axis=1) < STILL_LINE) & (mean.std(axis=1) < FLAT_LINE)
    return int(np.argmin(border)) if not border.all() else len(border)


def _supported_rectangles(rows: np.ndarray, columns: np.ndarray, horizontal: np.ndarray,
                          vertical: np.ndarray, h: int, w: int, support: float = MIN_SUPPORT) -> np.ndarray:
    """Every rectangle of candidate lines whose four sides are drawn (along ``support`` of
    their length), of a plausible size; as inside boxes ``(n, 4)``: top, bottom, left, right."""
    # Prefix sums along each line give any side's drawn share at once, for all line pairs.
    along_rows = np.pad(np.cumsum(horizontal[rows], axis=1), ((0, 0), (1, 0)))  # (R, w+1)
    along_cols = np.pad(np.cumsum(vertical[:, columns].T, axis=1), ((0, 0), (1, 0)))  # (C, h+1)
    ti, bi = np.triu_indices(len(rows), 1)
    keep = rows[bi] - rows[ti] >= MIN_SIDE * h
    ti, bi = ti[keep], bi[keep]
    li, ri = np.triu_indices(len(columns), 1)
    keep = columns[ri] - columns[li] >= MIN_SIDE * w
    li, ri = li[keep], ri[keep]
    if not len(ti) or not len(li):
        return np.zeros((0, 4), np.int64)
    top, bottom = rows[ti] + 1, rows[bi] + 1  # (P,)
    left, right = columns[li] + 1, columns[ri] + 1  # (Q,)
    width, height = (right - left)[None, :], (bottom - top)[:, None]
    area = width * height / (h * w)
    sides = np.minimum.reduce([
        _drawn(along_rows[ti], left, right) / width,
        _drawn(along_rows[bi], left, right) / width,
        _drawn(along_cols[li], top, bottom).T / height,
        _drawn(along_cols[ri], top, bottom).T / height,
    ])
    ok = (sides >= support) & (area >= AREA_RANGE[0]) & (area <= AREA_RANGE[1])
    p, q = np.nonzero(ok)
    return np.stack([top[p], bottom[p], left[q], right[q]], axis=1)


def _drawn(prefix: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Edge pixels of each line (rows of ``prefix``, its running sums) between every
    ``start``/``stop`` pair: ``(lines, pairs)``."""
    drawn: np.ndarray = prefix[:, stop] - prefix[:, start]
    return drawn


#: Motion contrast (borderless windows: a picture pasted over another moving video). The
#: motion of a pixel is its series of absolute changes between sampled frames, averaged over
#: :data:`MOTION_ALONG` pixels along the line looked at (one pixel's series is mostly noise);
#: a line between two pixels is scored by the contrast of the series :data:`MOTION_GAP`
#: pixels apart across it (jumping the pixel the scaling blends from both sides):
#: ``Σ|a − b| / (Σ(a + b) + MOTION_FLOOR per change)``, 0 for one video, near 1 for unrelated ones.
MOTION_ALONG, MOTION_GAP, MOTION_FLOOR = 5, 3, 1.0
#: A motion edge scores above this and at least as high as the lines ``MOTION_GAP`` pixels to
#: either side (a ridge: inside one textured video the contrast is high but not a ridge).
MOTION_EDGE = 0.3
#: Each side of a borderless window is a motion edge along at least this share of its length
#: (where both videos are flat or still there is no evidence either way).
MOTION_SUPPORT = 0.6
#: Each side, read over its whole length: the mean motion series of the band of
#: :data:`BAND` pixels inside it and of the band outside it (one pixel off the side) contrast
#: at least :data:`MIN_CONTRAST`, and the bands outside move (mean change at least
#: :data:`OUTSIDE_MOTION` grey levels): both sides move, unrelated.
BAND, MIN_CONTRAST, OUTSIDE_MOTION = 3, 0.3, 2.0
#: A borderless window is a whole picture scaled down, so it has the frame's shape: in the
#: square grey image its height and width differ by at most this many pixels (rounding at
#: both ends of each side). Only such rectangles are tried, which keeps the chance of a
#: rectangle of high contrast in one video (many tried, one kept) low.
SCALED_FRAME = 2
#: At most this many borderless windows per detection (the most contrasting): a picture in a
#: picture is one; each window costs a hash and an index query per frame.
MOTION_WINDOWS = 1
#: A borderless window found before and missed by a detection is looked at where it was: it
#: is still there when each side still contrasts this much (and the outside moves). Checking
#: one known box needs less evidence than finding one among hundreds: on plain broadcasts a
#: fixed box's sides contrast this much in a few % of histories, a picture in a picture's in
#: about 90 % (a window missed by three detections in a row starts a new track, and its
#: copy's segment breaks in two).
KNOWN_CONTRAST = 0.15


def still_drawn(frames: np.ndarray, box: Box) -> bool:
    """Whether the drawn window ``box`` (its inside) is still in ``frames`` ``(k, h, w)`` (float
    grey): each side still has a line of persistent edges drawn along :data:`MIN_SUPPORT` of it,
    within the border a window's box was trimmed of (:data:`MAX_TRIM` lines) or a line inside.
    Whatever the video inside does: a game window stays where it is while its picture holds
    still for a few seconds (a replay's freeze, a slow scene), which no detection can find."""
    top, bottom, left, right = box
    vertical, horizontal = _persistent_edges(frames)

    def drawn(edges: np.ndarray, line: int, start: int, stop: int, outward: int) -> bool:
        near = range(line + outward * (MAX_TRIM + 1), line - outward * 2, -outward)
        return any(0 <= at < len(edges) and edges[at, start:stop].mean() >= MIN_SUPPORT for at in near)

    return (drawn(horizontal, top - 1, left, right, -1) and drawn(horizontal, bottom - 1, left, right, 1)
            and drawn(vertical.T, left - 1, top, bottom, -1) and drawn(vertical.T, right - 1, top, bottom, 1))


def still_borderless(frames: np.ndarray, box: Box) -> bool:
    """Whether the borderless window ``box`` is still in ``frames`` ``(k, h, w)`` (float grey):
    its sides contrast at least :data:`KNOWN_CONTRAST` and the video outside moves."""
    changes = np.abs(np.diff(frames, axis=0))
    summed = np.pad(changes.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
    contrast, outside = _side_contrast(summed, np.asarray([box], np.int64))
    return bool(contrast[0] >= KNOWN_CONTRAST and outside[0] >= OUTSIDE_MOTION)


def motion_windows(frames: np.ndarray, changes: np.ndarray) -> list[Box]:
    """Borderless windows in ``frames`` ``(k, h, w)`` (float grey; ``changes`` their absolute
    differences ``(k - 1, h, w)``): rectangles whose sides are motion edges — the video inside
    moves unlike the moving video outside — with moving video inside not split by a motion
    edge across it, shaped like the frame (:data:`SCALED_FRAME`); the most contrasting
    first, boxes the inside of the sides."""
    _, h, w = frames.shape
    vertical, horizontal = _motion_edges(changes)
    columns = _line_positions(vertical.T, int(MIN_LINE * h))
    rows = _line_positions(horizontal, int(MIN_LINE * w))
    if len(columns) < 2 or len(rows) < 2:
        return []
    boxes = _supported_rectangles(rows, columns, horizontal, vertical, h, w, MOTION_SUPPORT)
    heights, widths = (boxes[:, 1] - boxes[:, 0]) * w, (boxes[:, 3] - boxes[:, 2]) * h
    boxes = boxes[np.abs(heights - widths) <= SCALED_FRAME * max(h, w)]
    if not len(boxes):
        return []
    summed_changes = np.pad(changes.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
    contrast, outside = _side_contrast(summed_changes, boxes)
    moving = (changes > MOTION_LEVEL).mean(axis=0) >= 0.5
    shares = _shares(np.pad(moving.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0))), boxes)
    keep = (contrast >= MIN_CONTRAST) & (outside >= OUTSIDE_MOTION) & (shares >= MIN_MOVING)
    chosen: list[Box] = []
    for i in np.flatnonzero(keep)[np.argsort(-contrast[keep], kind="stable")]:
        box = (int(boxes[i, 0]), int(boxes[i, 1]), int(boxes[i, 2]), int(boxes[i, 3]))
        if len(chosen) == MOTION_WINDOWS:
            break
        if (all(overlap(box, other) < SAME_WINDOW for other in chosen)
                and not _split(box, rows, columns, horizontal, vertical)):
            chosen.append(_refined(summed_changes, box))
    return chosen


def _refined(summed: np.ndarray, box: Box) -> Box:
    """``box`` with each side moved by at most one pixel to where the single lines just inside
    and just outside it contrast most (``summed``: summed-area tables of the changes). Motion
    edges compare pixels :data:`MOTION_GAP` apart, which places a side within a pixel; a
    window's reading is a crop, and a crop a pixel off changes a small window's hash more
    than the picture's own damage does."""
    _, h1, w1 = summed.shape
    sides = list(box)
    for side in range(4):
        at = sides[side] + np.arange(-1, 2)
        if at[0] < 1 or at[-1] + 1 > (h1 if side < 2 else w1) - 1:
            continue
        first = side % 2 == 0  # top or left: the inside is after the line
        inside, outside = (at, at + 1) if first else (at - 1, at), (at - 1, at) if first else (at, at + 1)
        across = (np.full(3, sides[2]), np.full(3, sides[3])) if side < 2 else (np.full(3, sides[0]), np.full(3, sides[1]))
        bands = [(*band, *across) if side < 2 else (*across, *band) for band in (inside, outside)]
        series_in, series_out = _band_means(summed, bands[0]), _band_means(summed, bands[1])
        score = np.abs(series_in - series_out).sum(axis=0) / (
            (series_in + series_out).sum(axis=0) + MOTION_FLOOR * len(series_in))
        sides[side] = int(at[int(np.argmax(score))])
    return sides[0], sides[1], sides[2], sides[3]


def _motion_edges(changes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Motion edges between neighbouring columns ``(h, w - 1)`` and rows ``(h - 1, w)``, as
    :func:`find_windows` indexes persistent edges (``[:, c]`` lies between ``c`` and ``c + 1``)."""
    k, h, w = changes.shape
    floor = MOTION_FLOOR * k
    before = (MOTION_GAP - 1) // 2  # pixels compared: c - before and c - before + MOTION_GAP
    vertical = np.zeros((h, w - 1), np.float32)
    along = _running_mean(changes, 1)
    a, b = along[:, :, :-MOTION_GAP], along[:, :, MOTION_GAP:]
    vertical[:, before:before + w - MOTION_GAP] = np.abs(a - b).sum(axis=0) / ((a + b).sum(axis=0) + floor)
    horizontal = np.zeros((h - 1, w), np.float32)
    along = _running_mean(changes, 2)
    a, b = along[:, :-MOTION_GAP], along[:, MOTION_GAP:]
    horizontal[before:before + h - MOTION_GAP] = np.abs(a - b).sum(axis=0) / ((a + b).sum(axis=0) + floor)
    return _ridges(vertical.T).T, _ridges(horizontal)


def _running_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean of :data:`MOTION_ALONG` neighbours along ``axis`` (edge values repeated)."""
    half, n = MOTION_ALONG // 2, values.shape[axis]
    pad = [(0, 0)] * values.ndim
    pad[axis] = (half, MOTION_ALONG - 1 - half)
    padded = np.moveaxis(np.pad(values, pad, mode="edge"), axis, 0)
    total = padded[:n].copy()
    for shift in range(1, MOTION_ALONG):
        total += padded[shift:shift + n]
    mean: np.ndarray = np.moveaxis(total, 0, axis) / MOTION_ALONG
    return mean


def _ridges(scores: np.ndarray) -> np.ndarray:
    """Rows of ``scores`` (lines across the rows' direction) that are motion edges: above
    :data:`MOTION_EDGE` and no lower than the rows :data:`MOTION_GAP` away on both sides."""
    edges = np.zeros(scores.shape, bool)
    g = MOTION_GAP
    middle = scores[g:-g]
    edges[g:-g] = (middle > MOTION_EDGE) & (middle >= scores[:-2 * g]) & (middle >= scores[2 * g:])
    return edges


def _side_contrast(summed: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For boxes ``(n, 4)``: the lowest contrast of the four sides (bands inside against bands
    outside, see :data:`BAND`) and the least motion of the bands outside; a side on the
    frame's edge (no band outside) counts as contrasting and moving."""
    _, h1, w1 = summed.shape
    top, bottom, left, right = boxes.T
    inner = [(top + 1, top + 1 + BAND, left, right), (bottom - 1 - BAND, bottom - 1, left, right),
             (top, bottom, left + 1, left + 1 + BAND), (top, bottom, right - 1 - BAND, right - 1)]
    outer = [(top - 1 - BAND, top - 1, left, right), (bottom + 1, bottom + 1 + BAND, left, right),
             (top, bottom, left - 1 - BAND, left - 1), (top, bottom, right + 1, right + 1 + BAND)]
    contrast, outside = np.full(len(boxes), np.inf), np.full(len(boxes), np.inf)
    for band_in, band_out in zip(inner, outer):
        exists = (band_out[0] >= 0) & (band_out[2] >= 0) & (band_out[1] < h1) & (band_out[3] < w1)
        series_in = _band_means(summed, band_in)
        series_out = _band_means(summed, tuple(np.clip(v, 0, limit - 1) for v, limit in zip(band_out, (h1, h1, w1, w1))))
        side = np.abs(series_in - series_out).sum(axis=0) / (
            (series_in + series_out).sum(axis=0) + MOTION_FLOOR * len(series_in))
        contrast = np.where(exists, np.minimum(contrast, side), contrast)
        outside = np.where(exists, np.minimum(outside, series_out.mean(axis=0)), outside)
    return contrast, outside


def _band_means(summed: np.ndarray, band: tuple[np.ndarray, ...]) -> np.ndarray:
    """Mean of each band (top, bottom, left, right arrays) in every frame of ``summed`` (summed-area
    tables ``(k, h + 1, w + 1)``): ``(k, n)``."""
    top, bottom, left, right = band
    total = summed[:, bottom, right] - summed[:, top, right] - summed[:, bottom, left] + summed[:, top, left]
    means: np.ndarray = total / np.maximum((bottom - top) * (right - left), 1)
    return means


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union else 0.0


#: A track's box is the median of its last this many detections: one thrown off (an alert
#: popping up over the window's edge) is outvoted.
BOX_MEMORY = 5
#: A window no detection finds is still read where it was for this many detections (3 s: a
#: streamer's pop-up alert hides a window's lower edge for about 2 s).
HOLD = 3


@dataclass
class RegionTrack:
    """One window over time: its id and its box (the median of its recent detections)."""

    id: int
    box: Box
    seen: list[Box] = field(default_factory=list)
    #: Detections in a row that did not find this window.
    missed: int = 0
    #: Found by motion contrast (no drawn border): a detection missing it looks again where it was.
    borderless: bool = False

    def saw(self, box: Box) -> None:
        """A new detection of this window."""
        self.seen, median = recent_median(self.seen, box)
        top, bottom, left, right = (int(v) for v in median.round())
        self.box = (top, bottom, left, right)


def recent_median(seen: list[Shape], shape: Shape, memory: int = BOX_MEMORY) -> tuple[list[Shape], np.ndarray]:
    """The last ``memory`` detections of a track once ``shape`` joins them, and their
    element-wise median (one detection thrown off is outvoted)."""
    kept = [*seen[-(memory - 1):], shape]
    median: np.ndarray = np.median(np.asarray(kept, np.float64), axis=0)
    return kept, median


class Track(Protocol[ShapeIn]):
    """What :class:`Tracker` needs of a track: an id, a box, a count of detections in a row
    that missed it, and a way to take a new detection of its shape."""

    id: int
    missed: int

    @property
    def box(self) -> Box: ...

    def saw(self, shape: ShapeIn) -> None: ...


class Tracker(Generic[Shape, T]):
    """Things in view (windows, screens) of each frame of a sequence fed batch by batch (files
    and live alike): a detection every :attr:`every` frames over the trailing :data:`HISTORY`
    frames; a thing found again where it was keeps its track, and one a detection or two miss
    (:data:`HOLD`) is still in view. Subclasses detect (:meth:`_detect`) and say how alike a
    track and a detection are (:meth:`_likeness`) and how a track starts (:meth:`_start`)."""

    #: Detections run every this many frames.
    every = EVERY

    def __init__(self) -> None:
        self._history: list[np.ndarray] = []
        self._since = self.every  # detect at the first full history
        self._detections = 0
        self._tracks: list[T] = []
        self._current: list[T] = []
        self._next_id = 0

    def add(self, greys: np.ndarray) -> list[list[T]]:
        """For each grey frame ``(n, h, w)``: the tracks in view, as they were at that frame
        (copies: a later detection in the same batch moves the tracks, not earlier frames')."""
        out = []
        for grey in greys:
            self._history = [*self._history[-(HISTORY - 1):], grey]
            self._since += 1
            if len(self._history) == HISTORY and self._since >= self.every:
                self._since = 0
                self._current = [copy.copy(t) for t in self._detect(np.stack(self._history).astype(np.float32))]
                self._detections += 1
            out.append(self._current)
        return out

    def _detect(self, frames: np.ndarray) -> list[T]:
        """One detection's tracks, from a history of float32 greys."""
        raise NotImplementedError

    def _likeness(self, track: T, shape: Shape) -> float:
        """How alike a track and a detected shape are (the same thing from :data:`SAME_WINDOW`)."""
        raise NotImplementedError

    def _start(self, track_id: int, shape: Shape) -> T:
        """A new track for a shape seen for the first time."""
        raise NotImplementedError

    def _assign(self, shapes: list[Shape]) -> list[T]:
        """The tracks of one detection's shapes: each goes to the track it is most like (at least
        :data:`SAME_WINDOW`), each track takes at most one shape per detection (a window's larger
        variant, or a box taking in the webcam beside it, must not pull the window's median box),
        the others start tracks of their own; then the tracks missed by this detection that are
        still held (:data:`HOLD`)."""
        pairs = sorted(((self._likeness(track, shape), t, s) for t, track in enumerate(self._tracks)
                        for s, shape in enumerate(shapes)), key=lambda pair: pair[0], reverse=True)
        chosen: dict[int, T] = {}
        taken: set[int] = set()
        for likeness, t, s in pairs:
            if likeness < SAME_WINDOW:
                break
            if s not in chosen and t not in taken:
                chosen[s] = self._tracks[t]
                taken.add(t)
                self._tracks[t].saw(shapes[s])
        for s, shape in enumerate(shapes):
            if s not in chosen:
                chosen[s] = self._start(self._next_id, shape)
                self._next_id += 1
                self._tracks.append(chosen[s])
        found = {id(track) for track in chosen.values()}
        for track in self._tracks:
            track.missed = 0 if id(track) in found else track.missed + 1
        self._tracks = [track for track in self._tracks if track.missed <= HOLD]
        # A window missed by a detection or two (still video inside it for a moment) is still
        # there: it keeps being read, so its track's readings run on without holes — a hole
        # would let a copy's span be stretched over frames never read.
        return [*(chosen[s] for s in range(len(shapes))), *(t for t in self._tracks if t.missed)]


class RegionTracker(Tracker[Box, RegionTrack]):
    """Windows in view of each frame (see :class:`Tracker`): drawn ones (:func:`find_windows`'
    persistent edges) and borderless ones (motion contrast)."""

    def _detect(self, frames: np.ndarray) -> list[RegionTrack]:
        """One detection's tracks: the windows found, and the windows found before that it
        missed but that are still there (:func:`still_drawn`, :func:`still_borderless`): the
        evidence of motion comes and goes (the video inside still, or both videos alike, for a
        moment) while the picture stays where it is."""
        # Motion contrast costs most: new borderless windows are looked for every other
        # detection (a found one is held, and re-checked where it is, in between).
        drawn, borderless = _windows(frames, borderless=self._detections % 2 == 0)
        for track in self._tracks:
            still, kind = (still_borderless, borderless) if track.borderless else (still_drawn, drawn)
            if (len(drawn) + len(borderless) < MAX_WINDOWS
                    and all(overlap(track.box, box) < SAME_WINDOW for box in [*drawn, *borderless])
                    and still(frames, track.box)):
                kind.append(track.box)
        found = [*drawn, *borderless]
        tracks = self._assign(found)
        for track in tracks[len(drawn):len(found)]:
            track.borderless = True
        return tracks

    def _likeness(self, track: RegionTrack, shape: Box) -> float:
        return overlap(track.box, shape)

    def _start(self, track_id: int, shape: Box) -> RegionTrack:
        return RegionTrack(track_id, shape, [shape])
