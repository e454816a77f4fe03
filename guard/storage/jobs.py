"""Background jobs: the ``jobs`` table."""

from __future__ import annotations

import json
from typing import Any

from guard.errors import NotFoundError
from guard.storage.protocols import Database, Row
from guard.storage.records import Job
from guard.storage.sql import insert_returning_id, where

#: States a job never leaves.
FINAL = ("done", "failed")

_COLUMNS = "id, kind, role, owner, status, progress, params, result, error, created, started, finished"


class JobRepository:
    """Jobs as rows: created ``queued``, claimed ``running`` by one worker, finished once."""

    def __init__(self, database: Database):
        self.database = database

    def create(self, *, kind: str, role: str, owner: str, params: dict[str, Any], created: str) -> int:
        """Record a ``queued`` job; return its id."""
        with self.database.transaction() as db:
            return insert_returning_id(
                db,
                "INSERT INTO jobs (kind, role, owner, status, params, created)"
                " VALUES (?, ?, ?, 'queued', ?, ?) RETURNING id",
                (kind, role, owner, json.dumps(params), created),
            )

    def get(self, job_id: int) -> Job:
        """One job; :class:`NotFoundError` if unknown."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (int(job_id),))
        if not rows:
            raise NotFoundError(f"job {job_id} not found")
        return _job(rows[0])

    def with_status(self, status: str) -> list[Job]:
        """Every job in one state, oldest first."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM jobs WHERE status = ? ORDER BY id", (status,))
        return [_job(r) for r in rows]

    def unfinished(self) -> list[Job]:
        """Every job not yet ``done`` or ``failed``, oldest first."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM jobs WHERE status NOT IN (?, ?) ORDER BY id", FINAL)
        return [_job(r) for r in rows]

    def counts_by_status(self) -> dict[tuple[str, str], int]:
        """Number of jobs per ``(kind, status)``."""
        rows = self.database.query("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")
        return {(kind, status): int(n) for kind, status, n in rows}

    def claim(self, job_id: int, *, started: str) -> bool:
        """Move a ``queued`` job to ``running``; False if it was not queued (another worker has it)."""
        with self.database.transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'running', started = ? WHERE id = ? AND status = 'queued'",
                (started, int(job_id)),
            ).rowcount
        return changed > 0

    def set_progress(self, job_id: int, fraction: float) -> None:
        """Record a running job's progress (ignored once the job is no longer running)."""
        with self.database.transaction() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
                       (float(fraction), int(job_id)))

    def finish(self, job_id: int, *, status: str, progress: float, result: dict[str, Any] | None, error: str | None,
               finished: str) -> None:
        """Record a job's final state (``done`` with its result, or ``failed`` with its error)."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, progress = ?, result = ?, error = ?, finished = ? WHERE id = ?",
                (status, float(progress), None if result is None else json.dumps(result), error, finished,
                 int(job_id)),
            )

    def list(self, *, owner: str | None = None, role: str | None = None, kind: str | None = None,
             status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
        """A page of jobs matching every given filter (newest first) and how many match."""
        clause, args = where((("owner", owner), ("role", role), ("kind", kind), ("status", status)))
        total = int(self.database.query("SELECT COUNT(*) FROM jobs" + clause, args)[0][0])
        rows = self.database.query(
            f"SELECT {_COLUMNS} FROM jobs{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return [_job(r) for r in rows], total


def _job(row: Row) -> Job:
    (job_id, kind, role, owner, status, progress, params, result, error,
     created, started, finished) = tuple(row)
    return Job(
        id=job_id, kind=kind, role=role, owner=owner, status=status, progress=progress,
        params=json.loads(params), result=None if result is None else json.loads(result),
        error=error, created=created, started=started, finished=finished,
    )
