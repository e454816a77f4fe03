"""References through the API: upload → ingest job, import, list/filter/page, update, delete."""

from __future__ import annotations

import gzip
import json
import shutil

from fastapi.testclient import TestClient

from guard import exchange
from guard.api import create_app

from ..helpers import scan_file, upload_reference, wait_job


def test_upload_ingests_in_a_job_with_progress_and_location(client, tenants, media):
    with open(media.reference, "rb") as fh:
        r = client.post("/v1/references", headers=tenants.nba,
                        files={"file": ("final.mp4", fh, "video/mp4")},
                        data={"title": "Final", "policy": "cut", "min_seconds": "6", "allowlist": ["espn", "sky"]})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "ingest" and job["status"] in ("queued", "running", "done")
    assert job["params"]["filename"] == "final.mp4" and "_path" not in job["params"]
    done = wait_job(client, job["id"], tenants.nba)
    assert done["status"] == "done" and done["progress"] == 1.0
    ref = done["result"]["reference"]
    assert (ref["owner"], ref["title"], ref["policy"], ref["min_seconds"]) == ("nba", "Final", "cut", 6.0)
    assert ref["allowlist"] == ["espn", "sky"] and ref["frames"] > 20 and ref["source"] == "upload:final.mp4"
    assert client.get(f"/v1/references/{ref['id']}", headers=tenants.nba).json() == ref
    assert list(client.app.state.guard.settings.uploads.iterdir()) == []  # upload removed after ingest


def test_upload_of_a_non_video_fails_the_job_with_a_message(client, tenants):
    r = client.post("/v1/references", headers=tenants.nba, files={"file": ("x.mp4", b"not a video", "video/mp4")})
    job = wait_job(client, r.json()["id"], tenants.nba)
    assert job["status"] == "failed" and "cannot be opened" in job["error"]


def test_ingested_reference_is_found_by_a_scan(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba)
    job = scan_file(client, media.pirate, tenants.yt)
    assert job["status"] == "done"
    [match] = job["result"]["matches"]
    assert match["reference_id"] == ref["id"] and abs(match["offset"] - 2.0) < 0.6
    assert job["result"]["path"] == "pirate.mp4"


def test_rights_holder_cannot_register_for_someone_else_but_admin_can(client, tenants, media):
    r = client.post("/v1/references", headers=tenants.nba, files={"file": ("a.mp4", b"x", "video/mp4")},
                    data={"owner": "fifa"})
    assert r.status_code == 403
    ref = upload_reference(client, media.reference, tenants.admin, owner="fifa", title="For fifa")
    assert ref["owner"] == "fifa"
    assert client.get(f"/v1/references/{ref['id']}", headers=tenants.fifa).status_code == 200


def test_invalid_form_fields_answer_422_and_leave_no_file(client, tenants, media):
    for data in ({"policy": "burn"}, {"min_seconds": "abc"}, {"min_seconds": "0.1"}, {"title": ""},
                 {"colour": "red"}):
        r = client.post("/v1/references", headers=tenants.nba,
                        files={"file": ("final.mp4", media.reference.read_bytes(), "video/mp4")}, data=data)
        assert r.status_code == 422, (data, r.text)
        assert r.json()["error"]["status"] == 422
    r = client.post("/v1/references", headers=tenants.nba, data={"title": "no file"},
                    files={"other": ("x.txt", b"abc", "text/plain")})
    assert r.status_code == 422 and "file" in r.json()["error"]["message"]
    assert list(client.app.state.guard.settings.uploads.glob("*")) == []


def test_oversized_upload_is_refused_before_it_is_stored(client, tenants, settings):
    big = b"\0" * (settings.upload_max_bytes + 1)
    r = client.post("/v1/references", headers=tenants.nba, files={"file": ("big.mp4", big, "video/mp4")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert list(settings.uploads.glob("*")) == []


def test_oversized_chunked_upload_stops_at_the_limit(client, tenants, settings):
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
            "Content-Type: video/mp4\r\n\r\n").encode()
    sent = {"bytes": 0}

    def body():  # no Content-Length: the limit must hold while streaming
        yield head
        for _ in range(200):
            sent["bytes"] += 64 * 1024
            yield b"\1" * (64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/v1/references", headers={**tenants.nba, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                    content=body())
    assert r.status_code == 413
    assert list(settings.uploads.glob("*")) == []


def test_import_hash_only_fingerprint(client, tenants, media, tmp_path):
    guard = client.app.state.guard
    fp = guard.fingerprint(media.reference)
    path = exchange.dump(fp, "Exported final", tmp_path / "final.gfp.json.gz")
    r = client.post("/v1/references/import", headers=tenants.nba,
                    files={"file": (path.name, path.read_bytes(), "application/gzip")}, data={"policy": "cut"})
    assert r.status_code == 201, r.text
    ref = r.json()
    assert r.headers["location"] == f"/v1/references/{ref['id']}"
    assert (ref["title"], ref["owner"], ref["policy"], ref["frames"]) == ("Exported final", "nba", "cut", len(fp))
    job = scan_file(client, media.pirate, tenants.yt)
    assert [m["reference_id"] for m in job["result"]["matches"]] == [ref["id"]]


def test_import_of_a_damaged_file_is_422(client, tenants, media, tmp_path):
    fp = client.app.state.guard.fingerprint(media.other)
    raw = exchange.dump(fp, "t", tmp_path / "x.json").read_bytes().replace(b'"sha256": "', b'"sha256": "00')
    r = client.post("/v1/references/import", headers=tenants.nba, files={"file": ("x.json", raw, "application/json")})
    assert r.status_code == 422 and "checksum" in r.json()["error"]["message"]
    r = client.post("/v1/references/import", headers=tenants.nba,
                    files={"file": ("x.gz", gzip.compress(b"{}"), "application/gzip")})
    assert r.status_code == 422 and "not a guard fingerprint" in r.json()["error"]["message"]


def _import(client, headers, fp, title, **data):
    raw = exchange.dump(fp, title, client.app.state.guard.home / f"{title}.json").read_bytes()
    r = client.post("/v1/references/import", headers=headers, files={"file": ("f.json", raw, "application/json")},
                    data=data)
    assert r.status_code == 201, r.text
    return r.json()


def test_list_filters_and_pages(client, tenants, media):
    fp = client.app.state.guard.fingerprint(media.other)
    mine = [_import(client, tenants.nba, fp, f"Match {i}", policy="cut" if i % 2 else "flag") for i in range(5)]
    _import(client, tenants.fifa, fp, "Fifa match")
    page = client.get("/v1/references", headers=tenants.nba, params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and [r["id"] for r in page["items"]] == [mine[1]["id"], mine[2]["id"]]
    cut = client.get("/v1/references", headers=tenants.nba, params={"policy": "cut"}).json()
    assert [r["title"] for r in cut["items"]] == ["Match 1", "Match 3"]
    assert client.get("/v1/references", headers=tenants.nba, params={"title": "match 4"}).json()["total"] == 1
    assert client.get("/v1/references", headers=tenants.nba, params={"owner": "fifa"}).json()["total"] == 0
    assert client.get("/v1/references", headers=tenants.admin).json()["total"] == 6
    assert client.get("/v1/references", headers=tenants.admin, params={"owner": "fifa"}).json()["total"] == 1
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"policy": "x"}):
        assert client.get("/v1/references", headers=tenants.nba, params=bad).status_code == 422


def test_update_and_delete(client, tenants, media):
    guard = client.app.state.guard
    ref = upload_reference(client, media.reference, tenants.nba)
    r = client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba,
                     json={"policy": "cut", "min_seconds": 3, "allowlist": ["b", "a", "a"]})
    assert r.status_code == 200, r.text
    assert (r.json()["policy"], r.json()["min_seconds"], r.json()["allowlist"]) == ("cut", 3.0, ["a", "b"])
    assert client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba, json={"policy": "x"}).status_code == 422
    assert client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba, json={"owner": "x"}).status_code == 422
    assert scan_file(client, media.pirate, tenants.yt)["result"]["matches"]
    assert client.delete(f"/v1/references/{ref['id']}", headers=tenants.nba).status_code == 204
    assert client.get(f"/v1/references/{ref['id']}", headers=tenants.nba).status_code == 404
    assert len(guard.index) == 0
    assert scan_file(client, media.pirate, tenants.yt)["result"]["matches"] == []  # out of the index at once
    assert client.delete(f"/v1/references/{ref['id']}", headers=tenants.nba).status_code == 404



def test_the_match_policy_is_set_on_upload_and_by_patch(client, tenants, media):
    ref = upload_reference(client, media.reference, tenants.nba, match="video")
    assert ref["match"] == "video"
    r = client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba, json={"match": "audio"})
    assert r.status_code == 200 and r.json()["match"] == "audio"
    assert client.patch(f"/v1/references/{ref['id']}", headers=tenants.nba, json={"match": "smell"}).status_code == 422
    assert scan_file(client, media.pirate, tenants.yt)["result"]["matches"] == []  # a silent copy: video only
    exported = client.get(f"/v1/references/{ref['id']}/export", headers=tenants.nba)
    assert exported.status_code == 200 and exported.json()["match"] == "audio"
    assert client.delete(f"/v1/references/{ref['id']}", headers=tenants.nba).status_code == 204


def test_upload_that_would_fill_the_disk_is_refused(settings):
    free = shutil.disk_usage(settings.home.parent).free
    app = create_app(settings.replace(upload_max_bytes=10 * free))
    with TestClient(app) as client:
        _, token = app.state.guard.keys.create("platform", "yt")
        announced = {"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=x",
                     "Content-Length": str(free)}  # more than the disk can spare

        def body():
            yield b"--x--\r\n"

        r = client.post("/v1/scans", headers=announced, content=body())
        assert r.status_code == 507 and r.json()["error"]["code"] == "insufficient_storage"
        assert not settings.uploads.exists() or list(settings.uploads.iterdir()) == []


def _synthetic_export(title="Exported final", frames=40, fps=4.0) -> dict:
    """An export of a hand-made fingerprint (the store's signal, random codes): no video needed."""
    import numpy as np

    from guard.models import Fingerprint

    codes = np.random.default_rng(frames).integers(0, 256, (frames, 32), dtype=np.uint8)
    fp = Fingerprint("mhash16", 1, 256, fps, frames / fps, np.arange(frames) / fps, codes)
    return json.loads(exchange.dumps(fp, title))


def _post_import(client, headers, raw: bytes, name="f.json"):
    return client.post("/v1/references/import", headers=headers, files={"file": (name, raw, "application/json")})


def _gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes as gzip members of 1 MiB each: a 1000-fold expansion, made in a blink."""
    member = gzip.compress(bytes(1024**2))
    return member * (size // 1024**2)


def test_import_refuses_hostile_files_precisely_and_keeps_serving(client, tenants, settings):
    valid = json.dumps(_synthetic_export())
    cases = {
        "nan duration": (valid.replace('"duration": 10.0', '"duration": NaN'), 422, "numbers must be finite"),
        "nan sample_fps": (valid.replace('"sample_fps": 4.0', '"sample_fps": NaN'), 422, "numbers must be finite"),
        "infinite duration": (valid.replace('"duration": 10.0', '"duration": Infinity'), 422, "numbers must be finite"),
        "absurd duration": (valid.replace('"duration": 10.0', '"duration": 1e308'), 422, "'duration' must be between"),
        "deep nesting": ("[" * 200_000, 422, "JSON nested too deeply"),
        "dict title": (json.dumps(_synthetic_export(title={"a": 1})), 422, "invalid title (must be a string, not dict)"),
        "1 MB title": (json.dumps(_synthetic_export(title="x" * 1_000_000)), 422, "invalid title (must be 1 to 200"),
        "escape codes": (json.dumps(_synthetic_export(title="a\x1b[2J\r\nb")), 422, "must not contain control"),
    }
    assert valid.count('"duration": 10.0') == 1 and valid.count('"sample_fps": 4.0') == 1
    for case, (text, status, message) in cases.items():
        r = _post_import(client, tenants.nba, text.encode())
        assert r.status_code == status, (case, r.text)
        assert r.json()["error"]["message"].startswith("f.json: ") and message in r.json()["error"]["message"], case
    r = _post_import(client, tenants.nba, _gzip_bomb(300 * 1024**2), "bomb.json.gz")  # 300 KB on the wire
    assert r.status_code == 413, r.text
    assert r.json()["error"]["message"] == f"bomb.json.gz: decompresses to more than the limit of {exchange.MAX_FILE_BYTES} bytes"
    assert client.get("/v1/references", headers=tenants.nba).json()["total"] == 0
    assert list(settings.uploads.glob("*")) == []
    r = _post_import(client, tenants.nba, valid.encode())
    assert r.status_code == 201 and r.json()["title"] == "Exported final"  # still serving


def test_titles_share_one_rule_in_import_and_patch(client, tenants):
    r = _post_import(client, tenants.nba, json.dumps(_synthetic_export()).encode())
    ref_id = r.json()["id"]
    for title in ("a\x1b[31mb", "a\x9bb", "a\r\nb", "x" * 201, ""):
        patched = client.patch(f"/v1/references/{ref_id}", headers=tenants.nba, json={"title": title})
        imported = _post_import(client, tenants.nba, json.dumps(_synthetic_export(title=title)).encode())
        assert (patched.status_code, imported.status_code) == (422, 422), title
    r = client.patch(f"/v1/references/{ref_id}", headers=tenants.nba, json={"title": "Finale — 決勝"})
    assert r.status_code == 200 and r.json()["title"] == "Finale — 決勝"
    assert client.get("/v1/references", headers=tenants.nba).json()["total"] == 1
