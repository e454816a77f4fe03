"""Signals by name, registered through the ``guard.signals`` entry-point group.

A distribution offers a signal by declaring, in its metadata, ``name = module:factory`` under
``[project.entry-points."guard.signals"]``, where ``factory()`` returns a :class:`Signal`;
guard's own signals are declared the same way in its pyproject.toml. ``DEFAULT_SIGNAL`` is what
guard fingerprints with (see docs/descriptors.md).

This package imports nothing of guard but :mod:`guard.signals.base` and :mod:`guard.errors`
(plus the index class, lazily, in :meth:`FrameSignal.index_factory`).
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Callable, Iterable

from guard.errors import FormatError
from guard.signals.ahash import AHash
from guard.signals.base import FrameSignal, Signal, hamming, masked_hamming
from guard.signals.dhash import DHash
from guard.signals.phash import PHash

log = logging.getLogger(__name__)

DEFAULT_SIGNAL = "mhash16"
ENTRY_POINT_GROUP = "guard.signals"

#: guard's own signals as pyproject.toml declares them, for a guard imported without its
#: installed metadata (a source tree on ``sys.path``). Keep in step with pyproject.toml.
BUILTIN_SIGNALS = {
    "phash8": "guard.signals.phash:phash8",
    "phash16": "guard.signals.phash:phash16",
    "dhash8": "guard.signals.dhash:dhash8",
    "dhash16": "guard.signals.dhash:dhash16",
    "ahash8": "guard.signals.ahash:ahash8",
    "ahash16": "guard.signals.ahash:ahash16",
    "mhash16": "guard.signals.ahash:mhash16",
    "audio_landmarks": "guard.signals.audio:audio_landmarks",
}

SignalFactory = Callable[[], Signal]


def _with_builtins(declared: Iterable[EntryPoint]) -> list[EntryPoint]:
    """``declared`` plus the built-in table when guard's own metadata declares none of them.

    Checking guard's distribution rather than an empty group keeps the built-ins when a
    plugin is installed but guard itself runs from a source tree.
    """
    declared = list(declared)
    if any(ep.dist is not None and ep.dist.name == "guard" for ep in declared):
        return declared
    return declared + [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in BUILTIN_SIGNALS.items()]


def load_factories(declared: Iterable[EntryPoint]) -> dict[str, SignalFactory]:
    """The factories of ``declared`` entry points by name (built-ins added as needed).

    A plugin that cannot be loaded is logged and skipped; of two with one name, the first
    that loads wins.
    """
    factories: dict[str, SignalFactory] = {}
    for ep in _with_builtins(declared):
        if ep.name in factories:
            log.warning("signal %r declared twice; ignoring %s", ep.name, ep.value)
            continue
        try:
            factory = ep.load()
        except Exception as exc:  # any failure of third-party code: one bad plugin must not stop guard
            log.warning("signal plugin %r (%s) cannot be loaded, skipped: %s: %s",
                        ep.name, ep.value, type(exc).__name__, exc)
            continue
        if not callable(factory):
            log.warning("signal plugin %r (%s) is not callable, skipped", ep.name, ep.value)
            continue
        factories[ep.name] = factory
    return factories


@functools.cache
def _registry() -> dict[str, SignalFactory]:
    return load_factories(entry_points(group=ENTRY_POINT_GROUP))


def clear_signal_cache() -> None:
    """Forget the looked-up signals; the next lookup reads the installed entry points again."""
    _registry.cache_clear()


def available_signals() -> list[str]:
    """Names of every signal that can be made, sorted."""
    return sorted(_registry())


def get_signal(name: str = DEFAULT_SIGNAL) -> Signal:
    """A new instance of the signal called ``name``; :class:`FormatError` for an unknown one."""
    factories = _registry()
    try:
        factory = factories[name]
    except KeyError:
        raise FormatError(f"unknown signal {name!r} (known: {', '.join(sorted(factories))})") from None
    signal = factory()
    if not isinstance(signal, Signal):
        raise FormatError(f"signal plugin {name!r} made a {type(signal).__name__}, not a Signal")
    return signal


def get_frame_signal(name: str = DEFAULT_SIGNAL) -> FrameSignal:
    """:func:`get_signal` for what hashes frames (fingerprints, indexes, exchange files):
    :class:`FormatError` also when ``name`` is a signal of another kind."""
    signal = get_signal(name)
    if not isinstance(signal, FrameSignal):
        raise FormatError(f"signal {name!r} is not a frame signal ({type(signal).__name__})")
    return signal


__all__ = [
    "Signal", "FrameSignal", "PHash", "DHash", "AHash", "hamming", "masked_hamming",
    "get_signal", "get_frame_signal", "available_signals", "clear_signal_cache", "load_factories",
    "DEFAULT_SIGNAL", "ENTRY_POINT_GROUP", "BUILTIN_SIGNALS",
]
