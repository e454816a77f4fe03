"""The SQLite database every repository of a store writes through.

One file, opened in WAL mode (readers never wait for the writer), with one connection per
thread: threads read at the same time, and writes of one process take turns on a lock before
SQLite's own (so they queue instead of sleeping in SQLite's busy handler). Writers of other
processes wait up to ``busy_timeout``. The schema is brought up to date on open by
:mod:`guard.storage.migrations`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from guard.errors import StoreError

log = logging.getLogger(__name__)

#: How long a write waits for another process's write to finish, in milliseconds.
BUSY_TIMEOUT_MS = 10_000


def utc_now() -> str:
    """Current time as ISO 8601 UTC, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Database:
    """A SQLite database file shared by the threads of one process, one connection each.

    :meth:`transaction` is the one way to write; :meth:`query` reads. Opening migrates the
    schema (see :func:`guard.storage.migrations.migrate`): :class:`StoreError` when the file
    is not a usable database, :class:`~guard.errors.FormatError` when its schema is newer
    than this guard reads.
    """

    def __init__(self, path: str | Path):
        from guard.storage.migrations import migrate  # migrations write through a Database

        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._registry = threading.Lock()
        self._writer = threading.RLock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection().execute("PRAGMA journal_mode=WAL")
            migrate(self)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path}: not a usable guard catalog ({exc})") from exc
        except BaseException:
            self.close()
            raise

    # -- connections --------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and not self._closed:
            return connection
        with self._registry:
            if self._closed:
                raise StoreError(f"{self.path}: the catalog is closed")
            self._close_connections_of_ended_threads()
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except BaseException:
                connection.close()
                raise
            # closed by close() from whichever thread calls it, or once this thread has ended
            self._connections.append((weakref.ref(threading.current_thread()), connection))
        self._local.connection = connection
        self._local.depth = 0
        return connection

    def _close_connections_of_ended_threads(self) -> None:
        alive = []
        for thread, connection in self._connections:
            owner = thread()
            if owner is not None and owner.is_alive():
                alive.append((thread, connection))
            else:
                connection.close()
        self._connections = alive

    def connections(self) -> int:
        """How many connections are open (one per thread that used the database)."""
        with self._registry:
            return len(self._connections)

    # -- reading and writing ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all.

        Yields this thread's connection inside ``BEGIN IMMEDIATE``. A transaction opened
        inside another one on the same thread becomes a savepoint of it: its failure undoes
        only its own writes, and nothing commits before the outermost block ends.
        """
        db = self._connection()
        with self._writer:
            depth = self._local.depth
            savepoint = f"nested_{depth}"
            db.execute(f"SAVEPOINT {savepoint}" if depth else "BEGIN IMMEDIATE")
            self._local.depth = depth + 1
            try:
                yield db
                db.execute(f"RELEASE {savepoint}" if depth else "COMMIT")
            except BaseException:
                if depth:
                    db.execute(f"ROLLBACK TO {savepoint}")
                    db.execute(f"RELEASE {savepoint}")
                elif db.in_transaction:  # also when COMMIT itself failed
                    db.execute("ROLLBACK")
                raise
            finally:
                self._local.depth = depth

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read query on this thread's connection and return all rows."""
        return self._connection().execute(sql, args).fetchall()

    def close(self) -> None:
        """Close every thread's connection; later use raises :class:`StoreError`.

        Waits for this process's writes in progress to end first.
        """
        with self._writer, self._registry:
            self._closed = True
            for _, connection in self._connections:
                connection.close()
            self._connections = []
