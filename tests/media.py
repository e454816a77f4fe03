"""Generated media for the tests: synthetic references, pirated copies and unrelated video."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from guard.config import Settings
from guard.service import Guard
from guard_synth import broadcast as synth
from guard_synth.encode import write_video

SIZE = (320, 180)
FPS = 30
REF_SECONDS = 40.0
#: References and unrelated material never share photos.
REF_PHOTOS = synth.PHOTOS[:8]
OTHER_PHOTOS = synth.PHOTOS[8:]

Transform = Callable[[np.ndarray], np.ndarray]


def reference_frames(seed: int, fps: float = FPS, start: float = 0.0, seconds: float = REF_SECONDS,
                     size=SIZE) -> Iterable[np.ndarray]:
    """The frames of reference ``seed`` from ``start`` for ``seconds``."""
    return synth.broadcast(seed, size, fps, seconds, start=start, photos=REF_PHOTOS)


def unrelated_frames(seed: int, seconds: float, size=SIZE, fps: float = FPS) -> Iterable[np.ndarray]:
    """Material that shares the references' styles but none of their content."""
    return synth.broadcast(10_000 + seed, size, fps, seconds, photos=OTHER_PHOTOS)


def make_reference(path: Path, seed: int) -> Path:
    """Write reference ``seed`` (40 s, 320×180, 30 fps, H.264) to ``path``."""
    return synth.make_video(path, reference_frames(seed), FPS)


def make_copy(
    path: Path,
    seed: int,
    start: float,
    seconds: float,
    transform: Transform | None = None,
    before: float = 0.0,
    after: float = 0.0,
    fps: float = FPS,
    size=SIZE,
    **write_kwargs,
) -> Path:
    """A pirated copy: ``seconds`` of reference ``seed`` from ``start``, transformed, between
    ``before`` and ``after`` seconds of unrelated content, at ``fps``."""
    stolen = reference_frames(seed, fps=fps, start=start, seconds=seconds)
    if transform is not None:
        stolen = (transform(f) for f in stolen)
        probe = transform(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
        size = (probe.shape[1], probe.shape[0])
    parts = []
    if before:
        parts.append(unrelated_frames(seed + 500, before, size=size, fps=fps))
    parts.append(stolen)
    if after:
        parts.append(unrelated_frames(seed + 700, after, size=size, fps=fps))
    return synth.make_video(path, synth.splice(parts), fps, **write_kwargs)


def store_with_broadcast(folder: Path, seed: int, size=SIZE, fps: float = 12):
    """A guard in ``folder`` with 30 s of broadcast ``seed`` ingested (``min_seconds`` 3) as
    "final" by "league": ``(guard, reference)``; the caller closes the guard."""
    guard = Guard(Settings(home=folder / "store"))
    reference = write_video(folder / "final.mp4", synth.broadcast(seed, size, fps, 30.0), fps)
    return guard, guard.ingest(reference, title="final", owner="league", min_seconds=3)
