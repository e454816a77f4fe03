"""Plain data shapes that travel between guard's stages and out of its shells."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

POLICIES = ("flag", "cut")


@dataclass
class MaskedCodes:
    """A second reading of frames partly hidden by a still overlay (see
    :func:`guard.preprocess.still_overlay`): codes computed from the visible cells, and which
    bits those are, packed like the codes. Frames without an overlay have an all-zero mask."""

    codes: np.ndarray  # (n, bits // 8) uint8
    masks: np.ndarray  # (n, bits // 8) uint8

    def take(self, frames) -> "MaskedCodes":
        """The readings of some frames (an index or boolean selection)."""
        return MaskedCodes(self.codes[frames], self.masks[frames])


@dataclass
class Fingerprint:
    """The hashes of one video: one packed code per informative sampled frame, with its time.

    ``masked`` holds the overlay readings of a scanned video (never stored with references).
    """

    signal: str
    signal_version: int
    bits: int
    sample_fps: float
    duration: float
    times: np.ndarray  # (n,) float64 seconds from the first frame
    codes: np.ndarray  # (n, bits // 8) uint8
    masked: MaskedCodes | None = None

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class Reference:
    """A registered piece of reference content and its policy."""

    id: int
    owner: str
    title: str
    duration: float
    policy: str
    min_seconds: float
    created: str
    source: str
    frames: int
    allowlist: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Segment:
    """A copied stretch: where in the query, where in the reference, and how sure.

    ``offset`` is reference time minus query time at the segment start; ``rate`` the
    reference seconds per query second (1.0 unless the copy was sped up or slowed down);
    ``matched_fraction`` the share of the query span's informative frames that matched;
    ``score`` in [0, 1] grows with matched frames and their closeness.
    """

    reference_id: int
    reference_title: str
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    offset: float
    rate: float
    matched_fraction: float
    score: float
    matched_frames: int
    mean_distance: float
    modality: str = "video"

    @property
    def duration(self) -> float:
        """Length of the copied stretch in query seconds."""
        return self.query_end - self.query_start

    def to_dict(self) -> dict:
        """JSON-ready form, rounded to milliseconds."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        out["duration"] = round(self.duration, 3)
        return out


@dataclass
class ScanResult:
    """What scanning one file found."""

    path: str
    duration: float
    frames: int
    segments: list[Segment]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "path": self.path,
            "duration": round(self.duration, 3),
            "frames": self.frames,
            "matches": [s.to_dict() for s in self.segments],
        }
