"""Numbered migrations: a store of the first release is upgraded in place and still matches."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from guard.config import Settings
from guard.errors import FormatError
from guard.fingerprint import Fingerprinter
from guard.index import FaissBinaryIndex
from guard.match import vector_ids
from guard.models import Fingerprint
from guard.pipeline import first_release_pipeline
from guard.service import Guard
from guard.storage import MIGRATIONS, SCHEMA_VERSION, Database, Migration, ReferenceRepository, migrate
from guard.storage.incidents import IncidentRepository
from guard.storage.migrations import SCHEMA_1
from tests import media


def _first_release_store(home, references: dict[str, tuple[str, Fingerprint]]) -> None:
    """A store as the first release left it: its schema (migration 1's SQL), rows inserted as
    its ``Catalog.add_reference`` did, and its index files (index format 1)."""
    home.mkdir(parents=True)
    db = sqlite3.connect(home / "catalog.sqlite", isolation_level=None)
    for statement in SCHEMA_1.strip().split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO meta VALUES ('generation', '0')")
    db.execute("INSERT OR IGNORE INTO meta VALUES ('revision', '0')")
    index = FaissBinaryIndex(256)
    for title, (source, fp) in references.items():
        cursor = db.execute(
            "INSERT INTO refs (owner, title, duration, policy, min_seconds, created, source, frames, allowlist)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("league", title, fp.duration, "flag", 5.0, "2025-01-01T00:00:00+00:00", source, len(fp), "[]"))
        db.execute("INSERT INTO fingerprints VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (cursor.lastrowid, fp.signal, fp.signal_version, fp.bits, fp.sample_fps,
                    np.asarray(fp.times, dtype="<f8").tobytes(), fp.codes.tobytes()))
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN ('generation', 'revision')")
        index.add(vector_ids(cursor.lastrowid, len(fp)), fp.codes)
    db.close()
    index.save(home / "index.faiss")
    (home / "index.json").write_text(json.dumps({"format": 1, "generation": len(references), "kind": "flat",
                                                 "vectors": len(index)}))


def _schema_version(path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        db.close()


@pytest.mark.slow
def test_a_first_release_store_is_upgraded_in_place_and_every_reference_is_found(tmp_path, reference_files, caplog):
    fingerprinter = Fingerprinter("mhash16", 4.0)
    made = {f"reference {seed}": (str(path), fingerprinter.fingerprint_file(path))
            for seed, path in reference_files.items()}
    home = tmp_path / "store"
    _first_release_store(home, made)
    with caplog.at_level("INFO"), Guard(Settings(home=home)) as guard:
        assert f"upgraded the catalog to format v{SCHEMA_VERSION} (migrations 2" in caplog.text
        refs = guard.references()
        assert [r.title for r in refs] == list(made) and not any(r.has_keyframes for r in refs)
        for ref in refs:
            (track,) = guard.tracks(ref.id)
            fp = made[ref.title][1]
            assert np.array_equal(track.codes, fp.codes) and np.array_equal(track.times, fp.times)
            assert track.pipeline == first_release_pipeline("mhash16", 1, 256, 4.0)
        for seed, ref in zip(reference_files, refs):
            copy = media.make_copy(tmp_path / f"copy{seed}.mp4", seed, 8.0, 10.0, before=3.0)
            assert [s.reference_id for s in guard.scan(copy).segments] == [ref.id], f"reference {seed} is found"
    assert _schema_version(home / "catalog.sqlite") == SCHEMA_VERSION
    caplog.clear()
    with caplog.at_level("INFO"), Guard(Settings(home=home)) as guard:
        assert len(guard.references()) == 3
    assert "upgraded" not in caplog.text and "rebuilding" not in caplog.text, "upgraded and re-indexed once"


def test_a_migration_that_fails_leaves_the_store_at_the_last_complete_version(tmp_path):
    path = tmp_path / "catalog.sqlite"
    Database(path).close()

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise sqlite3.OperationalError("disk went away")

    database = Database(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk went away"):
            migrate(database, MIGRATIONS + (Migration(SCHEMA_VERSION + 1, "fails", half_then_fail),))
        assert _schema_version(path) == SCHEMA_VERSION
        assert database.query("SELECT name FROM sqlite_master WHERE name = 'half_done'") == []
        later = Migration(SCHEMA_VERSION + 1, "works", lambda db: db.execute("CREATE TABLE later (x INTEGER)"))
        assert migrate(database, MIGRATIONS + (later,)) == [SCHEMA_VERSION + 1]
        assert migrate(database, MIGRATIONS + (later,)) == [], "a migration runs once"
    finally:
        database.close()
    with pytest.raises(FormatError, match=f"catalog format v{SCHEMA_VERSION + 1} is newer than this guard reads "
                                          f"\\(v{SCHEMA_VERSION}\\); upgrade guard"):
        Database(path)


def test_migrations_are_numbered_one_by_one():
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_a_new_store_has_every_table(tmp_path):
    database = Database(tmp_path / "catalog.sqlite")
    try:
        tables = {name for (name,) in database.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        database.close()
    assert {"refs", "tracks", "keyframes", "jobs", "incidents", "streams", "api_keys", "outbox"} <= tables
    assert "fingerprints" not in tables
    assert _schema_version(tmp_path / "catalog.sqlite") == SCHEMA_VERSION


def test_migration_5_gives_every_stored_reference_the_match_policy_any(tmp_path):
    fp = Fingerprint("mhash16", 1, 256, 4.0, 10.0, np.arange(40) / 4.0,
                     np.random.default_rng(0).integers(0, 256, (40, 32), dtype=np.uint8))
    home = tmp_path / "store"
    _first_release_store(home, {"old": ("old.mp4", fp)})
    Database(home / "catalog.sqlite").close()  # opening migrates: 2, 3, 4, 5 and on
    db = sqlite3.connect(home / "catalog.sqlite")
    try:
        assert db.execute("SELECT match_policy FROM refs").fetchall() == [("any",)]
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE refs SET match_policy = 'smell'")
    finally:
        db.close()
    assert _schema_version(home / "catalog.sqlite") == SCHEMA_VERSION
    with Guard(Settings(home=home)) as guard:
        [ref] = guard.references()
        assert ref.match == "any" and guard.update_reference(ref.id, match="video").match == "video"


def _store_at(home, version: int, references: dict[str, tuple[str, Fingerprint]]) -> None:
    """A store as the release with schema ``version`` left it: the first release's, then the
    migrations up to ``version`` applied as that release applied them."""
    _first_release_store(home, references)
    db = sqlite3.connect(home / "catalog.sqlite", isolation_level=None)
    try:
        for migration in MIGRATIONS[1:version]:
            migration.apply(db)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    finally:
        db.close()


def test_migration_6_keeps_every_reference_and_incident_and_adds_live_references(tmp_path):
    fp = Fingerprint("mhash16", 1, 256, 4.0, 10.0, np.arange(40) / 4.0,
                     np.random.default_rng(0).integers(0, 256, (40, 32), dtype=np.uint8))
    home = tmp_path / "store"
    _store_at(home, 5, {"old": ("old.mp4", fp)})
    db = sqlite3.connect(home / "catalog.sqlite", isolation_level=None)
    try:
        db.execute("INSERT INTO incidents (stream_id, account, platform, reference_id, reference_title, owner, policy,"
                   " status, score, query_start, query_end, reference_start, reference_end, first_seen, decided,"
                   " updated) VALUES ('s1', 'fan', 'tube', 1, 'old', 'league', 'flag', 'open', 0.9, 0, 5, 0, 5,"
                   " 100, 103, 103)")
    finally:
        db.close()
    assert _schema_version(home / "catalog.sqlite") == 5
    database = Database(home / "catalog.sqlite")
    try:
        assert _schema_version(home / "catalog.sqlite") == SCHEMA_VERSION
        references = ReferenceRepository(database)
        [ref] = references.all()
        assert (ref.title, ref.match, ref.live_status, ref.aired_start, ref.retain_seconds, ref.gaps) == (
            "old", "any", None, None, None, [])
        [track] = references.tracks_of(ref.id)
        assert np.array_equal(track.codes, fp.codes) and np.array_equal(track.times, fp.times)
        assert references.chunk_position() == 0 and references.live() == []
        [incident] = IncidentRepository(database).list()
        assert (incident.reference_title, incident.aired_at, incident.delay) == ("old", None, None)
        live = references.add_live(owner="league", title="Live", policy="flag", min_seconds=2.0, source="feed",
                                   tracks=[Fingerprint("mhash16", 1, 256, 4.0, 0.0, np.zeros(0),
                                                       np.zeros((0, 32), np.uint8))])
        assert references.append(live.id, [("mhash16", fp.times, fp.codes)], duration=10.0) == 1
        with pytest.raises(sqlite3.IntegrityError):
            database.query("UPDATE refs SET live_status = 'paused'")
    finally:
        database.close()
