"""Tests of guard_synth.layouts (issue 14): streamer layouts, a TV filmed by a phone, a stadium's
big screen; their ground truth (window box, screen quadrilateral) and the corpus families."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from guard_synth import broadcast as synth
from guard_synth import layouts

SIZE = (320, 180)
MAGENTA = (255, 0, 255)
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return next(synth.broadcast(3, SIZE, 25, 0.04, start=1.0))


@pytest.fixture(scope="module")
def magenta() -> np.ndarray:
    out = np.empty((180, 320, 3), np.uint8)
    out[:] = MAGENTA
    return out


def _is_magenta(img: np.ndarray) -> np.ndarray:
    """Magenta through blur, noise, colour casts, moiré and glare: red and blue well above green."""
    x = img.astype(np.int16)
    return (x[..., 0] - x[..., 1] > 60) & (x[..., 2] - x[..., 1] > 60)


def _polygon_mask(quad, size, shrink: float = 0.0) -> np.ndarray:
    """Pixels inside ``quad``, optionally shrunk towards its centre by ``shrink`` (a fraction)."""
    cx, cy = np.mean([p[0] for p in quad]), np.mean([p[1] for p in quad])
    pts = [(cx + (x - cx) * (1 - shrink), cy + (y - cy) * (1 - shrink)) for x, y in quad]
    img = Image.new("L", size, 0)
    ImageDraw.Draw(img).polygon(pts, fill=1)
    return np.asarray(img).astype(bool)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


# -- streamer layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("area,position", [(0.15, "tr"), (0.30, "bl"), (0.60, "center"), (0.30, "tl")])
def test_streamer_window_has_the_requested_area_and_holds_the_copy(area, position, magenta):
    layout = layouts.streamer_layout(area, position, 4, SIZE)
    x0, y0, x1, y1 = layout.box
    assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]
    assert (x1 - x0) * (y1 - y0) / (SIZE[0] * SIZE[1]) == pytest.approx(area, rel=0.1)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(16 / 9, rel=0.05)
    for t in (0.0, 1.3, 4.0):  # with and without an alert over the layout
        out = layout(magenta, t)
        assert out.shape == (180, 320, 3) and out.dtype == np.uint8
        hit = np.all(out == MAGENTA, axis=2)
        inside = hit[y0:y1, x0:x1].mean()
        outside = (hit.sum() - hit[y0:y1, x0:x1].sum()) / (hit.size - (x1 - x0) * (y1 - y0))
        assert inside > 0.9 and outside < 0.01, (t, inside, outside)


def test_streamer_parts_do_not_overlap_the_window():
    for area, position in [(0.15, "tl"), (0.3, "br"), (0.6, "c"), (0.6, "tr")]:
        layout = layouts.streamer_layout(area, position, 1, SIZE)
        for other in (layout.webcam_box, layout.chat_box):
            assert not _overlap(layout.box, other), (area, position, other)
            assert other[2] > other[0] and other[3] > other[1]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_streamer_layout_is_deterministic(frame):
    a = layouts.streamer_layout(0.3, "tl", 9, SIZE)
    b = layouts.streamer_layout(0.3, "tl", 9, SIZE)
    for t in (0.0, 2.5, 7.25):
        assert np.array_equal(a(frame, t), b(frame, t))
    # Asked out of order, a frame is the same.
    assert np.array_equal(a(frame, 2.5), layouts.streamer_layout(0.3, "tl", 9, SIZE)(frame, 2.5))
    assert not np.array_equal(a(frame, 1.0), layouts.streamer_layout(0.3, "tl", 10, SIZE)(frame, 1.0))


def test_chat_scrolls_and_the_webcam_moves(frame):
    layout = layouts.streamer_layout(0.3, "bl", 2, SIZE)
    cx0, cy0, cx1, cy1 = layout.chat_box
    wx0, wy0, wx1, wy1 = layout.webcam_box
    a, b = layout(frame, 0.0), layout(frame, 3.0)
    assert _mad(a[cy0:cy1, cx0:cx1], b[cy0:cy1, cx0:cx1]) > 2.0
    # Upward: what was low in the column at t=0 is higher later.
    lh = layout._chat.shape[0] // 64
    shift = int(math.floor(3.0 * layout.chat_speed * lh))
    assert 0 < shift < cy1 - cy0
    assert np.array_equal(b[cy0 : cy1 - shift, cx0:cx1], a[cy0 + shift : cy1, cx0:cx1])
    assert _mad(a[wy0:wy1, wx0:wx1], b[wy0:wy1, wx0:wx1]) > 0.5


def test_alerts_appear_for_about_two_seconds_every_seven(frame):
    layout = layouts.streamer_layout(0.15, "tl", 5, SIZE)
    times = np.arange(0.0, 21.0, 0.25)
    shown = np.array([layout.alert_visible(float(t)) for t in times])
    assert 0.2 < shown.mean() < 0.4
    starts = times[1:][shown[1:] & ~shown[:-1]]
    assert len(starts) >= 2 and np.all(np.abs(np.diff(starts) - layout.alert_period) <= 0.5)
    on = float(starts[0]) + 1.0
    off = on + 3.0
    assert layout.alert_visible(on) and not layout.alert_visible(off)
    ax0, ay0, ax1, ay1 = layout.alert_box
    base = layout._base[ay0:ay1, ax0:ax1]
    assert _mad(layout(frame, on)[ay0:ay1, ax0:ax1], base) > 10
    assert np.array_equal(layout(frame, off)[ay0:ay1, ax0:ax1], base)


def test_unrelated_layout_is_deterministic_and_moves():
    a, b = layouts.unrelated_layout(11, SIZE), layouts.unrelated_layout(11, SIZE)
    x, y = a(3.0), b(3.0)
    assert x.shape == (180, 320, 3) and np.array_equal(x, y)
    x0, y0, x1, y1 = a.box
    later = a(5.0)
    assert _mad(x[y0:y1, x0:x1], later[y0:y1, x0:x1]) > 1.0
    frames = list(a.frames(10, 0.3, start=3.0))
    assert len(frames) == 3 and np.array_equal(frames[0], x)


# -- a TV filmed by a phone ---------------------------------------------------------------------


@pytest.mark.parametrize("angle", [10.0, 18.0, 25.0])
def test_camcorded_tv_screen_fills_a_third_to_a_half_and_is_seen_at_an_angle(angle):
    for seed in (1, 2, 3):
        tv = layouts.camcorded_tv(seed, angle, SIZE)
        assert 0.35 <= tv.screen_fraction() <= 0.6, (seed, tv.screen_fraction())
        q = tv.quad
        assert all(-1 <= x <= SIZE[0] + 1 and -1 <= y <= SIZE[1] + 1 for x, y in q)
        left, right = math.dist(q[0], q[3]), math.dist(q[1], q[2])
        top, bottom = math.dist(q[0], q[1]), math.dist(q[3], q[2])
        # Not a rectangle: the near side is taller than the far side.
        assert abs(left - right) / max(left, right) > 0.05 or abs(top - bottom) / max(top, bottom) > 0.05


def test_camcorded_tv_shows_the_copy_inside_its_quad(magenta):
    tv = layouts.camcorded_tv(4, 18, SIZE)
    for t in (0.0, 1.7):
        out = tv(magenta, t)
        assert out.shape == (180, 320, 3) and out.dtype == np.uint8
        hit = _is_magenta(out)
        quad = tv.quad_at(t)
        inner, outer = _polygon_mask(quad, SIZE, 0.06), _polygon_mask(quad, SIZE, -0.06)
        assert hit[inner].mean() > 0.97
        assert hit[~outer].mean() < 0.01
    # The hand shake moves the screen a little, smoothly.
    moved = max(math.dist(p, r) for p, r in zip(tv.quad_at(0.0), tv.quad_at(3.0)))
    assert 0 < moved < 0.05 * SIZE[0]


def test_camcorded_tv_is_deterministic_and_noisy(frame):
    a, b = layouts.camcorded_tv(7, 12, SIZE), layouts.camcorded_tv(7, 12, SIZE)
    assert np.array_equal(a(frame, 2.0), b(frame, 2.0))
    assert np.array_equal(a(frame, 0.5), b(frame, 0.5))
    # Same picture, another instant: noise and shake differ.
    assert not np.array_equal(a(frame, 0.5), a(frame, 0.6))
    assert a.quad != layouts.camcorded_tv(8, 12, SIZE).quad


# -- a stadium's big screen ---------------------------------------------------------------------


def test_stadium_screen_is_far_and_partly_hidden_by_the_crowd(magenta):
    for seed in (1, 2):
        st = layouts.stadium_screen(seed, SIZE)
        assert 0.2 <= st.screen_fraction() <= 0.4
        hidden = [st.occlusion(t) for t in np.arange(0.0, 10.0, 0.7)]
        assert max(hidden) <= 0.15 and min(hidden) > 0.0
        out = st(magenta, 1.0)
        inside = _polygon_mask(st.quad_at(1.0), SIZE)
        visible = _is_magenta(out)[inside].mean()
        assert 0.8 <= visible < 0.99, visible  # the heads cover the screen's bottom only
        rows = np.nonzero(inside & ~_is_magenta(out))[0]
        assert np.median(rows) > np.mean([p[1] for p in st.quad])  # what is hidden is low on the screen
        assert _is_magenta(out)[~_polygon_mask(st.quad_at(1.0), SIZE, -0.06)].mean() < 0.01


def test_stadium_screen_fill_and_determinism(frame):
    for fill in (0.22, 0.38):
        st = layouts.stadium_screen(3, SIZE, fill=fill, angle_deg=6.0)
        assert st.screen_fraction() == pytest.approx(fill, rel=0.1)
    a, b = layouts.stadium_screen(5, SIZE), layouts.stadium_screen(5, SIZE)
    assert np.array_equal(a(frame, 4.0), b(frame, 4.0))
    assert a.occlusion(4.0) == b.occlusion(4.0)


def test_map_frames_passes_each_frame_its_time(frame):
    layout = layouts.streamer_layout(0.3, "tl", 1, SIZE)
    out = list(layouts.map_frames(layout, [frame] * 3, fps=4.0, start=2.0))
    assert np.array_equal(out[2], layout(frame, 2.5))


# -- the corpus ---------------------------------------------------------------------------------


def _load_make_corpus():
    spec = importlib.util.spec_from_file_location("guard_layouts_make_corpus", SCRIPTS / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["guard_layouts_make_corpus"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def make_corpus():
    return _load_make_corpus()


def test_corpus_lists_the_layout_families_with_their_truth(make_corpus):
    for family, n in (("streamer_layout", 3), ("camcorder_tv", 3), ("camcorder_stadium", 3)):
        assert len(make_corpus.FAMILIES[family]) == n and family in make_corpus.FULL.families
    assert {v["area"] for v in make_corpus.FAMILIES["streamer_layout"]} == {0.15, 0.30, 0.60}
    assert {v["angle"] for v in make_corpus.FAMILIES["camcorder_tv"]} == {10.0, 18.0, 25.0}
    plan = make_corpus.plan(make_corpus.FULL, 7)
    by_family: dict[str, list[dict]] = {}
    for q in plan["queries"]:
        by_family.setdefault(q["family"], []).append(q)
    for q in by_family["streamer_layout"]:
        x0, y0, x1, y1 = q["truth"]["window"]
        w, h = q["ref_size"]
        assert (x1 - x0) * (y1 - y0) / (w * h) == pytest.approx(q["variant"]["area"], rel=0.1)
    for family in ("camcorder_tv", "camcorder_stadium"):
        assert len(by_family[family]) == 3
        for q in by_family[family]:
            assert len(q["truth"]["screen"]) == 4
    streamers = [n for n in plan["negatives"] if n["style"] == "streamer_layout"]
    assert sum(n["duration"] for n in streamers) == pytest.approx(3600.0)
    assert not {n["seed"] for n in streamers} & {r["seed"] for r in plan["references"]}
    assert len({n["file"] for n in plan["negatives"]}) == len(plan["negatives"])


def test_corpus_transform_draws_the_layout_around_the_stream(make_corpus, frame):
    plan = make_corpus.plan(make_corpus.FULL, 7)
    for family in make_corpus.LAYOUT_FAMILIES:
        spec = next(q for q in plan["queries"] if q["family"] == family)
        out = make_corpus._frame_transform(spec, SIZE)(frame, 1.0, 15)
        assert out.shape == (180, 320, 3) and out.dtype == np.uint8
        assert _mad(out, frame) > 5.0
    neg = next(n for n in plan["negatives"] if n["style"] == "streamer_layout")
    render = layouts.unrelated_layout(neg["seed"], tuple(neg["size"]), styles=neg["layout"]["content_styles"])
    assert render(1.0).shape == (neg["size"][1], neg["size"][0], 3)
