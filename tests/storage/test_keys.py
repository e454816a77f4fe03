"""KeyRepository on a real SQLite catalog file."""

from __future__ import annotations

import pytest

from guard.errors import NotFoundError
from guard.storage.keys import KeyRepository
from guard.store import Catalog


@pytest.fixture
def keys(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield KeyRepository(catalog)
    catalog.close()


def _create(keys: KeyRepository, digest: str, owner: str = "league", role: str = "rights_holder"):
    return keys.create(key_hash=digest, prefix="gk_abcdefgh", role=role, owner=owner, label="ci", created="t0")


def test_create_get_and_find_by_digest(keys):
    key = _create(keys, "d1")
    assert (key.prefix, key.role, key.owner, key.label, key.created, key.revoked) == (
        "gk_abcdefgh", "rights_holder", "league", "ci", "t0", None)
    assert keys.get(key.id) == key
    assert keys.find_by_digest("d1") == (key, "d1")
    assert keys.find_by_digest("unknown") is None
    with pytest.raises(NotFoundError, match="key 999 not found"):
        keys.get(999)


def test_list_by_owner_and_without_revoked(keys):
    a1, b1, a2 = _create(keys, "d1"), _create(keys, "d2", owner="tube", role="platform"), _create(keys, "d3")
    keys.revoke(a1.id, when="t1")
    assert [k.id for k in keys.list()] == [a1.id, b1.id, a2.id]
    assert [k.id for k in keys.list(owner="league")] == [a1.id, a2.id]
    assert [k.id for k in keys.list(include_revoked=False)] == [b1.id, a2.id]
    assert [k.id for k in keys.list(owner="league", include_revoked=False)] == [a2.id]


def test_revoke_keeps_the_first_revocation_time(keys):
    key = _create(keys, "d1")
    keys.revoke(key.id, when="t1")
    keys.revoke(key.id, when="t2")
    assert keys.get(key.id).revoked == "t1"
    assert keys.find_by_digest("d1")[0].revoked == "t1"
