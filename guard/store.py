"""The names the first release gave its storage, kept so existing imports work.

New code uses :mod:`guard.storage`: :class:`~guard.storage.Database` for the SQLite file
and a repository per aggregate (:class:`~guard.storage.ReferenceRepository` for
references, tracks and keyframes). :class:`Catalog` is that database with the first
release's reference methods, each handed to the references repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from guard.models import Fingerprint, Reference
from guard.storage.database import Database, utc_now
from guard.storage.migrations import SCHEMA_VERSION
from guard.storage.references import ReferenceRepository

__all__ = ["Catalog", "SCHEMA_VERSION", "utc_now"]


class Catalog(Database):
    """A store's SQLite database, with the first release's reference methods on it."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._references = ReferenceRepository(self)

    def generation(self) -> int:
        """The number of track changes ever committed."""
        return self._references.generation()

    def versions(self) -> tuple[int, int]:
        """``(generation, revision)``: track changes, and changes of any reference field."""
        return self._references.versions()

    def add_reference(self, *, owner: str, title: str, policy: str, min_seconds: float, source: str,
                      fingerprint: Fingerprint, allowlist: list[str] | None = None) -> Reference:
        """Store a reference with one track (see :meth:`ReferenceRepository.add`)."""
        return self._references.add(owner=owner, title=title, policy=policy, min_seconds=min_seconds,
                                    source=source, tracks=[fingerprint], allowlist=allowlist)

    def reference(self, ref_id: int) -> Reference:
        """The reference with this id; :class:`~guard.errors.NotFoundError` if there is none."""
        return self._references.get(ref_id)

    def references(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's, by id."""
        return self._references.all(owner)

    def update_reference(self, ref_id: int, **changes: Any) -> Reference:
        """Change a reference's policy, minimum match length, title or allowlist."""
        return self._references.update(ref_id, **changes)

    def remove_reference(self, ref_id: int) -> Reference:
        """Delete a reference with its tracks and keyframes; return what was deleted."""
        return self._references.remove(ref_id)

    def fingerprint(self, ref_id: int, signal: str | None = None) -> Fingerprint:
        """A reference's track of ``signal``, by default its first by signal name."""
        if signal is not None:
            return self._references.track(ref_id, signal)
        return self._references.tracks_of(ref_id)[0]

    def fingerprints(self) -> Iterator[tuple[int, Fingerprint]]:
        """Every stored track with its reference id, by id."""
        return self._references.tracks()
