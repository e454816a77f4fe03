"""aHash (mean hash) as in ``imagehash.average_hash``, batched: bit-identical on the same grey input."""

from __future__ import annotations

import numpy as np

from guard.signals.base import FrameSignal


class AHash(FrameSignal):
    """``imagehash.average_hash(image, hash_size)``: one bit per pixel brighter than the mean."""

    version = 1

    def __init__(self, hash_size: int = 8):
        self.hash_size = hash_size
        self.bits = hash_size * hash_size
        self.input_size = (hash_size, hash_size)
        self.name = f"ahash{hash_size}"

    def hash_bits(self, frames: np.ndarray) -> np.ndarray:
        flat = frames.reshape(len(frames), -1)
        return flat > flat.mean(axis=1, keepdims=True)
