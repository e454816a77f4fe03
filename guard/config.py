"""Settings: built once (from the environment or by the caller) and passed to the service."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from guard.signals import DEFAULT_SIGNAL


def _default_home() -> Path:
    return Path(os.environ.get("GUARD_HOME") or Path.cwd() / "fingerprints")


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the temporal matcher, in bits of the default 256-bit signal.

    Chosen from the distance distributions in docs/descriptors.md: ``seed_radius`` keeps
    index hits that are almost never random (random pairs sit near 128 ± 8); ``match_radius``
    is the relaxed per-frame distance accepted once the offset agrees with a seeded alignment.
    """

    seed_radius: int = 72
    match_radius: int = 96
    max_hits_per_frame: int = 48
    offset_bin: float = 0.5
    min_seed_frames: int = 3
    max_hypotheses: int = 12
    align_tolerance: float = 0.3
    max_gap: float = 2.5
    min_matched_fraction: float = 0.5
    rates: tuple[float, ...] = (1.0, 0.95, 1.05, 0.9, 1.1)


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one guard installation."""

    home: Path = field(default_factory=_default_home)
    signal: str = DEFAULT_SIGNAL
    sample_fps: float = 4.0
    fast_decode: bool = True
    default_min_seconds: float = 5.0
    match: MatchSettings = field(default_factory=MatchSettings)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from ``GUARD_*`` environment variables, then ``overrides``."""
        values: dict = {}
        if os.environ.get("GUARD_SAMPLE_FPS"):
            values["sample_fps"] = float(os.environ["GUARD_SAMPLE_FPS"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_home(self, home: Path) -> "Settings":
        """The same settings over another store folder."""
        return replace(self, home=Path(home))
