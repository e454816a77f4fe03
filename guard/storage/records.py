"""The records the repositories store and return: plain dataclasses, no storage code.

They live here, below the modules that use them (:mod:`guard.jobs`, :mod:`guard.keys`,
:mod:`guard.incidents`, :mod:`guard.monitor`, :mod:`guard.actions`, which re-export them), so
that the repositories can build them without importing those modules back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


# -- jobs ---------------------------------------------------------------------------------------


@dataclass
class Job:
    """One background job as stored. ``params`` keys starting with ``_`` are internal."""

    id: int
    kind: str
    role: str
    owner: str
    status: str
    progress: float
    params: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None

    @property
    def public_params(self) -> dict[str, Any]:
        """The parameters a client may see (no server paths)."""
        return {k: v for k, v in self.params.items() if not k.startswith("_")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without internal parameters."""
        return {
            "id": self.id, "kind": self.kind, "owner": self.owner, "status": self.status,
            "progress": round(self.progress, 4), "params": self.public_params, "result": self.result,
            "error": self.error, "created": self.created, "started": self.started, "finished": self.finished,
        }


# -- API keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret: ``owner`` is the tenant it acts for."""

    id: int
    prefix: str
    role: str
    owner: str
    label: str
    created: str
    revoked: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether this key sees every tenant."""
        return self.role == "admin"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (never contains the token)."""
        return asdict(self)


# -- incidents ----------------------------------------------------------------------------------


@dataclass
class Incident:
    """A copied reference on a live stream (see :mod:`guard.incidents` for the fields' meaning)."""

    id: int
    stream_id: str
    account: str
    platform: str
    reference_id: int
    reference_title: str
    owner: str
    policy: str
    status: str
    live: bool
    score: float
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    segments: list[dict[str, Any]]
    first_seen: float
    decided: float
    action_delivered: float | None
    updated: float
    ended: float | None = None
    reviewed: float | None = None
    review_note: str | None = None
    #: Of a live reference's incident: when the copied moment aired (wall-clock Unix seconds)
    #: and the restream's delay behind it (s: when the copy of that moment played on the stream
    #: minus when it aired; negative when the restream runs ahead); None for other references.
    aired_at: float | None = None
    delay: float | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    #: Other owners' references that explain the same copy (an ownership conflict): each
    #: ``{"reference_id", "reference_title", "owner", "policy"}``; empty for most incidents.
    claims: list[dict[str, Any]] = field(default_factory=list)

    @property
    def conflict(self) -> bool:
        """Whether references of several owners explain this copy (each owner sees it)."""
        return any(claim["owner"] != self.owner for claim in self.claims)

    @property
    def owners(self) -> list[str]:
        """Every owner with a claim on the copy, the incident's own first."""
        return list(dict.fromkeys([self.owner, *(claim["owner"] for claim in self.claims)]))

    @property
    def detection_seconds(self) -> float:
        """Seconds from the first copied frame reaching guard to the decision."""
        return self.decided - self.first_seen

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: times as ISO 8601 strings, plus ``*_ts`` Unix seconds for precision."""
        out = asdict(self)
        for key in ("first_seen", "decided", "action_delivered", "updated", "ended", "reviewed", "aired_at"):
            out[f"{key}_ts"] = out[key]
            out[key] = iso(out[key])
        for key in ("score", "query_start", "query_end", "reference_start", "reference_end"):
            out[key] = round(out[key], 3)
        out["delay"] = None if self.delay is None else round(self.delay, 3)
        out["duration"] = round(self.query_end - self.query_start, 3)
        out["detection_seconds"] = round(self.detection_seconds, 3)
        out["conflict"] = self.conflict
        out["owners"] = self.owners
        return out


@dataclass(frozen=True)
class Evidence:
    """A JPEG thumbnail kept as evidence: a stream (``query``) or ``reference`` frame."""

    id: int
    incident_id: int
    kind: str
    media_time: float
    width: int
    height: int
    created: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the image itself comes from ``IncidentStore.evidence_jpeg``)."""
        out = asdict(self)
        out["created"] = iso(self.created)
        return out


@dataclass(frozen=True)
class IncidentFilters:
    """Which incidents a listing or count selects; None means any. Times are Unix seconds
    bounding the decision time (``since`` inclusive, ``until`` exclusive)."""

    reference_id: int | None = None
    stream_id: str | None = None
    status: str | None = None
    owner: str | None = None
    platform: str | None = None
    live: bool | None = None
    since: float | None = None
    until: float | None = None


# -- streams ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamRecord:
    """What the catalog keeps of a monitored stream (``guard.monitor.StreamInfo`` adds the live
    state: lag, reconnects, resolution)."""

    id: str
    url: str
    account: str
    platform: str
    status: str
    started: float
    updated: float
    ended: float | None = None
    error: str | None = None
    frames: int = 0
    incidents: int = 0


# -- webhooks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where one owner's events go, and the secret that signs them."""

    id: int
    owner: str
    url: str
    secret: str
    events: tuple[str, ...]
    active: bool
    created: float

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to ``event_type``."""
        return "*" in self.events or event_type in self.events

    def to_dict(self, reveal_secret: bool = False) -> dict[str, Any]:
        """JSON-ready form; the secret is shown only when asked (e.g. right after creation)."""
        out = asdict(self)
        out["events"] = list(self.events)
        out["created"] = iso(self.created)
        if not reveal_secret:
            out["secret"] = self.secret[:4] + "…"
        return out


@dataclass(frozen=True)
class Event:
    """A webhook event as stored: ``body`` is the exact JSON sent."""

    id: str
    type: str
    created: float
    owner: str
    platform: str
    incident_id: int | None
    stream_id: str | None
    body: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with the body parsed."""
        out = asdict(self)
        out["created"] = iso(self.created)
        out["body"] = json.loads(self.body)
        return out


@dataclass(frozen=True)
class OutboxEntry:
    """One event for one endpoint: ``pending`` until delivered or ``failed`` after the last retry."""

    id: int
    event_id: str
    endpoint_id: int
    status: str
    attempts: int
    next_attempt: float
    created: float
    delivered: float | None
    last_error: str | None
    event_type: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        for key in ("next_attempt", "created", "delivered"):
            out[key] = iso(out[key])
        return out


@dataclass(frozen=True)
class Delivery:
    """One HTTP attempt from the delivery log."""

    id: int
    outbox_id: int
    event_id: str
    endpoint_id: int
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["at"] = iso(self.at)
        return out


class DueDelivery(NamedTuple):
    """An outbox row claimed for sending, with what sending it needs."""

    outbox_id: int
    event_id: str
    endpoint_id: int
    attempts: int
    event_type: str
    body: str
    incident_id: int | None
    url: str
    secret: str


@dataclass(frozen=True)
class DeliveryAttempt:
    """One HTTP attempt about to be logged (``outbox_id`` 0 for a test event, not queued)."""

    outbox_id: int
    event_id: str
    endpoint_id: int
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float
