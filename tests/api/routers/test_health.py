"""/healthz and the Prometheus /metrics."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from guard import __version__

from ..helpers import upload_reference


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}


def test_metrics_exposes_requests_references_index_and_queues(client, tenants, media):
    upload_reference(client, media.reference, tenants.nba)
    client.get("/v1/references/999", headers=tenants.nba)
    r = client.get("/metrics", headers=tenants.admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(r.text)
    assert samples["guard_references"] == 1
    assert samples["guard_index_vectors"] > 20
    assert samples['guard_jobs{kind="ingest",status="done"}'] == 1
    assert samples['guard_jobs{kind="scan",status="queued"}'] == 0
    assert samples['guard_http_requests_total{method="GET",route="/v1/references/{ref_id}",status="404"}'] == 1
    assert samples['guard_http_request_duration_seconds_count{method="POST",route="/v1/references"}'] == 1
    assert samples['guard_webhook_outbox{status="pending"}'] == 0


def test_metrics_of_two_apps_are_their_own(client, tenants, media, tmp_path):
    from guard.api.app import create_app
    from guard.config import Settings

    with TestClient(create_app(Settings(home=tmp_path / "other"))):
        pass  # a second app in the same process registers its own series without a clash
    client.get("/healthz")
    samples = _samples(client.get("/metrics", headers=tenants.admin).text)
    assert samples['guard_http_requests_total{method="GET",route="/healthz",status="200"}'] == 1


def _samples(text: str) -> dict[str, float]:
    """Sample lines of a Prometheus exposition as ``{"name{labels}": value}``."""
    samples = {}
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            match = re.fullmatch(r'([a-z_]+(?:\{(?:[a-z_]+="[^"]*",?)*\})?) (\S+)', line)
            assert match, line
            samples[match.group(1)] = float(match.group(2))
    return samples
