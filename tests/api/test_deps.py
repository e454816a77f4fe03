"""Authentication and roles: every route but /healthz needs a valid Bearer key of a fitting role."""

from __future__ import annotations

import pytest

PROTECTED = [("get", "/v1/references"), ("get", "/v1/references/1"), ("post", "/v1/references"),
             ("get", "/v1/scans"), ("get", "/v1/jobs"), ("get", "/v1/jobs/1"), ("get", "/metrics")]


@pytest.mark.parametrize("method,path", PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer gk_unknown", "Basic dXNlcjpwdw==", "gk_raw"])
def test_missing_or_bad_key_is_401_with_the_error_shape(client, method, path, header):
    headers = {"Authorization": header} if header else {}
    r = getattr(client, method)(path, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"


def test_healthz_needs_no_key(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_revoked_key_is_refused_at_once(client):
    keys = client.app.state.guard.keys
    key, token = keys.create("rights_holder", "nba")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/references", headers=headers).status_code == 200
    keys.revoke(key.id)
    r = client.get("/v1/references", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_roles_are_enforced_with_403(client, tenants):
    assert client.get("/v1/references", headers=tenants.yt).status_code == 403
    assert client.post("/v1/scans/url", headers=tenants.nba, json={"url": "https://example.com/a.mp4"}).status_code == 403
    assert client.get("/v1/scans", headers=tenants.nba).status_code == 403
    assert client.get("/metrics", headers=tenants.nba).status_code == 403
    r = client.get("/metrics", headers=tenants.yt)
    assert r.status_code == 403 and "platform" in r.json()["error"]["message"]


def test_a_rejected_upload_is_not_read(client, tenants, settings):
    r = client.post("/v1/references", headers=tenants.yt, files={"file": ("a.mp4", b"x" * 1000, "video/mp4")})
    assert r.status_code == 403
    assert not settings.uploads.exists() or list(settings.uploads.iterdir()) == []
