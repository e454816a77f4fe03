"""Incidents: list and filter, get with segments and evidence thumbnails, review."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Response

from guard.api.deps import AnyKey, GuardDep, Id, Limit, Offset, RightsHolderKey
from guard.api.schemas import MAX_ID, IncidentOut, IncidentPage, Review
from guard.errors import InputError, NotFoundError
from guard.incidents import Incident, iso
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
    """Whether the key's tenant is a party to the incident."""
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
SUMMARY_TIMES = ("first_seen", "decided", "updated", "ended", "reviewed", "action_delivered")
SUMMARY_NUMBERS = ("score", "query_start", "query_end", "reference_start", "reference_end")


def incident_summary(incident: Incident) -> dict:
    """An incident in a listing: what, where, when and its review state (no segments or evidence)."""
    out = {name: getattr(incident, name) for name in SUMMARY_FIELDS}
    out.update({name: round(getattr(incident, name), 3) for name in SUMMARY_NUMBERS})
    out.update({name: iso(getattr(incident, name)) for name in SUMMARY_TIMES})
    out["duration"] = round(incident.query_end - incident.query_start, 3)
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
    guard.review_incident(incident_id, review.action, allowlist_account=review.allowlist_account, note=review.note)
    return incident_out(guard.incidents.get(incident_id))
