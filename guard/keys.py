"""API keys: who is calling, in which role, for which tenant.

A key is a high-entropy random token (``gk_`` + 43 URL-safe characters, 256 bits) shown once
when it is created. The catalog keeps only its SHA-256 digest and a short prefix for humans
to recognise it. A fast hash is enough here: the token is random, not a password, so there
is nothing to brute-force from the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass

from guard.errors import AuthError, InputError, NotFoundError
from guard.store import Catalog, utc_now

#: Roles a key can have. ``admin`` sees everything; ``rights_holder`` its own references,
#: incidents and webhooks; ``platform`` its own scans, streams and their results.
ROLES = ("admin", "rights_holder", "platform")

TOKEN_PREFIX = "gk_"
_PREFIX_CHARS = 8


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret: ``owner`` is the tenant it acts for."""

    id: int
    prefix: str
    role: str
    owner: str
    label: str
    created: str
    revoked: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether this key sees every tenant."""
        return self.role == "admin"

    def to_dict(self) -> dict:
        """JSON-ready form (never contains the token)."""
        return asdict(self)


def digest(token: str) -> str:
    """The hex SHA-256 the catalog stores for a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _check_owner(owner: str) -> str:
    owner = (owner or "").strip()
    if not owner or len(owner) > 128 or any(ord(c) < 32 for c in owner):
        raise InputError("owner must be 1-128 printable characters")
    return owner


class KeyStore:
    """Create, authenticate, list and revoke API keys in the catalog."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def create(self, role: str, owner: str, label: str = "") -> tuple[ApiKey, str]:
        """Make a key; return it and its token (the only time the token is available)."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        owner = _check_owner(owner)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = token[: len(TOKEN_PREFIX) + _PREFIX_CHARS]
        with self.catalog.transaction() as db:
            cursor = db.execute(
                "INSERT INTO api_keys (key_hash, prefix, role, owner, label, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (digest(token), prefix, role, owner, label or "", utc_now()),
            )
            key_id = int(cursor.lastrowid)
        return self.get(key_id), token

    def authenticate(self, token: str) -> ApiKey:
        """The active key this token belongs to; :class:`AuthError` otherwise."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            raise AuthError("invalid API key")
        wanted = digest(token)
        rows = self.catalog.query("SELECT * FROM api_keys WHERE key_hash = ?", (wanted,))
        # The lookup is by digest, so its timing tells nothing about the token; the compare
        # below keeps the final check constant-time anyway.
        if not rows or not hmac.compare_digest(rows[0][1], wanted):
            raise AuthError("invalid API key")
        key = _key(rows[0])
        if key.revoked:
            raise AuthError("API key revoked")
        return key

    def get(self, key_id: int) -> ApiKey:
        """One key by id."""
        rows = self.catalog.query("SELECT * FROM api_keys WHERE id = ?", (int(key_id),))
        if not rows:
            raise NotFoundError(f"key {key_id} not found")
        return _key(rows[0])

    def list(self, owner: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        """Keys by id, optionally one owner's and/or only active ones."""
        sql, args = "SELECT * FROM api_keys WHERE 1=1", []
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        if not include_revoked:
            sql += " AND revoked IS NULL"
        return [_key(r) for r in self.catalog.query(sql + " ORDER BY id", tuple(args))]

    def revoke(self, key_id: int) -> ApiKey:
        """Revoke a key at once (idempotent); return it."""
        key = self.get(key_id)
        if key.revoked is None:
            with self.catalog.transaction() as db:
                db.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (utc_now(), key.id))
        return self.get(key_id)


def _key(row) -> ApiKey:
    key_id, _hash, prefix, role, owner, label, created, revoked = tuple(row)
    return ApiKey(id=key_id, prefix=prefix, role=role, owner=owner, label=label, created=created,
                  revoked=revoked)
