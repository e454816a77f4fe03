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

from dataclasses import dataclass, field

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


def _line_positions(edges: np.ndarray, min_length: int) -> np.ndarray:
    """Indices of the rows of ``edges`` holding a run of at least ``min_length`` True values
    (gaps of one or two pixels bridged)."""
    bridged = edges.copy()
    for shift in (1, 2):
        bridged[:, shift:-shift] |= edges[:, : -2 * shift] & edges[:, 2 * shift:]
    padded = np.pad(bridged.astype(np.int8), ((0, 0), (1, 1)))
    steps = np.diff(padded, axis=1)
    found = []
    for row in range(len(edges)):
        starts, ends = np.flatnonzero(steps[row] == 1), np.flatnonzero(steps[row] == -1)
        if len(starts) and (ends - starts).max() >= min_length:
            found.append(row)
    return np.asarray(found, dtype=np.int64)


def find_windows(history: np.ndarray) -> list[Box]:
    """Rectangles of persistent edges with moving video inside, in a history ``(k, h, w)`` of
    grey frames (k ≥ 2), most moving first; boxes are the inside of the drawn sides."""
    frames = history.astype(np.float32)
    k, h, w = frames.shape
    vertical = np.abs(np.diff(frames, axis=2)).min(axis=0) > EDGE_LEVEL  # (h, w-1): between c, c+1
    horizontal = np.abs(np.diff(frames, axis=1)).min(axis=0) > EDGE_LEVEL  # (h-1, w)
    columns = _line_positions(vertical.T, int(MIN_LINE * h))
    rows = _line_positions(horizontal, int(MIN_LINE * w))
    if len(columns) < 2 or len(rows) < 2:
        return []
    moving = (np.abs(np.diff(frames, axis=0)) > MOTION_LEVEL).mean(axis=0) >= 0.5
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
    kept: list[Box] = []
    for top, bottom, left, right in boxes.tolist():
        box = (top, bottom, left, right)
        if all(overlap(box, other) < NEAR_COPY for other in kept):
            kept.append(box)
            if len(kept) == most:
                break
    return np.asarray(kept, dtype=np.int64).reshape(-1, 4)


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

    def border(line_moving: np.ndarray, line_mean: np.ndarray) -> bool:
        return bool(line_moving.mean() < STILL_LINE and line_mean.std() < FLAT_LINE)

    for _ in range(MAX_TRIM):
        if not border(moving[top, left:right], mean[top, left:right]):
            break
        top += 1
    for _ in range(MAX_TRIM):
        if not border(moving[bottom - 1, left:right], mean[bottom - 1, left:right]):
            break
        bottom -= 1
    for _ in range(MAX_TRIM):
        if not border(moving[top:bottom, left], mean[top:bottom, left]):
            break
        left += 1
    for _ in range(MAX_TRIM):
        if not border(moving[top:bottom, right - 1], mean[top:bottom, right - 1]):
            break
        right -= 1
    return top, bottom, left, right


def _supported_rectangles(rows: np.ndarray, columns: np.ndarray, horizontal: np.ndarray,
                          vertical: np.ndarray, h: int, w: int) -> np.ndarray:
    """Every rectangle of candidate lines whose four sides are drawn (:data:`MIN_SUPPORT`),
    of a plausible size; as inside boxes ``(n, 4)``: top, bottom, left, right."""
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
    ok = (sides >= MIN_SUPPORT) & (area >= AREA_RANGE[0]) & (area <= AREA_RANGE[1])
    p, q = np.nonzero(ok)
    return np.stack([top[p], bottom[p], left[q], right[q]], axis=1)


def _drawn(prefix: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Edge pixels of each line (rows of ``prefix``, its running sums) between every
    ``start``/``stop`` pair: ``(lines, pairs)``."""
    drawn: np.ndarray = prefix[:, stop] - prefix[:, start]
    return drawn


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[2], b[2]))
    union = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / union if union else 0.0


#: A track's box is the median of its last this many detections: one thrown off (an alert
#: popping up over the window's edge) is outvoted.
BOX_MEMORY = 5
#: A window no detection finds is still read where it was for this many detections (2 s).
HOLD = 2


@dataclass
class RegionTrack:
    """One window over time: its id and its box (the median of its recent detections)."""

    id: int
    box: Box
    seen: list[Box] = field(default_factory=list)
    #: Detections in a row that did not find this window.
    missed: int = 0

    def saw(self, box: Box) -> None:
        """A new detection of this window."""
        self.seen = [*self.seen[-(BOX_MEMORY - 1):], box]
        top, bottom, left, right = (int(v) for v in np.median(np.asarray(self.seen), axis=0).round())
        self.box = (top, bottom, left, right)


class RegionTracker:
    """Windows in view of each frame of a sequence fed batch by batch (files and live alike):
    a detection every :data:`EVERY` frames over the trailing :data:`HISTORY` frames; a window
    found again near where it was keeps its track."""

    def __init__(self) -> None:
        self._history: list[np.ndarray] = []
        self._since = EVERY  # detect at the first full history
        self._tracks: list[RegionTrack] = []
        self._current: list[RegionTrack] = []
        self._next_id = 0

    def add(self, greys: np.ndarray) -> list[list[RegionTrack]]:
        """For each grey frame ``(n, h, w)``: the windows in view (tracks with their box)."""
        out = []
        for grey in greys:
            self._history = [*self._history[-(HISTORY - 1):], grey]
            self._since += 1
            if len(self._history) == HISTORY and self._since >= EVERY:
                self._since = 0
                self._current = self._assign(find_windows(np.stack(self._history)))
            out.append(list(self._current))
        return out

    def _assign(self, boxes: list[Box]) -> list[RegionTrack]:
        """The tracks of one detection's windows: each window goes to the track it overlaps most
        (at least :data:`SAME_WINDOW`), each track takes at most one window per detection (a
        window's larger variant, or a box taking in the webcam beside it, must not pull the
        window's median box), the others start tracks of their own."""
        pairs = sorted(((overlap(track.box, box), t, b) for t, track in enumerate(self._tracks)
                        for b, box in enumerate(boxes)), reverse=True)
        chosen: dict[int, RegionTrack] = {}
        taken: set[int] = set()
        for share, t, b in pairs:
            if share < SAME_WINDOW:
                break
            if b not in chosen and t not in taken:
                chosen[b] = self._tracks[t]
                taken.add(t)
                self._tracks[t].saw(boxes[b])
        for b, box in enumerate(boxes):
            if b not in chosen:
                chosen[b] = RegionTrack(self._next_id, box, [box])
                self._next_id += 1
                self._tracks.append(chosen[b])
        for track in self._tracks:
            track.missed = 0 if track in chosen.values() else track.missed + 1
        self._tracks = [track for track in self._tracks if track.missed <= HOLD]
        # A window missed by a detection or two (still video inside it for a moment) is still
        # there: it keeps being read, so its track's readings run on without holes — a hole
        # would let a copy's span be stretched over frames never read.
        return [*(chosen[b] for b in range(len(boxes))), *(t for t in self._tracks if t.missed)]
