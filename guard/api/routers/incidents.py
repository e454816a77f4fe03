"""Incidents: list and filter, get with segments and evidence thumbnails, review."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Response

from guard.api.deps import AnyKey, GuardDep, Id, Limit, Offset, RightsHolderKey
from guard.api.schemas import (
    MAX_ID, IncidentAlignment, IncidentDeliveries, IncidentOut, IncidentPage, Review,
)
from guard.act import EVIDENCE_STEP
from guard.errors import InputError, NotFoundError
from guard.incidents import Incident, iso
from guard.keyframes import KEYFRAME_INTERVAL
from guard.keys import ApiKey
from guard.service import Guard

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])

Time = Annotated[str | None, Query(max_length=64, description="ISO 8601 or Unix seconds (decision time).")]


def scope(key: ApiKey) -> dict:
    """The incident filters a key is confined to: a rights holder its references', a platform its streams'."""
    if key.role == "rights_holder":
        return {"owner": key.owner}
    if key.role == "platform":
        return {"platform": key.owner}
    return {}


def may_see(key: ApiKey, incident: Incident) -> bool:
    """Whether the key's tenant is a party to the incident (every owner of a conflict is)."""
    if key.role == "rights_holder":
        return key.owner in incident.owners
    return all(getattr(incident, field) == value for field, value in scope(key).items())


def incident_out(incident: Incident) -> dict:
    """An incident as the API shows it, with a URL per evidence thumbnail."""
    out = incident.to_dict()
    for item in out["evidence"]:
        item["url"] = f"/v1/incidents/{incident.id}/evidence/{item['id']}"
    return out


#: Fields of an incident in listings (the full record, with segments and evidence, is one GET away).
SUMMARY_FIELDS = ("id", "stream_id", "account", "platform", "reference_id", "reference_title", "owner", "policy",
                  "status", "live", "review_note")
SUMMARY_TIMES = ("first_seen", "decided", "updated", "ended", "reviewed", "action_delivered", "aired_at")
SUMMARY_NUMBERS = ("score", "query_start", "query_end", "reference_start", "reference_end")


def incident_summary(incident: Incident) -> dict:
    """An incident in a listing: what, where, when and its review state (no segments or evidence)."""
    out = {name: getattr(incident, name) for name in SUMMARY_FIELDS}
    out.update(conflict=incident.conflict, owners=incident.owners, claims=incident.claims)
    out.update({name: round(getattr(incident, name), 3) for name in SUMMARY_NUMBERS})
    out.update({name: iso(getattr(incident, name)) for name in SUMMARY_TIMES})
    out["duration"] = round(incident.query_end - incident.query_start, 3)
    out["delay"] = None if incident.delay is None else round(incident.delay, 3)
    return out


def visible_incident(guard: Guard, key: ApiKey, incident_id: int) -> Incident:
    """The incident if the key may see it (404 otherwise, as for an unknown id)."""
    incident = guard.incidents.get(incident_id)
    if not may_see(key, incident):
        raise NotFoundError(f"incident {incident_id} not found")
    return incident


def _time(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value  # ISO 8601, parsed (or refused with 422) by the incident store
    if not math.isfinite(number) or abs(number) > 1e11:
        raise InputError(f"not a time: {value!r}")
    return number


@router.get("", response_model=IncidentPage, summary="List incidents")
def list_incidents(
    guard: GuardDep, key: AnyKey, limit: Limit = 50, offset: Offset = 0,
    reference_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    stream_id: Annotated[str | None, Query(max_length=128, description="guard's stream id, or scan:<job id>.")] = None,
    status: Annotated[str | None, Query(pattern="^(open|confirmed|dismissed)$")] = None,
    live: bool | None = None, since: Time = None, until: Time = None,
) -> dict:
    """Incidents the caller is a party to, newest decision first (summaries: GET one for its
    segments and evidence)."""
    filters = dict(reference_id=reference_id, stream_id=stream_id, status=status, live=live,
                   since=_time(since), until=_time(until), **scope(key))
    items = guard.incidents.list(**filters, limit=limit, offset=offset)
    total = guard.incidents.count(**filters)
    return {"items": [incident_summary(i) for i in items], "total": total, "limit": limit, "offset": offset}


@router.get("/{incident_id:int}", response_model=IncidentOut, summary="Get an incident")
def get_incident(incident_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """An incident with its segments and evidence thumbnails."""
    return incident_out(visible_incident(guard, key, incident_id))


@router.get(
    "/{incident_id:int}/evidence/{evidence_id:int}", response_class=Response, summary="Get an evidence thumbnail",
    responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "A JPEG thumbnail."}},
)
def get_evidence(incident_id: Id, evidence_id: Id, guard: GuardDep, key: AnyKey) -> Response:
    """The JPEG of one evidence thumbnail of an incident."""
    incident = visible_incident(guard, key, incident_id)
    if evidence_id not in {e["id"] for e in incident.evidence}:
        raise NotFoundError(f"evidence {evidence_id} not found")
    return Response(guard.incidents.evidence_jpeg(evidence_id), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.post("/{incident_id:int}/review", response_model=IncidentOut, summary="Review an incident")
def review_incident(incident_id: Id, review: Review, guard: GuardDep, key: RightsHolderKey) -> dict:
    """Confirm (the reference's policy applies) or dismiss (optionally allowlisting the account)."""
    visible_incident(guard, key, incident_id)
    guard.review_incident(incident_id, review.action, allowlist_account=review.allowlist_account, note=review.note,
                          reviewer=None if key.is_admin else key.owner)
    return incident_out(guard.incidents.get(incident_id))


#: Most evidence pairs an alignment lists (one per keyframe interval along the copy).
MAX_PAIRS = 24
SEGMENT_FIELDS = ("query_start", "query_end", "reference_start", "reference_end", "rate", "offset", "score",
                  "matched_fraction", "matched_frames", "modality", "matches")


def _reference_time(segments: list[dict], query_time: float) -> float:
    """Where in the reference ``query_time`` lands, by the segment covering it (or the nearest)."""
    def distance(seg: dict) -> float:
        return max(seg["query_start"] - query_time, query_time - seg["query_end"], 0.0)

    seg = min(segments, key=distance)
    return seg["reference_start"] + (query_time - seg["query_start"]) * seg.get("rate", 1.0)


def _has_keyframes(guard: Guard, reference_id: int) -> bool:
    try:
        return bool(guard.reference(reference_id).has_keyframes)
    except NotFoundError:  # the reference was deleted since
        return False


def evidence_pairs(guard: Guard, incident: Incident) -> list[dict]:
    """Pairs along the copy: the kept query frames beside the reference frames they copy, then one
    reference keyframe per evidence step (:data:`guard.act.EVIDENCE_STEP`) where no query frame was
    kept (past the pairs an incident keeps, or for a copy whose frames could not be read)."""
    out = incident_out(incident)
    segments = out["segments"] or [{k: out[k] for k in ("query_start", "query_end", "reference_start",
                                                        "reference_end")}]
    keyframes = _has_keyframes(guard, incident.reference_id)
    stored_refs = [e for e in out["evidence"] if e["kind"] == "reference"]

    def reference_url(ref_time: float) -> str | None:
        near = [e for e in stored_refs if abs(e["media_time"] - ref_time) <= KEYFRAME_INTERVAL / 2]
        if near:
            return min(near, key=lambda e: abs(e["media_time"] - ref_time))["url"]
        return f"/v1/incidents/{incident.id}/reference-frame?at={ref_time:.3f}" if keyframes else None

    pairs = []
    for item in (e for e in out["evidence"] if e["kind"] == "query"):
        ref_time = _reference_time(segments, item["media_time"])
        pairs.append({"query_time": item["media_time"], "reference_time": round(ref_time, 3),
                      "query_url": item["url"], "reference_url": reference_url(ref_time)})
    for seg in segments:
        query_time = seg["query_start"]
        while query_time <= seg["query_end"] + 1e-6 and len(pairs) < MAX_PAIRS:
            if all(abs(p["query_time"] - query_time) > EVIDENCE_STEP / 2 for p in pairs):
                ref_time = _reference_time(segments, query_time)
                pairs.append({"query_time": round(query_time, 3), "reference_time": round(ref_time, 3),
                              "query_url": None, "reference_url": reference_url(ref_time)})
            query_time += EVIDENCE_STEP
    return sorted(pairs, key=lambda p: p["query_time"])


@router.get("/{incident_id:int}/alignment", response_model=IncidentAlignment, summary="Get an incident's alignment")
def get_alignment(incident_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """The aligned segments (query time against reference time, for a plot), evidence pairs
    along the copy, the modality and the score."""
    incident = visible_incident(guard, key, incident_id)
    out = incident_out(incident)
    segments = [{k: seg[k] for k in SEGMENT_FIELDS if k in seg} for seg in out["segments"]]
    for seg in segments:
        seg.setdefault("rate", 1.0)
        seg.setdefault("offset", seg["reference_start"] - seg["query_start"] * seg["rate"])
        seg.setdefault("score", out["score"])
    modality = out.get("modality") or next((s["modality"] for s in segments if s.get("modality")), "video")
    return {"incident_id": incident.id, "reference_id": incident.reference_id, "modality": str(modality),
            "score": out["score"], **{k: out[k] for k in SUMMARY_NUMBERS if k != "score"},
            "segments": segments, "pairs": evidence_pairs(guard, incident)}


@router.get(
    "/{incident_id:int}/reference-frame", response_class=Response, summary="Get a reference frame of an incident",
    responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "The reference's stored keyframe nearest `at`."}},
)
def get_reference_frame(
    incident_id: Id, guard: GuardDep, key: AnyKey,
    at: Annotated[float, Query(ge=0, le=1e7, description="Seconds into the reference, within the copied span.")],
) -> Response:
    """The reference picture nearest ``at`` (only around the copied span: the incident's parties
    see what was copied, not the whole reference); 404 for a hash-only reference."""
    incident = visible_incident(guard, key, incident_id)
    margin = 2 * KEYFRAME_INTERVAL
    if not incident.reference_start - margin <= at <= incident.reference_end + margin:
        raise NotFoundError(f"no reference frame at {at:g} s for incident {incident_id}")
    try:
        keyframe = guard.reference_keyframe(incident.reference_id, at)
    except NotFoundError:
        keyframe = None
    if keyframe is None:
        raise NotFoundError(f"no reference frame at {at:g} s for incident {incident_id}")
    return Response(keyframe.jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{incident_id:int}/deliveries", response_model=IncidentDeliveries,
            summary="Get an incident's webhook deliveries")
def get_incident_deliveries(incident_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """The incident's webhook events (flagged, cut, updated) and their delivery to the caller's
    endpoints (admins: every endpoint), newest first."""
    incident = visible_incident(guard, key, incident_id)
    endpoint_owner = None if key.is_admin else key.owner
    items = []
    for event in guard.actions.events(incident_id=incident.id, limit=50):
        rows = guard.actions.outbox(event_id=event.id, owner=endpoint_owner, limit=50)
        items.append({"event_id": event.id, "type": event.type, "created": iso(event.created),
                      "deliveries": [{"endpoint_id": r.endpoint_id, "status": r.status, "attempts": r.attempts}
                                     for r in rows]})
    return {"incident_id": incident.id, "action_delivered": iso(incident.action_delivered), "items": items}
