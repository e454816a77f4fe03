"""Plain data shapes that travel between guard's stages and out of its shells."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

POLICIES = ("flag", "cut")
#: What modalities of a copy may raise an incident for a reference (its match policy).
MATCH_POLICIES = ("video", "audio", "any")

#: Longest title, owner or account name guard accepts (API fields and imported files alike).
NAME_MAX_LENGTH = 200

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_printable(value: str) -> str:
    """``value`` unchanged; ValueError if it holds lone surrogates or control characters
    (C0, DEL, C1: terminal escapes, CR/LF), which no title, name or URL needs."""
    if _SURROGATE.search(value):
        raise ValueError("must be valid Unicode text")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def check_name(value: str) -> str:
    """The rule for a title, owner or account name: 1 to :data:`NAME_MAX_LENGTH` printable
    characters. Returns ``value``; raises ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= NAME_MAX_LENGTH:
        raise ValueError(f"must be 1 to {NAME_MAX_LENGTH} characters long (got {len(value)})")
    return check_printable(value)


@dataclass
class MaskedCodes:
    """A second reading of frames partly hidden by a still overlay (see
    :func:`guard.preprocess.still_overlay`): codes computed from the visible cells, and which
    bits those are, packed like the codes. Frames without an overlay have an all-zero mask."""

    codes: np.ndarray  # (n, bits // 8) uint8
    masks: np.ndarray  # (n, bits // 8) uint8

    def take(self, frames: slice | list[int] | np.ndarray) -> "MaskedCodes":
        """The readings of some frames (an index or boolean selection)."""
        return MaskedCodes(self.codes[frames], self.masks[frames])


@dataclass
class RegionReadings:
    """Readings of windows inside query frames (a streamer's game window, a picture-in-picture;
    see :mod:`guard.regions`): one row per frame and window in view of it."""

    rows: np.ndarray  # (m,) int64: the frame's index among the query's frames
    tracks: np.ndarray  # (m,) int64: the window's track id (the same window over time)
    boxes: np.ndarray  # (m, 4) float32: x0, y0, x1, y1 as shares of the frame's width and height
    codes: np.ndarray  # (m, bits // 8) uint8

    def __len__(self) -> int:
        return len(self.rows)

    def in_frame_order(self) -> "RegionReadings":
        """The same readings sorted by frame (stable: a frame's keep their order), as the matcher
        takes each track's; readings looked back at earlier frames come after their batch's."""
        order = np.argsort(self.rows, kind="stable")
        return RegionReadings(self.rows[order], self.tracks[order], self.boxes[order], self.codes[order])

    @staticmethod
    def join(parts: list["RegionReadings"], code_bytes: int) -> "RegionReadings":
        """One set of readings from several (rows already absolute)."""
        if not parts:
            return RegionReadings(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32),
                                  np.zeros((0, code_bytes), np.uint8))
        return RegionReadings(*(np.concatenate([getattr(p, name) for p in parts])
                                for name in ("rows", "tracks", "boxes", "codes")))


@dataclass
class Fingerprint:
    """One track of a video: one packed code of one signal per informative sampled frame,
    with its time. A reference has one track per signal.

    ``masked`` holds the overlay readings of a scanned video (never stored with references).
    ``pipeline`` records everything that shaped the codes (see :mod:`guard.pipeline`): the
    signal's description, the decoder options and the preprocessing version.
    """

    signal: str
    signal_version: int
    bits: int
    sample_fps: float
    duration: float
    times: np.ndarray  # (n,) float64 seconds from the first frame
    codes: np.ndarray  # (n, bits // 8) uint8
    masked: MaskedCodes | None = None
    pipeline: dict[str, Any] = field(default_factory=dict)
    #: The window readings of a scanned video (never stored with references).
    regions: RegionReadings | None = None

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class Keyframe:
    """A small JPEG of a reference at ``media_time`` seconds: evidence of what was copied."""

    media_time: float
    width: int
    height: int
    jpeg: bytes


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
    #: Whether pictures of it are stored (false for hash-only imports): evidence shows them.
    has_keyframes: bool = False
    #: Which copies may raise an incident: ``video``, ``audio`` or ``any`` (see MATCH_POLICIES).
    match: str = "any"
    #: ``live`` while its broadcast is fingerprinted as it airs, then ``ended`` or ``failed``;
    #: None for an ordinary reference.
    live_status: str | None = None
    #: Wall-clock Unix time of its media time 0 (a live reference's), None when unknown.
    aired_start: float | None = None
    #: How many seconds of a live reference are kept (older codes are trimmed); None keeps all.
    retain_seconds: float | None = None
    #: Media-time ``(start, end)`` spans where a live reference's feed dropped, by start.
    gaps: list[tuple[float, float]] = field(default_factory=list)
    #: What the matcher will not find of it, said once when it is registered (not stored).
    warnings: list[str] = field(default_factory=list, compare=False)
    #: Other owners' references that hold the same footage, found when it is registered (not
    #: stored): each ``{"reference_id", "reference_title", "owner", "start", "end",
    #: "reference_start", "reference_end"}`` (``start``/``end`` in this reference).
    overlaps: list[dict[str, Any]] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the registration-time ``warnings`` and ``overlaps``)."""
        out = asdict(self)
        del out["warnings"], out["overlaps"]
        out["gaps"] = [[start, end] for start, end in self.gaps]
        return out


#: Most matched frames a segment keeps for the reviewer's plot.
MAX_SEGMENT_MATCHES = 64


def spread_matches(points: list[list[float]], most: int = MAX_SEGMENT_MATCHES) -> list[list[float]]:
    """``points`` sorted by query time and thinned to at most ``most``, evenly spread."""
    ordered = sorted({round(q, 3): [round(q, 3), round(r, 3)] for q, r in points}.values())
    if len(ordered) <= most:
        return ordered
    return [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, most).round()]


@dataclass
class Segment:
    """A copied stretch: where in the query, where in the reference, and how sure.

    ``offset`` is reference time minus query time at the segment start; ``rate`` the
    reference seconds per query second (1.0 unless the copy was sped up or slowed down);
    ``matched_fraction`` the share of the query span's informative frames that matched;
    ``score`` in [0, 1] is the calibrated probability that it is a copy once it leaves the
    search (:mod:`guard.calibration`); before, a placeholder growing with matched frames and
    their closeness.
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
    #: Some of the matched frames as ``[query time, reference time]`` pairs (evenly spread, at
    #: most :data:`MAX_SEGMENT_MATCHES`): the aligned matches a reviewer's plot shows.
    matches: list[list[float]] = field(default_factory=list, compare=False)
    #: Share of the matched frames that are temporally unique (closer to the aligned reference
    #: frame than to the reference seconds away, see :mod:`guard.match`); 1.0 where not measured.
    uniqueness: float = 1.0
    #: Of a ``video-region`` segment: where the copy sits in the query frame, ``[x0, y0, x1, y1]``
    #: as shares of its width and height.
    region: list[float] | None = None

    @property
    def duration(self) -> float:
        """Length of the copied stretch in query seconds."""
        return self.query_end - self.query_start

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, rounded to milliseconds."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        out["duration"] = round(self.duration, 3)
        if self.region is not None:
            out["region"] = [round(float(v), 4) for v in self.region]
        return out


@dataclass
class ScanResult:
    """What scanning one file found."""

    path: str
    duration: float
    frames: int
    segments: list[Segment]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "duration": round(self.duration, 3),
            "frames": self.frames,
            "matches": [s.to_dict() for s in self.segments],
        }
