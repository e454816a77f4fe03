"""The references repository: references, their fingerprint tracks and their keyframes.

The catalog is the source of truth. Every change to tracks bumps ``generation`` in the same
transaction (any change to a reference bumps ``revision``); the index files record the
generation they were built from, so an index that missed a change (a crash between the two
writes) is detected and rebuilt from the tracks when the store opens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from guard.errors import FormatError, NotFoundError
from guard.models import MATCH_POLICIES, POLICIES, Fingerprint, Keyframe, Reference
from guard.pipeline import track_pipeline
from guard.storage.database import utc_now
from guard.storage.protocols import Connection, Database, Row
from guard.storage.sql import insert_returning_id

_REFERENCE_COLUMNS = (
    "r.id, r.owner, r.title, r.duration, r.policy, r.min_seconds, r.created, r.source, r.frames, r.allowlist,"
    " EXISTS (SELECT 1 FROM keyframes k WHERE k.ref_id = r.id), r.match_policy"
)
_TRACK_COLUMNS = ("t.ref_id, t.signal, t.signal_version, t.bits, t.sample_fps, t.pipeline, t.times, t.codes,"
                  " r.duration")


@dataclass
class PipelineUse:
    """Which references have a track of ``signal`` made by ``pipeline``."""

    signal: str
    pipeline: dict[str, Any]
    reference_ids: list[int]


class ReferenceRepository:
    """References with their tracks (one per signal) and keyframes, in a :class:`Database`."""

    def __init__(self, database: Database):
        self.database = database

    # -- versions -----------------------------------------------------------------------------

    def generation(self) -> int:
        """The number of track changes ever committed."""
        return int(self.database.query("SELECT value FROM meta WHERE key = 'generation'")[0][0])

    def versions(self) -> tuple[int, int]:
        """``(generation, revision)``: track changes, and changes of any reference field."""
        rows = {key: int(value) for key, value in
                self.database.query("SELECT key, value FROM meta WHERE key IN ('generation', 'revision')")}
        return rows["generation"], rows["revision"]

    @staticmethod
    def _bump(db: Connection, tracks: bool = True) -> None:
        keys = "('generation', 'revision')" if tracks else "('revision')"
        db.execute(f"UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN {keys}")

    # -- references ---------------------------------------------------------------------------

    def add(
        self,
        *,
        owner: str,
        title: str,
        policy: str,
        min_seconds: float,
        source: str,
        tracks: Sequence[Fingerprint],
        allowlist: list[str] | None = None,
        keyframes: Sequence[Keyframe] = (),
        match: str = "any",
    ) -> Reference:
        """Store a reference, its tracks and keyframes in one transaction; return it with its id.

        The first track is the reference's primary one: its frame count is the reference's;
        its duration is the longest track's (an audio-only reference has an empty picture
        track). Two tracks of one signal are refused. ``match`` is its match policy.
        """
        check_policy(policy)
        check_match_policy(match)
        if not tracks:
            raise FormatError(f"{source}: a reference needs at least one fingerprint track")
        signals = [t.signal for t in tracks]
        if len(set(signals)) != len(signals):
            raise FormatError(f"{source}: more than one track of one signal ({', '.join(map(str, signals))})")
        primary = tracks[0]
        with self.database.transaction() as db:
            ref_id = insert_returning_id(
                db,
                "INSERT INTO refs (owner, title, duration, policy, min_seconds, created, source, frames, allowlist,"
                " match_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (owner, title, max(t.duration for t in tracks), policy, min_seconds, utc_now(), source, len(primary),
                 json.dumps(allowlist or []), match),
            )
            for track in tracks:
                db.execute(
                    "INSERT INTO tracks (ref_id, signal, signal_version, bits, sample_fps, pipeline, times, codes)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ref_id, track.signal, track.signal_version, track.bits, track.sample_fps,
                     json.dumps(track_pipeline(track), sort_keys=True),
                     np.asarray(track.times, dtype="<f8").tobytes(),
                     np.ascontiguousarray(track.codes, dtype=np.uint8).tobytes()),
                )
            for k in keyframes:
                db.execute("INSERT INTO keyframes (ref_id, media_time, width, height, jpeg) VALUES (?, ?, ?, ?, ?)",
                           (ref_id, float(k.media_time), int(k.width), int(k.height), bytes(k.jpeg)))
            self._bump(db)
        return self.get(ref_id)

    def get(self, ref_id: int) -> Reference:
        """The reference with this id; :class:`NotFoundError` if there is none."""
        rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r WHERE r.id = ?", (int(ref_id),))
        if not rows:
            raise NotFoundError(f"reference {ref_id} not found")
        return _reference(rows[0])

    def all(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's, by id."""
        if owner is None:
            rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r ORDER BY r.id")
        else:
            rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r WHERE r.owner = ? ORDER BY r.id",
                                       (owner,))
        return [_reference(r) for r in rows]

    def update(
        self,
        ref_id: int,
        *,
        policy: str | None = None,
        min_seconds: float | None = None,
        title: str | None = None,
        allowlist: list[str] | None = None,
        match: str | None = None,
    ) -> Reference:
        """Change a reference's policy, minimum match length, title, allowlist or match policy."""
        changes: dict[str, object] = {}
        if match is not None:
            check_match_policy(match)
            changes["match_policy"] = match
        if policy is not None:
            check_policy(policy)
            changes["policy"] = policy
        if min_seconds is not None:
            changes["min_seconds"] = float(min_seconds)
        if title is not None:
            changes["title"] = title
        if allowlist is not None:
            changes["allowlist"] = json.dumps(sorted(set(allowlist)))
        self.get(ref_id)
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            with self.database.transaction() as db:
                db.execute(f"UPDATE refs SET {assignments} WHERE id = ?", (*changes.values(), int(ref_id)))
                self._bump(db, tracks=False)
        return self.get(ref_id)

    def remove(self, ref_id: int) -> Reference:
        """Delete a reference with its tracks and keyframes; return what was deleted."""
        ref = self.get(ref_id)
        with self.database.transaction() as db:
            db.execute("DELETE FROM keyframes WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM tracks WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM refs WHERE id = ?", (int(ref_id),))
            self._bump(db)
        return ref

    # -- tracks -------------------------------------------------------------------------------

    def track(self, ref_id: int, signal: str) -> Fingerprint:
        """A reference's track of ``signal``; :class:`NotFoundError` if it has none."""
        rows = self.database.query(
            f"SELECT {_TRACK_COLUMNS} FROM tracks t JOIN refs r ON r.id = t.ref_id WHERE t.ref_id = ? AND t.signal = ?",
            (int(ref_id), signal),
        )
        if not rows:
            self.get(ref_id)
            raise NotFoundError(f"reference {ref_id} has no {signal} track")
        return _track(rows[0])

    def tracks_of(self, ref_id: int) -> list[Fingerprint]:
        """Every track of a reference, by signal name; :class:`NotFoundError` for an unknown id."""
        rows = self.database.query(
            f"SELECT {_TRACK_COLUMNS} FROM tracks t JOIN refs r ON r.id = t.ref_id WHERE t.ref_id = ? ORDER BY t.signal",
            (int(ref_id),),
        )
        if not rows:
            self.get(ref_id)
        return [_track(row) for row in rows]

    def tracks(self, signal: str | None = None) -> Iterator[tuple[int, Fingerprint]]:
        """Every stored track (or every track of ``signal``) with its reference id, by id."""
        if signal is None:
            rows = self.database.query(
                f"SELECT {_TRACK_COLUMNS} FROM tracks t JOIN refs r ON r.id = t.ref_id ORDER BY t.ref_id, t.signal")
        else:
            rows = self.database.query(
                f"SELECT {_TRACK_COLUMNS} FROM tracks t JOIN refs r ON r.id = t.ref_id WHERE t.signal = ?"
                " ORDER BY t.ref_id", (signal,))
        for row in rows:
            yield int(row[0]), _track(row)

    def pipelines(self) -> list[PipelineUse]:
        """Each distinct (signal, pipeline) of the stored tracks with the references using it."""
        uses: dict[tuple[str, str], list[int]] = {}
        for signal, pipeline, ref_id in self.database.query(
                "SELECT signal, pipeline, ref_id FROM tracks ORDER BY signal, ref_id"):
            uses.setdefault((signal, pipeline), []).append(int(ref_id))
        return [PipelineUse(signal, json.loads(pipeline), ids) for (signal, pipeline), ids in uses.items()]

    def without_track(self, signal: str) -> list[int]:
        """Ids of the references that have no track of ``signal``."""
        rows = self.database.query(
            "SELECT id FROM refs WHERE id NOT IN (SELECT ref_id FROM tracks WHERE signal = ?) ORDER BY id", (signal,))
        return [int(r[0]) for r in rows]

    # -- keyframes ----------------------------------------------------------------------------

    def keyframes(self, ref_id: int) -> list[Keyframe]:
        """A reference's keyframes by time (none for a hash-only import)."""
        rows = self.database.query(
            "SELECT media_time, width, height, jpeg FROM keyframes WHERE ref_id = ? ORDER BY media_time",
            (int(ref_id),))
        return [_keyframe(row) for row in rows]

    def keyframe_near(self, ref_id: int, media_time: float, within: float) -> Keyframe | None:
        """The keyframe of a reference closest to ``media_time`` if one lies ``within`` seconds."""
        rows = self.database.query(
            "SELECT * FROM (SELECT media_time, width, height, jpeg FROM keyframes WHERE ref_id = ? AND media_time <= ?"
            " ORDER BY media_time DESC LIMIT 1) UNION ALL"
            " SELECT * FROM (SELECT media_time, width, height, jpeg FROM keyframes WHERE ref_id = ? AND media_time > ?"
            " ORDER BY media_time LIMIT 1)",
            (int(ref_id), float(media_time), int(ref_id), float(media_time)))
        candidates = [_keyframe(row) for row in rows if abs(row[0] - media_time) <= within]
        return min(candidates, key=lambda k: abs(k.media_time - media_time), default=None)


def check_policy(policy: str) -> None:
    """:class:`FormatError` unless ``policy`` is one of :data:`guard.models.POLICIES`."""
    if policy not in POLICIES:
        raise FormatError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")


def check_match_policy(match: str) -> None:
    """:class:`FormatError` unless ``match`` is one of :data:`guard.models.MATCH_POLICIES`."""
    if match not in MATCH_POLICIES:
        raise FormatError(f"match policy must be one of {', '.join(MATCH_POLICIES)}, not {match!r}")


def _reference(row: Row) -> Reference:
    ref_id, owner, title, duration, policy, min_seconds, created, source, frames, allowlist, keyframes, match = row
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
        has_keyframes=bool(keyframes),
        match=match,
    )


def _track(row: Row) -> Fingerprint:
    _, signal, version, bits, fps, pipeline, times, codes, duration = row
    return Fingerprint(
        signal=signal,
        signal_version=version,
        bits=bits,
        sample_fps=fps,
        duration=duration,
        times=np.frombuffer(times, dtype="<f8").astype(np.float64),
        codes=np.frombuffer(codes, dtype=np.uint8).reshape(-1, bits // 8).copy(),
        pipeline=json.loads(pipeline),
    )


def _keyframe(row: Row) -> Keyframe:
    media_time, width, height, jpeg = row
    return Keyframe(media_time=float(media_time), width=int(width), height=int(height), jpeg=bytes(jpeg))
