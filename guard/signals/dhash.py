"""dHash (gradient hash) as in ``imagehash.dhash``, batched: bit-identical on the same grey input."""

from __future__ import annotations

import numpy as np

from guard.signals.base import FrameSignal


class DHash(FrameSignal):
    """``imagehash.dhash(image, hash_size)``: one bit per horizontally adjacent pixel pair."""

    version = 1

    def __init__(self, hash_size: int = 8):
        self.hash_size = hash_size
        self.bits = hash_size * hash_size
        self.input_size = (hash_size + 1, hash_size)
        self.name = f"dhash{hash_size}"

    def hash_bits(self, frames: np.ndarray) -> np.ndarray:
        diff = frames[:, :, 1:] > frames[:, :, :-1]
        return diff.reshape(len(frames), -1)
