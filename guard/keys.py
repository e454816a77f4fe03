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
import threading
import time

from guard.errors import AuthError, InputError
from guard.storage.keys import KeyRepository
from guard.storage.protocols import Database
from guard.storage.records import ApiKey
from guard.store import utc_now

#: Roles a key can have. ``admin`` sees everything; ``rights_holder`` its own references,
#: incidents and webhooks; ``platform`` its own scans, streams and their results.
ROLES = ("admin", "rights_holder", "platform")

TOKEN_PREFIX = "gk_"
_PREFIX_CHARS = 8
#: Seconds an authenticated key is trusted without reading the catalog again. A revocation
#: made through this process takes effect at once; one made by another process (``guard keys
#: revoke``, another ``guard serve``) within this time.
KEY_CACHE_SECONDS = 2.0
#: Most keys remembered at once (past this the memory starts over; only valid keys are kept).
KEY_CACHE_SIZE = 10_000


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

    def __init__(self, database: Database, cache_seconds: float = KEY_CACHE_SECONDS):
        self.repository = KeyRepository(database)
        self.cache_seconds = cache_seconds
        self._recent: dict[str, tuple[float, ApiKey]] = {}  # token digest → (time read, key)
        self._lock = threading.Lock()

    def create(self, role: str, owner: str, label: str = "") -> tuple[ApiKey, str]:
        """Make a key; return it and its token (the only time the token is available)."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        owner = _check_owner(owner)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = token[: len(TOKEN_PREFIX) + _PREFIX_CHARS]
        key = self.repository.create(key_hash=digest(token), prefix=prefix, role=role, owner=owner,
                                     label=label or "", created=utc_now())
        return key, token

    def authenticate(self, token: str) -> ApiKey:
        """The active key this token belongs to; :class:`AuthError` otherwise."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            raise AuthError("invalid API key")
        wanted = digest(token)
        found = self.repository.find_by_digest(wanted)
        # The lookup is by digest, so its timing tells nothing about the token; the compare
        # below keeps the final check constant-time anyway.
        if found is None or not hmac.compare_digest(found[1], wanted):
            raise AuthError("invalid API key")
        key = found[0]
        if key.revoked:
            raise AuthError("API key revoked")
        with self._lock:
            if len(self._recent) >= KEY_CACHE_SIZE:
                self._recent.clear()
            self._recent[wanted] = (time.monotonic(), key)
        return key

    def recently_authenticated(self, token: str) -> ApiKey | None:
        """The key of ``token`` if :meth:`authenticate` accepted it less than
        ``cache_seconds`` ago, without reading the catalog (for the API's event loop); None
        means: call :meth:`authenticate`."""
        if not token or len(token) > 256:
            return None
        seen = self._recent.get(digest(token))
        if seen is None or time.monotonic() - seen[0] >= self.cache_seconds:
            return None
        return seen[1]

    def get(self, key_id: int) -> ApiKey:
        """One key by id."""
        return self.repository.get(key_id)

    def list(self, owner: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        """Keys by id, optionally one owner's and/or only active ones."""
        return self.repository.list(owner=owner, include_revoked=include_revoked)

    def revoke(self, key_id: int) -> ApiKey:
        """Revoke a key at once (idempotent); return it."""
        key = self.get(key_id)
        if key.revoked is None:
            self.repository.revoke(key.id, when=utc_now())
        with self._lock:
            self._recent = {d: seen for d, seen in self._recent.items() if seen[1].id != key.id}
        return self.get(key_id)
