"""The SQLite catalog: references, their fingerprints and the index generation.

The catalog is the source of truth. Every change that touches fingerprints bumps
``generation`` in the same transaction; the FAISS index file records the generation it was
built from, so an index that missed a change (a crash between the two writes) is detected
and rebuilt from the catalog when the store opens.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from guard.errors import FormatError, NotFoundError, StoreError
from guard.models import POLICIES, Fingerprint, Reference

#: On-disk format of the catalog. Bump on any incompatible schema change.
SCHEMA_VERSION = 1

_SCHEMA = """
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


def utc_now() -> str:
    """Current time as ISO 8601 UTC, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Catalog:
    """A SQLite catalog file, safe to share between threads of one process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable guard catalog ({exc})") from exc

    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("INSERT INTO meta VALUES ('generation', '0')")
            elif int(row[0]) > SCHEMA_VERSION:
                raise FormatError(
                    f"{self.path}: catalog format v{row[0]} is newer than this guard reads "
                    f"(v{SCHEMA_VERSION}); upgrade guard"
                )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('revision', '0')")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # -- generation ---------------------------------------------------------------------------

    def generation(self) -> int:
        """The number of fingerprint changes ever committed."""
        return int(self.query("SELECT value FROM meta WHERE key='generation'")[0][0])

    def versions(self) -> tuple[int, int]:
        """``(generation, revision)``: fingerprint changes, and changes of any reference field."""
        rows = dict(self.query("SELECT key, value FROM meta WHERE key IN ('generation', 'revision')"))
        return int(rows["generation"]), int(rows["revision"])

    @staticmethod
    def _bump(db: sqlite3.Connection, fingerprints: bool = True) -> None:
        keys = "('generation', 'revision')" if fingerprints else "('revision')"
        db.execute(f"UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN {keys}")

    # -- references ---------------------------------------------------------------------------

    def add_reference(
        self,
        *,
        owner: str,
        title: str,
        policy: str,
        min_seconds: float,
        source: str,
        fingerprint: Fingerprint,
        allowlist: list[str] | None = None,
    ) -> Reference:
        """Store a reference and its fingerprint in one transaction; return it with its id."""
        _check_policy(policy)
        created = utc_now()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO refs (owner, title, duration, policy, min_seconds, created, source,"
                " frames, allowlist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    owner,
                    title,
                    fingerprint.duration,
                    policy,
                    min_seconds,
                    created,
                    source,
                    len(fingerprint),
                    json.dumps(allowlist or []),
                ),
            )
            ref_id = int(cursor.lastrowid)
            db.execute(
                "INSERT INTO fingerprints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    ref_id,
                    fingerprint.signal,
                    fingerprint.signal_version,
                    fingerprint.bits,
                    fingerprint.sample_fps,
                    np.asarray(fingerprint.times, dtype="<f8").tobytes(),
                    np.ascontiguousarray(fingerprint.codes, dtype=np.uint8).tobytes(),
                ),
            )
            self._bump(db)
        return self.reference(ref_id)

    def reference(self, ref_id: int) -> Reference:
        """The reference with this id; :class:`NotFoundError` if there is none."""
        rows = self.query("SELECT * FROM refs WHERE id = ?", (int(ref_id),))
        if not rows:
            raise NotFoundError(f"reference {ref_id} not found")
        return _reference(rows[0])

    def references(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's, by id."""
        if owner is None:
            rows = self.query("SELECT * FROM refs ORDER BY id")
        else:
            rows = self.query("SELECT * FROM refs WHERE owner = ? ORDER BY id", (owner,))
        return [_reference(r) for r in rows]

    def update_reference(
        self,
        ref_id: int,
        *,
        policy: str | None = None,
        min_seconds: float | None = None,
        title: str | None = None,
        allowlist: list[str] | None = None,
    ) -> Reference:
        """Change a reference's policy, minimum match length, title or allowlist."""
        changes: dict[str, object] = {}
        if policy is not None:
            _check_policy(policy)
            changes["policy"] = policy
        if min_seconds is not None:
            changes["min_seconds"] = float(min_seconds)
        if title is not None:
            changes["title"] = title
        if allowlist is not None:
            changes["allowlist"] = json.dumps(sorted(set(allowlist)))
        self.reference(ref_id)
        if changes:
            assignments = ", ".join(f"{k} = ?" for k in changes)
            with self.transaction() as db:
                db.execute(f"UPDATE refs SET {assignments} WHERE id = ?", (*changes.values(), ref_id))
                self._bump(db, fingerprints=False)
        return self.reference(ref_id)

    def remove_reference(self, ref_id: int) -> Reference:
        """Delete a reference and its fingerprint; return what was deleted."""
        ref = self.reference(ref_id)
        with self.transaction() as db:
            db.execute("DELETE FROM fingerprints WHERE ref_id = ?", (ref_id,))
            db.execute("DELETE FROM refs WHERE id = ?", (ref_id,))
            self._bump(db)
        return ref

    # -- fingerprints -------------------------------------------------------------------------

    def fingerprint(self, ref_id: int) -> Fingerprint:
        """The stored fingerprint of a reference."""
        rows = self.query(
            "SELECT f.*, r.duration FROM fingerprints f JOIN refs r ON r.id = f.ref_id"
            " WHERE ref_id = ?",
            (int(ref_id),),
        )
        if not rows:
            raise NotFoundError(f"reference {ref_id} not found")
        return _fingerprint(rows[0])

    def fingerprints(self) -> Iterator[tuple[int, Fingerprint]]:
        """Every stored fingerprint with its reference id, by id."""
        rows = self.query(
            "SELECT f.*, r.duration FROM fingerprints f JOIN refs r ON r.id = f.ref_id ORDER BY ref_id"
        )
        for row in rows:
            yield int(row[0]), _fingerprint(row)


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise FormatError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")


def _reference(row: tuple) -> Reference:
    ref_id, owner, title, duration, policy, min_seconds, created, source, frames, allowlist = row
    return Reference(
        id=ref_id,
        owner=owner,
        title=title,
        duration=duration,
        policy=policy,
        min_seconds=min_seconds,
        created=created,
        source=source,
        frames=frames,
        allowlist=json.loads(allowlist),
    )


def _fingerprint(row: tuple) -> Fingerprint:
    _, signal, version, bits, fps, times, codes, duration = row
    return Fingerprint(
        signal=signal,
        signal_version=version,
        bits=bits,
        sample_fps=fps,
        duration=duration,
        times=np.frombuffer(times, dtype="<f8").astype(np.float64),
        codes=np.frombuffer(codes, dtype=np.uint8).reshape(-1, bits // 8).copy(),
    )
