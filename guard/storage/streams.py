"""Monitored streams: the ``streams`` table (live state lives in the monitor, not here)."""

from __future__ import annotations

import builtins
import json
from typing import Any

from guard.errors import NotFoundError
from guard.storage.protocols import Database, Row
from guard.storage.records import StreamRecord
from guard.storage.sql import where

_COLUMNS = "id, url, account, platform, status, started, updated, ended, error, frames, incidents"
#: ``streams.request`` of a stream a monitor process must stop (a start request is a JSON object).
STOP_REQUEST = "stop"


class StreamRepository:
    """The catalog's record of every stream ever monitored."""

    def __init__(self, database: Database):
        self.database = database

    def start(self, stream: StreamRecord) -> None:
        """Record a stream that starts now; a finished stream with the same id starts afresh."""
        with self.database.transaction() as db:
            db.execute(
                "INSERT INTO streams (id, url, account, platform, status, started, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET url = excluded.url, account = excluded.account,"
                " platform = excluded.platform, status = excluded.status, started = excluded.started,"
                " updated = excluded.updated, ended = NULL, error = NULL, frames = 0, incidents = 0, request = NULL",
                (stream.id, stream.url, stream.account, stream.platform, stream.status, stream.started,
                 stream.updated),
            )

    def update(self, stream: StreamRecord) -> None:
        """Write a known stream's state, counters and end (its id, URL, account and start stay)."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE streams SET status = ?, updated = ?, ended = ?, error = ?, frames = ?, incidents = ?"
                " WHERE id = ?",
                (stream.status, stream.updated, stream.ended, stream.error, int(stream.frames),
                 int(stream.incidents), stream.id),
            )

    def get(self, stream_id: str) -> StreamRecord:
        """One stream; :class:`NotFoundError` if never seen."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM streams WHERE id = ?", (stream_id,))
        if not rows:
            raise NotFoundError(f"stream {stream_id} not found")
        return _stream(rows[0])

    def list(self, *, platform: str | None = None, limit: int = 100) -> list[StreamRecord]:
        """Streams, most recently started first, optionally one platform's."""
        clause, args = where((("platform", platform),))
        rows = self.database.query(f"SELECT {_COLUMNS} FROM streams{clause} ORDER BY started DESC LIMIT ?",
                                   (*args, max(0, int(limit))))
        return [_stream(row) for row in rows]


    # -- requests to monitor processes (guard serve --roles) ------------------------------------

    def request_start(self, stream: StreamRecord, request: dict[str, Any], final_states: tuple[str, ...]) -> bool:
        """Record a stream for a monitor process to claim (its ``request`` holds what to open);
        False, and nothing written, while a stream with this id is not in one of ``final_states``."""
        with self.database.transaction() as db:
            row = db.execute("SELECT status FROM streams WHERE id = ?", (stream.id,)).fetchone()
            if row is not None and row[0] not in final_states:
                return False
            db.execute(
                "INSERT INTO streams (id, url, account, platform, status, started, updated, request)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET url = excluded.url, account = excluded.account,"
                " platform = excluded.platform, status = excluded.status, started = excluded.started,"
                " updated = excluded.updated, ended = NULL, error = NULL, frames = 0, incidents = 0,"
                " request = excluded.request",
                (stream.id, stream.url, stream.account, stream.platform, stream.status, stream.started,
                 stream.updated, json.dumps(request)),
            )
        return True

    def start_requests(self, limit: int) -> builtins.list[str]:  # `list` is the method above
        """Ids of streams waiting for a monitor process, oldest first."""
        rows = self.database.query(
            "SELECT id FROM streams WHERE request IS NOT NULL AND request <> ? ORDER BY started LIMIT ?",
            (STOP_REQUEST, max(0, int(limit))))
        return [row[0] for row in rows]

    def report_load(self, token: str, active: int, now: float) -> None:
        """Record that monitor process ``token`` runs ``active`` streams (at ``now``); reports
        silent for a day (processes that crashed) go."""
        with self.database.transaction() as db:
            db.execute("DELETE FROM monitor_processes WHERE seen < ?", (now - 86400.0,))
            db.execute("INSERT INTO monitor_processes (token, active, seen) VALUES (?, ?, ?)"
                       " ON CONFLICT(token) DO UPDATE SET active = excluded.active, seen = excluded.seen",
                       (token, int(active), now))

    def loads(self, since: float) -> dict[str, int]:
        """Streams run by each monitor process heard from since ``since``, by token."""
        rows = self.database.query("SELECT token, active FROM monitor_processes WHERE seen >= ?", (since,))
        return {row[0]: int(row[1]) for row in rows}

    def forget_process(self, token: str) -> None:
        """A monitor process ended: it takes no more streams."""
        with self.database.transaction() as db:
            db.execute("DELETE FROM monitor_processes WHERE token = ?", (token,))

    def claim_start(self, stream_id: str) -> tuple[StreamRecord, dict[str, Any]] | None:
        """Take a stream's start request (one process gets it); None if another took it first."""
        with self.database.transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS}, request FROM streams WHERE id = ? AND request IS NOT NULL"
                             " AND request <> ?", (stream_id, STOP_REQUEST)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE streams SET request = NULL WHERE id = ?", (stream_id,))
        return _stream(tuple(row)[:-1]), json.loads(row[-1])

    def request_stop(self, stream_id: str, now: float, final_states: tuple[str, ...]) -> str:
        """Stop a stream this process does not run: one nobody claimed yet ends ``stopped`` here
        (``"stopped"``); a running one gets a stop request (``"requested"``); else ``"final"``."""
        with self.database.transaction() as db:
            cancelled = db.execute(
                "UPDATE streams SET status = 'stopped', updated = ?, ended = ?, request = NULL"
                " WHERE id = ? AND request IS NOT NULL AND request <> ?",
                (now, now, stream_id, STOP_REQUEST)).rowcount
            if cancelled:
                return "stopped"
            marks = ", ".join("?" for _ in final_states)
            requested = db.execute(f"UPDATE streams SET request = ? WHERE id = ? AND status NOT IN ({marks})",
                                   (STOP_REQUEST, stream_id, *final_states)).rowcount
        return "requested" if requested else "final"

    def stop_requests(self) -> builtins.list[str]:
        """Ids of streams asked to stop."""
        return [row[0] for row in self.database.query("SELECT id FROM streams WHERE request = ?", (STOP_REQUEST,))]

    def clear_stop(self, stream_id: str) -> None:
        """Forget a stream's stop request (its monitor has been told)."""
        with self.database.transaction() as db:
            db.execute("UPDATE streams SET request = NULL WHERE id = ? AND request = ?", (stream_id, STOP_REQUEST))


def _stream(row: Row) -> StreamRecord:
    return StreamRecord(*tuple(row))
