"""The references repository: references, their fingerprint tracks and their keyframes.

The catalog is the source of truth. Every change to tracks bumps ``generation`` in the same
transaction (any change to a reference bumps ``revision``); the index files record the
generation they were built from, so an index that missed a change (a crash between the two
writes) is detected and rebuilt from the tracks when the store opens.

A live reference (issue 13) is fingerprinted as it airs: its tracks start empty and grow by
appended chunks (:meth:`ReferenceRepository.append`), which bump neither version. Each chunk
has a ``seq`` never reused; index readers in other processes follow the appends by position
(:meth:`~ReferenceRepository.chunk_position`, :meth:`~ReferenceRepository.chunks_after`)
instead of reloading. Every track read returns the stored track followed by its chunks.
Retention (:meth:`~ReferenceRepository.trim`) rewrites the tracks, so it bumps ``generation``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from guard.errors import FormatError, NotFoundError
from guard.models import MATCH_POLICIES, POLICIES, Fingerprint, Keyframe, Reference
from guard.pipeline import track_pipeline
from guard.storage.database import utc_now
from guard.storage.protocols import Connection, Database, Row
from guard.storage.sql import insert_returning_id, where

_REFERENCE_COLUMNS = (
    "r.id, r.owner, r.title, r.duration, r.policy, r.min_seconds, r.created, r.source, r.frames, r.allowlist,"
    " EXISTS (SELECT 1 FROM keyframes k WHERE k.ref_id = r.id), r.match_policy, r.live_status, r.aired_start,"
    " r.retain_seconds"
)
#: Tracks and their chunks in one statement (one snapshot: a trim between two reads would
#: otherwise lose or repeat codes), by reference, signal and seq; a stored track's row has
#: seq 0 (chunks count from 1) so it comes before its chunks. Filled with two WHERE clauses.
_MERGED_TRACKS = (
    "SELECT t.ref_id, t.signal, 0, t.signal_version, t.bits, t.sample_fps, t.pipeline, t.times, t.codes, r.duration"
    " FROM tracks t JOIN refs r ON r.id = t.ref_id WHERE {tracks}"
    " UNION ALL SELECT c.ref_id, c.signal, c.seq, NULL, NULL, NULL, NULL, c.times, c.codes, NULL"
    " FROM track_chunks c WHERE {chunks}"
    " ORDER BY 1, 2, 3"
)
#: Runs a read statement with its arguments and returns every row: a read query, or a
#: statement inside a transaction (see :func:`_in`).
Read = Callable[[str, tuple[Any, ...]], Sequence[Row]]
#: A live reference's states: fingerprinted as it airs, then over, or stopped by an error.
LIVE_STATUSES = ("live", "ended", "failed")


@dataclass(frozen=True, eq=False)  # eq would compare arrays element-wise
class Chunk:
    """Codes appended to one track of a live reference, ``seq`` its place in the append order."""

    seq: int
    ref_id: int
    signal: str
    times: np.ndarray  # (n,) float64 media seconds
    codes: np.ndarray  # (n, bits // 8) uint8


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
        fields = _reference_fields(owner=owner, title=title, policy=policy, min_seconds=min_seconds, source=source,
                                   tracks=tracks, allowlist=allowlist, match=match)
        fields.update(duration=max(t.duration for t in tracks), frames=len(tracks[0]))
        return self._insert(fields, tracks, keyframes)

    def add_live(
        self,
        *,
        owner: str,
        title: str,
        policy: str,
        min_seconds: float,
        source: str,
        tracks: Sequence[Fingerprint],
        match: str = "any",
        retain_seconds: float | None = None,
        process: str = "",
    ) -> Reference:
        """Store a live reference: its ``tracks`` are empty ones that say what each signal's codes
        will be (signal, version, bits, sampling rate, pipeline); :meth:`append` grows them.

        It starts ``live``, 0 s long with 0 frames; ``retain_seconds`` is how much of it
        retention keeps (None: all), ``process`` which process ingests it. Bumps both versions
        like :meth:`add`. :class:`FormatError` for a track that is not empty.
        """
        if retain_seconds is not None and not retain_seconds > 0:
            raise FormatError(f"{source}: retain_seconds must be positive, not {retain_seconds!r}")
        filled = [t.signal for t in tracks if len(t) or len(t.codes)]
        if filled:
            raise FormatError(f"{source}: a live reference starts with empty tracks ({', '.join(filled)} has codes)")
        fields = _reference_fields(owner=owner, title=title, policy=policy, min_seconds=min_seconds, source=source,
                                   tracks=tracks, allowlist=None, match=match)
        fields.update(duration=0.0, frames=0, live_status="live",
                      retain_seconds=None if retain_seconds is None else float(retain_seconds),
                      live_process=process)
        return self._insert(fields, tracks, ())

    def _insert(self, fields: dict[str, Any], tracks: Sequence[Fingerprint], keyframes: Sequence[Keyframe]) -> Reference:
        """Insert a reference row of ``fields`` (column: value), its tracks and keyframes; bump both versions."""
        fields = {**fields, "created": utc_now()}
        with self.database.transaction() as db:
            ref_id = insert_returning_id(
                db, f"INSERT INTO refs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))}) RETURNING id",
                tuple(fields.values()))
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
        return _reference(rows[0], self.gaps(ref_id))

    def all(self, owner: str | None = None) -> list[Reference]:
        """All references, or one owner's, by id."""
        if owner is None:
            rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r ORDER BY r.id")
            gap_rows = self.database.query('SELECT ref_id, start, "end" FROM live_gaps ORDER BY ref_id, start')
        else:
            rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r WHERE r.owner = ? ORDER BY r.id",
                                       (owner,))
            gap_rows = self.database.query(
                'SELECT g.ref_id, g.start, g."end" FROM live_gaps g JOIN refs r ON r.id = g.ref_id WHERE r.owner = ?'
                " ORDER BY g.ref_id, g.start", (owner,))
        gaps: dict[int, list[tuple[float, float]]] = {}
        for ref_id, start, end in gap_rows:
            gaps.setdefault(int(ref_id), []).append((float(start), float(end)))
        return [_reference(r, gaps.get(int(r[0]), [])) for r in rows]

    def live(self) -> list[Reference]:
        """The references being fingerprinted as they air (status ``live``), by id."""
        rows = self.database.query(f"SELECT {_REFERENCE_COLUMNS} FROM refs r WHERE r.live_status = 'live' ORDER BY r.id")
        return [_reference(row, self.gaps(row[0])) for row in rows]

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
        """Delete a reference with its tracks, chunks, feed gaps and keyframes; return what was deleted."""
        ref = self.get(ref_id)
        with self.database.transaction() as db:
            db.execute("DELETE FROM keyframes WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM track_chunks WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM live_gaps WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM tracks WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM refs WHERE id = ?", (int(ref_id),))
            self._bump(db)
        return ref

    # -- tracks -------------------------------------------------------------------------------

    def track(self, ref_id: int, signal: str) -> Fingerprint:
        """A reference's track of ``signal`` (with its chunks); :class:`NotFoundError` if it has none."""
        found = [track for _, track in self._merged_tracks(self.database.query, ref_id=ref_id, signal=signal)]
        if not found:
            self.get(ref_id)
            raise NotFoundError(f"reference {ref_id} has no {signal} track")
        return found[0]

    def tracks_of(self, ref_id: int) -> list[Fingerprint]:
        """Every track of a reference (with its chunks), by signal name; :class:`NotFoundError`
        for an unknown id."""
        found = [track for _, track in self._merged_tracks(self.database.query, ref_id=ref_id)]
        if not found:
            self.get(ref_id)
        return found

    def tracks(self, signal: str | None = None, *, through: int | None = None) -> Iterator[tuple[int, Fingerprint]]:
        """Every stored track (or every track of ``signal``) with its reference id, by id.

        Each track is followed by its chunks, only those up to seq ``through`` when given: read
        :meth:`chunk_position` first, then ``tracks(through=position)``, then follow with
        :meth:`chunks_after` ``(position)`` to see every chunk once.
        """
        yield from self._merged_tracks(self.database.query, signal=signal, through=through)

    @staticmethod
    def _merged_tracks(run: Read, *, ref_id: int | None = None, signal: str | None = None,
                       through: int | None = None) -> Iterator[tuple[int, Fingerprint]]:
        """Tracks with their chunks merged, read in one statement by ``run(sql, args)`` (a read
        query, or a transaction's execute and fetchall)."""
        track_clause, track_args = _conditions((("t.ref_id", ref_id), ("t.signal", signal)))
        chunk_clause, chunk_args = _conditions((("c.ref_id", ref_id), ("c.signal", signal), ("c.seq <= ?", through)))
        rows = run(_MERGED_TRACKS.format(tracks=track_clause, chunks=chunk_clause), (*track_args, *chunk_args))
        return _merge_chunks(rows)

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

    # -- live references ----------------------------------------------------------------------

    def append(self, ref_id: int, pieces: Sequence[tuple[str, np.ndarray, np.ndarray]], *, duration: float,
               frames: int = 0, aired_start: float | None = None) -> int:
        """Append codes to a live reference's tracks in one transaction; return the highest chunk
        seq assigned (:meth:`chunk_position` when every piece was empty).

        Each piece is ``(signal, times, codes)`` (float64 media seconds, uint8 ``(n, bits // 8)``)
        and becomes one chunk; empty pieces are skipped. The reference's duration becomes
        ``duration`` if longer, its frames grow by ``frames``, and its ``aired_start`` takes
        ``aired_start`` if earlier (or unknown). Neither version is bumped: readers follow by
        position. :class:`NotFoundError` for an unknown reference; :class:`FormatError` if it is
        not live, has no track of a piece's signal, or a piece's codes have the wrong width.
        """
        with self.database.transaction() as db:
            row = db.execute("SELECT live_status FROM refs WHERE id = ?", (int(ref_id),)).fetchone()
            if row is None:
                raise NotFoundError(f"reference {ref_id} not found")
            if row[0] != "live":
                raise FormatError(f"reference {ref_id} is not live ({row[0] or 'an ordinary reference'}): "
                                  "nothing can be appended to it")
            widths = {signal: int(bits) // 8 for signal, bits in
                      db.execute("SELECT signal, bits FROM tracks WHERE ref_id = ?", (int(ref_id),)).fetchall()}
            checked = [_checked_piece(ref_id, widths, piece) for piece in pieces]
            position = None
            for signal, times, codes in checked:
                if len(times):
                    position = insert_returning_id(
                        db, "INSERT INTO track_chunks (ref_id, signal, times, codes) VALUES (?, ?, ?, ?) RETURNING seq",
                        (int(ref_id), signal, times.astype("<f8").tobytes(), codes.tobytes()))
            changes = "duration = CASE WHEN duration < ? THEN ? ELSE duration END, frames = frames + ?"
            args: tuple[Any, ...] = (float(duration), float(duration), int(frames))
            if aired_start is not None:
                changes += ", aired_start = CASE WHEN aired_start IS NULL OR aired_start > ? THEN ? ELSE aired_start END"
                args += (float(aired_start), float(aired_start))
            db.execute(f"UPDATE refs SET {changes} WHERE id = ?", (*args, int(ref_id)))
            return _chunk_position(_in(db)) if position is None else position

    def chunk_position(self) -> int:
        """The highest chunk seq ever assigned (0 before the first append): where a reader that
        has read every chunk so far stands."""
        return _chunk_position(self.database.query)

    def chunks_after(self, seq: int, through: int | None = None) -> list[Chunk]:
        """The chunks appended after ``seq`` (up to ``through`` when given), in seq order."""
        clause, args = _conditions((("c.seq > ?", int(seq)),
                                    ("c.seq <= ?", None if through is None else int(through))))
        rows = self.database.query(
            "SELECT c.seq, c.ref_id, c.signal, c.times, c.codes, t.bits FROM track_chunks c"
            f" JOIN tracks t ON t.ref_id = c.ref_id AND t.signal = c.signal WHERE {clause} ORDER BY c.seq", args)
        return [Chunk(seq=int(seq_), ref_id=int(ref), signal=signal, times=_times(times), codes=_codes(codes, bits))
                for seq_, ref, signal, times, codes, bits in rows]

    def trim(self, ref_id: int, before: float) -> int:
        """Retention: drop every code of the reference older than media time ``before`` (stored
        track and chunks alike, every signal), its keyframes before it and the feed gaps that
        end before it; return how many codes were dropped.

        The stored tracks are rewritten as what remains, the chunks merged into them, and
        ``generation`` is bumped (index readers reload), all in one transaction. Nothing changes
        when no code is that old. :class:`NotFoundError` for an unknown reference.
        """
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM refs WHERE id = ?", (int(ref_id),)).fetchone() is None:
                raise NotFoundError(f"reference {ref_id} not found")
            kept, dropped = [], 0
            for _, track in self._merged_tracks(_in(db), ref_id=ref_id):
                keep = track.times >= before
                dropped += int(len(keep) - np.count_nonzero(keep))
                kept.append((track.signal, track.times[keep], track.codes[keep]))
            if not dropped:
                return 0
            for signal, times, codes in kept:
                db.execute("UPDATE tracks SET times = ?, codes = ? WHERE ref_id = ? AND signal = ?",
                           (times.astype("<f8").tobytes(), np.ascontiguousarray(codes).tobytes(), int(ref_id), signal))
            db.execute("DELETE FROM track_chunks WHERE ref_id = ?", (int(ref_id),))
            db.execute("DELETE FROM keyframes WHERE ref_id = ? AND media_time < ?", (int(ref_id), float(before)))
            db.execute('DELETE FROM live_gaps WHERE ref_id = ? AND "end" < ?', (int(ref_id), float(before)))
            self._bump(db)
        return dropped

    def add_gap(self, ref_id: int, start: float, end: float) -> None:
        """Record that a live reference's feed dropped from media time ``start`` to ``end``
        (bumps ``revision``: the gaps are part of the reference)."""
        if not start <= end:
            raise FormatError(f"a feed gap ends after it starts, not at {end!r} before {start!r}")
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM refs WHERE id = ?", (int(ref_id),)).fetchone() is None:
                raise NotFoundError(f"reference {ref_id} not found")
            db.execute('INSERT INTO live_gaps (ref_id, start, "end") VALUES (?, ?, ?)',
                       (int(ref_id), float(start), float(end)))
            self._bump(db, tracks=False)

    def gaps(self, ref_id: int) -> list[tuple[float, float]]:
        """A reference's feed gaps as media-time ``(start, end)`` spans, by start."""
        rows = self.database.query('SELECT start, "end" FROM live_gaps WHERE ref_id = ? ORDER BY start, "end"',
                                   (int(ref_id),))
        return [(float(start), float(end)) for start, end in rows]

    def end_live(self, ref_id: int, status: str = "ended", error: str | None = None) -> Reference:
        """Mark a live reference ``ended`` or ``failed`` (with ``error``, why); bumps ``revision``
        only. It stays an ordinary reference (its chunks still merged on read); :meth:`append`
        refuses it from then on. :class:`FormatError` for another status or a reference that
        was never live."""
        if status not in LIVE_STATUSES[1:]:
            raise FormatError(f"a live reference ends as one of {', '.join(LIVE_STATUSES[1:])}, not {status!r}")
        with self.database.transaction() as db:
            row = db.execute("SELECT live_status FROM refs WHERE id = ?", (int(ref_id),)).fetchone()
            if row is None:
                raise NotFoundError(f"reference {ref_id} not found")
            if row[0] is None:
                raise FormatError(f"reference {ref_id} is not a live reference")
            db.execute("UPDATE refs SET live_status = ?, live_error = ? WHERE id = ?", (status, error, int(ref_id)))
            self._bump(db, tracks=False)
        return self.get(ref_id)

    def live_process(self, ref_id: int) -> str:
        """Which process ingests a live reference (e.g. ``host:pid``; empty when none is recorded)."""
        rows = self.database.query("SELECT live_process FROM refs WHERE id = ?", (int(ref_id),))
        if not rows:
            raise NotFoundError(f"reference {ref_id} not found")
        return rows[0][0] or ""

    def set_live_process(self, ref_id: int, process: str) -> None:
        """Record which process ingests a live reference (no version is bumped)."""
        with self.database.transaction() as db:
            if db.execute("UPDATE refs SET live_process = ? WHERE id = ?", (process, int(ref_id))).rowcount == 0:
                raise NotFoundError(f"reference {ref_id} not found")

    # -- keyframes ----------------------------------------------------------------------------

    def add_keyframes(self, ref_id: int, keyframes: Sequence[Keyframe]) -> None:
        """Store more keyframes of a reference (a live one's, as it airs); a keyframe at a media
        time already stored is skipped. No version is bumped: the index does not use them.
        :class:`NotFoundError` for an unknown reference."""
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM refs WHERE id = ?", (int(ref_id),)).fetchone() is None:
                raise NotFoundError(f"reference {ref_id} not found")
            for k in keyframes:
                db.execute("INSERT INTO keyframes (ref_id, media_time, width, height, jpeg) VALUES (?, ?, ?, ?, ?)"
                           " ON CONFLICT (ref_id, media_time) DO NOTHING",
                           (int(ref_id), float(k.media_time), int(k.width), int(k.height), bytes(k.jpeg)))

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


def _reference_fields(*, owner: str, title: str, policy: str, min_seconds: float, source: str,
                      tracks: Sequence[Fingerprint], allowlist: list[str] | None, match: str) -> dict[str, Any]:
    """The ``refs`` columns every new reference has, checked (its tracks too)."""
    check_policy(policy)
    check_match_policy(match)
    if not tracks:
        raise FormatError(f"{source}: a reference needs at least one fingerprint track")
    signals = [t.signal for t in tracks]
    if len(set(signals)) != len(signals):
        raise FormatError(f"{source}: more than one track of one signal ({', '.join(map(str, signals))})")
    return {"owner": owner, "title": title, "policy": policy, "min_seconds": min_seconds, "source": source,
            "allowlist": json.dumps(allowlist or []), "match_policy": match}


def _conditions(conditions: Iterable[tuple[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """Like :func:`guard.storage.sql.where` without the ``WHERE`` (``1 = 1`` for no condition)."""
    clause, args = where(conditions)
    return clause.removeprefix(" WHERE ") or "1 = 1", args


def _in(db: Connection) -> Read:
    """A :data:`Read` inside a transaction."""
    return lambda sql, args: db.execute(sql, args).fetchall()


def _chunk_position(run: Read) -> int:
    # SQLite-specific: AUTOINCREMENT keeps the highest seq ever assigned in sqlite_sequence
    # (a PostgreSQL backend reads its sequence instead)
    rows = run("SELECT seq FROM sqlite_sequence WHERE name = 'track_chunks'", ())
    return int(rows[0][0]) if rows else 0


def _checked_piece(ref_id: int, widths: dict[str, int],
                   piece: tuple[str, np.ndarray, np.ndarray]) -> tuple[str, np.ndarray, np.ndarray]:
    """An appended ``(signal, times, codes)`` as float64 times and contiguous uint8 codes;
    :class:`FormatError` if the reference has no such track or the shapes disagree with it."""
    signal, times, codes = piece
    if signal not in widths:
        raise FormatError(f"reference {ref_id} has no {signal} track")
    times, codes = np.asarray(times, dtype=np.float64), np.asarray(codes)
    width = widths[signal]
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != width:
        raise FormatError(f"{signal} codes of reference {ref_id} are uint8 ({width} bytes each), "
                          f"not {codes.dtype} of shape {codes.shape}")
    if times.ndim != 1 or len(times) != len(codes):
        raise FormatError(f"{signal} piece for reference {ref_id}: {times.size} times for {len(codes)} codes")
    return signal, times, np.ascontiguousarray(codes)


def _merge_chunks(rows: Iterable[Row]) -> Iterator[tuple[int, Fingerprint]]:
    """Rows of :data:`_MERGED_TRACKS` as ``(reference id, track)``, each track's chunks joined to it."""
    base: Row | None = None
    times: list[bytes] = []
    codes: list[bytes] = []
    for row in rows:
        if row[2] == 0:
            if base is not None:
                yield int(base[0]), _track(base, b"".join(times), b"".join(codes))
            base, times, codes = row, [row[7]], [row[8]]
        elif base is not None and (row[0], row[1]) == (base[0], base[1]):
            times.append(row[7])
            codes.append(row[8])
    if base is not None:
        yield int(base[0]), _track(base, b"".join(times), b"".join(codes))


def _reference(row: Row, gaps: list[tuple[float, float]]) -> Reference:
    (ref_id, owner, title, duration, policy, min_seconds, created, source, frames, allowlist, keyframes, match,
     live_status, aired_start, retain_seconds) = row
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
        live_status=live_status,
        aired_start=aired_start,
        retain_seconds=retain_seconds,
        gaps=gaps,
    )


def _track(row: Row, times: bytes, codes: bytes) -> Fingerprint:
    """A track from a :data:`_MERGED_TRACKS` row of a stored track and its (merged) times and codes."""
    _, signal, _, version, bits, fps, pipeline, _, _, duration = row
    return Fingerprint(
        signal=signal,
        signal_version=version,
        bits=bits,
        sample_fps=fps,
        duration=duration,
        times=_times(times),
        codes=_codes(codes, bits),
        pipeline=json.loads(pipeline),
    )


def _times(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def _codes(blob: bytes, bits: int) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, bits // 8).copy()


def _keyframe(row: Row) -> Keyframe:
    media_time, width, height, jpeg = row
    return Keyframe(media_time=float(media_time), width=int(width), height=int(height), jpeg=bytes(jpeg))
