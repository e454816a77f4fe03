"""The frame-signal abstraction: one subclass per perceptual hash, all batched and versioned."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class FrameSignal(ABC):
    """A perceptual hash of a grey frame, computed for a whole batch at once.

    Subclasses set ``name``, ``version`` (bumped whenever the bits for the same input change,
    which invalidates stored fingerprints) and ``bits``, declare the grey input size they
    hash (``input_size`` = (width, height)) and implement :meth:`hash_bits`.
    """

    name: str
    version: int
    bits: int
    input_size: tuple[int, int]

    @abstractmethod
    def hash_bits(self, frames: np.ndarray) -> np.ndarray:
        """Hash ``frames`` ``(n, height, width)`` uint8 into booleans ``(n, bits)``."""

    def hash_batch(self, frames: np.ndarray) -> np.ndarray:
        """Hash ``frames`` into packed codes ``(n, bits // 8)`` uint8, MSB first (imagehash order)."""
        if len(frames) == 0:
            return np.zeros((0, self.bits // 8), dtype=np.uint8)
        return np.packbits(self.hash_bits(frames), axis=1)

    def hash_masked(self, frames: np.ndarray, usable: np.ndarray) -> np.ndarray | None:
        """Codes of ``frames`` computed from their ``usable`` pixels ``(n, height, width)`` bool
        only (the rest is hidden, e.g. under an overlay), or ``None`` when the signal cannot
        (then partly hidden copies get no second reading). Bits of hidden pixels are
        meaningless: compare with :func:`masked_hamming`."""
        return None

    def mirror(self, codes: np.ndarray) -> np.ndarray | None:
        """The codes the horizontally flipped frames would get, or ``None`` when the signal
        cannot derive them from the codes alone (then mirrored copies are not searched)."""
        return None

    @property
    def code_bytes(self) -> int:
        """Length of one packed code in bytes."""
        return self.bits // 8

    def describe(self) -> dict:
        """Name, version and size: what a stored fingerprint records about its signal."""
        return {"name": self.name, "version": self.version, "bits": self.bits}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes ``a`` and ``b`` (broadcasting over leading axes)."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1, dtype=np.int32)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def masked_hamming(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes over the bits set in ``mask``, scaled to the
    full code length (a code half hidden and 20 bits off its half reads as 40 of 256).
    Rows with an empty mask get ``bits + 1`` (no reading)."""
    bits = mask.shape[-1] * 8
    differ = _POPCOUNT[np.bitwise_and(np.bitwise_xor(a, b), mask)].sum(axis=-1, dtype=np.int32)
    shown = _POPCOUNT[mask].sum(axis=-1, dtype=np.int32)
    scaled = np.rint(differ * bits / np.maximum(shown, 1)).astype(np.int32)
    return np.where(shown > 0, scaled, bits + 1)
