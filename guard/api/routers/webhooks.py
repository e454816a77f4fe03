"""Webhooks: register an endpoint and secret per tenant, send a test event, read deliveries."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from guard.actions import WebhookEndpoint
from guard.api.deps import AnyKey, GuardDep, Id, Limit, owner_scope, visible
from guard.api.schemas import Deliveries, WebhookCreate, WebhookOut, WebhookPage, WebhookTestResult
from guard.errors import ForbiddenError
from guard.keys import ApiKey
from guard.service import Guard

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def visible_endpoint(guard: Guard, key: ApiKey, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint if the key's tenant owns it (404 otherwise)."""
    endpoint = guard.actions.endpoint(endpoint_id)
    visible(key, endpoint.owner, f"webhook endpoint {endpoint_id}")
    return endpoint


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookOut, summary="Register a webhook")
def create_webhook(body: WebhookCreate, response: Response, guard: GuardDep, key: AnyKey) -> dict:
    """Register an endpoint for the caller's events; the answer shows the signing secret once.

    Rights holders receive events on incidents of their references, platforms on their
    streams and scans (``stream.cut`` is the takedown). Bodies are signed with HMAC-SHA256
    (``Guard-Signature: v1=…`` over ``"<Guard-Timestamp>." + body``).
    """
    if body.owner and body.owner != key.owner and not key.is_admin:
        raise ForbiddenError("a webhook is registered for the caller's own tenant (leave 'owner' out)")
    endpoint = guard.actions.add_endpoint(body.owner or key.owner, body.url, body.secret, tuple(body.events))
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return endpoint.to_dict(reveal_secret=True)


@router.get("", response_model=WebhookPage, summary="List webhooks")
def list_webhooks(guard: GuardDep, key: AnyKey) -> dict:
    """The caller's endpoints (admins: everyone's), secrets masked."""
    return {"items": [e.to_dict() for e in guard.actions.endpoints(owner_scope(key))]}


@router.get("/{endpoint_id:int}", response_model=WebhookOut, summary="Get a webhook")
def get_webhook(endpoint_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """One endpoint, secret masked."""
    return visible_endpoint(guard, key, endpoint_id).to_dict()


@router.delete("/{endpoint_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a webhook")
def delete_webhook(endpoint_id: Id, guard: GuardDep, key: AnyKey) -> Response:
    """Remove an endpoint and its undelivered events."""
    visible_endpoint(guard, key, endpoint_id)
    guard.actions.remove_endpoint(endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id:int}/test", response_model=WebhookTestResult, summary="Send a test event")
def test_webhook(endpoint_id: Id, guard: GuardDep, key: AnyKey) -> dict:
    """POST a signed ``webhook.test`` event to the endpoint now and report its answer."""
    endpoint = visible_endpoint(guard, key, endpoint_id)
    return guard.actions.send_test(endpoint)


@router.get("/{endpoint_id:int}/deliveries", response_model=Deliveries, summary="Recent deliveries")
def list_deliveries(endpoint_id: Id, guard: GuardDep, key: AnyKey, limit: Limit = 50) -> dict:
    """The endpoint's most recent events with their delivery status, and the attempts log."""
    visible_endpoint(guard, key, endpoint_id)
    rows = guard.actions.outbox(endpoint_id=endpoint_id, limit=100_000)[-limit:][::-1]
    attempts = guard.actions.deliveries(endpoint_id=endpoint_id, limit=limit)
    return {"items": [r.to_dict() for r in rows], "attempts": [a.to_dict() for a in attempts]}
