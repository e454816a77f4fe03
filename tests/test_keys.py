"""API keys: created once with their token, stored hashed, authenticated, listed, revoked."""

from __future__ import annotations

import sqlite3
import time

import pytest

from guard.errors import AuthError, InputError, NotFoundError
from guard.keys import TOKEN_PREFIX, KeyStore, digest
from guard.store import Catalog


@pytest.fixture
def keys(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield KeyStore(catalog)
    catalog.close()


def test_create_returns_the_token_once_and_stores_only_its_hash(keys, tmp_path):
    key, token = keys.create("rights_holder", "nba", "ingest bot")
    assert token.startswith(TOKEN_PREFIX) and len(token) >= 40
    assert (key.role, key.owner, key.label, key.revoked) == ("rights_holder", "nba", "ingest bot", None)
    assert token.startswith(key.prefix) and len(key.prefix) < len(token) // 2
    raw = sqlite3.connect(tmp_path / "catalog.sqlite").execute("SELECT * FROM api_keys").fetchall()
    assert token not in repr(raw) and digest(token) in repr(raw)
    assert keys.authenticate(token) == key


def test_tokens_are_unique_and_random(keys):
    tokens = {keys.create("platform", "yt")[1] for _ in range(20)}
    assert len(tokens) == 20


@pytest.mark.parametrize("token", ["", "gk_", "gk_wrong", "Bearer x", "x" * 1000, "gk_" + "é" * 10])
def test_unknown_tokens_are_refused(keys, token):
    keys.create("admin", "ops")
    with pytest.raises(AuthError):
        keys.authenticate(token)


def test_revoked_key_stops_working_at_once(keys):
    key, token = keys.create("platform", "yt")
    other, other_token = keys.create("platform", "yt")
    assert keys.revoke(key.id).revoked is not None
    with pytest.raises(AuthError, match="revoked"):
        keys.authenticate(token)
    assert keys.authenticate(other_token) == other
    assert keys.revoke(key.id).revoked == keys.get(key.id).revoked  # idempotent


def test_recently_authenticated_keys_are_answered_from_memory_until_revoked(keys):
    key, token = keys.create("platform", "yt")
    assert keys.recently_authenticated(token) is None, "never authenticated: read the catalog"
    keys.authenticate(token)
    assert keys.recently_authenticated(token) == key
    assert keys.recently_authenticated("gk_" + "x" * 43) is None
    keys.revoke(key.id)
    assert keys.recently_authenticated(token) is None, "a revocation here takes effect at once"


def test_a_revocation_by_another_process_takes_effect_within_the_cache_time(tmp_path):
    catalog, elsewhere = Catalog(tmp_path / "catalog.sqlite"), Catalog(tmp_path / "catalog.sqlite")
    try:
        server, cli = KeyStore(catalog, cache_seconds=0.2), KeyStore(elsewhere)
        key, token = server.create("platform", "yt")
        server.authenticate(token)
        cli.revoke(key.id)
        assert server.recently_authenticated(token) == key  # within the cache time
        deadline = time.monotonic() + 5
        while server.recently_authenticated(token) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.recently_authenticated(token) is None
        with pytest.raises(AuthError, match="revoked"):
            server.authenticate(token)
    finally:
        catalog.close()
        elsewhere.close()


def test_list_and_errors(keys):
    a, _ = keys.create("admin", "ops")
    b, _ = keys.create("platform", "yt")
    keys.revoke(b.id)
    assert [k.id for k in keys.list()] == [a.id, b.id]
    assert [k.id for k in keys.list(include_revoked=False)] == [a.id]
    assert [k.id for k in keys.list(owner="yt")] == [b.id]
    with pytest.raises(InputError):
        keys.create("superuser", "ops")
    with pytest.raises(InputError):
        keys.create("admin", " ")
    with pytest.raises(NotFoundError):
        keys.revoke(999)


def test_keys_cli_creates_lists_and_revokes(tmp_path):
    from click.testing import CliRunner

    from guard.cli import cli

    home = tmp_path / "store"
    runner = CliRunner()
    created = runner.invoke(cli, ["--home", str(home), "keys", "create", "--role", "platform", "--owner", "tube"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("gk_")
    listed = runner.invoke(cli, ["--home", str(home), "keys", "list"])
    assert "tube" in listed.output and token not in listed.output and "active" in listed.output
    assert runner.invoke(cli, ["--home", str(home), "keys", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["--home", str(home), "keys", "list"]).output
    bad = runner.invoke(cli, ["--home", str(home), "keys", "create", "--role", "root", "--owner", "x"])
    assert bad.exit_code == 2
