"""Request and response bodies of the API (pydantic), as they appear in /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from guard.models import NAME_MAX_LENGTH, check_name, check_printable

#: Largest id the API accepts in a path (SQLite integers are 64-bit).
MAX_ID = 2**62

# One rule for the API and imported fingerprint files: see guard.models.
_printable = check_printable

#: A short printable string (titles, owners, account names).
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH), AfterValidator(check_name)]
#: An account on a platform (a channel or user name); no commas, quotes or brackets, so that
#: a form field can list several separated by commas.
ACCOUNT_PATTERN = r'^[^,{}\[\]"\\]+$'
Account = Annotated[str, Field(min_length=1, max_length=200, pattern=ACCOUNT_PATTERN), AfterValidator(_printable)]
Policy = Literal["flag", "cut"]
#: What may raise an incident for a reference: copies of its picture, of its sound, or either.
MatchPolicy = Literal["video", "audio", "any"]
MinSeconds = Annotated[float, Field(ge=0.5, le=86400)]
Allowlist = Annotated[list[Account], Field(max_length=1000)]


class ErrorInfo(BaseModel):
    """What went wrong."""

    status: int
    code: str = Field(description="Machine-readable: bad_request, unauthorized, forbidden, not_found, conflict, too_large, invalid, internal_error, unavailable.")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class Health(BaseModel):
    """Liveness: the service answers and its catalog can be read."""

    status: Literal["ok"]
    version: str


class ReferenceOut(BaseModel):
    """A registered reference."""

    id: int
    owner: str
    title: str
    duration: float
    policy: Policy
    min_seconds: float
    created: str
    source: str
    frames: int
    allowlist: list[str]
    has_keyframes: bool = Field(description="Whether pictures of the reference are stored (false for "
                                "hash-only imports): incident evidence shows them beside the copy.")
    match: MatchPolicy = Field("any", description="Which copies may raise an incident: video (its picture), "
                               "audio (its sound) or any.")
    live_status: Literal["live", "ended", "failed"] | None = Field(
        None, description="For a live reference (a feed fingerprinted as it airs): live while it airs, then "
                          "ended (or failed when nothing aired); null for a reference made from a file.")
    aired_start: float | None = Field(None, description="Live references: the wall-clock time (Unix seconds) of "
                                      "its media time 0; a moment t of it aired at aired_start + t.")
    retain_seconds: float | None = Field(None, description="Live references: only the last this many seconds "
                                         "are kept (null: all).")
    gaps: list[tuple[float, float]] = Field(default_factory=list, description="Live references: media-time spans "
                                            "(start, end) where the feed was away.")


class LiveReferenceStart(BaseModel):
    """A rights holder's live feed to fingerprint as it airs (a live reference)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_printable)] = Field(
        description="rtmp(s), http(s) (HLS, FLV, …), srt or udp, under the URL policy of monitored streams.")
    title: Name
    policy: Policy = "flag"
    min_seconds: MinSeconds | None = None
    match: MatchPolicy = "any"
    retain_hours: Annotated[float, Field(gt=0, le=24 * 365)] | None = Field(
        None, description="Keep only the last this many hours of it (a 24/7 channel); default: all.")
    max_seconds: Annotated[float, Field(ge=1, le=7 * 86400)] | None = Field(
        None, description="End it after this many seconds have aired; default: when the feed ends.")


class ReferencePage(BaseModel):
    """One page of references."""

    items: list[ReferenceOut]
    total: int
    limit: int
    offset: int


class ReferenceUpdate(BaseModel):
    """Fields of a reference that can change; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: Name | None = None
    policy: Policy | None = None
    min_seconds: MinSeconds | None = None
    allowlist: Allowlist | None = None
    match: MatchPolicy | None = None


class IngestForm(BaseModel):
    """The non-file fields of a reference upload or import."""

    model_config = ConfigDict(extra="forbid")

    title: Name | None = None
    owner: Name | None = None
    policy: Policy = "flag"
    min_seconds: MinSeconds | None = None
    allowlist: Allowlist = Field(default_factory=list)
    match: MatchPolicy | None = Field(None, description="Match policy: video, audio or any (default any; "
                                      "an import's file may say)")


class JobOut(BaseModel):
    """A background ingest or scan: poll it until ``status`` is ``done`` or ``failed``."""

    id: int
    kind: Literal["ingest", "scan"]
    owner: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="0..1, media seconds done over the file's duration.")
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(
        description="ingest: {reference}; scan: {path, duration, frames, matches: [segments]}")
    error: str | None
    created: str
    started: str | None
    finished: str | None


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int


class ScanURL(BaseModel):
    """A media URL to fetch and scan (same protocol rules as monitored streams)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_printable)]
    account: Account | None = Field(None, description="The account the media belongs to (allowlists exempt licensed ones).")


class ScanForm(BaseModel):
    """The non-file fields of a scan upload."""

    model_config = ConfigDict(extra="forbid")

    account: Account | None = None


def form_schema(with_owner_fields: bool, file_description: str) -> dict:
    """The OpenAPI request body of a multipart upload route (parsed by :mod:`guard.api.uploads`)."""
    properties: dict[str, Any] = {"file": {"type": "string", "format": "binary", "description": file_description}}
    if not with_owner_fields:
        properties["account"] = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": ACCOUNT_PATTERN,
                                 "description": "The uploader's account on the platform (allowlists exempt licensed ones)."}
    else:
        properties.update({
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "owner": {"type": "string", "minLength": 1, "maxLength": 200,
                      "description": "Rights holder owning the reference (admin keys only; default: the key's owner)."},
            "policy": {"type": "string", "enum": ["flag", "cut"], "default": "flag"},
            "min_seconds": {"type": "number", "minimum": 0.5, "maximum": 86400},
            "allowlist": {"type": "string", "maxLength": 16000,
                          "pattern": r'^[^,{}\[\]"\\]+(,[^,{}\[\]"\\]+)*$',
                          "description": "Licensed accounts, separated by commas (the field may also repeat)."},
        })
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": properties,
            }}},
        }
    }


class StreamStart(BaseModel):
    """A live stream to monitor."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_printable)] = Field(
        description="rtmp(s), http(s) (HLS, FLV, …), srt or udp; local files are refused.")
    account: Account = Field(description="The account streaming it (allowlists exempt licensed ones).")
    stream_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")] | None = Field(
        None, description="The platform's own id of the stream (default: generated).")


class StreamOut(BaseModel):
    """A monitored stream: live state, lag, frames seen and incidents."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="guard's id of the stream (use it in paths).")
    stream_id: str = Field(description="The platform's id of the stream.")
    url: str = Field(description="The URL without credentials or query string.")
    account: str
    platform: str
    status: Literal["starting", "live", "reconnecting", "ended", "cut", "stopped", "failed"]
    active: bool
    started: str | None
    updated: str | None
    ended: str | None
    error: str | None
    frames: int
    incidents: int
    lag: float


class StreamPage(BaseModel):
    """Streams, newest first."""

    items: list[StreamOut]
    limit: int


class EvidenceOut(BaseModel):
    """An evidence thumbnail: a stream (query) frame or the reference frame it copies."""

    model_config = ConfigDict(extra="allow")

    id: int
    kind: Literal["query", "reference"]
    media_time: float
    url: str = Field(description="Where to GET the JPEG.")


class Claim(BaseModel):
    """Another owner's reference that explains an incident's copy (an ownership conflict)."""

    reference_id: int
    reference_title: str
    owner: str
    policy: Policy


class IncidentSummary(BaseModel):
    """An incident in a listing (``GET /v1/incidents/{id}`` has its segments and evidence)."""

    id: int
    stream_id: str
    account: str
    platform: str
    reference_id: int
    reference_title: str
    owner: str
    policy: Policy
    status: Literal["open", "confirmed", "dismissed"]
    live: bool
    score: float
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    duration: float
    first_seen: str | None
    decided: str | None
    updated: str | None
    ended: str | None
    reviewed: str | None
    action_delivered: str | None
    review_note: str | None
    conflict: bool = Field(False, description="References of several owners explain this copy (each owner sees it).")
    owners: list[str] = Field(default_factory=list, description="Every owner with a claim, the incident's own first.")
    claims: list[Claim] = Field(default_factory=list, description="Other owners' references claiming the copy.")
    aired_at: str | None = Field(None, description="For a live reference's copy: when the copied moment aired on "
                                 "the reference's feed (null for other references).")
    delay: float | None = Field(None, description="For a live reference's copy: seconds the restream trails the feed "
                                "(negative: ahead of the feed guard ingests).")


class IncidentOut(IncidentSummary):
    """A copy of a reference seen on a stream or in a scanned file, with its segments and evidence."""

    model_config = ConfigDict(extra="allow")

    segments: list[dict[str, Any]]
    evidence: list[EvidenceOut]


class IncidentPage(BaseModel):
    """One page of incidents, newest decision first."""

    items: list[IncidentSummary]
    total: int
    limit: int
    offset: int


class Review(BaseModel):
    """A reviewer's decision on an incident."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["confirm", "dismiss"] = Field(
        description="confirm: a real copy (the reference's policy applies); dismiss: a false alarm.")
    allowlist_account: bool = Field(False, description="Also license the stream's account for this reference.")
    note: Annotated[str, Field(max_length=2000), AfterValidator(_printable)] | None = None


class WebhookCreate(BaseModel):
    """An endpoint that receives the tenant's signed events."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_printable)]
    secret: Annotated[str, Field(min_length=16, max_length=256), AfterValidator(_printable)] | None = Field(
        None, description="HMAC secret (default: generated and shown once).")
    events: Annotated[list[Literal["*", "incident.flagged", "incident.updated", "stream.cut"]],
                      Field(min_length=1, max_length=8)] = ["*"]
    owner: Name | None = Field(None, description="The tenant it is for (admin keys only).")


class WebhookOut(BaseModel):
    """A registered endpoint (the secret is masked except in the answer that created it)."""

    id: int
    owner: str
    url: str
    secret: str
    events: list[str]
    active: bool
    created: str | None


class WebhookPage(BaseModel):
    """Registered endpoints."""

    items: list[WebhookOut]


class WebhookTestResult(BaseModel):
    """What the endpoint answered to a signed ``webhook.test`` event."""

    delivered: bool
    event_id: str
    status_code: int | None
    error: str | None
    duration_ms: float


class Deliveries(BaseModel):
    """An endpoint's recent events with their delivery state, and the HTTP attempts log."""

    items: list[dict[str, Any]] = Field(description="Outbox rows: event, status (pending/delivered/failed), attempts.")
    attempts: list[dict[str, Any]] = Field(description="Every HTTP attempt, newest first.")


class KeyInfo(BaseModel):
    """The caller's own API key (never its secret): what the review console shows and allows."""

    id: int
    prefix: str
    role: Literal["admin", "rights_holder", "platform"]
    owner: str
    label: str
    created: str


class AlignedSegment(BaseModel):
    """One aligned stretch: query time ``q`` maps to reference time
    ``reference_start + (q - query_start) * rate`` (``offset``: reference minus query time at its start)."""

    model_config = ConfigDict(extra="allow")

    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    rate: float
    offset: float
    score: float
    matched_fraction: float | None = None
    matched_frames: int | None = None
    modality: str | None = None
    matches: list[list[float]] = Field(default_factory=list, description=(
        "Some matched frames as [query time, reference time] pairs (evenly spread, at most 64), for a plot."))


class EvidencePair(BaseModel):
    """A moment of the copy: the query frame (if one was kept) beside the reference frame it copies."""

    query_time: float = Field(description="Seconds into the stream or file.")
    reference_time: float = Field(description="Seconds into the reference.")
    query_url: str | None = Field(description="Where to GET the copy's JPEG (null: no frame kept for this moment).")
    reference_url: str | None = Field(description="Where to GET the reference's JPEG (null: hash-only reference).")


class IncidentAlignment(BaseModel):
    """What a reviewer needs to judge a copy: the aligned segments (query time against reference
    time), evidence pairs along them, the modality and the score."""

    incident_id: int
    reference_id: int
    modality: str = Field(description="video, mirrored, audio, region or live reference (video unless the "
                          "matcher says otherwise).")
    score: float
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    segments: list[AlignedSegment]
    pairs: list[EvidencePair]


class IncidentDelivery(BaseModel):
    """One webhook event of an incident and its delivery to the caller's endpoints."""

    event_id: str
    type: str
    created: str | None
    deliveries: list[dict[str, Any]] = Field(description="Per endpoint: endpoint_id, status "
                                             "(pending/delivered/failed), attempts.")


class IncidentDeliveries(BaseModel):
    """The webhook events of an incident (newest first) and when its action was first acknowledged."""

    incident_id: int
    action_delivered: str | None
    items: list[IncidentDelivery]
