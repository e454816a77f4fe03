"""Fixtures of the API tests: small real videos, an app over a temp store, keys per tenant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guard_synth import broadcast as synth
from guard.api import create_app
from guard.config import Settings
from guard_synth.encode import write_video

from .helpers import FPS, SIZE



@dataclass
class Media:
    """Generated test videos: a reference, a pirated excerpt of it and an unrelated video."""

    reference: Path
    pirate: Path
    other: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Media:
    folder = tmp_path_factory.mktemp("media")
    reference = write_video(folder / "final.mp4", synth.broadcast(1, SIZE, FPS, 12), FPS)
    pirate = write_video(folder / "pirate.mp4",
                         (synth.logo(f, "tr") for f in synth.broadcast(1, SIZE, FPS, 8, start=2)), FPS)
    other = write_video(folder / "other.mp4", synth.broadcast(99, SIZE, FPS, 8), FPS)
    return Media(reference, pirate, other)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "store", upload_max_bytes=4 * 1024 * 1024, job_workers=1)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class Tenants:
    """Authorization headers of one key per tenant."""

    admin: dict
    nba: dict  # rights holder
    fifa: dict  # another rights holder
    yt: dict  # platform
    twitch: dict  # another platform


@pytest.fixture
def tenants(client) -> Tenants:
    keys = client.app.state.guard.keys

    def header(role, owner):
        return {"Authorization": f"Bearer {keys.create(role, owner)[1]}"}

    return Tenants(
        admin=header("admin", "ops"), nba=header("rights_holder", "nba"), fifa=header("rights_holder", "fifa"),
        yt=header("platform", "yt"), twitch=header("platform", "twitch"),
    )


@pytest.fixture
def open_client(settings):
    """An app that may open loopback addresses (webhook receivers, live feeds), with keys of two
    rights holders, a platform and an admin in ``client.keys``."""
    with TestClient(create_app(settings.replace(allow_private_addresses=True))) as client:
        keys = client.app.state.guard.keys
        client.keys = {owner: {"Authorization": f"Bearer {keys.create(role, owner)[1]}"}
                       for role, owner in [("rights_holder", "nba"), ("rights_holder", "fifa"), ("platform", "yt"),
                                           ("admin", "ops")]}
        yield client
