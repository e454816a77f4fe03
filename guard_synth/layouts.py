"""Restream layouts for issue 14 ("Picture-in-picture and camcorded copies"), in NumPy and Pillow.

Three ways a pirate shows a copy without it filling the picture:

- :func:`streamer_layout`: the copy in a 16:9 window of a streamer's layout (patterned
  background, webcam with a moving face, scrolling chat, pop-up alerts);
- :func:`camcorded_tv`: the copy on a TV in a room, filmed by a phone at an angle (perspective,
  bezel, moiré, glare, blur, colour cast, hand shake, sensor noise);
- :func:`stadium_screen`: the copy on a stadium's big screen far away, partly hidden by the
  heads of the crowd in front.

Each returns an object called as ``renderer(frame, t) -> frame`` (map it over a copy's frames
with :func:`map_frames`) that also tells where the copy is, for the ground truth: the window
box (``box``) or the screen quadrilateral (``quad``, corners top-left, top-right, bottom-right,
bottom-left, in output pixels). :func:`unrelated_layout` draws a streamer layout around
content unrelated to any reference, for negatives.

Everything is a pure function of the seed, the parameters and the time ``t``: the same
arguments give the same pixels, whatever order frames are asked in.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from guard_synth.broadcast import (
    Size,
    _check_size,
    _ellipse,
    _noise_texture,
    _perspective_coeffs,
    _rect,
    _renderer,
    _rng,
    _seed,
    _smooth_path,
    _text_strip,
    _to_u8,
    resize,
)

#: Where a streamer's game window may sit.
POSITIONS: tuple[str, ...] = ("tl", "tr", "bl", "br", "c", "center")

Point = tuple[float, float]
Box = tuple[int, int, int, int]

_TAG_LAYOUT, _TAG_TV, _TAG_STADIUM, _TAG_UNRELATED, _TAG_NOISE = 1401, 1402, 1403, 1404, 1405


def map_frames(renderer, frames: Iterable[np.ndarray], fps: float, start: float = 0.0) -> Iterator[np.ndarray]:
    """Apply ``renderer(frame, t)`` to frames sampled at ``fps`` from time ``start``."""
    for i, frame in enumerate(frames):
        yield renderer(frame, round(start + i / fps, 9))


def _frame_rng(seed: int, tag: int, t: float) -> np.random.Generator:
    """Per-frame randomness that depends on the time only (not on the order of calls)."""
    return _rng(seed, tag, int(round(t * 1000)))


def _poly_area(points: Sequence[Point]) -> float:
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def _bbox(points: Sequence[Point]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


# --------------------------------------------------------------------------------------------
# Streamer layout


def streamer_window(area: float, position: str, size: Size) -> Box:
    """The game window (x0, y0, x1, y1) of a streamer layout: 16:9, ``area`` of the frame."""
    W, H = _check_size(size)
    if not 0.01 <= area <= 0.7:
        raise ValueError("area must be in [0.01, 0.7]")
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}")
    pos = "cc" if position in ("c", "center") else position
    ww = int(round(math.sqrt(area * W * H * 16 / 9)))
    wh = int(round(ww * 9 / 16))
    margin = _border(H) + max(2, int(round(0.03 * H)))
    x0 = {"l": margin, "r": W - margin - ww, "c": (W - ww) // 2}[pos[1]]
    y0 = {"t": margin, "b": H - margin - wh, "c": (H - wh) // 2}[pos[0]]
    return x0, y0, x0 + ww, y0 + wh


def _border(H: int) -> int:
    return max(1, int(round(H / 110)))


class StreamerLayout:
    """A streamer's layout around a copied frame: call ``layout(frame, t)``.

    ``box`` is the game window (x0, y0, x1, y1) in output pixels, the copy filling it
    exactly; ``webcam_box``, ``chat_box`` and ``alert_box`` locate the other parts.
    """

    def __init__(self, area: float, position: str, seed: int, size: Size):
        self.size = W, H = _check_size(size)
        self.seed = _seed(seed)
        self.area, self.position = float(area), position
        self.box = x0, y0, x1, y1 = streamer_window(area, position, size)
        rng = _rng(self.seed, _TAG_LAYOUT)
        b = self.border = _border(H)
        m = max(2, int(round(0.03 * H)))
        gap = b + m
        # The side column (webcam on top, chat below) goes on the wider side of the window.
        left, right = (m, x0 - gap), (x1 + gap, W - m)
        cx0, cx1 = left if left[1] - left[0] > right[1] - right[0] else right
        cw = max(8, min(cx1 - cx0, int(0.26 * W)))
        cx0 = cx1 - cw if (cx0, cx1) == left else cx0
        cam_h = max(6, min(int(round(cw * 3 / 4)), int(0.35 * H)))
        self.webcam_box = (cx0, m + b, cx0 + cw, m + b + cam_h)
        self.chat_box = (cx0, self.webcam_box[3] + gap, cx0 + cw, H - m - b)
        self.alert_box = self._alert_place(W, H, m, b)
        self.accent = _colour(rng, 120, 256)
        self.cam_accent = _colour(rng, 120, 256)
        self.alert_period = float(rng.uniform(6.5, 7.5))
        self.alert_phase = float(rng.uniform(0.0, self.alert_period))
        self.alert_seconds = 2.0
        self.chat_speed = float(rng.uniform(0.6, 1.2))  # lines per second
        self._base = self._background(rng, W, H)
        self._chat = self._chat_image(rng)
        self._face = _Face(rng, self.webcam_box)
        self._alert_colours = [(_colour(rng, 60, 230), _colour(rng, 200, 256)) for _ in range(8)]

    def _alert_place(self, W: int, H: int, m: int, b: int) -> Box:
        x0, y0, x1, y1 = self.box
        above, below = y0 - b - 2 * m, H - (y1 + b + 2 * m)
        bh = int(round(min(0.1 * H, 0.9 * max(above, below))))
        bw = int(round(0.7 * (x1 - x0)))
        ax0 = (x0 + x1 - bw) // 2
        if bh < 0.05 * H:  # no room around the window: the alert covers its lower part
            bh = int(round(0.09 * H))
            return ax0, y1 - bh - m, ax0 + bw, y1 - m
        ay0 = y1 + b + m + (below - bh) // 2 if below >= above else m + (above - bh) // 2
        return ax0, ay0, ax0 + bw, ay0 + bh

    def _background(self, rng, W: int, H: int) -> np.ndarray:
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        base = np.array(_colour(rng, 14, 46), np.float32)
        period = max(4.0, H * float(rng.uniform(0.04, 0.09)))
        stripes = ((xx + yy) // period % 2).astype(np.float32)
        dots = (np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period) > 0.85).astype(np.float32)
        shade = 1.0 - 0.35 * yy / H
        tex = _noise_texture(rng, W, H, 8, 0.1)
        img = base * shade[..., None] + (7 * stripes + 10 * dots + 5 * tex)[..., None]
        img = _to_u8(img)
        for (bx0, by0, bx1, by1), colour in ((self.box, self.accent), (self.webcam_box, self.cam_accent),
                                             (self.chat_box, self.accent)):
            b = self.border
            _rect(img, bx0 - b, by0 - b, bx1 + b, by1 + b, colour)
            _rect(img, bx0, by0, bx1, by1, (0, 0, 0))
        cx0, cy0, cx1, cy1 = self.chat_box
        _rect(img, cx0, cy0, cx1, cy1, (22, 22, 30))
        return img

    def _chat_image(self, rng) -> np.ndarray:
        """A tall column of chat lines (coloured name, grey message); scrolled with time."""
        cx0, cy0, cx1, cy1 = self.chat_box
        cw = cx1 - cx0
        lh = max(6, int(round(self.size[1] / 26)))
        lines = 64
        img = np.empty((lines * lh, cw, 3), np.uint8)
        img[:] = (22, 22, 30)
        glyphs = _text_strip(lh, 4096, self.seed % 100_000 + 7000, (255, 255, 255), (0, 0, 0))[..., 0] > 127
        pad = max(1, cw // 30)
        for i in range(lines):
            row = img[i * lh : (i + 1) * lh]
            name_len = int(rng.integers(max(2, cw // 8), max(3, cw // 3)))
            off = int(rng.integers(0, glyphs.shape[1] - 2 * cw))
            x = pad
            name = glyphs[:, off : off + min(name_len, cw - x)]
            row[:, x : x + name.shape[1]][name] = _colour(rng, 90, 256)
            x += name.shape[1] + max(2, lh // 2)
            msg_len = int(rng.integers(1, max(2, cw - x - pad + 1))) if x < cw - pad else 0
            msg = glyphs[:, off + cw : off + cw + msg_len]
            row[:, x : x + msg.shape[1]][msg] = (215, 215, 220)
        return img

    def alert_visible(self, t: float) -> bool:
        """Whether a pop-up alert shows at time ``t`` (2 s every ~7 s)."""
        return (t + self.alert_phase) % self.alert_period < self.alert_seconds

    def __call__(self, frame: np.ndarray, t: float) -> np.ndarray:
        """The layout at time ``t`` with ``frame`` (any size) scaled into the game window."""
        out = self._base.copy()
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = resize(frame, (x1 - x0, y1 - y0))
        self._face.draw(out, t)
        cx0, cy0, cx1, cy1 = self.chat_box
        if cy1 > cy0:
            rows = (int(math.floor(t * self.chat_speed * self._chat.shape[0] / 64)) + np.arange(cy1 - cy0))
            out[cy0:cy1, cx0:cx1] = self._chat[rows % self._chat.shape[0]]
        if self.alert_visible(t):
            self._draw_alert(out, t)
        return out

    def _draw_alert(self, out: np.ndarray, t: float) -> None:
        local = (t + self.alert_phase) % self.alert_period
        k = int((t + self.alert_phase) // self.alert_period)
        grow = min(1.0, local / 0.25, (self.alert_seconds - local) / 0.25)
        ax0, ay0, ax1, ay1 = self.alert_box
        bw, bh = ax1 - ax0, ay1 - ay0
        fill, text_colour = self._alert_colours[k % len(self._alert_colours)]
        banner = np.empty((bh, bw, 3), np.uint8)
        banner[:] = fill
        _ellipse(banner, bh / 2, bh / 2, bh * 0.35, bh * 0.35, text_colour)
        th = max(5, int(bh * 0.55))
        if bw - bh - 2 > 0:
            text = _text_strip(th, bw - bh, self.seed % 1000 + 100 * (k % 16), text_colour, fill)
            y = (bh - th) // 2
            banner[y : y + th, bh : bw] = text[:, : bw - bh]
        edge = max(1, bh // 10)
        banner[:edge], banner[-edge:] = text_colour, text_colour
        shown = max(1, int(round(bw * max(0.0, grow))))
        s0 = (bw - shown) // 2
        out[ay0:ay1, ax0 + s0 : ax0 + s0 + shown] = banner[:, s0 : s0 + shown]


class _Face:
    """A webcam shot: a head and shoulders that drift, blink and talk."""

    def __init__(self, rng, box: Box):
        self.box = box
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        yy = np.linspace(0, 1, max(1, h), dtype=np.float32)[:, None, None]
        wall = np.array(_colour(rng, 40, 110), np.float32)
        self.bg = _to_u8(wall * (0.6 + 0.4 * yy) + np.zeros((1, max(1, w), 3), np.float32))
        self.skin = _colour(rng, 150, 235)
        self.hair = _colour(rng, 10, 90)
        self.shirt = _colour(rng, 30, 220)
        self.px, self.py = _smooth_path(rng, 3, 0.1, 0.5), _smooth_path(rng, 3, 0.1, 0.5)
        self.blink_period = float(rng.uniform(2.8, 4.2))
        self.blink_phase = float(rng.uniform(0, self.blink_period))
        self.talk = _smooth_path(rng, 3, 0.2, 0.6)

    def draw(self, out: np.ndarray, t: float) -> None:
        x0, y0, x1, y1 = self.box
        img = self.bg.copy()
        h, w = img.shape[:2]
        u = h / 10.0
        cx = w * (0.5 + 0.1 * self.px(t))
        cy = h * (0.46 + 0.05 * self.py(t))
        _ellipse(img, cx, h + 1.5 * u, 4.2 * u, 3.6 * u, self.shirt)  # shoulders
        _ellipse(img, cx, cy - 0.6 * u, 2.4 * u, 2.6 * u, self.hair)
        _ellipse(img, cx, cy, 2.1 * u, 2.7 * u, self.skin)
        closed = (t + self.blink_phase) % self.blink_period < 0.15
        eye_ry = 0.08 * u if closed else 0.45 * u
        for side in (-1, 1):
            _ellipse(img, cx + side * 0.8 * u, cy - 0.4 * u, 0.4 * u, eye_ry, (25, 25, 30))
        talking = self.talk(t) > -0.2
        mouth = 0.15 + (0.45 * (0.5 + 0.5 * math.sin(11.0 * t)) if talking else 0.0)
        _ellipse(img, cx, cy + 1.4 * u, 0.8 * u, mouth * u, (90, 30, 35))
        out[y0:y1, x0:x1] = img


def streamer_layout(area: float, position: str, seed: int, size: Size) -> StreamerLayout:
    """A streamer's layout: the copy in a 16:9 window covering ``area`` (e.g. 0.15, 0.30, 0.60)
    of the frame at ``position`` ("tl", "tr", "bl", "br", "c"/"center"), with a thin coloured
    border, a dark patterned background, a webcam with a moving face, a chat column scrolling
    up and a pop-up alert for 2 s every ~7 s. ``.box`` is the window in output pixels."""
    return StreamerLayout(area, position, seed, size)


class UnrelatedLayout:
    """A streamer layout around content related to no reference: ``layout(t) -> frame``."""

    def __init__(self, seed: int, size: Size, area: float | None = None, position: str | None = None,
                 styles: Sequence[str] = ("shapes", "concert")):
        rng = _rng(seed, _TAG_UNRELATED)
        area = float(rng.choice([0.15, 0.3, 0.45, 0.6])) if area is None else area
        position = str(rng.choice(["tl", "tr", "bl", "br", "c"])) if position is None else position
        self.layout = StreamerLayout(area, position, seed, size)
        self.box = x0, y0, x1, y1 = self.layout.box
        content_seed = int(rng.integers(1 << 62))
        self.content = _renderer("broadcast", content_seed, (max(16, x1 - x0), max(16, y1 - y0)),
                                 styles=list(styles))

    def __call__(self, t: float) -> np.ndarray:
        """The layout at time ``t``."""
        t = round(float(t), 9)
        return self.layout(self.content.render(t), t)

    def frames(self, fps: float, duration: float, start: float = 0.0) -> Iterator[np.ndarray]:
        """``duration`` seconds of frames at ``fps`` from ``start``."""
        for i in range(int(round(duration * fps))):
            yield self(round(start + i / fps, 9))


def unrelated_layout(seed: int, size: Size, area: float | None = None, position: str | None = None,
                     styles: Sequence[str] = ("shapes", "concert")) -> UnrelatedLayout:
    """A streamer layout (window area and position from ``seed`` unless given) around synthetic
    content of ``styles`` (no photos by default), for negatives: call it with ``t``."""
    return UnrelatedLayout(seed, size, area, position, styles)


# --------------------------------------------------------------------------------------------
# A screen filmed by a phone


def _homography(dst: Sequence[Point], src: Sequence[Point]) -> np.ndarray:
    a = _perspective_coeffs(dst, src)
    return np.array([[a[0], a[1], a[2]], [a[3], a[4], a[5]], [a[6], a[7], 1.0]])


class _QuadWarp:
    """Inverse-homography bilinear sampling of a source image onto a quadrilateral.

    The tables are built once: per frame, the source is resized to about the quad's size in
    pixels (so sampling never aliases) and gathered with four weighted look-ups.
    """

    def __init__(self, quad: Sequence[Point], canvas_shape: tuple[int, int]):
        Hc, Wc = canvas_shape
        qx0, qy0, qx1, qy1 = _bbox(quad)
        x0, y0 = max(0, int(math.floor(qx0)) - 1), max(0, int(math.floor(qy0)) - 1)
        x1, y1 = min(Wc, int(math.ceil(qx1)) + 2), min(Hc, int(math.ceil(qy1)) + 2)
        self.box = x0, y0, x1, y1
        edge = [math.dist(quad[i], quad[(i + 1) % 4]) for i in range(4)]
        sw, sh = max(2, math.ceil(max(edge[0], edge[2]))), max(2, math.ceil(max(edge[1], edge[3])))
        self.src_size = sw, sh
        m = _homography(quad, [(0, 0), (sw, 0), (sw, sh), (0, sh)])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
        den = m[2, 0] * xx + m[2, 1] * yy + 1.0
        u = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]) / den
        v = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]) / den
        # Coverage of the edge pixels, in (roughly) pixels: anti-aliased borders.
        alpha = np.clip(np.minimum(u, sw - u) + 0.5, 0, 1) * np.clip(np.minimum(v, sh - v) + 0.5, 0, 1)
        self.mask = alpha > 0
        self.alpha = alpha[self.mask].astype(np.float32)[:, None]
        self.u = u[self.mask] / sw  # normalised screen coordinates of each covered pixel
        self.v = v[self.mask] / sh
        uu = np.clip(u[self.mask] - 0.5, 0, sw - 1)
        vv = np.clip(v[self.mask] - 0.5, 0, sh - 1)
        ix, iy = np.floor(uu).astype(np.int64), np.floor(vv).astype(np.int64)
        ix1, iy1 = np.minimum(ix + 1, sw - 1), np.minimum(iy + 1, sh - 1)
        fx, fy = (uu - ix).astype(np.float32)[:, None], (vv - iy).astype(np.float32)[:, None]
        self.idx = (iy * sw + ix, iy * sw + ix1, iy1 * sw + ix, iy1 * sw + ix1)
        self.weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)

    def sample(self, frame: np.ndarray) -> np.ndarray:
        """The source's colours at every covered pixel, (N, 3) float32."""
        src = resize(frame, self.src_size).reshape(-1, 3).astype(np.float32)
        out = src[self.idx[0]] * self.weights[0]
        for i, w in zip(self.idx[1:], self.weights[1:]):
            out += src[i] * w
        return out


def _project_rect(width: float, height: float, yaw: float, pitch: float, roll: float, dist: float,
                  margins: tuple[float, float, float, float] = (0, 0, 0, 0)) -> list[Point]:
    """Corners (tl, tr, br, bl) of a centred ``width``×``height`` rectangle plus margins (left,
    top, right, bottom), turned by yaw and pitch (radians), seen by a pinhole at ``dist``."""
    left, top, right, bottom = margins
    corners = [(-width / 2 - left, -height / 2 - top), (width / 2 + right, -height / 2 - top),
               (width / 2 + right, height / 2 + bottom), (-width / 2 - left, height / 2 + bottom)]
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    out = []
    for X, Y in corners:
        y1, z1 = Y * cp, Y * sp
        x2, z2 = X * cy + z1 * sy, -X * sy + z1 * cy
        px, py = x2 / (dist + z2), y1 / (dist + z2)
        out.append((px * cr - py * sr, px * sr + py * cr))
    return out


def _place(shapes: list[list[Point]], fill: float, centre: Point, size: tuple[int, int], margin: float,
           min_fill: float) -> list[list[Point]]:
    """Scale and move ``shapes`` together so the first covers ``fill`` of the frame around
    ``centre`` and the last (the outline) stays inside the frame (shrinking down to ``min_fill``)."""
    W, H = size
    sx, sy = np.mean([p[0] for p in shapes[0]]), np.mean([p[1] for p in shapes[0]])
    area = _poly_area(shapes[0])
    placed = shapes
    for _ in range(60):
        s = math.sqrt(fill * W * H / area)
        placed = [[(centre[0] + s * (x - sx), centre[1] + s * (y - sy)) for x, y in pts] for pts in shapes]
        bx0, by0, bx1, by1 = _bbox(placed[-1])
        if (bx1 - bx0 <= W - 2 * margin and by1 - by0 <= H - 2 * margin) or fill <= min_fill:
            dx = max(0.0, margin - bx0) - max(0.0, bx1 - (W - margin))
            dy = max(0.0, margin - by0) - max(0.0, by1 - (H - margin))
            return [[(x + dx, y + dy) for x, y in pts] for pts in placed]
        fill = max(min_fill, fill * 0.97)
    return placed


class _FilmedScreen:
    """A screen showing the copy in a scene, filmed by a phone; subclasses draw the scene.

    Drawn at ``render_width`` (at most) on a canvas padded for the hand shake, then shaken,
    blurred, tinted, vignetted, given sensor noise and scaled to ``size``.
    """

    shake_px = 0.008  # of the width
    shake_degrees = 0.5
    moire_amount = 0.16

    def __init__(self, seed: int, size: Size, render_width: int | None, tag: int):
        self.seed = _seed(seed)
        self.size = W, H = _check_size(size)
        rw = min(W, int(render_width)) if render_width else W
        rh = max(16, int(round(rw * H / W)))
        self.render_size = rw, rh
        self.pad = max(4, int(math.ceil(0.04 * rw)))
        self._tag = tag
        self._geo = _rng(self.seed, tag, 1)
        shake = _rng(self.seed, tag, 2)
        self._sx, self._sy, self._sr = (_smooth_path(shake, 3, 0.2, 1.2) for _ in range(3))
        self._screen: list[Point] = []  # render pixels (no padding), set by the subclass
        self._scene: dict | None = None

    # -- geometry ------------------------------------------------------------------------------

    def _to_output(self, pts: Sequence[Point]) -> list[tuple[float, float]]:
        fx, fy = self.size[0] / self.render_size[0], self.size[1] / self.render_size[1]
        return [(round(float(x) * fx, 2), round(float(y) * fy, 2)) for x, y in pts]

    @property
    def quad(self) -> list[tuple[float, float]]:
        """The screen's corners (tl, tr, br, bl) in output pixels, at rest (without shake)."""
        return self._to_output(self._screen)

    def _shake(self, t: float) -> tuple[float, float, float]:
        rw = self.render_size[0]
        return (self.shake_px * rw * self._sx(t), self.shake_px * rw * self._sy(t),
                math.radians(self.shake_degrees) * self._sr(t))

    def quad_at(self, t: float) -> list[tuple[float, float]]:
        """The screen's corners in output pixels at time ``t`` (moved by the hand shake)."""
        dx, dy, a = self._shake(t)
        cx, cy = self.render_size[0] / 2, self.render_size[1] / 2
        c, s = math.cos(a), math.sin(a)
        moved = [(c * (x - cx) - s * (y - cy) + cx + dx, s * (x - cx) + c * (y - cy) + cy + dy)
                 for x, y in self._screen]
        return self._to_output(moved)

    def screen_fraction(self) -> float:
        """How much of the frame the screen covers (at rest)."""
        return _poly_area(self.quad) / (self.size[0] * self.size[1])

    # -- the static scene ----------------------------------------------------------------------

    def _canvas_pts(self, pts: Sequence[Point]) -> list[Point]:
        return [(x + self.pad, y + self.pad) for x, y in pts]

    def _build(self) -> dict:
        rng = _rng(self.seed, self._tag, 3)
        rw, rh = self.render_size
        Wc, Hc = rw + 2 * self.pad, rh + 2 * self.pad
        room = self._draw_scene(rng, Wc, Hc)
        warp = _QuadWarp(self._canvas_pts(self._screen), (Hc, Wc))
        # Moiré: two fine gratings whose product beats into broad bands (the fine part blurs away).
        scale = rw / 640
        p1, p2 = rng.uniform(2.4, 2.8) * scale, rng.uniform(2.85, 3.2) * scale
        a1 = rng.uniform(0, np.pi)
        a2 = a1 + rng.uniform(0.04, 0.1) * rng.choice([-1, 1])
        x0, y0 = warp.box[:2]
        ys, xs = np.nonzero(warp.mask)
        xs, ys = xs + x0 + 0.5, ys + y0 + 0.5
        ph1 = (xs * math.cos(a1) + ys * math.sin(a1)) * (2 * np.pi / max(p1, 1.2))
        ph2 = (xs * math.cos(a2) + ys * math.sin(a2)) * (2 * np.pi / max(p2, 1.3))
        moire = 1.0 + self.moire_amount * np.sin(ph1) * np.sin(ph2)
        gain = float(rng.uniform(0.85, 1.0))
        # Glare: a soft bright ellipse somewhere on the screen (in screen coordinates).
        gu, gv = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.7)
        gru, grv = rng.uniform(0.12, 0.25), rng.uniform(0.1, 0.2)
        glare = rng.uniform(60, 110) * np.exp(-(((warp.u - gu) / gru) ** 2 + ((warp.v - gv) / grv) ** 2))
        tint = np.array([1.0, 0.98, 0.92], np.float32)
        yy, xx = np.ogrid[0:rh, 0:rw]
        vignette = 1.0 - 0.3 * (((xx - rw / 2) / (rw / 2)) ** 2 + ((yy - rh / 2) / (rh / 2)) ** 2)
        cast = self._cast(rng)
        return {
            "room": room.astype(np.float32),
            "warp": warp,
            "mul": (gain * moire).astype(np.float32)[:, None],
            "add": (glare[:, None] * tint).astype(np.float32),
            "shade": (vignette[..., None] * cast).astype(np.float32),
            "blur": float(rng.uniform(0.7, 1.3)) * max(0.5, scale),
            "noise": self._noise_bank(rng, rw, rh, float(rng.uniform(3.0, 6.0))),
        }

    @staticmethod
    def _noise_bank(rng, rw: int, rh: int, level: float) -> list[np.ndarray]:
        """A few sensor-noise fields (luma plus some chroma); frames pick one, flipped or not."""
        return [rng.standard_normal((rh, rw, 1), dtype=np.float32) * level
                + rng.standard_normal((rh, rw, 3), dtype=np.float32) * (0.4 * level) for _ in range(6)]

    def _cast(self, rng) -> np.ndarray:
        casts = [(1.08, 0.98, 0.82), (0.86, 0.96, 1.1), (1.0, 1.02, 0.94), (1.05, 0.95, 1.0)]
        base = np.array(casts[int(rng.integers(len(casts)))], np.float32)
        return base * rng.uniform(0.97, 1.03, 3).astype(np.float32)

    def _draw_scene(self, rng, Wc: int, Hc: int) -> np.ndarray:
        raise NotImplementedError

    def _foreground(self, canvas: np.ndarray, t: float) -> None:
        """What passes in front of the screen (nothing by default)."""

    # -- frames --------------------------------------------------------------------------------

    def __call__(self, frame: np.ndarray, t: float) -> np.ndarray:
        """The scene at time ``t`` with ``frame`` (any size) on the screen."""
        if self._scene is None:
            self._scene = self._build()
        sc = self._scene
        warp: _QuadWarp = sc["warp"]
        canvas = sc["room"].copy()
        x0, y0, x1, y1 = warp.box
        sub = canvas[y0:y1, x0:x1]
        current = sub[warp.mask]
        shown = warp.sample(frame) * sc["mul"] + sc["add"]
        sub[warp.mask] = current + (shown - current) * warp.alpha
        self._foreground(canvas, t)
        rw, rh = self.render_size
        dx, dy, a = self._shake(t)
        c, s = math.cos(a), math.sin(a)
        cx, cy, p = rw / 2 + dx, rh / 2 + dy, self.pad
        coeffs = (c, s, -c * cx - s * cy + rw / 2 + p, -s, c, s * cx - c * cy + rh / 2 + p)
        img = Image.fromarray(_to_u8(canvas)).transform((rw, rh), Image.Transform.AFFINE, coeffs,
                                                        resample=Image.Resampling.BILINEAR)
        img = img.filter(ImageFilter.GaussianBlur(radius=sc["blur"]))
        x = np.asarray(img, dtype=np.float32) * sc["shade"]
        pick = int(_frame_rng(self.seed, _TAG_NOISE + self._tag, t).integers(4 * len(sc["noise"])))
        noise = sc["noise"][pick // 4]
        x += noise[:: 1 - 2 * (pick & 1), :: 1 - (pick & 2)]
        out = _to_u8(x + 4.0)
        return out if (rw, rh) == self.size else resize(out, self.size)


def _draw(size: tuple[int, int], base: np.ndarray) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.fromarray(_to_u8(base))
    return img, ImageDraw.Draw(img)


def _glow(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour, amount: float) -> None:
    """Add a soft light (a Gaussian blob) to a float image, in place."""
    h, w = img.shape[:2]
    yy, xx = np.ogrid[0:h, 0:w]
    blob = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)).astype(np.float32)
    img += amount * blob[..., None] * (np.array(colour, np.float32) / 255.0)


class CamcordedTV(_FilmedScreen):
    """The copy on a TV in a room, filmed by a phone: call ``tv(frame, t)``; ``quad`` is the screen."""

    def __init__(self, seed: int, angle_deg: float = 18.0, size: Size = (640, 360), render_width: int | None = 640):
        super().__init__(seed, size, render_width, _TAG_TV)
        self.angle_deg = float(angle_deg)
        g = self._geo
        yaw = math.radians(self.angle_deg) * g.choice([-1, 1])
        pitch = math.radians(g.uniform(0.15, 0.3) * self.angle_deg) * g.choice([-1, 1])
        roll = math.radians(g.uniform(-2.0, 2.0))
        dist = g.uniform(2.2, 2.8)
        screen = _project_rect(1.6, 0.9, yaw, pitch, roll, dist)
        bezel = _project_rect(1.6, 0.9, yaw, pitch, roll, dist, (0.06, 0.06, 0.06, 0.1))
        rw, rh = self.render_size
        centre = (rw * g.uniform(0.44, 0.56), rh * g.uniform(0.42, 0.5))
        self._screen, self._bezel = _place([screen, bezel], g.uniform(0.42, 0.5), centre, (rw, rh),
                                           0.02 * rw, 0.37)

    def _draw_scene(self, rng, Wc: int, Hc: int) -> np.ndarray:
        bezel = self._canvas_pts(self._bezel)
        bx0, by0, bx1, by1 = _bbox(bezel)
        wall_colours = [(150, 130, 105), (110, 125, 105), (105, 115, 135), (150, 115, 110)]
        wall = np.array(wall_colours[int(rng.integers(len(wall_colours)))], np.float32) * rng.uniform(0.4, 0.6)
        tex = _noise_texture(rng, Wc, Hc, 12, 0.2)
        base = wall + (10 * tex)[..., None]
        if rng.random() < 0.5:  # wallpaper stripes
            period = max(4.0, rng.uniform(0.04, 0.08) * Wc)
            base += (5.0 * (np.arange(Wc) // period % 2))[None, :, None]
        floor_y = min(Hc, by1 + rng.uniform(0.12, 0.2) * Hc)
        base[int(floor_y):] = np.array((78, 55, 38), np.float32) * rng.uniform(0.5, 0.8)
        planks = (np.arange(Hc) % max(3, int(Hc * 0.03)) == 0)[:, None, None] & (np.arange(Hc) > floor_y)[:, None, None]
        base -= 12.0 * planks
        img, draw = _draw((Wc, Hc), base)
        # Cabinet under the TV, following the bezel's bottom edge.
        bl, br = bezel[3], bezel[2]
        left_h, right_h = bezel[3][1] - bezel[0][1], bezel[2][1] - bezel[1][1]
        spread = 0.15 * (br[0] - bl[0])
        gap = 0.03 * Hc
        cabinet = [(bl[0] - spread, bl[1] + gap), (br[0] + spread, br[1] + gap),
                   (br[0] + spread, br[1] + gap + 0.35 * right_h), (bl[0] - spread, bl[1] + gap + 0.35 * left_h)]
        wood = _colour(rng, 25, 70)
        draw.polygon(cabinet, fill=wood)
        mid = ((bl[0] + br[0]) / 2, (bl[1] + br[1]) / 2)
        draw.rectangle([mid[0] - 0.04 * Wc, mid[1] - 2, mid[0] + 0.04 * Wc, mid[1] + gap + 1], fill=(20, 20, 22))
        # A bookshelf on the wider side, a floor lamp on the other.
        left_room, right_room = bx0, Wc - bx1
        shelf_w = max(0.12 * Wc, 0.7 * max(left_room, right_room))
        sx0 = bx0 - 0.03 * Wc - shelf_w if left_room > right_room else bx1 + 0.03 * Wc
        self._shelf(rng, draw, sx0, 0.12 * Hc, sx0 + shelf_w, floor_y)
        lamp_x = (bx1 + 0.5 * right_room) if left_room > right_room else (0.5 * left_room)
        shade_y = max(0.1 * Hc, by0 - 0.05 * Hc)
        draw.line([(lamp_x, shade_y), (lamp_x, floor_y)], fill=(35, 32, 30), width=max(1, Wc // 200))
        sw = 0.05 * Wc
        draw.polygon([(lamp_x - sw * 0.6, shade_y - 0.07 * Hc), (lamp_x + sw * 0.6, shade_y - 0.07 * Hc),
                      (lamp_x + sw, shade_y + 0.02 * Hc), (lamp_x - sw, shade_y + 0.02 * Hc)], fill=(225, 205, 160))
        draw.polygon(bezel, fill=(16, 16, 18))
        draw.polygon(bezel, outline=(48, 48, 52))
        chin = ((bezel[2][0] + bezel[3][0]) / 2, (bezel[2][1] + bezel[3][1]) / 2 - 0.01 * Hc)
        draw.ellipse([chin[0] - 2, chin[1] - 1, chin[0] + 2, chin[1] + 1], fill=(90, 90, 95))
        out = np.asarray(img, dtype=np.float32).copy()
        _glow(out, lamp_x, shade_y, 0.25 * Wc, 0.3 * Hc, (255, 200, 130), 70.0)
        return out

    def _shelf(self, rng, draw: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float) -> None:
        frame = _colour(rng, 40, 90)
        draw.rectangle([x0, y0, x1, y1], fill=frame)
        levels = int(rng.integers(3, 5))
        step = (y1 - y0) / levels
        board = max(2.0, 0.08 * step)
        for k in range(levels):
            top, bottom = y0 + k * step + board, y0 + (k + 1) * step
            draw.rectangle([x0 + board, top, x1 - board, bottom], fill=tuple(int(c * 0.5) for c in frame))
            x = x0 + board
            while x < x1 - board - 2:
                bw = rng.uniform(0.012, 0.03) * (x1 - x0) * 3
                height = rng.uniform(0.6, 0.95) * (bottom - top)
                if rng.random() < 0.85:
                    draw.rectangle([x, bottom - height, min(x + bw, x1 - board), bottom], fill=_colour(rng, 30, 200))
                x += bw + 1


def camcorded_tv(seed: int, angle_deg: float, size: Size, render_width: int | None = 640) -> CamcordedTV:
    """The copy on a TV filmed by a phone at ``angle_deg`` (10–25°: yaw, a little pitch) in a
    rendered room (wall, shelf, lamp, cabinet): perspective by inverse homography with bilinear
    sampling, dark bezel, moiré, glare, blur, colour cast, hand shake and sensor noise. The
    screen covers 35–60 % of the frame; ``.quad`` gives its corners in output pixels."""
    return CamcordedTV(seed, angle_deg, size, render_width)


class StadiumScreen(_FilmedScreen):
    """The copy on a stadium's big screen behind a crowd: call ``stadium(frame, t)``."""

    shake_px = 0.005
    shake_degrees = 0.3
    moire_amount = 0.1

    def __init__(self, seed: int, size: Size = (640, 360), fill: float | None = None, angle_deg: float | None = None,
                 render_width: int | None = 640, max_occlusion: float = 0.12):
        super().__init__(seed, size, render_width, _TAG_STADIUM)
        g = self._geo
        fill = g.uniform(0.22, 0.36) if fill is None else float(fill)
        angle = g.uniform(3.0, 8.0) * g.choice([-1, 1]) if angle_deg is None else float(angle_deg)
        self.angle_deg = angle
        yaw, pitch = math.radians(angle), -math.radians(g.uniform(2.0, 5.0))
        roll = math.radians(g.uniform(-1.0, 1.0))
        screen = _project_rect(1.6, 0.9, yaw, pitch, roll, 8.0)
        frame = _project_rect(1.6, 0.9, yaw, pitch, roll, 8.0, (0.03, 0.03, 0.03, 0.03))
        rw, rh = self.render_size
        centre = (rw * g.uniform(0.4, 0.6), rh * g.uniform(0.34, 0.4))
        self._screen, self._frame = _place([screen, frame], min(0.4, max(0.2, fill)), centre, (rw, rh),
                                           0.02 * rw, 0.2)
        self._crowd = self._crowd_layout(g, max_occlusion)

    # -- the crowd in front ---------------------------------------------------------------------

    def _crowd_layout(self, g, max_occlusion: float) -> dict:
        rw, rh = self.render_size
        Wc, Hc = rw + 2 * self.pad, rh + 2 * self.pad
        n = int(g.integers(9, 15))
        crowd = {
            "x": np.sort(g.uniform(-0.03, 1.03, n)) * Wc,
            "r": g.uniform(0.05, 0.08, n) * Hc,
            "dy": g.uniform(-0.03, 0.03, n) * Hc,
            "bob_f": g.uniform(0.8, 2.0, n) * 2 * np.pi,
            "bob_p": g.uniform(0, 2 * np.pi, n),
            "bob": 0.008 * Hc,
            "sway": 0.005 * Wc,
            "base": 0.0,
        }
        self._sway_path = _smooth_path(g, 2, 0.05, 0.2)
        # The screen as the camera sees it, to measure how much of it the heads hide.
        warp = _QuadWarp(self._canvas_pts(self._screen), (Hc, Wc))
        self._screen_cover = warp
        bottom = max(p[1] for p in self._canvas_pts(self._screen))
        crowd["base"] = bottom + 0.3 * float(np.mean(crowd["r"]))
        target = g.uniform(0.5, 0.9) * max_occlusion
        # The occlusion falls as the crowd moves down: bisect for the highest line within target.
        lo, hi = crowd["base"], crowd["base"] + Hc
        if self._worst_occlusion(crowd) > target:
            for _ in range(14):
                crowd["base"] = (lo + hi) / 2
                lo, hi = (lo, crowd["base"]) if self._worst_occlusion(crowd) <= target else (crowd["base"], hi)
            crowd["base"] = hi
        return crowd

    def _profile(self, crowd: dict, width: int, lift: float, shift: float) -> np.ndarray:
        """Per column, the first row the crowd covers (heads and shoulders)."""
        xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
        cx = (crowd["x"] + shift)[:, None]
        r = crowd["r"][:, None]
        cy = (crowd["base"] + crowd["dy"])[:, None] - lift
        d = np.abs(xs - cx)
        head = np.where(d < r, cy - np.sqrt(np.maximum(r * r - d * d, 0)), np.inf)
        sh = 2.7 * r
        shoulder = np.where(d < sh, cy + 1.6 * r - 0.9 * r * np.sqrt(np.maximum(1 - (d / sh) ** 2, 0)), np.inf)
        return np.minimum(head, shoulder).min(axis=0)

    def _occlusion(self, top: np.ndarray) -> float:
        w = self._screen_cover
        x0, y0 = w.box[:2]
        ys, xs = np.nonzero(w.mask)
        hidden = (ys + y0 + 0.5) >= top[xs + x0]
        return float((w.alpha[:, 0] * hidden).sum() / w.alpha.sum())

    def _worst_occlusion(self, crowd: dict) -> float:
        Wc = self.render_size[0] + 2 * self.pad
        return max(self._occlusion(self._profile(crowd, Wc, crowd["bob"], s))
                   for s in (-crowd["sway"], 0.0, crowd["sway"]))

    def _crowd_top(self, t: float) -> np.ndarray:
        c = self._crowd
        Wc = self.render_size[0] + 2 * self.pad
        bob = c["bob"] * np.sin(c["bob_f"] * t + c["bob_p"])
        moved = dict(c, dy=c["dy"] - bob)
        return self._profile(moved, Wc, 0.0, c["sway"] * self._sway_path(t))

    def occlusion(self, t: float) -> float:
        """The fraction of the screen the crowd hides at time ``t`` (at most ``max_occlusion``)."""
        return self._occlusion(self._crowd_top(t))

    def _foreground(self, canvas: np.ndarray, t: float) -> None:
        top = self._crowd_top(t)
        first = int(max(0, math.floor(top.min())))
        if first >= canvas.shape[0]:
            return
        rows = np.arange(first, canvas.shape[0], dtype=np.float32)[:, None] + 0.5
        mask = rows >= top[None, :]
        region = canvas[first:]
        region[mask] = self._scene["crowd_tex"][first:][mask]

    # -- the stadium -----------------------------------------------------------------------------

    def _build(self) -> dict:
        scene = super()._build()
        rw, rh = self.render_size
        Wc, Hc = rw + 2 * self.pad, rh + 2 * self.pad
        rng = _rng(self.seed, self._tag, 4)
        tex = _noise_texture(rng, Wc, Hc, 40, 0.5)
        scene["crowd_tex"] = (np.array(_colour(rng, 10, 24), np.float32) + (6 * tex)[..., None]).astype(np.float32)
        return scene

    def _draw_scene(self, rng, Wc: int, Hc: int) -> np.ndarray:
        outline = self._canvas_pts(self._frame)
        fx0, fy0, fx1, fy1 = _bbox(outline)
        night = rng.random() < 0.6
        top_c, low_c = ((8, 12, 35), (35, 45, 85)) if night else ((70, 95, 160), (190, 135, 100))
        ramp = np.linspace(0, 1, Hc, dtype=np.float32)[:, None, None]
        base = np.array(top_c, np.float32) * (1 - ramp) + np.array(low_c, np.float32) * ramp + np.zeros((1, Wc, 3))
        stands_y = int(fy0 + rng.uniform(0.2, 0.45) * (fy1 - fy0))
        y = stands_y
        row_h = max(3.0, 0.025 * Hc)
        while y < Hc:
            h = int(round(row_h))
            cell = max(1, h // 3)
            dots = rng.integers(25, 200, (h // cell + 1, Wc // cell + 1, 3)).astype(np.float32)
            dots = np.repeat(np.repeat(dots, cell, 0), cell, 1)[:h, :Wc]
            dim = 0.35 + 0.3 * (y - stands_y) / max(1, Hc - stands_y)
            base[y : y + h] = dots[: max(0, min(h, Hc - y))] * dim
            base[y : y + max(1, h // 5)] = (30, 30, 34)
            y += h
            row_h *= 1.06
        for ax in rng.uniform(0, Wc, int(rng.integers(3, 6))):  # aisles
            base[stands_y:, int(ax) : int(ax) + max(1, Wc // 160)] = (70, 70, 72)
        base[stands_y - max(2, Hc // 60) : stands_y] = (45, 45, 50)  # the stands' rim
        img, draw = _draw((Wc, Hc), base)
        lights = []
        for side in (0.08, 0.92):
            lx = side * Wc
            if fx0 - 0.05 * Wc < lx < fx1 + 0.05 * Wc:
                lx = fx0 - 0.08 * Wc if side < 0.5 else fx1 + 0.08 * Wc
            ly = rng.uniform(0.06, 0.12) * Hc
            draw.line([(lx, ly), (lx, stands_y)], fill=(40, 40, 45), width=max(2, Wc // 150))
            pw, ph = 0.09 * Wc, 0.06 * Hc
            draw.rectangle([lx - pw / 2, ly - ph / 2, lx + pw / 2, ly + ph / 2], fill=(50, 50, 55))
            for i in range(4):
                for j in range(2):
                    cx = lx - pw / 2 + (i + 0.5) * pw / 4
                    cy = ly - ph / 2 + (j + 0.5) * ph / 2
                    draw.rectangle([cx - pw / 12, cy - ph / 6, cx + pw / 12, cy + ph / 6], fill=(255, 250, 225))
            lights.append((lx, ly))
        # The screen's frame and its two legs down into the stands.
        leg = max(2.0, 0.02 * Wc)
        for corner in (outline[3], outline[2]):
            x = corner[0] + (leg if corner is outline[3] else -leg) * 2
            draw.rectangle([x - leg / 2, corner[1], x + leg / 2, Hc], fill=(28, 28, 32))
        draw.polygon(outline, fill=(18, 18, 22))
        out = np.asarray(img, dtype=np.float32).copy()
        for lx, ly in lights:
            _glow(out, lx, ly, 0.12 * Wc, 0.12 * Hc, (255, 245, 220), 150.0)
        return out

    def _cast(self, rng) -> np.ndarray:
        return np.array((1.0, 1.0, 1.0), np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)


def stadium_screen(seed: int, size: Size, fill: float | None = None, angle_deg: float | None = None,
                   render_width: int | None = 640) -> StadiumScreen:
    """The copy on a stadium's big screen far away, covering ``fill`` (0.2–0.4; from ``seed``
    if not given) of the frame under a slight perspective, among stands, sky and floodlights,
    the bottom of the screen hidden by the heads of the crowd in front (at most 12 % of it),
    filmed by a phone (blur, noise, a little shake). ``.quad`` gives the screen's corners."""
    return StadiumScreen(seed, size, fill, angle_deg, render_width)
