"""Numbered schema migrations: a store written by any earlier release is upgraded in place.

``meta.schema_version`` says which migrations a store has had. Opening a store applies the
missing ones in order, each in a transaction of its own that also records its number, so a
crash leaves the store at the last complete version and the next open carries on. A store
whose version is newer than :data:`SCHEMA_VERSION` is refused: this guard cannot read it.

Migrations are history: never edit one that has shipped; add the next.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from guard.errors import FormatError
from guard.pipeline import first_release_pipeline

if TYPE_CHECKING:
    from guard.storage.database import Database

log = logging.getLogger(__name__)

#: Migration 1: the schema of the first release, exactly (its ``guard/store.py``).
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    duration REAL NOT NULL,
    policy TEXT NOT NULL CHECK (policy IN ('flag', 'cut')),
    min_seconds REAL NOT NULL,
    created TEXT NOT NULL,
    source TEXT NOT NULL,
    frames INTEGER NOT NULL,
    allowlist TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS refs_owner ON refs(owner);
CREATE TABLE IF NOT EXISTS fingerprints (
    ref_id INTEGER PRIMARY KEY REFERENCES refs(id) ON DELETE CASCADE,
    signal TEXT NOT NULL,
    signal_version INTEGER NOT NULL,
    bits INTEGER NOT NULL,
    sample_fps REAL NOT NULL,
    times BLOB NOT NULL,
    codes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'rights_holder', 'platform')),
    owner TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    revoked TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    owner TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    params TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    error TEXT,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner, id);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
-- live monitoring (guard.monitor, guard.incidents, guard.actions)
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    account TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    ended REAL,
    error TEXT,
    frames INTEGER NOT NULL DEFAULT 0,
    incidents INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS streams_platform ON streams(platform, started);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    account TEXT NOT NULL,
    platform TEXT NOT NULL,
    reference_id INTEGER NOT NULL,
    reference_title TEXT NOT NULL,
    owner TEXT NOT NULL,
    policy TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'confirmed', 'dismissed')),
    live INTEGER NOT NULL DEFAULT 1,
    score REAL NOT NULL,
    query_start REAL NOT NULL,
    query_end REAL NOT NULL,
    reference_start REAL NOT NULL,
    reference_end REAL NOT NULL,
    segments TEXT NOT NULL DEFAULT '[]',
    first_seen REAL NOT NULL,
    decided REAL NOT NULL,
    action_delivered REAL,
    updated REAL NOT NULL,
    ended REAL,
    reviewed REAL,
    review_note TEXT
);
CREATE INDEX IF NOT EXISTS incidents_ref ON incidents(reference_id, decided);
CREATE INDEX IF NOT EXISTS incidents_stream ON incidents(stream_id, decided);
CREATE INDEX IF NOT EXISTS incidents_owner ON incidents(owner, decided);
CREATE INDEX IF NOT EXISTS incidents_platform ON incidents(platform, decided);
CREATE TABLE IF NOT EXISTS incident_evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('query', 'reference')),
    media_time REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_evidence_incident ON incident_evidence(incident_id);
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '["*"]',
    active INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    UNIQUE (owner, url)
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    platform TEXT NOT NULL,
    incident_id INTEGER,
    stream_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_owner ON events(owner, created);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    delivered REAL,
    last_error TEXT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    endpoint_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries(event_id);
"""

#: Migration 2: a track per (reference, signal) with the pipeline that made it; reference keyframes.
SCHEMA_2 = """
CREATE TABLE tracks (
    ref_id INTEGER NOT NULL REFERENCES refs(id) ON DELETE CASCADE,
    signal TEXT NOT NULL,
    signal_version INTEGER NOT NULL,
    bits INTEGER NOT NULL,
    sample_fps REAL NOT NULL,
    pipeline TEXT NOT NULL,
    times BLOB NOT NULL,
    codes BLOB NOT NULL,
    PRIMARY KEY (ref_id, signal)
);
INSERT INTO tracks (ref_id, signal, signal_version, bits, sample_fps, pipeline, times, codes)
    SELECT ref_id, signal, signal_version, bits, sample_fps,
           first_release_pipeline(signal, signal_version, bits, sample_fps), times, codes
    FROM fingerprints;
DROP TABLE fingerprints;
CREATE TABLE keyframes (
    ref_id INTEGER NOT NULL REFERENCES refs(id) ON DELETE CASCADE,
    media_time REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    PRIMARY KEY (ref_id, media_time)
);
INSERT OR IGNORE INTO meta VALUES ('revision', '0');
"""

#: Migration 3: a stream's request to a monitor process (start it, or stop it), for ``guard serve
#: --roles``: an API without the ``monitor`` role records the stream and a monitor process claims it.
SCHEMA_3 = """
ALTER TABLE streams ADD COLUMN request TEXT;
CREATE INDEX streams_request ON streams(request) WHERE request IS NOT NULL;
"""

SCHEMA_4 = """
CREATE TABLE incident_claims (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    reference_id INTEGER NOT NULL,
    reference_title TEXT NOT NULL,
    owner TEXT NOT NULL,
    policy TEXT NOT NULL,
    PRIMARY KEY (incident_id, reference_id)
);
CREATE INDEX incident_claims_owner ON incident_claims(owner, incident_id);
"""


@dataclass(frozen=True)
class Migration:
    """One numbered step of the schema: ``apply`` runs inside its transaction."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the open transaction: run statement by statement instead
    for statement in script.strip().split(";"):
        if statement.strip():
            db.execute(statement)


def _first_release(db: sqlite3.Connection) -> None:
    _run_script(db, SCHEMA_1)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
    db.execute("INSERT OR IGNORE INTO meta VALUES ('revision', '0')")


def _tracks_and_keyframes(db: sqlite3.Connection) -> None:
    # The first release ran its schema on every open, so a store of any of its builds has
    # every table it knew only after that: run it once more before changing it.
    _run_script(db, SCHEMA_1)
    db.create_function(
        "first_release_pipeline", 4,
        lambda name, version, bits, fps: json.dumps(first_release_pipeline(name, version, bits, fps), sort_keys=True),
        deterministic=True,
    )
    _run_script(db, SCHEMA_2)


#: Migration 5: what modalities of a copy may raise an incident for a reference (issue 12);
#: every reference stored before it keeps matching as it did, by any modality.
SCHEMA_5 = """
ALTER TABLE refs ADD COLUMN match_policy TEXT NOT NULL DEFAULT 'any'
    CHECK (match_policy IN ('video', 'audio', 'any'));
"""

#: Migration 6: live references (issue 13). A live reference's tracks grow by appended chunks
#: (``seq`` is AUTOINCREMENT so it is never reused: ``sqlite_sequence`` holds the highest ever
#: assigned, the position index readers follow); ``live_gaps`` are media-time spans where its
#: feed dropped; an incident of a live reference records when the copied moment aired and how
#: long after it the copy was decided.
SCHEMA_6 = """
ALTER TABLE refs ADD COLUMN live_status TEXT CHECK (live_status IN ('live', 'ended', 'failed'));
ALTER TABLE refs ADD COLUMN aired_start REAL;
ALTER TABLE refs ADD COLUMN retain_seconds REAL;
ALTER TABLE refs ADD COLUMN live_process TEXT;
ALTER TABLE refs ADD COLUMN live_error TEXT;
CREATE INDEX refs_live ON refs(live_status) WHERE live_status IS NOT NULL;
CREATE TABLE track_chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ref_id INTEGER NOT NULL REFERENCES refs(id) ON DELETE CASCADE,
    signal TEXT NOT NULL,
    times BLOB NOT NULL,
    codes BLOB NOT NULL
);
CREATE INDEX track_chunks_track ON track_chunks(ref_id, signal, seq);
CREATE TABLE live_gaps (
    ref_id INTEGER NOT NULL REFERENCES refs(id) ON DELETE CASCADE,
    start REAL NOT NULL,
    "end" REAL NOT NULL
);
CREATE INDEX live_gaps_ref ON live_gaps(ref_id, start);
ALTER TABLE incidents ADD COLUMN aired_at REAL;
ALTER TABLE incidents ADD COLUMN delay REAL
"""

#: Migration 7: each monitor process's load (streams it runs), so processes sharing a store
#: take their fair share of recorded streams (:meth:`guard.monitor.MonitorManager.take_requests`).
SCHEMA_7 = """
CREATE TABLE monitor_processes (
    token TEXT PRIMARY KEY,
    active INTEGER NOT NULL,
    seen REAL NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the first release's schema", _first_release),
    Migration(2, "fingerprint tracks keyed by (reference, signal) with their pipeline; reference keyframes",
              _tracks_and_keyframes),
    Migration(3, "stream requests for monitor processes (roles)", lambda db: _run_script(db, SCHEMA_3)),
    Migration(4, "ownership conflicts: other owners' references claiming an incident's copy",
              lambda db: _run_script(db, SCHEMA_4)),
    Migration(5, "per-reference match policy (video, audio or any)", lambda db: _run_script(db, SCHEMA_5)),
    Migration(6, "live references: appended track chunks, feed gaps, live status; incidents' air time and delay",
              lambda db: _run_script(db, SCHEMA_6)),
    Migration(7, "monitor processes' loads (recorded streams shared between them)", lambda db: _run_script(db, SCHEMA_7)),
)

#: The schema version this guard writes and reads.
SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(db: sqlite3.Connection) -> int:
    """The version recorded in a store (0 for a new, empty file)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def migrate(database: "Database", migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations ``database`` has not had, each in its own transaction; return
    their numbers. :class:`FormatError` for a store newer than ``migrations`` reach."""
    newest = migrations[-1].version
    applied = []
    for migration in migrations:
        with database.transaction() as db:
            current = schema_version(db)
            if current > newest:
                raise FormatError(f"{database.path}: catalog format v{current} is newer than this guard reads "
                                  f"(v{newest}); upgrade guard")
            if current >= migration.version:
                continue
            if current != migration.version - 1:
                raise FormatError(f"{database.path}: catalog format v{current} cannot take migration "
                                  f"{migration.version}")
            migration.apply(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(migration.version),))
            applied.append(migration.version)
    if applied and applied[0] > 1:
        log.info("%s: upgraded the catalog to format v%d (migrations %s)", database.path, newest,
                 ", ".join(map(str, applied)))
    return applied
