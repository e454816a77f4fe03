"""Small helpers the repositories share to build portable SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from guard.storage.protocols import Connection


def where(conditions: Iterable[tuple[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """``" WHERE a = ? AND b = ?"`` and its arguments for the conditions whose value is not None.

    A condition is ``(column, value)`` (equality) or ``("column op ?", value)`` when the
    column part already holds a placeholder, e.g. ``("decided >= ?", since)``; a condition
    with several placeholders takes a tuple of values.
    """
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in conditions:
        if value is None:
            continue
        clauses.append(column if "?" in column else f"{column} = ?")
        if isinstance(value, tuple):
            args.extend(value)
        else:
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def insert_returning_id(db: Connection, sql: str, args: Sequence[Any]) -> int:
    """Run ``INSERT … RETURNING id`` and return the new id.

    Every row is fetched so the statement is finished before the transaction commits.
    """
    rows = db.execute(sql, tuple(args)).fetchall()
    return int(rows[0][0])
