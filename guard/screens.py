"""Screen readings: a copy filmed off a screen (a TV in a room, a stadium's big screen), found as a
quadrilateral in a short history of grey frames and warped back to a rectangle, in NumPy.

A filmed screen is a four-sided picture seen in perspective whose sides are *persistent edges*
(the border between the lit picture and its bezel, the same over seconds while the hand shakes
by a pixel or two) and whose inside changes while the room around it stays put. So:

- the history's mean grey (the shake blurs its edges by a pixel or so, no more) gives edge
  pixels with their gradient direction; each votes in a Hough table of straight lines at its own
  direction, and the strongest near-horizontal and near-vertical lines are kept;
- every pair of near-horizontal lines with every pair of near-vertical ones is a candidate
  quadrilateral (corners where they cross); a plausible one is convex, of a plausible size,
  inside the frame, and has each side drawn by edge pixels of its direction along most of it;
- its inside must change more than the shake explains (the mean change between frames less
  what the history's own edges moving by a pixel give), clearly more than a band just outside
  it: this tells a screen from a bookshelf or a window frame, and a screen from a shape inside
  a moving picture (the band around it moves too);
- the chosen sides are re-fitted to their edge pixels (least squares, sub-pixel) and crossed
  again for the corners.

:func:`rectify` warps each frame's quadrilateral to a rectangle by its homography (with area
averaging where the screen is larger than the output), and :class:`ScreenTracker` runs
detection like :class:`guard.regions.RegionTracker`. The colour cast and contrast of a filmed
screen need no normalizing for the default signal: a median hash compares each cell with the
median of its frame, which a per-frame monotone change of the greys leaves as it is (a
contrast stretch measured no change); what does move its bits is a *smooth field* over the
screen — a glare patch, the phone's vignetting — which no per-frame normalization removes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import numpy.typing as npt

from guard.regions import EVERY, HISTORY, Box, Tracker, overlap

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # corners top-left, top-right, bottom-right, bottom-left

__all__ = ["EVERY", "HISTORY", "Point", "Quad", "ScreenTrack", "ScreenTracker", "find_screens", "quad_box", "rectify"]

#: An edge pixel of the history's mean grey: a gradient (central difference, grey levels per
#: pixel) at least this strong. A lit picture against its dark bezel gives 10–40; a dark scene
#: against the bezel still 4–6; sensor noise averaged over 8 frames about 1.
EDGE_LEVEL = 4.0
#: Line directions in the Hough table: this many bins over 180° (2° each), the normal angle
#: running from −45° to 135° so near-vertical lines (normal near 0°) and near-horizontal ones
#: (normal near 90°) each sit in one piece of it.
ANGLE_BINS = 90
#: Near-vertical lines have their normal within this of 0°, near-horizontal ones within this of
#: 90° (a TV filmed 25° off its axis tilts its top and bottom by up to ~20° at 128×128).
MAX_TILT = 35.0
#: A screen is filmed in a place that stays put around it: at least this share of the frame
#: changes by less than :data:`STILL_LEVEL` grey levels a frame on average (measured: 11–40 %
#: around camcorded TVs and 20–37 % around stadium screens, shake included; 0 % in much of a
#: moving broadcast, where detection is skipped).
STILL_LEVEL, STILL_SHARE = 3.0, 0.05
#: A phone's sensor noise and shake never leave much of a filmed picture frozen; a screen
#: capture (a streamer's layout: its windows are found by :mod:`guard.regions`) is frozen
#: outside its windows. No screens are looked for where at least this share of the frame
#: changes by less than this many grey levels a frame on average (measured: 24–75 % in
#: layouts, at most 1 % around camcorded TVs and stadium screens).
FROZEN_LEVEL, FROZEN_SHARE = 0.25, 0.15
#: An edge pixel votes for lines within this many angle bins of its gradient direction.
VOTE_SPREAD = 1
#: Lines kept per family (near-horizontal, near-vertical), strongest first; peaks of the
#: Hough table closer than these (angle bins, pixels) are one line.
LINES_PER_FAMILY, PEAK_ANGLE, PEAK_OFFSET = 6, 2, 2
#: A line is at least this share of the frame long in edge pixels.
MIN_LINE = 0.08
#: A screen spans at least this share of the frame on each axis and covers this share of it.
MIN_SIDE, AREA_RANGE = 0.2, (0.06, 0.85)
#: Corners may sit this many pixels outside the frame (a side on the frame's border).
CORNER_MARGIN = 2.0
#: Points sampled along each side (away from the corners) to judge how much of it is drawn.
SIDE_SAMPLES = 12
#: A side point is drawn when an edge pixel within this many pixels of it (across the side)
#: has a direction within this many angle bins of the side's.
SIDE_REACH, SIDE_ANGLE = 1, 3
#: Each side must be drawn along this share of it, and the sides on average along the second:
#: the crowd at a stadium hides up to an eighth of its screen, most of one side.
MIN_SIDE_SUPPORT, MIN_MEAN_SUPPORT = 0.1, 0.7
#: Inside points sampled per axis, and the band outside each side (pixels from it) whose
#: change is compared with the inside's.
INSIDE_SAMPLES, BAND = 6, (2.5, 5.0)
#: Change the shake explains: the mean change between frames at an edge of this gradient is
#: up to this many times the gradient (the hand moves the picture about a pixel a frame).
SHAKE_GAIN = 1.0
#: The inside of a screen changes by at least this much more (grey levels per frame, beyond the
#: shake) than the band around it, and at least this many times as much.
MIN_CHANGE, MIN_CONTRAST = 1.0, 2.0
#: A candidate's score: its sides' mean drawn share, plus these times its least drawn side's
#: share, its inside's change contrast (inside − band) / (inside + band), and how much the
#: band just inside its least moving side (:data:`INNER_BAND`, pixels from it) moves against
#: its inside (capped at 1).
SCORE_MIN, SCORE_CHANGE, SCORE_LIT = 0.5, 0.2, 0.25
INNER_BAND = (1.5, 3.0)
#: Edge pixels within this many pixels of a chosen side (and of its direction) refit it.
REFIT_REACH = 1.5
#: At most this many screens per history; a second must not overlap the first (bounding-box
#: intersection over union) by more than this.
MAX_SCREENS, MAX_OVERLAP = 2, 0.3
#: A quadrilateral this close (pixels, every corner) to the frame's own corners is the frame.
WHOLE_FRAME = 4.0
#: Candidates tried, best first (a second screen among the first few, or none).
MAX_TRIES = 6


def find_screens(history: np.ndarray) -> list[Quad]:
    """Quadrilaterals of screens showing moving video in a history ``(k, h, w)`` of grey frames
    (k ≥ 2) around which the picture stays put but for the hand's shake, most plausible first
    (at most :data:`MAX_SCREENS`); corners ``(x, y)`` in grey pixels (pixel ``i`` spans
    ``[i, i + 1)``), top-left, top-right, bottom-right, bottom-left."""
    frames = history.astype(np.float32)
    if frames.ndim != 3 or len(frames) < 2:
        return []
    _, h, w = frames.shape
    raw_change = np.abs(np.diff(frames, axis=0)).mean(axis=0)
    if (raw_change < STILL_LEVEL).mean() < STILL_SHARE:
        return []  # everything moves: no room around a screen (most programme; saves the lines)
    if (raw_change < FROZEN_LEVEL).mean() >= FROZEN_SHARE:
        return []  # a screen capture (a streamer's layout), not a screen filmed by a phone
    mean = frames.mean(axis=0)
    gx, gy = _gradient(mean)
    magnitude = np.hypot(gx, gy)
    edges = magnitude >= EDGE_LEVEL
    if not edges.any():
        return []
    bins = _angle_bins(gx, gy)
    change = np.maximum(raw_change - SHAKE_GAIN * magnitude, 0.0)
    lines = _lines(edges, bins, h, w)
    if lines is None:
        return []
    quads = _candidates(*lines, h, w)
    if not len(quads):
        return []
    scores = _scores(quads, lines, edges, bins, change, h, w)
    chosen: list[Quad] = []
    for i in np.argsort(-scores)[:MAX_TRIES]:
        if scores[i] <= 0 or len(chosen) == MAX_SCREENS:
            break
        quad = _refit(quads[i], edges, bins, magnitude)
        if quad is None or _is_frame(quad, h, w):
            continue
        if any(overlap(quad_box(quad), quad_box(other)) > MAX_OVERLAP for other in chosen):
            continue
        chosen.append(quad)
    return chosen


# -- lines ------------------------------------------------------------------------------------


def _gradient(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences (grey levels per pixel) along x and y; zero on the border."""
    gx = np.zeros_like(image)
    gy = np.zeros_like(image)
    gx[:, 1:-1] = (image[:, 2:] - image[:, :-2]) / 2
    gy[1:-1] = (image[2:] - image[:-2]) / 2
    return gx, gy


def _angle_bins(gx: np.ndarray, gy: np.ndarray) -> npt.NDArray[np.int64]:
    """Each pixel's gradient direction as a line-normal angle bin (see :data:`ANGLE_BINS`)."""
    angle = np.degrees(np.arctan2(gy, gx))  # (-180, 180]
    angle = (angle + 45.0) % 180.0  # normal angle + 45°, in [0, 180)
    bins: npt.NDArray[np.int64] = np.minimum((angle * ANGLE_BINS / 180.0).astype(np.int64), ANGLE_BINS - 1)
    return bins


def _bin_angles() -> np.ndarray:
    """Normal angle (radians) at the centre of each bin."""
    return np.radians((np.arange(ANGLE_BINS) + 0.5) * 180.0 / ANGLE_BINS - 45.0)


Lines = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # horizontal (bins, offsets), vertical (bins, offsets)


def _lines(edges: np.ndarray, bins: np.ndarray, h: int, w: int) -> Lines | None:
    """The strongest near-horizontal and near-vertical lines of edge pixels (Hough peaks):
    angle bins and offsets ``rho = x cos θ + y sin θ``; ``None`` without two of each."""
    ys, xs = np.nonzero(edges)
    px, py = xs + 0.5, ys + 0.5
    own = bins[ys, xs]
    angles = _bin_angles()
    reach = int(math.ceil(math.hypot(h, w))) + 2
    offsets = 2 * reach
    table = np.zeros(ANGLE_BINS * offsets, np.int64)
    for spread in range(-VOTE_SPREAD, VOTE_SPREAD + 1):
        b = own + spread
        ok = (b >= 0) & (b < ANGLE_BINS)
        rho = px[ok] * np.cos(angles[b[ok]]) + py[ok] * np.sin(angles[b[ok]])
        table += np.bincount(b[ok] * offsets + np.rint(rho).astype(np.int64) + reach, minlength=len(table))
    votes = table.reshape(ANGLE_BINS, offsets)
    peaks = _peaks(votes, int(MIN_LINE * min(h, w)))
    tilt = np.degrees(np.abs(angles))
    horizontal = np.abs(tilt - 90.0) <= MAX_TILT
    vertical = tilt <= MAX_TILT
    found = []
    for family in (horizontal, vertical):
        a, r = np.nonzero(peaks & family[:, None])
        order = np.argsort(-votes[a, r])[:LINES_PER_FAMILY]
        if len(order) < 2:
            return None
        found += [a[order], (r[order] - reach).astype(np.float64)]
    return found[0], found[1], found[2], found[3]


def _peaks(votes: np.ndarray, least: int) -> np.ndarray:
    """Cells of the Hough table with at least ``least`` votes, the largest within
    :data:`PEAK_ANGLE` bins and :data:`PEAK_OFFSET` pixels (ties: the first)."""
    padded = np.pad(votes, ((PEAK_ANGLE, PEAK_ANGLE), (PEAK_OFFSET, PEAK_OFFSET)), constant_values=-1)
    n, m = votes.shape
    peak = votes >= least
    for da in range(-PEAK_ANGLE, PEAK_ANGLE + 1):
        for dr in range(-PEAK_OFFSET, PEAK_OFFSET + 1):
            if da == 0 and dr == 0:
                continue
            other = padded[PEAK_ANGLE + da: PEAK_ANGLE + da + n, PEAK_OFFSET + dr: PEAK_OFFSET + dr + m]
            earlier = (da, dr) < (0, 0)
            peak &= (votes > other) if earlier else (votes >= other)
    return peak


# -- candidate quadrilaterals -------------------------------------------------------------------


def _cross(theta1: np.ndarray, rho1: np.ndarray, theta2: np.ndarray, rho2: np.ndarray) -> np.ndarray:
    """Where lines ``(θ, ρ)`` cross, ``(..., 2)`` (x, y); parallel lines go far away."""
    det = np.sin(theta2 - theta1)
    det = np.where(np.abs(det) < 1e-6, 1e-6, det)
    x = (rho1 * np.sin(theta2) - rho2 * np.sin(theta1)) / det
    y = (rho2 * np.cos(theta1) - rho1 * np.cos(theta2)) / det
    return np.stack([x, y], axis=-1)


def _candidates(h_bins: np.ndarray, h_rho: np.ndarray, v_bins: np.ndarray, v_rho: np.ndarray,
                h: int, w: int) -> np.ndarray:
    """Every plausible quadrilateral of two near-horizontal and two near-vertical lines, one row
    ``(n, 12)`` each: its corners (tl, tr, br, bl as x, y) then the indices of its lines (top,
    right, bottom among the horizontal ones, left among the vertical ones)."""
    angles = _bin_angles()
    ht, vt = angles[h_bins], angles[v_bins]
    # Where each line crosses the frame's middle column (horizontal ones) or row (vertical ones).
    h_at = (h_rho - (w / 2) * np.cos(ht)) / np.sin(ht)
    v_at = (v_rho - (h / 2) * np.sin(vt)) / np.cos(vt)
    top, bottom = np.nonzero(h_at[:, None] + MIN_SIDE * h <= h_at[None, :])
    left, right = np.nonzero(v_at[:, None] + MIN_SIDE * w <= v_at[None, :])
    if not len(top) or not len(left):
        return np.zeros((0, 4, 2))
    t, b = np.repeat(top, len(left)), np.repeat(bottom, len(left))
    lft, rgt = np.tile(left, len(top)), np.tile(right, len(top))
    corners = np.stack([
        _cross(ht[t], h_rho[t], vt[lft], v_rho[lft]), _cross(ht[t], h_rho[t], vt[rgt], v_rho[rgt]),
        _cross(ht[b], h_rho[b], vt[rgt], v_rho[rgt]), _cross(ht[b], h_rho[b], vt[lft], v_rho[lft]),
    ], axis=1)  # (n, 4, 2)
    inside = ((corners[..., 0] >= -CORNER_MARGIN) & (corners[..., 0] <= w + CORNER_MARGIN)
              & (corners[..., 1] >= -CORNER_MARGIN) & (corners[..., 1] <= h + CORNER_MARGIN)).all(axis=1)
    area = _area(corners) / (h * w)
    ok = inside & (area >= AREA_RANGE[0]) & (area <= AREA_RANGE[1]) & _convex(corners)
    found: np.ndarray = np.concatenate([corners[ok].reshape(-1, 8),
                                        np.stack([t[ok], rgt[ok], b[ok], lft[ok]], axis=1)], axis=1)
    return found


def _area(corners: np.ndarray) -> np.ndarray:
    """Area of each quadrilateral ``(n, 4, 2)`` (shoelace)."""
    x, y = corners[..., 0], corners[..., 1]
    area: np.ndarray = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - y * np.roll(x, -1, axis=1)).sum(axis=1))
    return area


def _convex(corners: np.ndarray) -> np.ndarray:
    """Whether each quadrilateral ``(n, 4, 2)`` turns the same way at every corner."""
    edge = np.roll(corners, -1, axis=1) - corners
    turn = edge[..., 0] * np.roll(edge[..., 1], -1, axis=1) - edge[..., 1] * np.roll(edge[..., 0], -1, axis=1)
    convex: np.ndarray = (turn > 0).all(axis=1) | (turn < 0).all(axis=1)
    return convex


# -- scoring ----------------------------------------------------------------------------------


def _scores(found: np.ndarray, lines: Lines, edges: np.ndarray, bins: np.ndarray, change: np.ndarray,
            h: int, w: int) -> np.ndarray:
    """Plausibility of each candidate (``(n, 12)``: corners, line indices): the sides' drawn
    share times the inside's change beyond the band around it; 0 for implausible ones."""
    corners = found[:, :8].reshape(-1, 4, 2)
    line_ids = found[:, 8:].astype(np.int64)
    h_bins, _, v_bins, _ = lines
    side_bins = np.stack([h_bins[line_ids[:, 0]], v_bins[line_ids[:, 1]],
                          h_bins[line_ids[:, 2]], v_bins[line_ids[:, 3]]], axis=1)  # (n, 4)
    start, stop = corners, np.roll(corners, -1, axis=1)  # sides top, right, bottom, left
    along = np.linspace(0.08, 0.92, SIDE_SAMPLES)[None, None, :, None]
    points = start[:, :, None] + (stop - start)[:, :, None] * along  # (n, 4, S, 2)
    normal = _outward_normals(corners)  # (n, 4, 2)
    drawn = np.zeros(points.shape[:3], bool)
    for reach in range(-SIDE_REACH, SIDE_REACH + 1):
        at = points + reach * normal[:, :, None]
        x, y = _pixel(at[..., 0], w), _pixel(at[..., 1], h)
        near = np.abs(bins[y, x] - side_bins[:, :, None]) <= SIDE_ANGLE
        drawn |= edges[y, x] & near
    support = drawn.mean(axis=2)  # (n, 4)
    grid = np.linspace(0.1, 0.9, INSIDE_SAMPLES)
    u, v = np.meshgrid(grid, grid)
    u, v = u.ravel()[None, :, None], v.ravel()[None, :, None]
    tl, tr, br, bl = (corners[:, i][:, None] for i in range(4))
    inner = (1 - v) * ((1 - u) * tl + u * tr) + v * ((1 - u) * bl + u * br)  # (n, P, 2)
    inside = change[_pixel(inner[..., 1], h), _pixel(inner[..., 0], w)].mean(axis=1)
    band_points = np.concatenate([points + d * normal[:, :, None] for d in BAND], axis=2)
    bx, by = band_points[..., 0], band_points[..., 1]
    in_frame = (bx >= 0) & (bx < w) & (by >= 0) & (by < h)
    band_change = change[_pixel(by, h), _pixel(bx, w)]
    # The band's quietest three sides: the crowd in front of a stadium screen moves.
    counts = np.maximum(in_frame.sum(axis=2), 1)
    per_side = np.sort(np.where(in_frame, band_change, 0.0).sum(axis=2) / counts, axis=1)
    outside = per_side[:, :3].mean(axis=1)
    plausible = ((support.min(axis=1) >= MIN_SIDE_SUPPORT) & (support.mean(axis=1) >= MIN_MEAN_SUPPORT)
                 & (inside >= outside + MIN_CHANGE) & (inside >= MIN_CONTRAST * outside))
    # Nested candidates (a screen, the screen with its bezel) are drawn alike; the bezel's is
    # still along the inside of its sides, the screen's moves right up to them: the side whose
    # inner band moves least, against the inside, adds to the score.
    inner_points = np.concatenate([points - d * normal[:, :, None] for d in INNER_BAND], axis=2)
    inner_change = change[_pixel(inner_points[..., 1], h), _pixel(inner_points[..., 0], w)].mean(axis=2)
    lit_sides = np.minimum(inner_change.min(axis=1) / np.maximum(inside, 1e-6), 1.0)
    scores: np.ndarray = np.where(
        plausible, support.mean(axis=1) + SCORE_MIN * support.min(axis=1)
        + SCORE_CHANGE * (inside - outside) / np.maximum(inside + outside, 1e-6) + SCORE_LIT * lit_sides, 0.0)
    return scores


def _outward_normals(corners: np.ndarray) -> np.ndarray:
    """Unit normals of each side (top, right, bottom, left) pointing out of the quadrilateral."""
    side = np.roll(corners, -1, axis=1) - corners
    normal = np.stack([side[..., 1], -side[..., 0]], axis=-1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
    centre = corners.mean(axis=1, keepdims=True)
    midpoint = corners + side / 2
    flip = ((midpoint - centre) * normal).sum(axis=-1, keepdims=True) < 0
    oriented: np.ndarray = np.where(flip, -normal, normal)
    return oriented


def _pixel(coordinate: np.ndarray, size: int) -> npt.NDArray[np.int64]:
    """The pixel holding each continuous coordinate, clipped to the frame."""
    pixel: npt.NDArray[np.int64] = np.clip(np.floor(coordinate).astype(np.int64), 0, size - 1)
    return pixel


# -- refinement -------------------------------------------------------------------------------


def _refit(found: np.ndarray, edges: np.ndarray, bins: np.ndarray, magnitude: np.ndarray) -> Quad | None:
    """The candidate's sides fitted to the edge pixels along them (weighted total least squares),
    crossed again for its corners; ``None`` if that leaves no convex quadrilateral."""
    corners = found[:8].reshape(4, 2)
    ys, xs = np.nonzero(edges)
    px, py = xs + 0.5, ys + 0.5
    lines = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        direction = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
        normal = np.array([-direction[1], direction[0]])
        offset = normal @ a
        across = px * normal[0] + py * normal[1] - offset
        along = (px - a[0]) * direction[0] + (py - a[1]) * direction[1]
        length = float(np.linalg.norm(b - a))
        side_bin = _angle_bins(np.array(normal[0]), np.array(normal[1]))
        near = ((np.abs(across) <= REFIT_REACH) & (along >= 0.05 * length) & (along <= 0.95 * length)
                & (np.abs(bins[ys, xs] - side_bin) <= SIDE_ANGLE))
        if near.sum() < 2:
            lines.append((normal, offset))
            continue
        weight = magnitude[ys[near], xs[near]]
        pts = np.stack([px[near], py[near]], axis=1)
        centre = (pts * weight[:, None]).sum(axis=0) / weight.sum()
        spread = ((pts - centre) * weight[:, None]).T @ (pts - centre)
        _, vectors = np.linalg.eigh(spread)
        fitted = vectors[:, 0]  # the normal: the direction of least spread
        lines.append((fitted, float(fitted @ centre)))
    quad = []
    for i in range(4):
        (n1, r1), (n2, r2) = lines[i - 1], lines[i]
        system = np.array([n1, n2])
        if abs(np.linalg.det(system)) < 1e-6:
            return None
        x, y = np.linalg.solve(system, np.array([r1, r2]))
        quad.append((float(x), float(y)))
    result: Quad = (quad[0], quad[1], quad[2], quad[3])  # tl, tr, br, bl
    if not _convex(np.asarray(result)[None])[0]:
        return None
    return result


def _is_frame(quad: Quad, h: int, w: int) -> bool:
    """Whether ``quad`` is the frame itself."""
    frame = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)
    return bool((np.abs(np.asarray(quad) - frame) <= WHOLE_FRAME).all())


def quad_box(quad: Quad) -> Box:
    """The bounding box of ``quad`` in whole grey pixels: top, bottom, left, right (rows
    ``top:bottom``), like :data:`guard.regions.Box`."""
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (int(math.floor(min(ys))), int(math.ceil(max(ys))), int(math.floor(min(xs))), int(math.ceil(max(xs))))


# -- rectification ----------------------------------------------------------------------------


def homography(quad: Quad, size: tuple[int, int]) -> np.ndarray:
    """The 3×3 homography taking the output rectangle ``size`` (w, h; corners ``(0, 0)`` …
    ``(w, h)``) to ``quad`` (direct linear transform of the four corner pairs)."""
    w, h = size
    source = [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))]
    rows = []
    for (u, v), (x, y) in zip(source, quad):
        rows.append([u, v, 1, 0, 0, 0, -u * x, -v * x, -x])
        rows.append([0, 0, 0, u, v, 1, -u * y, -v * y, -y])
    _, _, vt = np.linalg.svd(np.asarray(rows, np.float64))
    matrix: np.ndarray = vt[-1].reshape(3, 3) / vt[-1][8]
    return matrix


def rectify(greys: np.ndarray, quads: Sequence[Quad], size: tuple[int, int]) -> np.ndarray:
    """Each grey frame ``(n, h, w)`` with its quadrilateral warped to a ``size`` (w, h) rectangle:
    ``(n, size[1], size[0])`` uint8, like :func:`guard.preprocess.crop_resize`. Bilinear samples on
    a grid as fine as the screen's pixels are averaged over each output pixel (box filter), so a
    screen larger than the output does not alias (moiré, noise)."""
    out_w, out_h = size
    out = np.empty((len(greys), out_h, out_w), np.uint8)
    for i, (grey, quad) in enumerate(zip(greys, quads)):
        out[i] = _warp(grey.astype(np.float32), quad, size)
    return out


def _warp(grey: np.ndarray, quad: Quad, size: tuple[int, int]) -> np.ndarray:
    """One frame's quadrilateral warped to ``size`` (see :func:`rectify`)."""
    out_w, out_h = size
    corners = np.asarray(quad)
    sides = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)  # top, right, bottom, left
    # Samples per output pixel along each axis: about one per grey pixel the screen spans.
    fx = max(1, int(math.ceil(max(sides[0], sides[2]) / out_w)))
    fy = max(1, int(math.ceil(max(sides[1], sides[3]) / out_h)))
    matrix = homography(quad, (out_w * fx, out_h * fy))
    v, u = np.mgrid[0:out_h * fy, 0:out_w * fx].astype(np.float64) + 0.5
    den = matrix[2, 0] * u + matrix[2, 1] * v + matrix[2, 2]
    x = (matrix[0, 0] * u + matrix[0, 1] * v + matrix[0, 2]) / den - 0.5
    y = (matrix[1, 0] * u + matrix[1, 1] * v + matrix[1, 2]) / den - 0.5
    h, w = grey.shape
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.minimum(x.astype(np.int64), w - 2), np.minimum(y.astype(np.int64), h - 2)
    ax, ay = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    top = grey[y0, x0] * (1 - ax) + grey[y0, x0 + 1] * ax
    bottom = grey[y0 + 1, x0] * (1 - ax) + grey[y0 + 1, x0 + 1] * ax
    sampled = top * (1 - ay) + bottom * ay
    reduced = sampled.reshape(out_h, fy, out_w, fx).mean(axis=(1, 3))
    rounded: np.ndarray = np.clip(np.rint(reduced), 0, 255).astype(np.uint8)
    return rounded


# -- tracking ---------------------------------------------------------------------------------

#: A track's quadrilateral is the per-corner median of its last this many detections.
QUAD_MEMORY = 5
#: A detection is a track's screen again when every corner is within this many pixels of the
#: track's, or their bounding boxes overlap as a window's must (:data:`guard.regions.SAME_WINDOW`).
SAME_CORNERS = 4.0


@dataclass
class ScreenTrack:
    """One screen over time: its id and quadrilateral (the median of its recent detections)."""

    id: int
    quad: Quad
    seen: list[Quad] = field(default_factory=list)

    @property
    def box(self) -> Box:
        """The quadrilateral's bounding box: top, bottom, left, right in grey pixels."""
        return quad_box(self.quad)

    def saw(self, quad: Quad) -> None:
        """A new detection of this screen: the track's quadrilateral becomes the median of the
        largest group of its recent detections that agree (every corner within
        :data:`SAME_CORNERS` pixels; of tied groups, the one nearest the quadrilateral so far).
        A side taken from the wrong line
        (a shelf beside the TV, the bezel's outer edge where the picture is dark) is off by 5–25
        pixels now and then; an element-wise median of the last few let two such detections pull
        the screen off by half their error."""
        self.seen = [*self.seen[-(QUAD_MEMORY - 1):], quad]
        corners = np.asarray(self.seen, np.float64)
        agree = np.abs(corners[:, None] - corners[None]).max(axis=(2, 3)) <= SAME_CORNERS
        counts = agree.sum(axis=1)
        tied = np.flatnonzero(counts == counts.max())
        medians = [np.median(corners[agree[i]], axis=0) for i in tied]
        median = min(medians, key=lambda m: float(np.abs(m - np.asarray(self.quad)).max()))  # the steadier
        self.quad = tuple((float(x), float(y)) for x, y in median)  # type: ignore[assignment]

    #: Detections in a row that did not find this screen.
    missed: int = 0

    def likeness(self, quad: Quad) -> float:
        """How alike ``quad`` and this screen are: 1 when every corner is within
        :data:`SAME_CORNERS` pixels, else their bounding boxes' intersection over union."""
        if np.abs(np.asarray(quad) - np.asarray(self.quad)).max() <= SAME_CORNERS:
            return 1.0
        return overlap(self.box, quad_box(quad))


class ScreenTracker(Tracker[Quad, ScreenTrack]):
    """Screens in view of each frame (see :class:`guard.regions.Tracker`), found by
    :func:`find_screens` every 2 s (a screen filmed by a hand stays where it is; screens cost
    the most to find)."""

    every = 2 * EVERY

    def _detect(self, frames: np.ndarray) -> list[ScreenTrack]:
        return self._assign(find_screens(frames))

    def _likeness(self, track: ScreenTrack, shape: Quad) -> float:
        return track.likeness(shape)

    def _start(self, track_id: int, shape: Quad) -> ScreenTrack:
        return ScreenTrack(track_id, shape, [shape])
