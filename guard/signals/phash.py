"""pHash (DCT hash) as in ``imagehash.phash``, batched: bit-identical on the same grey input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fftpack

from guard.signals.base import FrameSignal


class PHash(FrameSignal):
    """``imagehash.phash(image, hash_size, highfreq_factor=4)`` over a batch.

    The 2-D DCT of each ``4·hash_size`` square grey frame is kept at its ``hash_size²`` lowest
    frequencies; a bit is set where the coefficient exceeds the median of those coefficients.
    """

    version = 1
    highfreq_factor = 4

    def __init__(self, hash_size: int = 16):
        self.hash_size = hash_size
        self.bits = hash_size * hash_size
        side = hash_size * self.highfreq_factor
        self.input_size = (side, side)
        self.name = f"phash{hash_size}"

    def hash_bits(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        dct: npt.NDArray[np.float64] = scipy.fftpack.dct(scipy.fftpack.dct(frames, axis=1), axis=2)
        low = dct[:, : self.hash_size, : self.hash_size].reshape(len(frames), -1)
        median = np.median(low, axis=1, keepdims=True)
        return low > median

    def parameters(self) -> dict[str, Any]:
        """Kept frequencies per side and the input oversampling factor."""
        return {"hash_size": self.hash_size, "highfreq_factor": self.highfreq_factor}


def phash8() -> PHash:
    """8×8 DCT hash (64 bits) of a 32×32 frame."""
    return PHash(8)


def phash16() -> PHash:
    """16×16 DCT hash (256 bits) of a 64×64 frame."""
    return PHash(16)
