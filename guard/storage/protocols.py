"""What a repository needs from a database: a write transaction and a read query.

Every repository in :mod:`guard.storage` takes a :class:`Database` and nothing else, so a
backend (SQLite today, PostgreSQL next) is one new module implementing these two methods.

SQL conventions the repositories follow, which a backend honours or translates:

- placeholders are ``?`` (DB-API ``qmark``); a backend whose driver wants ``%s`` (psycopg)
  rewrites them before executing, since no statement contains a literal ``?``;
- new ids come back with ``INSERT … RETURNING id`` (SQLite ≥ 3.35, PostgreSQL);
- upserts are ``INSERT … ON CONFLICT (…) DO UPDATE`` (SQLite ≥ 3.24, PostgreSQL);
- booleans are stored as integers 0/1, JSON as text, images as binary (``bytes`` or a
  buffer ``bytes()`` accepts);
- rows are sequences read by position, in the order of the ``SELECT`` list.

Where a repository still needs backend-specific SQL, it keeps it in one marked place.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = Sequence[Any]


class Cursor(Protocol):
    """The result of one statement inside a transaction."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an ``UPDATE`` or ``DELETE``."""

    def fetchone(self) -> Row | None:
        """The next row, or None."""

    def fetchall(self) -> list[Row]:
        """Every remaining row."""


class Connection(Protocol):
    """A connection inside a transaction: runs one statement at a time."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Cursor:
        """Run ``sql`` with ``args`` bound to its ``?`` placeholders."""


class Database(Protocol):
    """The two methods every repository uses (``guard.store.Catalog`` and
    ``guard.storage.database`` provide them)."""

    def transaction(self) -> AbstractContextManager[Connection]:
        """One atomic write (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on an exception)."""

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> Sequence[Row]:
        """Run a read query outside any transaction and return all its rows."""
