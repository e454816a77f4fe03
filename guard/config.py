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
    """Thresholds of the temporal matcher, in bits of the default 256-bit signal (mhash16).

    Chosen from the distance distributions in docs/descriptors.md (scripts/measure_descriptors.py):
    ``seed_radius`` (12.5 %) is below every distance seen between unrelated frames, so index
    hits are almost never chance; ``match_radius`` (19.5 %) is the relaxed per-frame distance
    accepted once the offset agrees with a seeded alignment — it admits 90 % of frames cropped
    by 10 % under a logo while about 1 % of unrelated frame pairs come that close.

    A copy found at these radii has its edges re-drawn (see :func:`guard.match.refine`): frames
    around it score ``extend_radius`` (25 %) minus their distance, and the copy is the span of
    maximal summed score. A 20 % crop or a 25 % overlay keeps whole scenes at 50–75 bits — they
    stay in the copy when clean stretches flank them — while unrelated programme sits at 95+
    bits at the copy's alignment. Where two segments restate one stretch of query, the weaker
    wins only when its mean distance over the shared span is ``rival_margin`` bits lower: a
    better alignment is better by several bits, neighbouring rates over a short copy differ by
    a fraction of one. With ``mirror``, the horizontally flipped query is searched as well
    (for signals that can flip codes; twice the index work); a mirrored copy must last
    ``mirror_min_factor`` times the reference's ``min_seconds``.
    """

    seed_radius: int = 32
    match_radius: int = 50
    max_hits_per_frame: int = 48
    offset_bin: float = 0.5
    min_seed_frames: int = 3
    max_hypotheses: int = 12
    align_tolerance: float = 0.3
    max_gap: float = 2.5
    edge_window: float = 1.0
    edge_support: int = 3
    merge_gap: float = 10.0
    uniqueness_shifts: tuple[float, ...] = (-12.0, -6.0, -3.0, -1.5, 1.5, 3.0, 6.0, 12.0)
    uniqueness_margin: int = 4
    min_uniqueness: float = 0.55
    min_matched_fraction: float = 0.5
    extend_radius: int = 64
    rival_margin: float = 2.0
    mirror: bool = True
    mirror_min_factor: float = 2.0
    rates: tuple[float, ...] = (1.0, 0.95, 1.05, 0.9, 1.1)


@dataclass(frozen=True)
class LiveSettings:
    """Live stream monitoring (see :mod:`guard.monitor`).

    ``window_seconds``: stream history the sliding-window matcher looks at (raised to fit the
    longest reference ``min_seconds``). ``decision_interval``: how often a stream's window is
    matched (adds at most this much latency). ``stall_timeout``: a source silent this long is
    reconnected. ``reconnect_*``: exponential backoff between attempts; a stream that stays
    unreachable for ``give_up_after`` seconds ends with an error. ``start_timeout``: how long an
    HLS playlist may be missing when monitoring starts (a packager writes it only after its
    first segment; retried with the reconnect backoff, then the stream fails;
    ``GUARD_LIVE_START_TIMEOUT``). ``incident_idle_seconds``:
    an incident whose copy has not been seen this long is closed. ``update_interval``:
    least time between two ``incident.updated`` events of one incident.
    """

    window_seconds: float = 24.0
    decision_interval: float = 0.5
    open_timeout: float = 10.0
    stall_timeout: float = 8.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 10.0
    give_up_after: float = 300.0
    start_timeout: float = 60.0
    incident_idle_seconds: float = 20.0
    update_interval: float = 10.0
    decoder_threads: int = 1
    thumbnail_width: int = 160


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery of webhook events from the outbox (see :mod:`guard.actions`).

    ``url``/``secret``: a default endpoint that receives every event (registered in the
    catalog under owner ``"*"`` when the service starts). Retries back off exponentially from
    ``backoff_initial`` to ``backoff_max`` seconds; after ``max_attempts`` failed attempts an
    event is marked ``failed`` (kept in the delivery log).
    """

    url: str | None = None
    secret: str | None = None
    timeout: float = 5.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_attempts: int = 20
    workers: int = 4


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one guard installation."""

    home: Path = field(default_factory=_default_home)
    signal: str = DEFAULT_SIGNAL
    sample_fps: float = 4.0
    fast_decode: bool = True
    default_min_seconds: float = 5.0
    match: MatchSettings = field(default_factory=MatchSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    #: Let monitored URLs reach loopback, private, link-local and reserved addresses (tests, labs).
    allow_private_addresses: bool = False
    #: Largest upload (reference or scan) the API accepts, in bytes; refused with 413 beyond.
    upload_max_bytes: int = 2 * 1024**3
    #: Where the API streams uploads before a job fingerprints them (default: <home>/uploads).
    upload_dir: Path | None = None
    #: Worker threads running background ingest and scan jobs.
    job_workers: int = 2
    #: Niceness of the job threads (Linux): fingerprinting yields the CPU to API requests.
    job_nice: int = 10
    #: Media seconds a URL scan reads at most (a live URL would never end).
    scan_url_max_seconds: float = 3600.0

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from ``GUARD_*`` environment variables, then ``overrides``."""
        values: dict = {}
        if os.environ.get("GUARD_SAMPLE_FPS"):
            values["sample_fps"] = float(os.environ["GUARD_SAMPLE_FPS"])
        if os.environ.get("GUARD_UPLOAD_MAX_BYTES"):
            values["upload_max_bytes"] = int(os.environ["GUARD_UPLOAD_MAX_BYTES"])
        if os.environ.get("GUARD_JOB_WORKERS"):
            values["job_workers"] = int(os.environ["GUARD_JOB_WORKERS"])
        if os.environ.get("GUARD_ALLOW_PRIVATE_ADDRESSES"):
            values["allow_private_addresses"] = os.environ["GUARD_ALLOW_PRIVATE_ADDRESSES"].lower() in ("1", "true", "yes")
        if os.environ.get("GUARD_LIVE_START_TIMEOUT"):
            values["live"] = LiveSettings(start_timeout=float(os.environ["GUARD_LIVE_START_TIMEOUT"]))
        if os.environ.get("GUARD_WEBHOOK_URL"):
            values["webhook"] = WebhookSettings(
                url=os.environ["GUARD_WEBHOOK_URL"], secret=os.environ.get("GUARD_WEBHOOK_SECRET")
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def uploads(self) -> Path:
        """The folder uploads are streamed into."""
        return Path(self.upload_dir) if self.upload_dir else Path(self.home) / "uploads"

    def with_home(self, home: Path) -> "Settings":
        """The same settings over another store folder."""
        return replace(self, home=Path(home))
