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

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")

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
