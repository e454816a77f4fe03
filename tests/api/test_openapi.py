"""schemathesis against /openapi.json: generated requests never get a 500 and every response
matches the documented schema (status codes, content types, bodies). Bounded: a few examples
per operation, so the run takes well under a minute.

Every URL a generated body carries is replaced with a loopback one the URL policy refuses:
generated requests must never make the server open connections to arbitrary addresses.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from guard.api import create_app
from guard.config import Settings

SAFE_URL = "http://127.0.0.1:9/refused.mp4"


@pytest.fixture(scope="module")
def app_and_key(tmp_path_factory):
    home = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(home=home / "store", upload_max_bytes=256 * 1024, job_workers=1))
    _, token = app.state.guard.keys.create("admin", "ops")
    yield app, {"Authorization": f"Bearer {token}"}
    app.state.guard.close()


@pytest.fixture(scope="module")
def api_schema(app_and_key):
    app, _ = app_and_key
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, app_and_key):
    _, headers = app_and_key
    if isinstance(case.body, dict) and "url" in case.body:
        case.body["url"] = SAFE_URL
    case.call_and_validate(headers=headers, excluded_checks=excluded_checks(case))


def excluded_checks(case) -> list:
    """Checks that cannot hold for this API, always or for this case.

    ``positive_data_acceptance``: a schema-valid body can still be refused for what it means
    (an unknown reference id, a file that is not a fingerprint). ``negative_data_rejection``
    is noisy here: form fields are text, so a generated null or number arrives as the valid
    string "null" or "0", and the fixed Authorization header turns "missing key" cases into
    valid ones. It runs only with GUARD_SCHEMATHESIS_STRICT=1 (it found the empty allowlist
    items and the unknown or repeated query parameters that the API now refuses).
    """
    excluded = [positive_data_acceptance]
    if not os.environ.get("GUARD_SCHEMATHESIS_STRICT") or case.media_type == "multipart/form-data":
        excluded.append(negative_data_rejection)
    return excluded
