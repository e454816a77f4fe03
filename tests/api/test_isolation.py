"""The tenant-isolation matrix: every object route × every role × own / another tenant's object.

Tenants: ``nba`` and ``fifa`` (rights holders), ``yt`` and ``twitch`` (platforms), ``ops``
(admin). ``nba`` owns a reference, its ingest job and a webhook; ``yt`` scanned a copy of
it (a scan job and an incident on ``nba``'s reference), monitors a stream and has a webhook.
Expected answers: ``ok`` (2xx), ``403`` (the role may not use the route at all) or ``404``
(another tenant's object: the same answer as for an id that does not exist).
"""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient

from guard.api import create_app
from guard.config import Settings

from .helpers import scan_file, serve_folder, upload_reference

ROLES = ("ops", "nba", "fifa", "yt", "twitch")

#: (method, path, json body, expected answer for ops, nba, fifa, yt, twitch).
MATRIX = [
    ("GET", "/v1/references/{ref}", None, "ok ok 404 403 403"),
    ("PATCH", "/v1/references/{ref}", {"title": "renamed"}, "ok ok 404 403 403"),
    ("DELETE", "/v1/references/{ref}", None, "- - 404 403 403"),
    ("GET", "/v1/jobs/{ingest}", None, "ok ok 404 404 404"),
    ("GET", "/v1/jobs/{scan}", None, "ok 404 404 ok 404"),
    ("GET", "/v1/scans/{scan}", None, "ok 403 403 ok 404"),
    ("GET", "/v1/scans/{ingest}", None, "404 403 403 404 404"),
    ("GET", "/v1/incidents/{incident}", None, "ok ok 404 ok 404"),
    ("GET", "/v1/incidents/{incident}/evidence/{evidence}", None, "ok ok 404 ok 404"),
    ("POST", "/v1/incidents/{incident}/review", {"action": "confirm"}, "ok ok 404 403 403"),
    ("GET", "/v1/streams/{stream}", None, "ok 403 403 ok 404"),
    ("POST", "/v1/streams/{stream}/stop", None, "ok 403 403 ok 404"),
    ("GET", "/v1/webhooks/{hook_nba}", None, "ok ok 404 404 404"),
    ("GET", "/v1/webhooks/{hook_nba}/deliveries", None, "ok ok 404 404 404"),
    ("POST", "/v1/webhooks/{hook_nba}/test", None, "ok ok 404 404 404"),
    ("DELETE", "/v1/webhooks/{hook_nba}", None, "- - 404 404 404"),
    ("GET", "/v1/webhooks/{hook_yt}", None, "ok 404 404 ok 404"),
    ("POST", "/v1/webhooks/{hook_yt}/test", None, "ok 404 404 ok 404"),
    ("DELETE", "/v1/webhooks/{hook_yt}", None, "- 404 404 - 404"),
]

CASES = [
    pytest.param(method, path, body, role, expected, id=f"{method} {path} as {role}")
    for method, path, body, answers in MATRIX
    for role, expected in zip(ROLES, answers.split())
    if expected != "-"
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, media):
    """One app with an object of each kind, and every tenant's key."""
    home = tmp_path_factory.mktemp("isolation")
    settings = Settings(home=home / "store", upload_max_bytes=4 * 1024 * 1024, job_workers=1,
                        allow_private_addresses=True)
    with serve_folder(media.reference.parent) as base, TestClient(create_app(settings)) as client:
        guard = client.app.state.guard
        roles = {"ops": "admin", "nba": "rights_holder", "fifa": "rights_holder", "yt": "platform",
                 "twitch": "platform"}
        keys = {owner: {"Authorization": f"Bearer {guard.keys.create(role, owner)[1]}"} for owner, role in roles.items()}
        ref = upload_reference(client, media.reference, keys["nba"], title="Secret final")
        ingest = guard.jobs.list(kind="ingest")[0][0].id
        scan = scan_file(client, media.pirate, keys["yt"])
        incident = scan["result"]["incidents"][0]
        stream = client.post("/v1/streams", headers=keys["yt"],
                             json={"url": f"{base}/other.mp4", "account": "acc", "stream_id": "s1"}).json()
        client.post(f"/v1/streams/{stream['id']}/stop", headers=keys["yt"])
        hook_nba = client.post("/v1/webhooks", headers=keys["nba"], json={"url": "http://127.0.0.1:9/nba"}).json()
        hook_yt = client.post("/v1/webhooks", headers=keys["yt"], json={"url": "http://127.0.0.1:9/yt"}).json()
        ids = {"ref": ref["id"], "ingest": ingest, "scan": scan["id"], "incident": incident,
               "evidence": guard.incidents.get(incident).evidence[0]["id"], "stream": stream["id"],
               "hook_nba": hook_nba["id"], "hook_yt": hook_yt["id"]}
        yield client, keys, ids


@pytest.mark.parametrize("method,path,body,role,expected", CASES)
def test_isolation_matrix(world, method, path, body, role, expected):
    client, keys, ids = world
    r = client.request(method, path.format(**ids), headers=keys[role], json=body)
    if expected == "ok":
        assert 200 <= r.status_code < 300, r.text
        return
    assert r.status_code == int(expected), r.text
    error = r.json()["error"]
    assert "Secret final" not in r.text and "nba" not in error["message"]
    if expected == "404":  # indistinguishable from an id that does not exist
        unknown = {k: (f"{v}x" if isinstance(v, str) else 10**9 + v) for k, v in ids.items()}
        missing = client.request(method, path.format(**unknown), headers=keys[role], json=body)
        assert missing.status_code == 404
        assert _shape(missing.json(), unknown) == _shape(r.json(), ids)


def _shape(body: dict, ids: dict) -> tuple:
    """The error with the object ids blanked out."""
    error = body["error"]
    message = error["message"]
    for value in sorted(map(str, ids.values()), key=len, reverse=True):
        message = message.replace(value, "<id>")
    return error["status"], error["code"], message, error["details"]


@pytest.mark.parametrize("path,visible_to", [
    ("/v1/references", {"ops", "nba"}), ("/v1/jobs", {"ops", "nba", "yt"}), ("/v1/scans", {"ops", "yt"}),
    ("/v1/incidents", {"ops", "nba", "yt"}), ("/v1/streams", {"ops", "yt"}), ("/v1/webhooks", {"ops", "nba", "yt"}),
])
def test_lists_hold_only_the_callers_objects(world, path, visible_to):
    client, keys, ids = world
    for role in ROLES:
        r = client.get(path, headers=keys[role])
        if r.status_code == 403:
            assert role not in visible_to
            continue
        items = r.json()["items"]
        assert bool(items) == (role in visible_to), (role, items)
        if role in ("nba", "fifa"):
            assert all(i.get("owner", role) == role for i in items)


#: Collection routes by role: (method, path, json body, expected for ops, nba, fifa, yt, twitch).
#: The POST bodies carry a URL the policy refuses (400): allowed roles get that far, others 403.
ROLE_MATRIX = [
    ("GET", "/v1/references", None, "ok ok ok 403 403"),
    ("GET", "/v1/scans", None, "ok 403 403 ok ok"),
    ("GET", "/v1/jobs", None, "ok ok ok ok ok"),
    ("GET", "/v1/streams", None, "ok 403 403 ok ok"),
    ("GET", "/v1/incidents", None, "ok ok ok ok ok"),
    ("GET", "/v1/webhooks", None, "ok ok ok ok ok"),
    ("GET", "/metrics", None, "ok 403 403 403 403"),
    ("POST", "/v1/scans/url", {"url": "file:///etc/passwd"}, "400 403 403 400 400"),
    ("POST", "/v1/streams", {"url": "file:///etc/passwd", "account": "a"}, "400 403 403 400 400"),
    ("POST", "/v1/webhooks", {"url": "ftp://example.com/"}, "400 400 400 400 400"),
]


@pytest.mark.parametrize("method,path,body,role,expected", [
    pytest.param(method, path, body, role, expected, id=f"{method} {path} as {role}")
    for method, path, body, answers in ROLE_MATRIX for role, expected in zip(ROLES, answers.split())
])
def test_role_matrix(world, method, path, body, role, expected):
    client, keys, _ = world
    r = client.request(method, path, headers=keys[role], json=body)
    if expected == "ok":
        assert 200 <= r.status_code < 300, r.text
    else:
        assert r.status_code == int(expected), r.text


@pytest.mark.parametrize("path", ["/v1/references", "/v1/scans"])
def test_uploads_of_the_wrong_role_are_refused(world, path):
    client, keys, _ = world
    role = "yt" if path == "/v1/references" else "nba"
    r = client.post(path, headers=keys[role], files={"file": ("a.mp4", b"x" * 100, "video/mp4")})
    assert r.status_code == 403
