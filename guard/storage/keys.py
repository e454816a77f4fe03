"""API keys: the ``api_keys`` table (digests only, never tokens)."""

from __future__ import annotations

from guard.errors import NotFoundError
from guard.storage.protocols import Database, Row
from guard.storage.records import ApiKey
from guard.storage.sql import insert_returning_id, where

_COLUMNS = "id, key_hash, prefix, role, owner, label, created, revoked"


class KeyRepository:
    """Stored API keys, found by id or by the digest of their token."""

    def __init__(self, database: Database):
        self.database = database

    def create(self, *, key_hash: str, prefix: str, role: str, owner: str, label: str, created: str) -> ApiKey:
        """Store a key by its token's digest; return it."""
        with self.database.transaction() as db:
            key_id = insert_returning_id(
                db,
                "INSERT INTO api_keys (key_hash, prefix, role, owner, label, created)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (key_hash, prefix, role, owner, label, created),
            )
        return self.get(key_id)

    def find_by_digest(self, key_hash: str) -> tuple[ApiKey, str] | None:
        """The key stored under ``key_hash`` and the stored digest itself, or None."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,))
        if not rows:
            return None
        return _key(rows[0]), str(rows[0][1])

    def get(self, key_id: int) -> ApiKey:
        """One key; :class:`NotFoundError` if unknown."""
        rows = self.database.query(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (int(key_id),))
        if not rows:
            raise NotFoundError(f"key {key_id} not found")
        return _key(rows[0])

    def revoke(self, key_id: int, *, when: str) -> None:
        """Mark a key revoked at ``when`` unless it already is."""
        with self.database.transaction() as db:
            db.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (when, int(key_id)))

    def list(self, *, owner: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        """Keys by id, optionally one owner's and/or only those not revoked."""
        clause, args = where((("owner", owner),))
        if not include_revoked:
            clause += (" AND" if clause else " WHERE") + " revoked IS NULL"
        rows = self.database.query(f"SELECT {_COLUMNS} FROM api_keys{clause} ORDER BY id", args)
        return [_key(r) for r in rows]


def _key(row: Row) -> ApiKey:
    key_id, _hash, prefix, role, owner, label, created, revoked = tuple(row)
    return ApiKey(id=key_id, prefix=prefix, role=role, owner=owner, label=label, created=created,
                  revoked=revoked)
