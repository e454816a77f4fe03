"""One JSON error shape for every failure; bad input is a 4xx, never a 500."""

from __future__ import annotations

from fastapi import APIRouter

from guard.errors import StoreError


def _shape(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "details"}
    assert body["error"]["status"] == status and body["error"]["message"]
    return body["error"]


def test_unknown_route_and_method(client, tenants):
    _shape(client.get("/v1/nothing", headers=tenants.admin), 404)
    r = client.put("/v1/references", headers=tenants.admin)
    assert _shape(r, 405)["code"] == "method_not_allowed" and r.headers["allow"] == "GET, HEAD, POST"


def test_validation_errors_list_the_fields(client, tenants):
    _shape(client.get("/v1/references/abc", headers=tenants.admin), 404)  # ids are integers: no such route
    error = _shape(client.get("/v1/references", headers=tenants.admin, params={"limit": "many"}), 422)
    assert error["details"][0]["loc"] == ["query", "limit"]
    error = _shape(client.patch("/v1/references/1", headers={**tenants.admin, "Content-Type": "application/json"},
                                content=b"{not json"), 422)
    assert error["code"] == "invalid"
    _shape(client.get("/v1/references/0", headers=tenants.admin), 422)
    _shape(client.get(f"/v1/references/{2**70}", headers=tenants.admin), 422)
    lone_surrogate = b'{"title": "a\\ud800"}'  # valid JSON, not valid Unicode
    _shape(client.patch("/v1/references/1", headers={**tenants.admin, "Content-Type": "application/json"},
                        content=lone_surrogate), 422)


def test_not_multipart_upload_is_422(client, tenants):
    error = _shape(client.post("/v1/references", headers=tenants.nba, json={"file": "x"}), 422)
    assert "multipart" in error["message"]
    _shape(client.post("/v1/scans", headers={**tenants.yt, "Content-Type": "multipart/form-data; boundary=zz"},
                       content=b"--zz\r\nbroken"), 422)


def test_unexpected_exceptions_are_500_without_internals(settings):
    from fastapi.testclient import TestClient

    from guard.api import create_app

    app = create_app(settings)
    router = APIRouter()

    @router.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @router.get("/store")
    def store():
        raise StoreError("catalog locked")

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as c:
        error = _shape(c.get("/boom"), 500)
        assert "secret" not in error["message"] and error["code"] == "internal_error"
        assert _shape(c.get("/store"), 503)["message"] == "catalog locked"
