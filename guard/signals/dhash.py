"""dHash (gradient hash) as in ``imagehash.dhash``, batched: bit-identical on the same grey input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from guard.signals.base import FrameSignal


class DHash(FrameSignal):
    """``imagehash.dhash(image, hash_size)``: one bit per horizontally adjacent pixel pair."""

    version = 1

    def __init__(self, hash_size: int = 8):
        self.hash_size = hash_size
        self.bits = hash_size * hash_size
        self.input_size = (hash_size + 1, hash_size)
        self.name = f"dhash{hash_size}"

    def hash_bits(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        diff = frames[:, :, 1:] > frames[:, :, :-1]
        return diff.reshape(len(frames), -1)

    def parameters(self) -> dict[str, Any]:
        """Grid side (``hash_size`` rows of ``hash_size + 1`` pixels)."""
        return {"hash_size": self.hash_size}


def dhash8() -> DHash:
    """8×8 gradient hash (64 bits)."""
    return DHash(8)


def dhash16() -> DHash:
    """16×16 gradient hash (256 bits)."""
    return DHash(16)
