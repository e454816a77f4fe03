"""Deterministic synthetic "broadcast" video and audio, in pure NumPy (plus Pillow for resampling).

Used by the tests, ``guard demo`` and the corpus scripts to make references, pirated copies
of them and unrelated negatives without shipping any media.

Every content generator is a *pure function of (seed, time)*: the frame shown at time ``t`` is
the same image whatever frame rate the timeline is sampled at, and ``start=s`` yields exactly
the frames the full timeline shows from ``s`` on. A reference rendered at 30 fps and a copy
re-rendered at 25 fps therefore show the same picture at the same instant.

Generators yield H×W×3 ``uint8`` RGB frames; transforms are pure functions of one frame (they
never modify their input); time transforms work on frame iterables. Nothing here imports
``av``: :func:`make_video` hands frames to :func:`guard_synth.encode.write_video`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import math
import os
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageChops, ImageFilter

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (width, height)

#: scikit-image photos that ship with the package (no network download), varied enough to
#: tell apart. ``cat`` is left out (it is ``chelsea``), as are mostly-black images
#: (``hubble_deep_field``, ``retina``) that would look like letterbox bars.
PHOTOS: list[str] = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "camera",
    "moon",
    "coins",
    "clock",
    "grass",
    "gravel",
    "brick",
    "cell",
    "page",
    "text",
]

#: Content styles :func:`broadcast` switches between.
STYLES: tuple[str, ...] = ("photo", "sports", "shapes", "concert")

_TAGS = {"photo": 11, "sports": 12, "shapes": 13, "concert": 14, "broadcast": 15, "logo": 16}


# --------------------------------------------------------------------------------------------
# Small helpers


def _seed(seed: int) -> int:
    return int(seed) % (1 << 63)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([_seed(k) for k in keys])


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def _check_size(size: Size) -> tuple[int, int]:
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16:
        raise ValueError(f"frame size {size} too small (need at least 16×16)")
    return w, h


def _frame_times(fps: float, duration: float, start: float) -> Iterator[float]:
    if fps <= 0:
        raise ValueError("fps must be positive")
    if duration < 0 or start < 0:
        raise ValueError("duration and start must not be negative")
    n = int(round(duration * fps))
    for i in range(n):
        # Rounding keeps t = 2.0 exactly 2.0 whether reached as 50/25 or 60/30.
        yield round(start + i / fps, 9)


def _run(renderer, fps: float, duration: float, start: float) -> Iterator[np.ndarray]:
    for t in _frame_times(fps, duration, start):
        yield renderer.render(t)


def _smooth_path(rng: np.random.Generator, n_terms: int, f_lo: float, f_hi: float):
    """A smooth random function of time with values in [-1, 1] (a normalised sum of sines)."""
    freqs = rng.uniform(f_lo, f_hi, n_terms) * 2 * np.pi
    phases = rng.uniform(0, 2 * np.pi, n_terms)
    amps = rng.uniform(0.4, 1.0, n_terms)
    amps /= amps.sum()

    def path(t: float) -> float:
        return float(np.dot(amps, np.sin(freqs * t + phases)))

    return path


class _Timeline:
    """Cut points for one seed: segment ``i`` covers ``[bounds[i], bounds[i+1])``.

    Segments are drawn sequentially from one generator, so the timeline does not depend on the
    order in which it is queried. ``make(rng, i, previous_info) -> (duration, info)``.
    """

    def __init__(self, seed: int, tag: int, make: Callable):
        self._rng = _rng(seed, tag, 7919)
        self._make = make
        self.bounds: list[float] = [0.0]
        self.info: list = []

    def locate(self, t: float) -> tuple[int, float]:
        while self.bounds[-1] <= t:
            i = len(self.info)
            duration, info = self._make(self._rng, i, self.info[-1] if self.info else None)
            self.info.append(info)
            self.bounds.append(self.bounds[-1] + float(duration))
        i = bisect.bisect_right(self.bounds, t) - 1
        return i, self.bounds[i]


class _Cache:
    """A few most recently used segment renderers (segments are visited in order)."""

    def __init__(self, build: Callable, keep: int = 3):
        self._build = build
        self._keep = keep
        self._items: dict = {}

    def get(self, key):
        item = self._items.get(key)
        if item is None:
            item = self._build(key)
            self._items[key] = item
            while len(self._items) > self._keep:
                self._items.pop(next(iter(self._items)))
        return item


def _noise_texture(rng: np.random.Generator, w: int, h: int, cells: int, fine: float) -> np.ndarray:
    """Smooth random field plus grain in roughly [-1, 1], float32 (h, w)."""
    cw = max(2, cells)
    ch = max(2, int(round(cells * h / w)))
    coarse = rng.standard_normal((ch, cw)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    smooth = smooth / (np.abs(smooth).max() + 1e-6)
    grain = rng.standard_normal((h, w)).astype(np.float32) * fine
    return smooth + grain


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Drawing primitives (in place, on H×W×3 uint8 canvases, pixel coordinates)


def _box(img: np.ndarray, cx: float, cy: float, rx: float, ry: float):
    h, w = img.shape[:2]
    x0, x1 = max(0, int(cx - rx)), min(w, int(math.ceil(cx + rx)) + 1)
    y0, y1 = max(0, int(cy - ry)), min(h, int(math.ceil(cy + ry)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    return x0, x1, y0, y1, xs, ys


def _paint(img, region, mask, color, color2=None, period=0.0, u=None, v=None):
    x0, x1, y0, y1 = region
    sub = img[y0:y1, x0:x1]
    if color2 is not None and period > 0:
        checker = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(bool)
        sub[mask & checker] = color2
        sub[mask & ~checker] = color
    else:
        sub[mask] = color


def _ellipse(img, cx, cy, rx, ry, color, angle=0.0, color2=None, period=0.0):
    r = max(rx, ry)
    b = _box(img, cx, cy, r, r)
    if b is None:
        return
    x0, x1, y0, y1, xs, ys = b
    c, s = math.cos(angle), math.sin(angle)
    u = xs * c + ys * s
    v = -xs * s + ys * c
    mask = (u / max(rx, 0.5)) ** 2 + (v / max(ry, 0.5)) ** 2 <= 1.0
    _paint(img, (x0, x1, y0, y1), mask, color, color2, period, u, v)


def _polygon(img, cx, cy, radius, sides, angle, color, color2=None, period=0.0, aspect=1.0):
    """Regular convex polygon (half-plane tests inside its bounding box)."""
    b = _box(img, cx, cy, radius * max(1.0, aspect), radius * max(1.0, aspect))
    if b is None:
        return
    x0, x1, y0, y1, xs, ys = b
    mask = np.ones((y1 - y0, x1 - x0), dtype=bool)
    inner = radius * math.cos(math.pi / sides)
    for k in range(sides):
        a = angle + (k + 0.5) * 2 * math.pi / sides
        mask &= xs * math.cos(a) + ys * math.sin(a) * aspect <= inner
    c, s = math.cos(angle), math.sin(angle)
    _paint(img, (x0, x1, y0, y1), mask, color, color2, period, xs * c + ys * s, -xs * s + ys * c)


def _rect(img, x0, y0, x1, y1, color):
    h, w = img.shape[:2]
    x0, x1 = max(0, int(round(x0))), min(w, int(round(x1)))
    y0, y1 = max(0, int(round(y0))), min(h, int(round(y1)))
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = color


#           a  b  c  d  e  f  g
_SEGMENTS = {
    0: (1, 1, 1, 1, 1, 1, 0),
    1: (0, 1, 1, 0, 0, 0, 0),
    2: (1, 1, 0, 1, 1, 0, 1),
    3: (1, 1, 1, 1, 0, 0, 1),
    4: (0, 1, 1, 0, 0, 1, 1),
    5: (1, 0, 1, 1, 0, 1, 1),
    6: (1, 0, 1, 1, 1, 1, 1),
    7: (1, 1, 1, 0, 0, 0, 0),
    8: (1, 1, 1, 1, 1, 1, 1),
    9: (1, 1, 1, 1, 0, 1, 1),
}


def _digit(img, x, y, height, d, color):
    """A seven-segment digit with its top-left corner at (x, y); returns its advance width."""
    w = height * 0.55
    th = max(1.0, height * 0.14)
    half = height / 2
    a, b, c, dd, e, f, g = _SEGMENTS[int(d) % 10]
    if a:
        _rect(img, x, y, x + w, y + th, color)
    if g:
        _rect(img, x, y + half - th / 2, x + w, y + half + th / 2, color)
    if dd:
        _rect(img, x, y + height - th, x + w, y + height, color)
    if f:
        _rect(img, x, y, x + th, y + half, color)
    if e:
        _rect(img, x, y + half, x + th, y + height, color)
    if b:
        _rect(img, x + w - th, y, x + w, y + half, color)
    if c:
        _rect(img, x + w - th, y + half, x + w, y + height, color)
    return w + max(1.0, height * 0.25)


def _number(img, x, y, height, text: str, color):
    for ch in text:
        if ch.isdigit():
            x += _digit(img, x, y, height, int(ch), color)
        else:  # a colon
            dot = max(1.0, height * 0.14)
            _rect(img, x, y + height * 0.25, x + dot, y + height * 0.25 + dot, color)
            _rect(img, x, y + height * 0.7, x + dot, y + height * 0.7 + dot, color)
            x += dot + max(1.0, height * 0.25)
    return x


@functools.lru_cache(maxsize=32)
def _text_strip(height: int, length: int, seed: int, fg: tuple, bg: tuple) -> np.ndarray:
    """A long band of text-like glyphs (random 3×5 bitmaps in words), H×L×3 uint8."""
    rng = _rng(seed, 31337)
    strip = np.empty((height, length, 3), np.uint8)
    strip[:] = bg
    glyph_h = max(5, int(height * 0.6))
    cell = max(1, glyph_h // 5)
    glyph_h = cell * 5
    gw = cell * 3
    top = (height - glyph_h) // 2
    x = cell * 2
    while x + gw < length:
        for _ in range(int(rng.integers(2, 8))):
            if x + gw >= length:
                break
            bits = rng.random((5, 3)) < 0.55
            bits[rng.integers(0, 5), rng.integers(0, 3)] = True
            block = np.kron(bits, np.ones((cell, cell), dtype=bool))
            strip[top : top + glyph_h, x : x + gw][block] = fg
            x += gw + cell
        x += gw  # a space between words
        if rng.random() < 0.12:  # a separator bullet
            _rect(strip, x, top + glyph_h * 0.3, x + gw * 0.6, top + glyph_h * 0.7, fg)
            x += gw + cell
    return strip


def _draw_ticker(img: np.ndarray, t: float, seed: int, height_fraction: float = 0.08,
                 speed: float = 0.12, colors=((250, 250, 245), (18, 40, 110))) -> None:
    h, w = img.shape[:2]
    band = max(8, int(round(h * height_fraction)))
    length = 4 * w
    strip = _text_strip(band, length, seed, tuple(colors[0]), tuple(colors[1]))
    offset = int(math.floor(t * speed * w)) % length
    cols = (offset + np.arange(w)) % length
    img[h - band :, :] = strip[:, cols]
    accent = max(1, band // 8)
    img[h - band : h - band + accent, :] = (230, 180, 30)


# --------------------------------------------------------------------------------------------
# Photos


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> Image.Image:
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {PHOTOS}")
    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) * (255.0 / max(1.0, float(arr.max())))).astype(np.uint8)
    if arr.ndim == 2:
        return Image.fromarray(arr)
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]))


def _photo_list(photos: Sequence[str] | None) -> list[str]:
    names = list(PHOTOS if photos is None else photos)
    if not names:
        raise ValueError("photos must not be empty")
    for n in names:
        if n not in PHOTOS:
            raise ValueError(f"unknown photo {n!r}; choose from {PHOTOS}")
    return names


class _PhotoShot:
    """A Ken Burns pan and zoom over one photo; a pure function of local time."""

    def __init__(self, name: str, rng: np.random.Generator, size: Size, zoom=(0.45, 0.85)):
        self.img = _photo(name)
        self.size = size
        w, h = size
        pw, ph = self.img.size
        self.full = min(pw, ph * w / h)  # widest crop with the output aspect
        self.zc = rng.uniform(*zoom)
        self.za = self.zc * rng.uniform(0.05, 0.18)
        self.wz = rng.uniform(0.25, 0.7) * rng.choice([-1, 1])
        self.pz = rng.uniform(0, 2 * np.pi)
        cw = self.zc * self.full
        ch = cw * h / w
        slack = max(8.0, 0.5 * (pw - cw)), max(8.0, 0.5 * (ph - ch))
        # Pan speed: 0.12–0.3 output widths per second, whatever the photo and zoom.
        target = rng.uniform(0.12, 0.3) * cw
        self.wx = min(1.3, target / slack[0]) * rng.choice([-1, 1])
        self.wy = min(1.0, 0.6 * target / slack[1]) * rng.choice([-1, 1])
        self.px, self.py = rng.uniform(0, 2 * np.pi, 2)
        if self.img.mode == "L":
            tint = rng.uniform(0.55, 1.0, 3)
            tint /= tint.max()
            lift = rng.uniform(6, 24, 3)
            ramp = np.arange(256, dtype=np.float64)
            self.luts = [_to_u8(lift[c] + ramp * tint[c] * (255 - lift[c]) / 255).tolist() for c in range(3)]

    def render(self, t: float) -> np.ndarray:
        w, h = self.size
        pw, ph = self.img.size
        cw = (self.zc + self.za * math.sin(self.wz * t + self.pz)) * self.full
        ch = cw * h / w
        cx = pw / 2 + 0.5 * (pw - cw) * math.sin(self.wx * t + self.px)
        cy = ph / 2 + 0.5 * (ph - ch) * math.sin(self.wy * t + self.py)
        box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
        out = self.img.resize((w, h), Image.Resampling.BILINEAR, box=box)
        if out.mode == "L":
            out = Image.merge("RGB", [out.point(lut) for lut in self.luts])
        return np.array(out)


class _PhotoPan:
    """Photo shots with cuts to another photo every 4–10 s."""

    def __init__(self, seed: int, size: Size, photos: Sequence[str]):
        self.size = size
        self.seed = _seed(seed)
        self.photos = list(photos)

        def make(rng, i, prev):
            choices = [p for p in self.photos if p != prev] or self.photos
            return rng.uniform(4.0, 10.0), choices[int(rng.integers(len(choices)))]

        self.timeline = _Timeline(seed, _TAGS["photo"], make)
        self.shots = _Cache(lambda i: _PhotoShot(self.timeline.info[i], _rng(self.seed, 101, i), size))

    def render(self, t: float) -> np.ndarray:
        i, t0 = self.timeline.locate(t)
        return self.shots.get(i).render(t - t0)


# --------------------------------------------------------------------------------------------
# Sports


class _Sports:
    """A football match seen by a panning camera, with score bug, ticker and close-up cuts."""

    def __init__(self, seed: int, size: Size, photos: Sequence[str]):
        self.seed = _seed(seed)
        self.size = w, h = size
        self.photos = list(photos)
        rng = _rng(seed, _TAGS["sports"])
        self.u = h / 180.0  # drawing unit
        fw, fh = int(2.4 * w), int(1.5 * h)
        self.fw, self.fh = fw, fh
        self.field = self._field(rng, fw, fh)
        self.top = int(0.22 * fh)  # where the grass begins
        self.bx = _smooth_path(rng, 3, 0.015, 0.08)
        self.by = _smooth_path(rng, 3, 0.03, 0.12)
        self.jx = _smooth_path(rng, 2, 0.3, 0.7)
        self.jy = _smooth_path(rng, 2, 0.3, 0.7)
        palette = [(220, 30, 40), (30, 60, 200), (250, 220, 40), (245, 245, 245), (20, 20, 20),
                   (240, 120, 20), (120, 40, 160), (30, 160, 220)]
        a, b = rng.choice(len(palette), 2, replace=False)
        self.teams = [palette[a], palette[b]]
        self.players = []
        for k in range(12):
            team = k % 2
            home = (rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9))
            self.players.append((team, home, rng.uniform(0.2, 0.7),
                                 _smooth_path(rng, 2, 0.05, 0.3), _smooth_path(rng, 2, 0.05, 0.3)))
        self.goals = np.cumsum(rng.exponential(22.0, 64))
        self.goal_team = rng.integers(0, 2, 64)
        self.clock0 = int(rng.integers(0, 80 * 60))
        self.ticker_seed = int(rng.integers(1 << 30))

        def make(rng2, i, prev):
            if prev == "wide" and rng2.random() < 0.6:
                return rng2.uniform(2.0, 4.0), "close"
            return rng2.uniform(6.0, 14.0), "wide"

        self.timeline = _Timeline(seed, _TAGS["sports"] + 100, make)
        self.closeups = _Cache(self._closeup, keep=2)

    def _closeup(self, i):
        r = _rng(self.seed, 202, i)
        return _PhotoShot(self.photos[int(r.integers(len(self.photos)))], r, self.size, zoom=(0.3, 0.55))

    def _field(self, rng, fw, fh) -> np.ndarray:
        u = self.u
        top = int(0.22 * fh)
        boards = int(0.05 * fh)
        img = np.empty((fh, fw, 3), np.float32)
        # Stands: colourful crowd noise.
        crowd = rng.integers(30, 200, (top // 2 + 1, fw // 2 + 1, 3)).astype(np.float32)
        crowd = np.repeat(np.repeat(crowd, 2, 0), 2, 1)[:top, :fw]
        img[:top] = crowd * (0.5 + 0.5 * np.linspace(0.4, 1.0, top, dtype=np.float32))[:, None, None]
        # Advertising boards.
        x = 0
        while x < fw:
            pw = int(rng.uniform(0.15, 0.4) * self.size[0])
            col = rng.integers(20, 255, 3)
            img[top - boards : top, x : x + pw] = col
            stripe = max(1, boards // 4)
            img[top - boards + stripe : top - boards + 2 * stripe, x + pw // 6 : x + pw - pw // 6] = 255 - col
            x += pw
        # Grass with mowing stripes and texture.
        base = np.array([rng.uniform(40, 70), rng.uniform(120, 160), rng.uniform(40, 70)], np.float32)
        gh = fh - top
        xs = np.arange(fw)
        stripes = np.where((xs // max(4, fw // 18)) % 2 == 0, 1.0, 0.86).astype(np.float32)
        tex = _noise_texture(rng, fw, gh, 24, 0.35)
        img[top:] = base[None, None, :] * stripes[None, :, None] * (1 + 0.08 * tex[:, :, None])
        grass = img[top:]
        # Lines.
        lw = max(1, int(round(1.5 * u)))
        m = int(0.05 * fw)
        white = (235, 235, 235)
        y0, y1 = int(0.06 * gh), gh - int(0.06 * gh)
        for (a0, b0, a1, b1) in [(m, y0, fw - m, y0 + lw), (m, y1 - lw, fw - m, y1), (m, y0, m + lw, y1),
                                 (fw - m - lw, y0, fw - m, y1), (fw // 2 - lw // 2, y0, fw // 2 + lw - lw // 2, y1)]:
            grass[b0:b1, a0:a1] = white
        bw, bh = int(0.12 * fw), int(0.45 * gh)
        for x0 in (m, fw - m - bw):
            yb0, yb1 = gh // 2 - bh // 2, gh // 2 + bh // 2
            grass[yb0 : yb0 + lw, x0 : x0 + bw] = white
            grass[yb1 - lw : yb1, x0 : x0 + bw] = white
            xe = x0 + bw if x0 == m else x0
            grass[yb0:yb1, xe : xe + lw] = white
        yy, xx = np.ogrid[:gh, :fw]
        r = np.hypot(xx - fw / 2, yy - gh / 2)
        rad = 0.18 * gh
        grass[np.abs(r - rad) < lw * 0.7] = white
        grass[r < 2 * lw] = white
        return _to_u8(img)

    def _ball(self, t):
        x = self.fw * (0.5 + 0.42 * self.bx(t)) + 0.02 * self.fw * self.jx(t)
        gh = self.fh - self.top
        y = self.top + gh * (0.5 + 0.38 * self.by(t)) + 0.03 * gh * self.jy(t)
        return x, y

    def _wide(self, t) -> np.ndarray:
        w, h = self.size
        u = self.u
        bx, by = self._ball(t)
        lx, ly = self._ball(t - 0.5)  # the camera lags the ball a little
        cx = int(round(min(max(lx - w / 2, 0), self.fw - w)))
        cy = int(round(min(max(ly - h * 0.55, 0), self.fh - h)))
        view = self.field[cy : cy + h, cx : cx + w].copy()
        gh = self.fh - self.top
        drawn = []
        for team, home, pull, px, py in self.players:
            hx = self.fw * (0.08 + 0.84 * home[0])
            hy = self.top + gh * (0.08 + 0.84 * home[1])
            x = hx + pull * (bx - hx) + 0.06 * self.fw * px(t)
            y = hy + pull * (by - hy) + 0.1 * gh * py(t)
            drawn.append((y, x, team))
        for y, x, team in sorted(drawn):
            vx, vy = x - cx, y - cy
            if -20 * u < vx < w + 20 * u and -20 * u < vy < h + 20 * u:
                _ellipse(view, vx + 1.5 * u, vy + 8.5 * u, 5 * u, 1.8 * u, (25, 60, 25))  # shadow
                _ellipse(view, vx, vy, 3.6 * u, 7.5 * u, self.teams[team])
                _rect(view, vx - 3 * u, vy + 1 * u, vx + 3 * u, vy + 3.5 * u, (20, 20, 20))
                _ellipse(view, vx, vy - 9 * u, 2.4 * u, 2.6 * u, (225, 180, 140))
        _ellipse(view, bx - cx, by - cy, 2.4 * u, 2.4 * u, (20, 20, 20))
        _ellipse(view, bx - cx, by - cy, 1.7 * u, 1.7 * u, (250, 250, 250))
        return view

    def _graphics(self, img, t):
        w, h = self.size
        n = int(np.searchsorted(self.goals, t, side="right"))
        score = [int(np.sum(self.goal_team[:n] == k)) for k in (0, 1)]
        clock = self.clock0 + int(math.floor(t))
        x0, y0 = 0.03 * w, 0.04 * h
        bh = 0.1 * h
        dh = bh * 0.64
        _rect(img, x0, y0, x0 + 0.36 * w, y0 + bh, (25, 25, 35))
        pad = (bh - dh) / 2
        x = x0 + pad
        for k in (0, 1):
            _rect(img, x, y0 + pad, x + dh * 0.6, y0 + pad + dh, self.teams[k])
            x += dh * 0.9
            x = _number(img, x, y0 + pad, dh, str(score[k] % 100), (250, 250, 250)) + dh * 0.3
        _rect(img, x, y0, x0 + 0.36 * w, y0 + bh, (200, 200, 210))
        _number(img, x + pad, y0 + pad, dh, f"{(clock // 60) % 100:02d}:{clock % 60:02d}", (20, 20, 30))
        _draw_ticker(img, t, self.ticker_seed)

    def render(self, t: float) -> np.ndarray:
        i, t0 = self.timeline.locate(t)
        if self.timeline.info[i] == "close":
            img = self.closeups.get(i).render(t - t0)
        else:
            img = self._wide(t)
        self._graphics(img, t)
        return img


# --------------------------------------------------------------------------------------------
# Shapes


class _ShapesScene:
    def __init__(self, rng: np.random.Generator, size: Size):
        self.size = w, h = size
        bw, bh = int(w * 1.3) + 2, int(h * 1.3) + 2
        c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        g = (xx / bw - 0.5) * math.cos(ang) + (yy / bh - 0.5) * math.sin(ang) + 0.5
        g = np.clip(g, 0, 1)[..., None]
        tex = _noise_texture(rng, bw, bh, int(rng.integers(6, 20)), 0.25)
        bg = c0 * (1 - g) + c1 * g + 28.0 * tex[..., None]
        if rng.random() < 0.5:  # a tiled pattern too
            period = rng.uniform(0.04, 0.12) * h
            bg += 18.0 * np.sin(xx / period)[..., None] * np.sin(yy / period)[..., None]
        self.bg = _to_u8(bg)
        self.bgx = _smooth_path(rng, 2, 0.03, 0.1)
        self.bgy = _smooth_path(rng, 2, 0.03, 0.1)
        self.shapes = []
        for _ in range(int(rng.integers(5, 10))):
            kind = rng.choice(["ellipse", "polygon", "ring"], p=[0.4, 0.45, 0.15])
            col = tuple(int(c) for c in rng.integers(0, 256, 3))
            col2 = tuple(int(c) for c in rng.integers(0, 256, 3)) if rng.random() < 0.5 else None
            self.shapes.append(dict(
                kind=kind, r=rng.uniform(0.06, 0.22) * h, aspect=rng.uniform(0.5, 1.0),
                sides=int(rng.integers(3, 7)), color=col, color2=col2, period=rng.uniform(0.02, 0.06) * h,
                spin=rng.uniform(-1.5, 1.5), a0=rng.uniform(0, 2 * np.pi),
                cx=rng.uniform(0.2, 0.8), cy=rng.uniform(0.2, 0.8),
                px=_smooth_path(rng, 2, 0.05, 0.25), py=_smooth_path(rng, 2, 0.05, 0.25),
                ax=rng.uniform(0.2, 0.45), ay=rng.uniform(0.2, 0.45),
            ))

    def render(self, t: float) -> np.ndarray:
        w, h = self.size
        bh, bw = self.bg.shape[:2]
        ox = int(round((bw - w) * (0.5 + 0.5 * self.bgx(t))))
        oy = int(round((bh - h) * (0.5 + 0.5 * self.bgy(t))))
        img = self.bg[oy : oy + h, ox : ox + w].copy()
        for s in self.shapes:
            x = w * (s["cx"] + s["ax"] * s["px"](t))
            y = h * (s["cy"] + s["ay"] * s["py"](t))
            a = s["a0"] + s["spin"] * t
            if s["kind"] == "ellipse":
                _ellipse(img, x, y, s["r"], s["r"] * s["aspect"], s["color"], a, s["color2"], s["period"])
            elif s["kind"] == "ring":
                _ellipse(img, x, y, s["r"], s["r"], s["color"])
                inner = tuple(255 - c for c in s["color"])
                _ellipse(img, x, y, s["r"] * 0.6, s["r"] * 0.6, inner)
            else:
                _polygon(img, x, y, s["r"], s["sides"], a, s["color"], s["color2"], s["period"])
        return img


class _Shapes:
    def __init__(self, seed: int, size: Size):
        self.seed = _seed(seed)
        self.timeline = _Timeline(seed, _TAGS["shapes"], lambda rng, i, prev: (rng.uniform(5.0, 12.0), None))
        self.scenes = _Cache(lambda i: _ShapesScene(_rng(self.seed, 303, i), size), keep=2)

    def render(self, t: float) -> np.ndarray:
        i, t0 = self.timeline.locate(t)
        return self.scenes.get(i).render(t - t0)


# --------------------------------------------------------------------------------------------
# Concert


class _ConcertShot:
    """Dark textured stage, swinging light cones, LED wall, strobes, a bobbing crowd."""

    def __init__(self, rng: np.random.Generator, size: Size):
        self.size = w, h = size
        self.lw, self.lh = lw, lh = 128, max(8, int(round(128 * h / w)))
        hue = rng.uniform(0.3, 1.0, 3)
        tex = _noise_texture(rng, w, h, 30, 0.5)
        bg = (14 + 9 * tex)[..., None] * hue[None, None, :] + 4
        # Truss with lamps along the top.
        self.truss = int(0.08 * h), max(2, h // 60)
        bg[self.truss[0] : self.truss[0] + self.truss[1]] = 70
        self.bg = Image.fromarray(_to_u8(bg))
        self.lamps = np.linspace(0.05, 0.95, int(rng.integers(8, 16)))
        # LED wall behind the band (part of the low-resolution light layer).
        self.wall = x0, y0, x1, y1 = int(0.25 * lw), int(0.18 * lh), int(0.75 * lw), int(0.55 * lh)
        fx, fy = rng.uniform(2, 7, 2) * 2 * np.pi
        self.wall_x = np.linspace(0, fx, x1 - x0, dtype=np.float32)
        self.wall_y = np.linspace(0, fy, y1 - y0, dtype=np.float32)
        self.wall_speed = rng.uniform(-2, 2, 2)
        self.wall_col = rng.uniform(40, 150, 3).astype(np.float32)
        # Light cones: origin on the truss, swinging direction (rendered at low resolution).
        self.cones: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(4, 8))):
            self.cones.append(dict(
                x=rng.uniform(0.05, 0.95) * lw, y=0.08 * lh,
                a0=rng.uniform(-0.6, 0.6), amp=rng.uniform(0.2, 0.6), f=rng.uniform(0.2, 0.8),
                ph=rng.uniform(0, 2 * np.pi), width=rng.uniform(0.9, 0.97),
                color=rng.uniform(0.25, 1.0, 3) * rng.uniform(150, 230),
            ))
        lyy, lxx = np.mgrid[0:lh, 0:lw].astype(np.float32)
        for c in self.cones:  # unit vectors from each cone's origin, and its falloff
            vx, vy = lxx - c["x"], lyy - c["y"]
            dist = np.sqrt(vx * vx + vy * vy) + 1.0
            c["ux"], c["uy"] = vx / dist, vy / dist
            c["fall"] = (1.1 - 0.45 * dist / lh) / (1 - c["width"])
        # Crowd.
        n = int(rng.integers(14, 26))
        self.heads = np.sort(rng.uniform(-0.02, 1.02, n)) * w
        self.head_r = rng.uniform(0.035, 0.05, n) * h
        self.head_y = rng.uniform(0.80, 0.88, n) * h
        self.bob_f = rng.uniform(1.5, 3.0, n) * 2 * np.pi
        self.bob_p = rng.uniform(0, 2 * np.pi, n)
        self.arms = rng.random(n) < 0.35
        crowd = (26 + 10 * _noise_texture(rng, w, h, 40, 0.6))[..., None] * rng.uniform(0.6, 1.0, 3)
        for _ in range(int(rng.integers(10, 30))):  # phone screens held up in the crowd
            px, py = rng.uniform(0, w), rng.uniform(0.75, 1.0) * h
            pr = max(1.0, 0.006 * h)
            crowd[int(py - pr) : int(py + pr) + 1, int(px - pr) : int(px + pr) + 1] = (160, 175, 190)  # + spill stays below 255
        self.crowd_tex = _to_u8(crowd)
        self.xs = np.arange(w, dtype=np.float32) + 0.5
        self.ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
        self.sway = _smooth_path(rng, 2, 0.05, 0.15)

    def render(self, t: float, flash: float) -> np.ndarray:
        w, h = self.size
        # Lights at low resolution, upsampled and added (saturating) to the stage.
        light = np.zeros((self.lh, self.lw, 3), np.float32)
        for c in self.cones:
            a = c["a0"] + c["amp"] * math.sin(c["f"] * t + c["ph"])
            cos = c["ux"] * math.sin(a) + c["uy"] * math.cos(a)
            k = np.maximum(cos - c["width"], 0) * c["fall"]
            light += k[..., None] * c["color"]
        x0, y0, x1, y1 = self.wall
        sx, sy = self.wall_speed
        pat = np.sin(self.wall_x + sx * t)[None, :] * np.cos(self.wall_y + sy * t)[:, None]
        light[y0:y1, x0:x1] += (0.6 + 0.4 * pat)[..., None] * self.wall_col
        light += flash * 200.0
        up = Image.fromarray(_to_u8(light)).resize((w, h), Image.Resampling.BILINEAR)
        img = np.array(ImageChops.add(self.bg, up))
        # Lamps on the truss.
        ty = self.truss[0] + self.truss[1] // 2
        lamp_r = int(max(1.5, h * 0.012))
        for k, lx in enumerate(self.lamps):
            on = 0.5 + 0.5 * math.sin(3 * t + k)
            xi = int(lx * w)
            _rect(img, xi - lamp_r, ty - lamp_r, xi + lamp_r + 1, ty + lamp_r + 1, (int(150 + 100 * on),) * 3)
        # Crowd silhouettes as a per-column height profile (heads, shoulders, raised arms).
        sway = self.sway(t) * 0.01 * w
        bob = 0.012 * h * np.sin(self.bob_f * t + self.bob_p)
        cx = (self.heads + sway)[:, None]
        r = self.head_r[:, None]
        cy = (self.head_y + bob)[:, None]
        d = np.abs(self.xs[None, :] - cx)
        head = np.where(d < r, cy - np.sqrt(np.maximum(r * r - d * d, 0)), h)
        sh = 3.0 * r
        shoulder = np.where(d < sh, cy + 1.5 * r - 0.8 * r * np.sqrt(np.maximum(1 - (d / sh) ** 2, 0)), h)
        ax = cx + 2.2 * r + 1.5 * r * np.sin(2 * t + cx)
        arm = np.where(self.arms[:, None] & (np.abs(self.xs[None, :] - ax) < np.maximum(1.0, 0.35 * r)),
                       cy - 3.5 * r, h)
        top = np.minimum(np.minimum(head, shoulder), arm).min(axis=0)
        y_first = max(0, int(top.min()))
        mask = self.ys[y_first:] >= top[None, :]
        lit = img[y_first:]
        spill = self.crowd_tex[y_first:] + (lit >> 2)  # stage light spilling onto the crowd
        np.copyto(lit, spill, where=mask[..., None])
        return img


class _Concert:
    def __init__(self, seed: int, size: Size):
        self.seed = _seed(seed)
        rng = _rng(seed, _TAGS["concert"])
        self.strobes = np.cumsum(rng.exponential(1.6, 4096))
        self.timeline = _Timeline(seed, _TAGS["concert"], lambda r, i, prev: (r.uniform(5.0, 12.0), None))
        self.shots = _Cache(lambda i: _ConcertShot(_rng(self.seed, 404, i), size), keep=2)

    def render(self, t: float) -> np.ndarray:
        i, t0 = self.timeline.locate(t)
        k = int(np.searchsorted(self.strobes, t, side="right")) - 1
        flash = 0.0
        if k >= 0 and t - self.strobes[k] < 0.12:
            flash = 1.0 - (t - self.strobes[k]) / 0.12
        return self.shots.get(i).render(t - t0, flash)


# --------------------------------------------------------------------------------------------
# Broadcast: a mix of the styles with cuts


class _Broadcast:
    def __init__(self, seed: int, size: Size, photos: Sequence[str], styles: Sequence[str]):
        self.seed = _seed(seed)
        self.size = size
        self.photos = list(photos)
        styles = list(styles)
        weights = np.array([{"photo": 0.35, "sports": 0.25, "shapes": 0.2, "concert": 0.2}[s] for s in styles])

        def make(rng, i, prev):
            ok = np.array([s != prev or len(styles) == 1 for s in styles], dtype=float) * weights
            style = styles[int(rng.choice(len(styles), p=ok / ok.sum()))]
            return rng.uniform(5.0, 14.0), style

        self.timeline = _Timeline(seed, _TAGS["broadcast"], make)
        self.segments = _Cache(self._build, keep=2)

    def _build(self, i):
        style = self.timeline.info[i]
        sub = int(_rng(self.seed, 505, i).integers(1 << 62))
        return _renderer(style, sub, self.size, self.photos)

    def render(self, t: float) -> np.ndarray:
        i, t0 = self.timeline.locate(t)
        return self.segments.get(i).render(t - t0)


def _renderer(style: str, seed: int, size: Size, photos: Sequence[str] | None = None, photo=None,
              styles: Sequence[str] | None = None):
    size = _check_size(size)
    if style == "photo":
        return _PhotoPan(seed, size, [photo] if photo else _photo_list(photos))
    if style == "sports":
        return _Sports(seed, size, _photo_list(photos))
    if style == "shapes":
        return _Shapes(seed, size)
    if style == "concert":
        return _Concert(seed, size)
    if style == "broadcast":
        styles = list(styles or STYLES)
        for s in styles:
            if s not in STYLES:
                raise ValueError(f"unknown style {s!r}; choose from {STYLES}")
        return _Broadcast(seed, size, _photo_list(photos), styles)
    raise ValueError(f"unknown style {style!r}")


# --------------------------------------------------------------------------------------------
# Public generators


def photo_pan(seed: int, size: Size, fps: float, duration: float, photo: str | None = None, *,
              start: float = 0.0, photos: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """Ken Burns pans and zooms over bundled photos, cutting to another photo every 4–10 s.

    ``photo`` pins one photo (cuts then go to other regions of it); ``photos`` restricts the
    choice (default :data:`PHOTOS`).
    """
    return _run(_renderer("photo", seed, size, photos, photo), fps, duration, start)


def sports(seed: int, size: Size, fps: float, duration: float, *, start: float = 0.0,
           photos: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """A football match: panning camera, players, ball, score bug, ticker, close-up cuts."""
    return _run(_renderer("sports", seed, size, photos), fps, duration, start)


def shapes(seed: int, size: Size, fps: float, duration: float, *, start: float = 0.0) -> Iterator[np.ndarray]:
    """Moving, spinning coloured shapes over a panning textured gradient; a new scene every 5–12 s."""
    return _run(_renderer("shapes", seed, size), fps, duration, start)


def concert(seed: int, size: Size, fps: float, duration: float, *, start: float = 0.0) -> Iterator[np.ndarray]:
    """A dark stage with swinging light cones, an LED wall, strobes and a bobbing crowd."""
    return _run(_renderer("concert", seed, size), fps, duration, start)


def broadcast(seed: int, size: Size, fps: float, duration: float, *, start: float = 0.0,
              photos: Sequence[str] | None = None, styles: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """The typical reference: segments of 5–14 s of the other styles, joined by hard cuts."""
    return _run(_renderer("broadcast", seed, size, photos, styles=styles), fps, duration, start)


def frames_at(style: str, seed: int, size: Size, times: Iterable[float], *,
              photos: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """Frames of ``style`` (one of :data:`STYLES` or ``"broadcast"``) at arbitrary times."""
    renderer = _renderer(style, seed, size, photos)
    for t in times:
        yield renderer.render(round(float(t), 9))


# --------------------------------------------------------------------------------------------
# Audio


def _hash_uniform(seed: int, idx: np.ndarray) -> np.ndarray:
    """Counter-based noise in [-1, 1): a pure function of (seed, integer index)."""
    mix = np.uint64((_seed(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    x = np.asarray(idx).astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
    x ^= mix
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (2.0 / (1 << 53)) - 1.0


def _music(seed: int, n: np.ndarray, sr: int) -> np.ndarray:
    rng = _rng(seed, 601)
    bpm = rng.uniform(84, 132)
    root = 45 + int(rng.integers(0, 12))
    minor = rng.random() < 0.5
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    progs = [[0, 4, 5, 3], [0, 5, 3, 4], [0, 3, 4, 3], [5, 3, 0, 4], [0, 3, 5, 4]]
    prog = progs[int(rng.integers(len(progs)))]
    t = n / sr
    beats = t * bpm / 60.0
    beat_i = np.floor(beats)
    beat_f = beats - beat_i
    spb = 60.0 / bpm
    chord = np.take(prog, (np.floor(beats / 4).astype(np.int64)) % 4)

    def midi_hz(m):
        return 440.0 * 2.0 ** ((m - 69) / 12.0)

    def degree(d):  # scale degree (may exceed 7) → semitones
        d = np.asarray(d)
        return np.take(scale, d % 7) + 12 * (d // 7)

    out = np.zeros_like(t)
    # Pad chords, re-struck every half bar.
    half = beats / 2
    tau = (half - np.floor(half)) * 2 * spb
    env = np.minimum(tau / 0.02, 1.0) * np.exp(-tau / 1.2) * np.minimum((2 * spb - tau) / 0.02, 1.0)
    for k in (0, 2, 4):
        f = midi_hz(root + 12 + degree(chord + k))
        out += 0.08 * env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))
    fb = midi_hz(root - 12 + degree(chord))
    out += 0.14 * env * np.sin(2 * np.pi * fb * t)
    # Kick on beats 1 and 3, snare on 2 and 4, hi-hat on eighths.
    tb = beat_f * spb
    kick = (beat_i % 2 == 0)
    ph = 2 * np.pi * (50 * tb + 70 * 0.03 * (1 - np.exp(-tb / 0.03)))
    out += 0.5 * kick * np.sin(ph) * np.exp(-tb / 0.15)
    noise = _hash_uniform(seed, n)
    out += 0.25 * (~kick) * (noise * 0.8 + 0.2 * np.sin(2 * np.pi * 185 * tb)) * np.exp(-tb / 0.08)
    eighth = beats * 2
    te = (eighth - np.floor(eighth)) * spb / 2
    hat = noise - _hash_uniform(seed, n - 1)
    out += 0.06 * hat * np.exp(-te / 0.02)
    # Melody: a note on most eighths, chosen from the scale by a hash of the eighth's index.
    ei = np.floor(eighth).astype(np.int64)
    pick = _hash_uniform(seed + 17, ei)
    play = _hash_uniform(seed + 29, ei) > -0.4
    deg = chord + np.floor((pick + 1) * 4.5).astype(np.int64)
    fm = midi_hz(root + 24 + degree(deg))
    tone = np.sin(2 * np.pi * fm * te) + 0.25 * np.sin(6 * np.pi * fm * te)
    out += 0.12 * play * tone * np.minimum(te / 0.005, 1.0) * np.exp(-te / 0.18)
    return out


def _crowd(seed: int, n: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import lfilter

    rng = _rng(seed, 602)
    warm = int(0.5 * sr)
    idx = np.arange(n[0] - warm, n[-1] + 1)
    noise = _hash_uniform(seed, idx)
    lo, hi = rng.uniform(300, 600), rng.uniform(1500, 3000)
    # A gentle band-pass: difference of two one-pole low-passes.
    a1, a2 = math.exp(-2 * math.pi * hi / sr), math.exp(-2 * math.pi * lo / sr)
    band = lfilter([1 - a1], [1, -a1], noise) - lfilter([1 - a2], [1, -a2], noise)
    band = band[warm:]
    t = n / sr
    swell = _smooth_path(rng, 3, 0.03, 0.2)
    env = 0.55 + 0.4 * np.array([swell(x) for x in t[:: sr // 50]])
    env = np.interp(t, t[:: sr // 50], env)
    # Claps: short bursts in some 60 ms slots.
    slot = np.floor(t / 0.06).astype(np.int64)
    claps = (_hash_uniform(seed + 5, slot) > 0.7) * np.exp(-(t - slot * 0.06) / 0.01)
    return 1.6 * band * env + 0.2 * claps * _hash_uniform(seed + 7, n)


_VOWELS = np.array([[730, 1090], [270, 2290], [300, 870], [530, 1840], [570, 840]], dtype=np.float64)


def _speech(seed: int, n: np.ndarray, sr: int) -> np.ndarray:
    rng = _rng(seed, 603)
    base = rng.uniform(95, 210)
    syl = rng.uniform(0.17, 0.24)
    t = n / sr
    si = np.floor(t / syl).astype(np.int64)
    tau = t - si * syl
    voiced = _hash_uniform(seed + 1, si) > -0.55  # some slots are pauses between words
    vowel = ((_hash_uniform(seed + 2, si) + 1) * 2.5).astype(np.int64) % 5
    f0 = base * (1 + 0.12 * _hash_uniform(seed + 3, si))
    glide = 0.4 * _hash_uniform(seed + 4, si)
    phase = 2 * np.pi * f0 * (tau + glide * tau * tau / 2)
    env = np.sin(np.pi * np.clip(tau / (syl * 0.9), 0, 1)) ** 2
    f1, f2 = _VOWELS[vowel, 0], _VOWELS[vowel, 1]
    out = np.zeros_like(t)
    for k in range(1, 25):
        fk = k * f0
        amp = (np.exp(-((fk - f1) / 120) ** 2) + 0.6 * np.exp(-((fk - f2) / 160) ** 2) + 0.15 / k) * (fk < sr / 2)
        out += amp * np.sin(k * phase)
    out *= 0.18 * env * voiced
    # A consonant burst at the start of voiced syllables.
    out += 0.08 * voiced * _hash_uniform(seed + 6, n) * np.exp(-tau / 0.015)
    return out


def audio_track(seed: int, duration: float, sample_rate: int = 16000, style: str = "music", *,
                start: float = 0.0) -> np.ndarray:
    """Mono float32 audio in [-1, 1]: ``"music"``, ``"crowd"`` or ``"speech"``.

    Like the video generators, the signal is a function of (seed, time): ``start`` gives the
    samples from ``start`` seconds on (exactly for music and speech; crowd noise passes
    through a filter that is warmed up over the preceding half second).
    """
    makers = {"music": _music, "crowd": _crowd, "speech": _speech}
    if style not in makers:
        raise ValueError(f"unknown audio style {style!r}; choose from {sorted(makers)}")
    if duration < 0 or start < 0 or sample_rate <= 0:
        raise ValueError("duration, start and sample_rate must be positive")
    total = int(round(duration * sample_rate))
    first = int(round(start * sample_rate))
    out = np.empty(total, np.float32)
    chunk = 10 * sample_rate
    for a in range(0, total, chunk):
        n = np.arange(first + a, first + min(total, a + chunk), dtype=np.int64)
        out[a : a + len(n)] = np.tanh(makers[style](seed, n, sample_rate))
    return out


# --------------------------------------------------------------------------------------------
# Piracy transformations on one frame


def resize(frame: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize to ``size`` = (width, height)."""
    w, h = int(size[0]), int(size[1])
    if frame.shape[1] == w and frame.shape[0] == h:
        return frame.copy()
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((w, h), Image.Resampling.BILINEAR))


def scale(frame: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (output dimensions rounded to even numbers)."""
    h, w = frame.shape[:2]
    return resize(frame, (_even(w * factor), _even(h * factor)))


def _fit(frame: np.ndarray, out_size: Size) -> np.ndarray:
    W, H = _even(out_size[0]), _even(out_size[1])
    h, w = frame.shape[:2]
    s = min(W / w, H / h)
    cw, ch = min(W, _even(w * s)), min(H, _even(h * s))
    out = np.zeros((H, W, 3), np.uint8)
    x0, y0 = (W - cw) // 2, (H - ch) // 2
    out[y0 : y0 + ch, x0 : x0 + cw] = resize(frame, (cw, ch))
    return out


def letterbox(frame: np.ndarray, out_size: Size) -> np.ndarray:
    """Fit the frame inside ``out_size`` keeping its aspect; black bars fill the rest.

    A frame wider than ``out_size`` (16:9 into 4:3) gets bars top and bottom. The content
    keeps its aspect whatever the sizes, so a narrower frame gets bars at the sides instead.
    """
    return _fit(frame, out_size)


def pillarbox(frame: np.ndarray, out_size: Size) -> np.ndarray:
    """Fit the frame inside ``out_size`` keeping its aspect; black bars fill the rest.

    A frame narrower than ``out_size`` (4:3 into 16:9) gets bars left and right.
    """
    return _fit(frame, out_size)


def crop(frame: np.ndarray, fraction: float) -> np.ndarray:
    """Remove ``fraction`` of each dimension (half from each side), then resize back."""
    if not 0 <= fraction < 1:
        raise ValueError("fraction must be in [0, 1)")
    h, w = frame.shape[:2]
    dx, dy = int(round(w * fraction / 2)), int(round(h * fraction / 2))
    return resize(frame[dy : h - dy, dx : w - dx], (w, h))


def greyscale(frame: np.ndarray) -> np.ndarray:
    """Luma (BT.601) copied to the three channels."""
    y = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(_to_u8(y + 0.5)[..., None], 3, axis=2)


_SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)


def sepia(frame: np.ndarray) -> np.ndarray:
    """The classic sepia tone matrix."""
    return _to_u8(frame.astype(np.float32) @ _SEPIA.T)


def brightness_contrast(frame: np.ndarray, brightness: float = 0.0, contrast: float = 1.0,
                        gamma: float = 1.0) -> np.ndarray:
    """``((x ** gamma) - 0.5) * contrast + 0.5 + brightness`` on [0, 1] values, by look-up table."""
    x = np.arange(256, dtype=np.float64) / 255.0
    y = (x ** gamma - 0.5) * contrast + 0.5 + brightness
    lut = _to_u8(y * 255.0 + 0.5)
    return lut[frame]


def _corner_xy(W, H, w, h, corner, margin):
    mx, my = int(W * margin), int(H * margin)
    x = {"l": mx, "r": W - w - mx, "c": (W - w) // 2}[corner[1] if len(corner) == 2 else "c"]
    y = {"t": my, "b": H - h - my, "c": (H - h) // 2}[corner[0] if len(corner) == 2 else "c"]
    return max(0, x), max(0, y)


_CORNERS = {"tl", "tr", "bl", "br", "c"}


@functools.lru_cache(maxsize=64)
def _logo_patch(w: int, h: int, seed: int) -> np.ndarray:
    rng = _rng(seed, _TAGS["logo"])
    patch = np.empty((h, w, 3), np.uint8)
    patch[:] = rng.integers(0, 200, 3)
    accent = tuple(int(c) for c in rng.integers(120, 256, 3))
    sides = int(rng.integers(3, 7))
    _polygon(patch, h * 0.5, h * 0.5, h * 0.36, sides, rng.uniform(0, 6.3), accent)
    _ellipse(patch, h * 0.5, h * 0.5, h * 0.14, h * 0.14, (255, 255, 255))
    text = _text_strip(max(8, int(h * 0.5)), max(8, w - h), seed, (255, 255, 255), tuple(int(c) for c in patch[0, 0]))
    patch[h // 4 : h // 4 + text.shape[0], h : h + text.shape[1]] = text[: h - h // 4, : w - h]
    bw = max(1, h // 12)
    patch[:bw], patch[-bw:], patch[:, :bw], patch[:, -bw:] = accent, accent, accent, accent
    return patch


def logo(frame: np.ndarray, corner: str = "tr", size_fraction: float = 0.12, seed: int = 0) -> np.ndarray:
    """An opaque channel logo (emblem + text-like mark) in ``corner`` ("tl", "tr", "bl", "br", "c").

    ``size_fraction`` is the logo width relative to the frame width.
    """
    if corner not in _CORNERS:
        raise ValueError(f"corner must be one of {sorted(_CORNERS)}")
    H, W = frame.shape[:2]
    w = max(8, int(W * size_fraction))
    h = max(6, int(w * 0.45))
    out = frame.copy()
    x, y = _corner_xy(W, H, w, h, corner, 0.03)
    out[y : y + h, x : x + w] = _logo_patch(w, h, int(seed))[: H - y, : W - x]
    return out


def overlay(frame: np.ndarray, area_fraction: float = 0.25, position: str = "bl", alpha: float = 0.85,
            seed: int = 0) -> np.ndarray:
    """A mostly opaque graphics panel (lower-third style, text-like lines) covering
    ``area_fraction`` of the frame, 16:9-ish shaped, placed at ``position``."""
    if position not in _CORNERS:
        raise ValueError(f"position must be one of {sorted(_CORNERS)}")
    H, W = frame.shape[:2]
    area = max(0.0, min(1.0, area_fraction)) * W * H
    w = min(W, int(round(math.sqrt(area * 2.5))))
    h = min(H, int(round(area / max(w, 1))))
    if w < 2 or h < 2:
        return frame.copy()
    rng = _rng(seed, 708)
    panel = np.empty((h, w, 3), np.uint8)
    panel[:] = rng.integers(10, 90, 3)
    line = max(6, h // 5)
    strip = _text_strip(line, max(w, 8), int(seed) + 1, (245, 245, 245), tuple(int(c) for c in panel[0, 0]))
    for k, y in enumerate(range(line // 2, h - line, int(line * 1.4))):
        panel[y : y + line] = strip[:, (np.arange(w) + k * 37) % strip.shape[1]]
    _rect(panel, 0, 0, max(2, w // 40), h, tuple(int(c) for c in rng.integers(150, 256, 3)))
    out = frame.copy()
    x, y = _corner_xy(W, H, w, h, position, 0.0)
    region = out[y : y + h, x : x + w].astype(np.float32)
    out[y : y + h, x : x + w] = _to_u8(alpha * panel + (1 - alpha) * region)
    return out


def ticker(frame: np.ndarray, t: float, height_fraction: float = 0.08, seed: int = 0,
           speed: float = 0.12) -> np.ndarray:
    """A news ticker band at the bottom whose text scrolls with time ``t`` (seconds)."""
    out = frame.copy()
    _draw_ticker(out, t, 9000 + int(seed), height_fraction, speed, ((20, 20, 20), (240, 240, 235)))
    return out


def mirror(frame: np.ndarray) -> np.ndarray:
    """Horizontal flip."""
    return np.ascontiguousarray(frame[:, ::-1])


def picture_in_picture(frame: np.ndarray, background: np.ndarray, fraction: float = 0.5,
                       corner: str = "br") -> np.ndarray:
    """``frame`` scaled to ``fraction`` of the background's width, pasted into ``background``."""
    if corner not in _CORNERS:
        raise ValueError(f"corner must be one of {sorted(_CORNERS)}")
    H, W = background.shape[:2]
    out = background[: H - H % 2, : W - W % 2].copy()
    H, W = out.shape[:2]
    h, w = frame.shape[:2]
    pw = min(W, _even(W * fraction))
    ph = min(H, _even(pw * h / w))
    pw = min(pw, _even(ph * w / h))
    x, y = _corner_xy(W, H, pw, ph, corner, 0.04)
    out[y : y + ph, x : x + pw] = resize(frame, (pw, ph))
    return out


def rotate_zoom(frame: np.ndarray, degrees: float, zoom: float = 1.0) -> np.ndarray:
    """Rotate about the centre by ``degrees`` (counter-clockwise) and zoom; uncovered corners are black."""
    h, w = frame.shape[:2]
    a = math.radians(degrees)
    c, s = math.cos(a) / zoom, math.sin(a) / zoom
    cx, cy = w / 2, h / 2
    # Output (x, y) → input: centre + R(-a)/zoom · (x - centre) with y pointing down.
    coeffs = (c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy)
    img = Image.fromarray(np.ascontiguousarray(frame))
    out = img.transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out).copy()


def _perspective_coeffs(dst, src):
    """Coefficients mapping output points ``dst`` to input points ``src`` (PIL PERSPECTIVE)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def camcord(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """A camcorder recording of a screen: keystone warp onto a dim room, blur, colour cast,
    moiré and sensor noise. Vary ``seed`` per frame for changing noise (geometry stays put
    for seeds with the same ``seed // 1000``)."""
    h, w = frame.shape[:2]
    geo = _rng(int(seed) // 1000, 801)
    rng = _rng(seed, 802)
    j = geo.uniform(0.02, 0.08, 8)
    dst = [(w * j[0], h * j[1]), (w * (1 - j[2]), h * j[3]), (w * (1 - j[4]), h * (1 - j[5])),
           (w * j[6], h * (1 - j[7]))]
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    img = Image.fromarray(np.ascontiguousarray(frame))
    warped = img.transform((w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(dst, src),
                           resample=Image.Resampling.BILINEAR, fillcolor=(28, 24, 22))
    warped = warped.filter(ImageFilter.GaussianBlur(radius=max(0.6, w / 320 * geo.uniform(0.7, 1.4))))
    x = np.asarray(warped, dtype=np.float32)
    cast = geo.uniform(0.85, 1.1, 3).astype(np.float32)
    yy, xx = np.ogrid[0:h, 0:w]
    period = geo.uniform(2.5, 4.5) * max(1.0, w / 320)
    ang = geo.uniform(0, np.pi)
    moire = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * (2 * np.pi / period)).astype(np.float32)
    vignette = 1.0 - 0.35 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2).astype(np.float32)
    x = x * cast * vignette[..., None] + 8.0 * moire[..., None]
    x += rng.standard_normal((h, w, 1), dtype=np.float32) * 5.0
    return _to_u8(x + 6.0)


# --------------------------------------------------------------------------------------------
# Time transformations


def change_fps(frames: Iterable[np.ndarray], fps_in: float, fps_out: float) -> Iterator[np.ndarray]:
    """Resample a sequence: output frame j (time j/fps_out) is the input frame nearest in time."""
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError("frame rates must be positive")
    ratio = fps_in / fps_out

    def nearest(j: int) -> int:  # ties go to the earlier frame
        return math.ceil(j * ratio - 0.5 - 1e-9)

    j = 0
    for i, frame in enumerate(frames):
        while nearest(j) == i:  # every output frame whose nearest input frame is i
            yield frame
            j += 1


def speed(frames: Iterable[np.ndarray], factor: float) -> Iterator[np.ndarray]:
    """Play ``factor`` times faster at the same frame rate (drops or repeats frames)."""
    if factor <= 0:
        raise ValueError("factor must be positive")
    return change_fps(frames, factor, 1.0)


def drop_frames(frames: Iterable[np.ndarray], fraction: float, seed: int = 0) -> Iterator[np.ndarray]:
    """Drop each frame independently with probability ``fraction`` (seeded)."""
    rng = _rng(seed, 901)
    for frame in frames:
        if rng.random() >= fraction:
            yield frame


def splice(parts: Iterable[Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
    """Concatenate frame sequences."""
    return itertools.chain.from_iterable(parts)


# --------------------------------------------------------------------------------------------
# Files


def make_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, **write_kwargs):
    """Encode ``frames`` to ``path`` with :func:`guard_synth.encode.write_video`; returns the path."""
    from guard_synth.encode import write_video

    return write_video(path, frames, fps, **write_kwargs)
