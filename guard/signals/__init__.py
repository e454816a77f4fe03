"""Frame signals by name. ``DEFAULT_SIGNAL`` is what guard fingerprints with (see docs/descriptors.md)."""

from __future__ import annotations

from guard.errors import FormatError
from guard.signals.ahash import AHash
from guard.signals.base import FrameSignal, hamming, masked_hamming
from guard.signals.dhash import DHash
from guard.signals.phash import PHash

DEFAULT_SIGNAL = "mhash16"

_FACTORIES = {
    "phash8": lambda: PHash(8),
    "phash16": lambda: PHash(16),
    "dhash8": lambda: DHash(8),
    "dhash16": lambda: DHash(16),
    "ahash8": lambda: AHash(8),
    "ahash16": lambda: AHash(16),
    "mhash16": lambda: AHash(16, median=True),
}


def get_signal(name: str = DEFAULT_SIGNAL) -> FrameSignal:
    """The signal called ``name``; :class:`FormatError` for an unknown one."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise FormatError(f"unknown signal {name!r} (known: {', '.join(sorted(_FACTORIES))})") from None


__all__ = ["FrameSignal", "PHash", "DHash", "AHash", "hamming", "masked_hamming", "get_signal", "DEFAULT_SIGNAL"]
