"""The catalog and the index stay consistent through crashes, and the format is versioned."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from guard.config import Settings
from guard.errors import FormatError, NotFoundError, StoreError
from guard.models import Fingerprint
from guard.service import Guard
from guard.store import SCHEMA_VERSION, Catalog


def _fingerprint(seed: int, frames: int = 50) -> Fingerprint:
    rng = np.random.default_rng(seed)
    return Fingerprint("mhash16", 1, 256, 4.0, frames / 4.0, np.arange(frames) / 4.0,
                       rng.integers(0, 256, (frames, 32), dtype=np.uint8))


def _register(guard, seed, **kw):
    return guard.register(_fingerprint(seed), title=f"ref {seed}", owner="o", source="test", **kw)


def test_reopen_loads_saved_index_without_rebuild(tmp_path, caplog):
    home = tmp_path / "store"
    with Guard(Settings(home=home)) as guard:
        _register(guard, 1)
        _register(guard, 2)
    with caplog.at_level("INFO"):
        with Guard(Settings(home=home)) as guard:
            assert len(guard.index) == 100
    assert "rebuilding" not in caplog.text


@pytest.mark.parametrize("damage", ["stale generation", "missing index", "garbage index", "missing meta"])
def test_index_is_rebuilt_from_catalog_when_out_of_step(tmp_path, damage):
    """A crash between the catalog commit and the index write is repaired on open."""
    home = tmp_path / "store"
    with Guard(Settings(home=home)) as guard:
        _register(guard, 1)
        saved = (home / "index.faiss").read_bytes(), (home / "index.json").read_text()
        second = _register(guard, 2)
    if damage == "stale generation":  # the index files as they were before the second ingest
        (home / "index.faiss").write_bytes(saved[0])
        (home / "index.json").write_text(saved[1])
    elif damage == "missing index":
        (home / "index.faiss").unlink()
    elif damage == "garbage index":
        (home / "index.faiss").write_bytes(b"\x00" * 100)
    else:
        (home / "index.json").unlink()
    with Guard(Settings(home=home)) as guard:
        assert len(guard.index) == 100
        fp = _fingerprint(2)
        assert [s.reference_id for s in guard.match(fp.times, fp.codes)] == [second.id]
        assert json.loads((home / "index.json").read_text())["generation"] == guard.catalog.generation()


def test_failed_catalog_write_leaves_everything_as_it_was(tmp_path):
    """The reference row and its fingerprint commit together or not at all."""
    home = tmp_path / "store"
    with Guard(Settings(home=home)) as guard:
        kept = _register(guard, 1)
        generation = guard.catalog.generation()
        bad = _fingerprint(2)
        bad.signal = None  # the fingerprint insert fails after the reference row went in
        with pytest.raises(sqlite3.IntegrityError):
            guard.catalog.add_reference(owner="o", title="x", policy="flag", min_seconds=5,
                                        source="s", fingerprint=bad)
        assert [r.id for r in guard.references()] == [kept.id]
        assert guard.catalog.generation() == generation
        assert len(guard.index) == 50


def test_remove_takes_vectors_out_of_the_index_at_once(tmp_path):
    with Guard(Settings(home=tmp_path)) as guard:
        first, second = _register(guard, 1), _register(guard, 2)
        guard.remove_reference(first.id)
        assert len(guard.index) == 50
        fp = _fingerprint(1)
        assert guard.match(fp.times, fp.codes) == []
        with pytest.raises(NotFoundError, match=f"reference {first.id} not found"):
            guard.reference(first.id)
        assert guard.reference(second.id).title == "ref 2"


def test_two_services_on_one_store_see_each_others_changes(tmp_path):
    with Guard(Settings(home=tmp_path)) as writer, Guard(Settings(home=tmp_path)) as reader:
        ref = _register(writer, 3)
        fp = _fingerprint(3)
        assert [s.reference_id for s in reader.match(fp.times, fp.codes)] == [ref.id]
        writer.remove_reference(ref.id)
        assert reader.match(fp.times, fp.codes) == []


def test_newer_catalog_format_is_refused(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(FormatError, match="newer than this guard reads"):
        Catalog(path)


def test_not_a_catalog_is_a_store_error(tmp_path):
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable guard catalog"):
        Catalog(path)


def test_fingerprints_of_another_signal_are_refused(tmp_path):
    with Guard(Settings(home=tmp_path)) as guard:
        other = _fingerprint(1)
        other.signal = "phash16"
        with pytest.raises(FormatError, match="this store needs mhash16"):
            guard.register(other, title="x", owner="o", source="elsewhere")
        assert guard.references() == []


def test_update_reference_policy_and_validation(tmp_path):
    with Guard(Settings(home=tmp_path)) as guard:
        ref = _register(guard, 1)
        updated = guard.update_reference(ref.id, policy="cut", min_seconds=8, allowlist=["league-tv"])
        assert (updated.policy, updated.min_seconds, updated.allowlist) == ("cut", 8.0, ["league-tv"])
        with pytest.raises(FormatError, match="policy must be one of"):
            guard.update_reference(ref.id, policy="delete")
        with pytest.raises(NotFoundError):
            guard.update_reference(9999, policy="cut")


def test_policy_changes_reach_other_services_without_reindexing(tmp_path, caplog):
    with Guard(Settings(home=tmp_path)) as writer, Guard(Settings(home=tmp_path)) as reader:
        ref = _register(writer, 4)
        fp = _fingerprint(4)
        short = (fp.times[:16], fp.codes[:16])  # a 4 s copy
        assert reader.match(*short) == []  # min_seconds 5 by default
        writer.update_reference(ref.id, min_seconds=3, title="renamed")
        with caplog.at_level("INFO"):
            (segment,) = reader.match(*short)
        assert segment.reference_title == "renamed"
        assert "rebuilding" not in caplog.text
