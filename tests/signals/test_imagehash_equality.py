"""Every batched signal is bit-identical to the imagehash package on the same grey input."""

import imagehash
import numpy as np
import pytest
from PIL import Image
from skimage import data

from guard.signals import get_signal, hamming, masked_hamming

REFERENCE = {
    "phash8": lambda im: imagehash.phash(im, hash_size=8),
    "phash16": lambda im: imagehash.phash(im, hash_size=16),
    "dhash8": lambda im: imagehash.dhash(im, hash_size=8),
    "dhash16": lambda im: imagehash.dhash(im, hash_size=16),
    "ahash8": lambda im: imagehash.average_hash(im, hash_size=8),
    "ahash16": lambda im: imagehash.average_hash(im, hash_size=16),
    "mhash16": lambda im: imagehash.average_hash(im, hash_size=16, mean=np.median),
}


def _inputs(size: tuple[int, int]) -> np.ndarray:
    """Photos, noise, gradients and flat frames at the signal's input size."""
    rng = np.random.default_rng(7)
    photos = [data.camera(), data.astronaut()[..., 1], data.coffee()[..., 0], data.moon()]
    frames = [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BILINEAR)) for p in photos]
    frames += [rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8) for _ in range(20)]
    ramp = np.linspace(0, 255, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint8)
    frames += [ramp, ramp.T.copy().reshape(size[1], size[0]), np.full((size[1], size[0]), 128, np.uint8)]
    return np.stack(frames)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_batch_hash_equals_imagehash_bit_for_bit(name):
    signal = get_signal(name)
    frames = _inputs(signal.input_size)
    ours = signal.hash_batch(frames)
    theirs = np.stack([np.packbits(REFERENCE[name](Image.fromarray(f)).hash.flatten()) for f in frames])
    assert ours.shape == (len(frames), signal.bits // 8)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["phash16", "dhash8"])
def test_hamming_matches_imagehash_difference(name):
    signal = get_signal(name)
    frames = _inputs(signal.input_size)
    codes = signal.hash_batch(frames)
    hashes = [REFERENCE[name](Image.fromarray(f)) for f in frames]
    ours = hamming(codes[:-1], codes[1:])
    theirs = [a - b for a, b in zip(hashes[:-1], hashes[1:])]
    assert ours.tolist() == theirs


def test_signal_identity_is_versioned():
    signal = get_signal("phash16")
    assert signal.describe() == {
        "name": "phash16", "version": 1, "modality": "video", "metric": "hamming", "bits": 256,
        "input_size": [64, 64], "params": {"hash_size": 16, "highfreq_factor": 4},
    }


def test_description_records_the_threshold():
    """Mean and median hashes of one size differ only in their threshold: describe() says so."""
    assert get_signal("ahash16").describe()["params"]["threshold"] == "mean"
    assert get_signal("mhash16").describe()["params"]["threshold"] == "median"


@pytest.mark.parametrize("name", ["ahash8", "ahash16", "mhash16"])
def test_mirrored_codes_are_the_codes_of_flipped_frames(name):
    signal = get_signal(name)
    frames = _inputs(signal.input_size)
    flipped = np.ascontiguousarray(frames[:, :, ::-1])
    assert np.array_equal(signal.mirror(signal.hash_batch(frames)), signal.hash_batch(flipped))


@pytest.mark.parametrize("name", ["phash8", "phash16", "dhash8", "dhash16"])
def test_signals_that_cannot_flip_codes_say_so(name):
    signal = get_signal(name)
    assert signal.mirror(signal.hash_batch(_inputs(signal.input_size))) is None


@pytest.mark.parametrize("name", ["ahash8", "ahash16", "mhash16"])
def test_masked_codes_ignore_what_is_hidden(name):
    """With every pixel usable the masked code is the code; hiding a quarter under a dark
    panel leaves the visible bits where they were."""
    signal = get_signal(name)
    frames = _inputs(signal.input_size)
    usable = np.ones(frames.shape, bool)
    assert np.array_equal(signal.hash_masked(frames, usable), signal.hash_batch(frames))
    h, w = frames.shape[1:]
    covered = frames.copy()
    covered[:, : h // 2, : w // 2] = 0
    usable[:, : h // 2, : w // 2] = False
    mask = np.packbits(usable.reshape(len(frames), -1), axis=1)
    visible_only = signal.hash_masked(frames, usable)
    assert np.array_equal(masked_hamming(signal.hash_masked(covered, usable), visible_only, mask),
                          np.zeros(len(frames)))


def test_masked_hamming_scales_to_the_full_code():
    a = np.zeros((1, 32), np.uint8)
    b = np.zeros((1, 32), np.uint8)
    b[0, :2] = 0xFF  # 16 bits differ, all in the first half
    half = np.zeros((1, 32), np.uint8)
    half[0, :16] = 0xFF
    assert masked_hamming(a, b, half).tolist() == [32]  # 16 of 128 shown bits → 32 of 256
    assert masked_hamming(a, b, np.full((1, 32), 0xFF, np.uint8)).tolist() == [16]
    assert masked_hamming(a, b, np.zeros((1, 32), np.uint8)).tolist() == [257]  # nothing shown
    assert get_signal("phash16").hash_masked(np.zeros((1, 32, 32), np.uint8), np.ones((1, 32, 32), bool)) is None
