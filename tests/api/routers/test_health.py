"""/healthz and the Prometheus /metrics."""

from __future__ import annotations

import re

from guard import __version__

from ..helpers import upload_reference


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}


def test_metrics_exposes_requests_references_index_and_queues(client, tenants, media):
    upload_reference(client, media.reference, tenants.nba)
    client.get("/v1/references/999", headers=tenants.nba)
    r = client.get("/metrics", headers=tenants.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert "guard_references 1" in text
    vectors = int(re.search(r"^guard_index_vectors (\d+)$", text, re.M).group(1))
    assert vectors > 20
    assert 'guard_jobs{kind="ingest",status="done"} 1' in text
    assert 'guard_jobs{kind="scan",status="queued"} 0' in text
    assert 'guard_http_requests_total{method="GET",route="/v1/references/{ref_id}",status="404"} 1' in text
    assert 'guard_http_request_duration_seconds_count{method="POST",route="/v1/references"} 1' in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            match = re.fullmatch(r'([a-z_]+)(\{(?:[a-z_]+="[^"]*",?)*\})? (\S+)', line)
            assert match, line
            float(match.group(3))
