"""Bar detection and cropping on generated frames."""

import numpy as np
import pytest

from guard import preprocess
from guard_synth import broadcast as synth


def _grey(frames):
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(f).convert("L").resize((128, 128), Image.Resampling.BOX)) for f in frames])


def _content(n=12, seed=4):
    return list(synth.broadcast(seed, (320, 180), 4, n / 4, photos=synth.PHOTOS[:8]))


@pytest.mark.parametrize("box,expected", [
    (lambda f: synth.letterbox(f, (320, 240)), (16, 112, 0, 128)),
    (lambda f: synth.pillarbox(synth.resize(f, (240, 180)), (320, 180)), (0, 128, 16, 112)),
    (lambda f: f, (0, 128, 0, 128)),
])
def test_bars_are_found_within_two_lines(box, expected):
    boxes = preprocess.detect_bars(_grey([box(f) for f in _content()]))
    assert np.abs(boxes - np.array(expected)).max() <= 2


def test_logo_over_the_bar_does_not_hide_it():
    frames = [synth.logo(synth.letterbox(f, (320, 240)), "tr", 0.14) for f in _content()]
    boxes = preprocess.detect_bars(_grey(frames))
    assert np.abs(boxes[:, 0] - 16).max() <= 2


def test_bars_follow_a_cut_from_plain_to_boxed_content():
    plain = _content(8, seed=5)
    boxed = [synth.letterbox(f, (320, 240)) for f in _content(8, seed=6)]
    plain = [synth.resize(f, (320, 240)) for f in plain]
    boxes = preprocess.detect_bars(_grey(plain + boxed))
    assert (boxes[:6, 0] == 0).all()
    assert (np.abs(boxes[10:, 0] - 16) <= 2).all()


def test_crop_resize_and_informative():
    grey = np.zeros((3, 128, 128), np.uint8)
    grey[:, 16:112] = np.arange(128, dtype=np.uint8)[None, None, :] * 2
    out = preprocess.crop_resize(grey, np.array([[16, 112, 0, 128]] * 3), (16, 16))
    assert out.shape == (3, 16, 16)
    assert out[:, :, 0].max() < out[:, :, -1].min()  # the ramp survives, no bar rows left
    flat = np.full((2, 16, 16), 30, np.uint8)
    assert preprocess.informative(np.concatenate([out, flat])).tolist() == [True] * 3 + [False] * 2


def test_a_dark_band_on_one_side_only_is_picture_not_a_bar():
    """A night sky or a dark stage at the top is kept: real bars come in equal pairs."""
    frames = []
    for f in _content():
        f = f.copy()
        f[:30] = 0  # the top sixth is black, the bottom is not
        frames.append(f)
    boxes = preprocess.detect_bars(_grey(frames))
    assert (boxes[:, 0] == 0).all() and (boxes[:, 1] == 128).all()


def _moving_under_a_panel(n=40, panel=True, seed=3):
    """64×64 frames of moving noise; a still, translucent panel over the top-left quarter."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 64, 64)).astype(np.float32)
    if panel:
        frames[:, :32, :32] = 0.85 * 40 + 0.15 * frames[:, :32, :32]
    return frames.astype(np.uint8)


def test_a_still_panel_over_moving_content_is_found():
    motion = preprocess.block_motion(_moving_under_a_panel(), None, (16, 16))
    usable, overlaid = preprocess.still_overlay(motion)
    assert overlaid.all()
    assert not usable[:, :8, :8].any() and usable[:, 8:, :].all() and usable[:, :, 8:].all()


def test_motion_continues_across_batches():
    frames = _moving_under_a_panel()
    whole = preprocess.block_motion(frames, None, (16, 16))
    parts = np.concatenate([preprocess.block_motion(frames[:15], None, (16, 16)),
                            preprocess.block_motion(frames[15:], frames[14], (16, 16))])
    assert np.allclose(whole, parts)


@pytest.mark.parametrize("frames", [
    _moving_under_a_panel(panel=False),  # all of it moves: nothing to hide
    np.repeat(_moving_under_a_panel(n=1), 40, axis=0),  # nothing moves: a still scene
], ids=["all moving", "all still"])
def test_no_overlay_without_a_still_part_over_a_moving_one(frames):
    _, overlaid = preprocess.still_overlay(preprocess.block_motion(frames, None, (16, 16)))
    assert not overlaid.any()
