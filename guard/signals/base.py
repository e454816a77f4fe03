"""The signal abstraction (after python-threatexchange's ``SignalType``) and its frame-hash kind.

A :class:`Signal` turns a batch of decoded media into codes, says which index holds them and
how two codes compare. Signals import nothing of guard but this module and :mod:`guard.errors`;
the one exception is the index class, imported inside :meth:`FrameSignal.index_factory` so that
defining or registering a signal never loads FAISS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # the index is imported when it is needed (see FrameSignal.index_factory)
    from guard.index.faiss_binary import FaissBinaryIndex

Modality = Literal["video", "audio"]


class Signal(ABC):
    """One kind of fingerprint: batched extraction, its index, its distance.

    ``name`` and ``version`` identify the codes; bump ``version`` whenever the codes for the
    same input change (stored tracks then no longer match the running pipeline).
    ``modality`` says which media it reads (``"video"`` or ``"audio"``).

    Radius semantics: ``metric`` names what :meth:`distance` measures, and a candidate is
    within radius ``r`` of a query when ``distance(query, candidate) <= r`` (see :meth:`within`).
    The index a signal builds must answer radius searches in that same metric.
    """

    name: str
    version: int
    modality: ClassVar[Modality]
    metric: ClassVar[str]

    @abstractmethod
    def extract(self, batch: Any) -> np.ndarray:
        """Codes of a whole batch of media, one row per item."""

    @abstractmethod
    def index_factory(self, size_hint: int = 0) -> Any:
        """A new, empty index for this signal's codes (an object implementing
        :class:`guard.index.base.BinaryIndex`); ``size_hint`` is the expected number of codes."""

    @abstractmethod
    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances between codes ``a`` and ``b`` in :attr:`metric` (broadcasting over leading axes)."""

    def within(self, a: np.ndarray, b: np.ndarray, radius: int) -> np.ndarray:
        """Whether ``b`` is a candidate for ``a`` at ``radius`` (inclusive)."""
        return self.distance(a, b) <= radius

    def parameters(self) -> dict[str, Any]:
        """The signal's own settings that shape its codes (beyond name and version)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Everything that shapes the codes, JSON-ready: a stored track whose description
        differs from the running signal's cannot be compared with fresh codes."""
        return {"name": self.name, "version": self.version, "modality": self.modality,
                "metric": self.metric, "params": self.parameters()}


class FrameSignal(Signal):
    """A perceptual hash of a grey frame, computed for a whole batch at once.

    Subclasses set ``name``, ``version`` and ``bits``, declare the grey input size they
    hash (``input_size`` = (width, height)) and implement :meth:`hash_bits`. Codes are packed
    bits compared by Hamming distance and held in a FAISS binary index.
    """

    modality: ClassVar[Modality] = "video"
    metric: ClassVar[str] = "hamming"
    bits: int
    input_size: tuple[int, int]

    @abstractmethod
    def hash_bits(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        """Hash ``frames`` ``(n, height, width)`` uint8 into booleans ``(n, bits)``."""

    def hash_batch(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Hash ``frames`` into packed codes ``(n, bits // 8)`` uint8, MSB first (imagehash order)."""
        if len(frames) == 0:
            return np.zeros((0, self.bits // 8), dtype=np.uint8)
        return np.packbits(self.hash_bits(frames), axis=1)

    def extract(self, batch: np.ndarray) -> np.ndarray:
        """:meth:`hash_batch` of grey frames already at :attr:`input_size`."""
        return self.hash_batch(batch)

    def index_factory(self, size_hint: int = 0) -> "FaissBinaryIndex":
        """A FAISS binary index (Hamming radius) for ``bits``-bit codes."""
        from guard.index.faiss_binary import FaissBinaryIndex  # lazy: see the module docstring

        return FaissBinaryIndex(self.bits, size_hint=size_hint)

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Hamming distances between packed codes."""
        return hamming(a, b)

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

    def describe(self) -> dict[str, Any]:
        """Name, version, modality, metric, bits, input size (width, height) and parameters."""
        return {**super().describe(), "bits": self.bits, "input_size": list(self.input_size)}


def hamming(a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.int32]:
    """Hamming distances between packed codes ``a`` and ``b`` (broadcasting over leading axes)."""
    distances: npt.NDArray[np.int32] = np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1, dtype=np.int32)
    return distances


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def masked_hamming(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> npt.NDArray[np.int32]:
    """Hamming distances between packed codes over the bits set in ``mask``, scaled to the
    full code length (a code half hidden and 20 bits off its half reads as 40 of 256).
    Rows with an empty mask get ``bits + 1`` (no reading)."""
    bits = mask.shape[-1] * 8
    differ = _POPCOUNT[np.bitwise_and(np.bitwise_xor(a, b), mask)].sum(axis=-1, dtype=np.int32)
    shown = _POPCOUNT[mask].sum(axis=-1, dtype=np.int32)
    scaled = np.rint(differ * bits / np.maximum(shown, 1)).astype(np.int32)
    distances: npt.NDArray[np.int32] = np.where(shown > 0, scaled, bits + 1)
    return distances
