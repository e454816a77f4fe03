"""aHash (mean hash) as in ``imagehash.average_hash``, batched: bit-identical on the same grey input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from guard.signals.base import FrameSignal


class AHash(FrameSignal):
    """``imagehash.average_hash(image, hash_size, mean=...)``: one bit per pixel above the mean.

    With ``median=True`` the threshold is the median (imagehash's ``mean=numpy.median``), which
    sets about half the bits on any frame, dark scenes included, so codes stay spread out.
    """

    version = 1

    def __init__(self, hash_size: int = 8, median: bool = False):
        self.hash_size = hash_size
        self.median = median
        self.bits = hash_size * hash_size
        self.input_size = (hash_size, hash_size)
        self.name = f"{'mhash' if median else 'ahash'}{hash_size}"

    def hash_bits(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        flat = frames.reshape(len(frames), -1)
        threshold: npt.NDArray[np.float64]
        if self.median:
            threshold = np.median(flat, axis=1, keepdims=True)
        else:
            threshold = flat.mean(axis=1, keepdims=True)
        return flat > threshold

    def parameters(self) -> dict[str, Any]:
        """Grid side and the threshold statistic (``mean`` or ``median``)."""
        return {"hash_size": self.hash_size, "threshold": "median" if self.median else "mean"}

    def hash_masked(self, frames: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """The threshold (mean or median) is taken over the usable pixels only: a dark panel
        over a quarter of the frame would otherwise move it and flip bits everywhere."""
        flat = frames.reshape(len(frames), -1).astype(np.float32)
        shown = np.where(usable.reshape(len(frames), -1), flat, np.nan)
        threshold = np.nanmedian(shown, axis=1) if self.median else np.nanmean(shown, axis=1)
        return np.packbits(flat > threshold[:, None], axis=1)

    def mirror(self, codes: np.ndarray) -> np.ndarray:
        """Flipping a frame flips each row of its grid and keeps its mean and median, so the
        mirrored frame's code is the code with each row's bits reversed."""
        grid = np.unpackbits(codes, axis=1).reshape(len(codes), self.hash_size, self.hash_size)
        return np.packbits(grid[:, :, ::-1].reshape(len(codes), -1), axis=1)


def ahash8() -> AHash:
    """8×8 mean hash (64 bits)."""
    return AHash(8)


def ahash16() -> AHash:
    """16×16 mean hash (256 bits)."""
    return AHash(16)


def mhash16() -> AHash:
    """16×16 median hash (256 bits): guard's default signal."""
    return AHash(16, median=True)
