"""Live references in the references repository: appended chunks, reads that merge them,
following appends by position, retention, feed gaps and the end of a live reference, on real
SQLite catalog files."""

from __future__ import annotations

import numpy as np
import pytest

from guard.errors import FormatError, NotFoundError
from guard.models import Fingerprint, Keyframe
from guard.storage import Database, ReferenceRepository
from guard.storage.incidents import IncidentRepository

VIDEO, VIDEO_BYTES = "mhash16", 32
AUDIO, AUDIO_BYTES = "audio_landmarks", 4


@pytest.fixture
def database(tmp_path):
    database = Database(tmp_path / "catalog.sqlite")
    yield database
    database.close()


@pytest.fixture
def references(database):
    return ReferenceRepository(database)


def _empty(signal: str = VIDEO, width: int = VIDEO_BYTES) -> Fingerprint:
    return Fingerprint(signal, 1, width * 8, 4.0, 0.0, np.zeros(0), np.zeros((0, width), np.uint8),
                       pipeline={"decoder": {"sample_fps": 4.0}})


def _live(references: ReferenceRepository, *, audio: bool = True, **options):
    tracks = [_empty(), _empty(AUDIO, AUDIO_BYTES)] if audio else [_empty()]
    return references.add_live(owner="league", title="Channel 1", policy="flag", min_seconds=2.0, source="feed",
                               tracks=tracks, **options)


def _piece(signal: str, start: float, count: int, seed: int, width: int = VIDEO_BYTES):
    times = start + np.arange(count) / 4.0
    return signal, times, np.random.default_rng(seed).integers(0, 256, (count, width), dtype=np.uint8)


def _ordinary(references: ReferenceRepository) -> int:
    _, times, codes = _piece(VIDEO, 0.0, 40, seed=99)
    return references.add(owner="league", title="Final", policy="cut", min_seconds=5.0, source="final.mp4",
                          tracks=[Fingerprint(VIDEO, 1, 256, 4.0, 10.0, times, codes)]).id


def test_add_live_stores_an_empty_live_reference_and_bumps_both_versions(references):
    before = references.versions()
    ref = _live(references, retain_seconds=3600.0, process="host:42")
    assert (ref.live_status, ref.duration, ref.frames, ref.retain_seconds, ref.aired_start, ref.gaps) == (
        "live", 0.0, 0, 3600.0, None, [])
    assert references.versions() == (before[0] + 1, before[1] + 1)
    assert [(t.signal, len(t), t.codes.shape, t.pipeline["decoder"]["sample_fps"])
            for t in references.tracks_of(ref.id)] == [
        (AUDIO, 0, (0, AUDIO_BYTES), 4.0), (VIDEO, 0, (0, VIDEO_BYTES), 4.0)]
    assert references.live() == [ref] and references.live_process(ref.id) == "host:42"
    assert ref.to_dict()["live_status"] == "live" and ref.to_dict()["gaps"] == []


def test_add_live_refuses_tracks_with_codes_and_a_retention_that_is_not_positive(references):
    _, times, codes = _piece(VIDEO, 0.0, 4, seed=1)
    with pytest.raises(FormatError, match="starts with empty tracks"):
        references.add_live(owner="league", title="x", policy="flag", min_seconds=2.0, source="feed",
                             tracks=[Fingerprint(VIDEO, 1, 256, 4.0, 1.0, times, codes)])
    with pytest.raises(FormatError, match="retain_seconds must be positive"):
        _live(references, retain_seconds=0.0)
    with pytest.raises(FormatError, match="policy must be one of"):
        references.add_live(owner="league", title="x", policy="mute", min_seconds=2.0, source="feed",
                            tracks=[_empty()])
    assert references.all() == []


def test_reads_merge_the_appended_chunks_in_order(references):
    ref = _live(references)
    first, second, sound = _piece(VIDEO, 0.0, 2, seed=1), _piece(VIDEO, 0.5, 2, seed=2), \
        _piece(AUDIO, 0.0, 3, seed=3, width=AUDIO_BYTES)
    assert references.append(ref.id, [first, sound], duration=0.5, frames=2) == 2
    assert references.append(ref.id, [second, (AUDIO, np.zeros(0), np.zeros((0, AUDIO_BYTES), np.uint8))],
                             duration=1.0, frames=2) == 3
    video = references.track(ref.id, VIDEO)
    assert np.array_equal(video.times, np.concatenate([first[1], second[1]]))
    assert np.array_equal(video.codes, np.concatenate([first[2], second[2]]))
    assert video.duration == 1.0 and video.times.dtype == np.float64 and video.codes.flags.writeable
    audio, video_again = references.tracks_of(ref.id)
    assert audio.signal == AUDIO and np.array_equal(audio.codes, sound[2]) and np.array_equal(audio.times, sound[1])
    assert np.array_equal(video_again.codes, video.codes)
    merged = {(ref_id, t.signal): t for ref_id, t in references.tracks()}
    assert np.array_equal(merged[ref.id, VIDEO].codes, video.codes) and len(merged[ref.id, AUDIO]) == 3
    assert [len(t) for _, t in references.tracks(VIDEO)] == [4]


def test_tracks_through_a_position_and_chunks_after_it_see_every_chunk_once(references):
    ordinary = _ordinary(references)
    ref = _live(references, audio=False)
    assert references.chunk_position() == 0 and references.chunks_after(0) == []
    pieces = [_piece(VIDEO, n * 0.5, 2, seed=n) for n in range(5)]
    for n, piece in enumerate(pieces[:3]):
        assert references.append(ref.id, [piece], duration=(n + 1) * 0.5) == n + 1
    position = references.chunk_position()
    for n, piece in enumerate(pieces[3:], start=3):
        references.append(ref.id, [piece], duration=(n + 1) * 0.5)
    loaded = dict(references.tracks(VIDEO, through=position))
    assert len(loaded[ordinary]) == 40 and np.array_equal(loaded[ref.id].codes,
                                                         np.concatenate([p[2] for p in pieces[:3]]))
    later = references.chunks_after(position)
    assert [(c.seq, c.ref_id, c.signal) for c in later] == [(4, ref.id, VIDEO), (5, ref.id, VIDEO)]
    assert all(np.array_equal(c.codes, p[2]) and np.array_equal(c.times, p[1]) for c, p in zip(later, pieces[3:]))
    assert [c.seq for c in references.chunks_after(1, through=3)] == [2, 3]
    assert references.chunk_position() == 5
    assert references.append(ref.id, [], duration=1.0) == 5, "nothing appended: the current position"


def test_append_updates_duration_frames_and_the_earliest_air_time_without_a_version_bump(references):
    ref = _live(references)
    versions = references.versions()
    references.append(ref.id, [_piece(VIDEO, 0.0, 2, seed=1)], duration=4.0, frames=2, aired_start=1_000.5)
    references.append(ref.id, [_piece(VIDEO, 0.5, 2, seed=2)], duration=3.0, frames=3, aired_start=1_000.0)
    references.append(ref.id, [_piece(VIDEO, 1.0, 2, seed=3)], duration=5.0, frames=1, aired_start=1_002.0)
    references.append(ref.id, [_piece(VIDEO, 1.5, 2, seed=4)], duration=4.5)
    now = references.get(ref.id)
    assert (now.duration, now.frames, now.aired_start) == (5.0, 6, 1_000.0)
    assert references.versions() == versions


def test_append_refuses_unknown_ended_ordinary_and_mismatched_pieces(references):
    ref = _live(references)
    with pytest.raises(NotFoundError, match="reference 999 not found"):
        references.append(999, [_piece(VIDEO, 0.0, 2, seed=1)], duration=0.5)
    with pytest.raises(FormatError, match=f"reference {ref.id} has no mhash8 track"):
        references.append(ref.id, [_piece("mhash8", 0.0, 2, seed=1)], duration=0.5)
    with pytest.raises(FormatError, match="4 bytes each"):
        references.append(ref.id, [_piece(AUDIO, 0.0, 2, seed=1)], duration=0.5)
    signal, times, codes = _piece(VIDEO, 0.0, 2, seed=1)
    with pytest.raises(FormatError, match="3 times for 2 codes"):
        references.append(ref.id, [(signal, np.arange(3.0), codes)], duration=0.5)
    with pytest.raises(FormatError, match="uint8"):
        references.append(ref.id, [(signal, times, codes.astype(np.int64))], duration=0.5)
    with pytest.raises(FormatError, match="has no mhash8 track"):
        references.append(ref.id, [_piece(VIDEO, 0.0, 2, seed=1), _piece("mhash8", 0.0, 2, seed=1)], duration=0.5)
    assert references.chunk_position() == 0, "a refused append stores none of its pieces"
    assert references.get(ref.id).duration == 0.0
    with pytest.raises(FormatError, match="not live \\(an ordinary reference\\)"):
        references.append(_ordinary(references), [_piece(VIDEO, 0.0, 2, seed=1)], duration=0.5)
    references.end_live(ref.id)
    with pytest.raises(FormatError, match="not live \\(ended\\)"):
        references.append(ref.id, [_piece(VIDEO, 0.0, 2, seed=1)], duration=0.5)


def test_trim_drops_old_codes_keyframes_and_gaps_and_bumps_the_generation(references):
    ref = _live(references, retain_seconds=2.0)
    pieces = [_piece(VIDEO, n * 1.0, 4, seed=n) for n in range(4)]  # 0.0 … 3.75 s
    sound = [_piece(AUDIO, n * 1.0, 2, seed=10 + n, width=AUDIO_BYTES) for n in range(4)]
    for video, audio in zip(pieces, sound):
        references.append(ref.id, [video, audio], duration=video[1][-1] + 0.25, frames=4)
    references.add_keyframes(ref.id, [Keyframe(t, 16, 9, b"jpeg") for t in (0.0, 1.0, 2.0, 3.0)])
    references.add_gap(ref.id, 0.5, 0.75)
    references.add_gap(ref.id, 1.25, 2.25)
    references.add_gap(ref.id, 3.0, 3.25)
    generation, revision = references.versions()
    whole = {t.signal: t for t in references.tracks_of(ref.id)}
    assert references.trim(ref.id, 2.0) == 8 + 4
    assert references.versions() == (generation + 1, revision + 1)
    for track in references.tracks_of(ref.id):
        keep = whole[track.signal].times >= 2.0
        assert np.array_equal(track.times, whole[track.signal].times[keep])
        assert np.array_equal(track.codes, whole[track.signal].codes[keep])
    assert references.chunk_position() == 8 and references.chunks_after(0) == [], "chunks merged into the tracks"
    assert [k.media_time for k in references.keyframes(ref.id)] == [2.0, 3.0]
    assert references.gaps(ref.id) == [(1.25, 2.25), (3.0, 3.25)] == references.get(ref.id).gaps
    assert references.trim(ref.id, 2.0) == 0 and references.versions() == (generation + 1, revision + 1)
    references.append(ref.id, [_piece(VIDEO, 4.0, 2, seed=9)], duration=4.5)
    assert references.chunk_position() == 9, "a seq is never reused"
    assert len(references.track(ref.id, VIDEO)) == 8 + 2
    with pytest.raises(NotFoundError):
        references.trim(999, 1.0)


def test_another_connection_follows_the_appends_by_position(tmp_path, references):
    ref = _live(references, audio=False)
    reader = Database(tmp_path / "catalog.sqlite")  # as another process opens the catalog
    try:
        follower = ReferenceRepository(reader)
        position = follower.chunk_position()
        loaded = dict(follower.tracks(through=position))
        appended = [_piece(VIDEO, n * 0.5, 2, seed=n) for n in range(3)]
        for n, piece in enumerate(appended):
            references.append(ref.id, [piece], duration=(n + 1) * 0.5)
        seen = follower.chunks_after(position)
        assert len(loaded[ref.id]) == 0 and [c.seq for c in seen] == [1, 2, 3]
        assert np.array_equal(np.concatenate([c.codes for c in seen]), np.concatenate([p[2] for p in appended]))
        assert follower.chunks_after(seen[-1].seq) == [] and follower.get(ref.id).duration == 1.5
    finally:
        reader.close()


def test_remove_deletes_the_chunks_and_gaps(references, database):
    ref = _live(references)
    references.append(ref.id, [_piece(VIDEO, 0.0, 2, seed=1)], duration=0.5)
    references.add_gap(ref.id, 0.5, 1.0)
    kept = _live(references, audio=False)
    references.append(kept.id, [_piece(VIDEO, 0.0, 2, seed=2)], duration=0.5)
    references.remove(ref.id)
    assert [c.ref_id for c in references.chunks_after(0)] == [kept.id]
    assert database.query("SELECT COUNT(*) FROM live_gaps")[0][0] == 0
    assert references.chunk_position() == 2
    with pytest.raises(NotFoundError):
        references.get(ref.id)


def test_gaps_are_part_of_the_reference_by_start(references):
    ref, other = _live(references), _live(references)
    references.add_gap(ref.id, 8.0, 9.0)
    references.add_gap(ref.id, 2.0, 3.5)
    references.add_gap(other.id, 1.0, 2.0)
    assert references.gaps(ref.id) == [(2.0, 3.5), (8.0, 9.0)]
    assert [r.gaps for r in references.all()] == [[(2.0, 3.5), (8.0, 9.0)], [(1.0, 2.0)]]
    assert [r.gaps for r in references.all(owner="league")] == [[(2.0, 3.5), (8.0, 9.0)], [(1.0, 2.0)]]
    assert references.all(owner="nobody") == []
    assert references.get(ref.id).to_dict()["gaps"] == [[2.0, 3.5], [8.0, 9.0]]
    with pytest.raises(FormatError, match="ends after it starts"):
        references.add_gap(ref.id, 5.0, 4.0)
    with pytest.raises(NotFoundError):
        references.add_gap(999, 1.0, 2.0)


def test_end_live_keeps_an_ordinary_reference_with_its_chunks(references):
    ref = _live(references, audio=False)
    piece = _piece(VIDEO, 0.0, 4, seed=1)
    references.append(ref.id, [piece], duration=1.0, frames=4)
    generation, revision = references.versions()
    ended = references.end_live(ref.id, "failed", error="feed lost")
    assert ended.live_status == "failed" and references.versions() == (generation, revision + 1)
    assert references.live() == [] and references.all() == [ended]
    assert np.array_equal(references.track(ref.id, VIDEO).codes, piece[2])
    assert references.database.query("SELECT live_error FROM refs WHERE id = ?", (ref.id,)) == [("feed lost",)]
    assert references.end_live(ref.id).live_status == "ended"
    with pytest.raises(FormatError, match="ends as one of ended, failed"):
        references.end_live(ref.id, "live")
    with pytest.raises(FormatError, match="is not a live reference"):
        references.end_live(_ordinary(references))
    with pytest.raises(NotFoundError):
        references.end_live(999)


def test_the_ingesting_process_is_recorded(references):
    ref = _live(references)
    assert references.live_process(ref.id) == ""
    references.set_live_process(ref.id, "host:7")
    assert references.live_process(ref.id) == "host:7"
    assert references.live_process(_ordinary(references)) == ""
    with pytest.raises(NotFoundError):
        references.set_live_process(999, "host:7")
    with pytest.raises(NotFoundError):
        references.live_process(999)


def test_an_ordinary_reference_reads_as_before(references):
    ref_id = _ordinary(references)
    ref = references.get(ref_id)
    assert (ref.live_status, ref.aired_start, ref.retain_seconds, ref.gaps) == (None, None, None, [])
    assert len(references.track(ref_id, VIDEO)) == 40 and references.keyframes(ref_id) == []
    assert references.trim(ref_id, 0.0) == 0


def test_incidents_of_a_live_reference_keep_air_time_and_delay(database):
    incidents = IncidentRepository(database)
    span = (3.0, 6.0, 13.0, 16.0)
    live = incidents.create(stream_id="s1", account="fan", platform="tube", reference_id=1, reference_title="Live",
                            owner="league", policy="flag", score=0.8, span=span, segments=[], first_seen=1000.0,
                            decided=1004.0, aired_at=998.25, delay=5.75)
    ordinary = incidents.create(stream_id="s1", account="fan", platform="tube", reference_id=2,
                                reference_title="Final", owner="league", policy="flag", score=0.8, span=span,
                                segments=[], first_seen=1000.0, decided=1004.0)
    got = incidents.get(live)
    assert (got.aired_at, got.delay) == (998.25, 5.75)
    out = got.to_dict()
    assert out["aired_at_ts"] == 998.25 and out["aired_at"].endswith("+00:00") and out["delay"] == 5.75
    assert (incidents.get(ordinary).aired_at, incidents.get(ordinary).delay) == (None, None)
    assert incidents.get(ordinary).to_dict()["delay"] is None


def test_add_keyframes_stores_pictures_as_they_air_without_a_version_bump(references):
    ref = _live(references)
    versions = references.versions()
    references.add_keyframes(ref.id, [Keyframe(0.0, 16, 9, b"first"), Keyframe(2.0, 16, 9, b"second")])
    references.add_keyframes(ref.id, [Keyframe(2.0, 16, 9, b"again"), Keyframe(4.0, 16, 9, b"third")])
    assert [(k.media_time, k.jpeg) for k in references.keyframes(ref.id)] == [
        (0.0, b"first"), (2.0, b"second"), (4.0, b"third")]
    assert references.get(ref.id).has_keyframes and references.versions() == versions
    with pytest.raises(NotFoundError):
        references.add_keyframes(999, [Keyframe(0.0, 16, 9, b"x")])
