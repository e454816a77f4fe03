"""Hash-only export/import: round trip, versioning, and precise refusal of broken or hostile files."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import socket
import threading
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from guard import exchange
from guard.config import Settings
from guard.errors import FormatError, TooLargeError
from guard.fingerprint import Fingerprinter
from guard.models import NAME_MAX_LENGTH, Fingerprint, check_name
from guard.pipeline import first_release_pipeline, track_pipeline
from guard.service import Guard
from guard.signals import get_signal
from tests import media


def dumps_v1(fp: Fingerprint, title: str) -> bytes:
    """An exchange file of format 1, exactly as the first release's ``exchange.dumps`` wrote it."""
    times = np.asarray(fp.times, dtype="<f8").tobytes()
    codes = np.ascontiguousarray(fp.codes, dtype=np.uint8).tobytes()
    doc = {
        "format": "guard-fingerprint",
        "format_version": 1,
        "signal": {"name": fp.signal, "version": fp.signal_version, "bits": fp.bits},
        "sample_fps": fp.sample_fps,
        "duration": fp.duration,
        "title": title,
        "frames": len(fp),
        "times": base64.b64encode(times).decode(),
        "codes": base64.b64encode(codes).decode(),
        "sha256": hashlib.sha256(times + codes).hexdigest(),
    }
    return json.dumps(doc, allow_nan=False).encode()


def _export(guard, ref_id, path, version):
    """Export a reference in exchange format ``version`` (1: as the first release wrote it)."""
    if version == 2:
        return guard.export(ref_id, path)
    path.write_bytes(dumps_v1(guard.tracks(ref_id)[0], guard.reference(ref_id).title))
    return path


@pytest.mark.parametrize("name,version", [("ref.gfp.json", 2), ("ref.gfp.json.gz", 2), ("ref.v1.json", 1)])
def test_export_then_import_elsewhere_finds_the_same_copies(guard, loaded_store, tmp_path, name, version):
    """A rights holder fingerprints privately; the platform imports hashes only and detects
    (files of format 1, from the first release, too)."""
    _, ids = loaded_store
    exported = _export(guard, ids[2], tmp_path / name, version)
    with Guard(Settings(home=tmp_path / "platform")) as platform:
        ref = platform.import_fingerprint(exported, owner="league", policy="cut")
        assert ref.title == "reference 2" and ref.policy == "cut" and ref.source.startswith("import:")
        assert not ref.has_keyframes, "a hash-only import has no pictures"
        (track,) = platform.tracks(ref.id)
        assert track.pipeline["preprocess"] == 1 and track.pipeline["decoder"]["grey_size"] == 128
        copy = media.make_copy(tmp_path / "copy.mp4", 2, 10.0, 15.0, before=5.0)
        segments = platform.scan(copy).segments
        assert [s.reference_id for s in segments] == [ref.id]
        assert segments[0].reference_start == pytest.approx(10.0, abs=1.0)


def _exported(guard, ids, tmp_path, version=2):
    path = _export(guard, ids[1], tmp_path / "ref.json", version)
    return json.loads(path.read_text()), path


def _track_of(doc: dict) -> dict:
    """Where a document's track fields are: its first track (format 2) or itself (format 1)."""
    return doc["tracks"][0] if doc.get("format_version") == 2 else doc


def _edit_track(doc: dict, change) -> dict:
    change(_track_of(doc))
    return doc


MUTATIONS = {
    "not json": (lambda doc: b"\x00\x01garbage", "not a guard fingerprint file"),
    "other format": (lambda doc: {**doc, "format": "vpdq"}, "not a guard fingerprint file"),
    "newer version": (lambda doc: {**doc, "format_version": 99}, "format version 99 is newer"),
    "missing field": (lambda doc: _edit_track(doc, lambda t: t.pop("codes")), "malformed fingerprint file"),
    "bad base64": (lambda doc: _edit_track(doc, lambda t: t.update(times="@@@")), "malformed fingerprint file"),
    "edited codes": (lambda doc: _edit_track(doc, lambda t: t.update(
        codes=base64.b64encode(b"\x01" * len(base64.b64decode(t["codes"]))).decode())), "checksum mismatch"),
    "wrong frame count": (lambda doc: _edit_track(doc, lambda t: t.update(frames=t["frames"] + 1)), "header says"),
    "truncated gzip": (lambda doc: gzip.compress(json.dumps(doc).encode())[:100], "not a guard fingerprint file"),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_broken_export_files_are_refused_and_nothing_changes(kind, version, guard, loaded_store, tmp_path):
    _, ids = loaded_store
    doc, path = _exported(guard, ids, tmp_path, version)
    mutate, message = MUTATIONS[kind]
    broken = mutate(doc)
    path.write_bytes(broken if isinstance(broken, bytes) else json.dumps(broken).encode())
    before = [r.id for r in guard.references()]
    with pytest.raises(FormatError, match=message) as info:
        guard.import_fingerprint(path)
    assert str(path) in str(info.value)
    assert [r.id for r in guard.references()] == before


@pytest.mark.parametrize("version", [1, 2])
def test_other_signal_is_refused_on_import(guard, loaded_store, tmp_path, version):
    _, ids = loaded_store
    fp = guard.catalog.fingerprint(ids[1], guard.settings.signal)
    fp.signal = "phash16"
    path = tmp_path / "other.json"
    path.write_bytes(exchange.dumps(fp, "other") if version == 2 else dumps_v1(fp, "other"))
    with pytest.raises(FormatError, match="fingerprint uses phash16 v1 .*; this store needs mhash16"):
        guard.import_fingerprint(path)


# -- hostile files (issue 16) ---------------------------------------------------------------------

PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _synthetic(frames: int = 40, fps: float = 4.0, signal: str = "mhash16") -> Fingerprint:
    """A fingerprint as ingest makes it (times on the sampling grid, duration one period past the
    last frame, the running pipeline), with random codes: no video needed to test the file format."""
    known = get_signal(signal)
    times = np.arange(frames) / fps
    codes = np.random.default_rng(frames).integers(0, 256, (frames, known.bits // 8), dtype=np.uint8)
    return Fingerprint(signal, 1, known.bits, fps, round(frames / fps, 3), times, codes,
                       pipeline=Fingerprinter(known, fps).pipeline())


#: The fields of a file that belong to a track (in a track in format 2, at the top in format 1).
TRACK_FIELDS = {"signal", "pipeline", "sample_fps", "frames", "times", "codes", "sha256"}


def _doc(version: int = 2, **changes) -> dict:
    """A valid file of format ``version`` with ``changes``, each made where its field lives."""
    fp = _synthetic()
    doc = json.loads(exchange.dumps(fp, "Finals, game 7") if version == 2 else dumps_v1(fp, "Finals, game 7"))
    for field, value in changes.items():
        (_track_of(doc) if field in TRACK_FIELDS else doc)[field] = value
    return doc


def _literal(field: str, literal: str, version: int = 2) -> bytes:
    """A valid file whose ``field`` holds a raw JSON literal such as ``NaN`` (json.dumps cannot)."""
    return json.dumps(_doc(version, **{field: "@@"})).replace('"@@"', literal).encode()


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("field,literal", [
    ("duration", "NaN"), ("sample_fps", "NaN"), ("duration", "Infinity"), ("duration", "-Infinity"),
    ("sample_fps", "Infinity"), ("duration", "1e400"), ("frames", "NaN"),
])
def test_nan_and_infinity_are_refused_at_parse_time(empty_guard, tmp_path, field, literal, version):
    path = tmp_path / "hostile.json"
    path.write_bytes(_literal(field, literal, version))
    with pytest.raises(FormatError, match=f"{path}: not a guard fingerprint file .*numbers must be finite"):
        empty_guard.import_fingerprint(path)
    assert empty_guard.references() == []


@pytest.mark.parametrize("changes,message", [
    ({"duration": 1e308}, r"'duration' must be between 0 and 604800 \(got 1e\+308\)"),
    ({"duration": -1.0}, "'duration' must be between"),
    ({"sample_fps": 0}, "'sample_fps' must be between 0.1 and 60"),
    ({"sample_fps": 1e6}, "'sample_fps' must be between"),
    ({"sample_fps": "4"}, "'sample_fps' must be a number"),
    ({"duration": True}, "'duration' must be a number"),
    ({"frames": 10**30}, "'frames' must be between 0 and 4194304"),
    ({"frames": 40.0}, "'frames' must be an integer"),
    ({"format_version": True}, "invalid format_version"),
    ({"signal": {"name": "mhash16", "version": 1, "bits": 64}}, "signal mhash16 has 256 bits, the file says 64"),
    ({"signal": {"name": "mhash16", "version": 10**40, "bits": 256}}, "'signal.version' must be between"),
    ({"signal": {"name": "x" * 10**5, "version": 1, "bits": 256}}, "unknown signal 'xxxx"),
    ({"signal": {"name": "vpdq", "version": 1, "bits": 256}}, "unknown signal 'vpdq'"),
    ({"signal": ["mhash16"]}, "'signal' must be an object"),
    ({"duration": 1.0}, "40 frames cannot come from 1 s sampled at 4 fps"),
    ({"sha256": 7}, "'sha256' must be a string"),
])
@pytest.mark.parametrize("version", [1, 2])
def test_values_out_of_sane_ranges_are_refused(changes, message, version):
    with pytest.raises(FormatError, match=message):
        exchange.parse(json.dumps(_doc(version, **changes)).encode(), "f.json")


@pytest.mark.parametrize("version", [1, 2])
def test_frame_times_past_the_duration_are_refused(version):
    fp = _synthetic()
    fp.times = fp.times + 5.0  # sampled as if the video were 5 s longer than it says
    with pytest.raises(FormatError, match=r"frame time 14.75 s is past the duration of 10 s"):
        exchange.parse(exchange.dumps(fp, "late") if version == 2 else dumps_v1(fp, "late"), "f.json")


def test_track_errors_say_which_track():
    doc = json.loads(exchange.dumps([_synthetic(), _synthetic(signal="phash16")], "two"))
    doc["tracks"][1]["sample_fps"] = 1e6
    with pytest.raises(FormatError, match=r"^f.json: track 1: 'sample_fps' must be between"):
        exchange.parse(json.dumps(doc).encode(), "f.json")
    doc["tracks"][1]["sample_fps"] = 4.0
    del doc["tracks"][1]["codes"]
    with pytest.raises(FormatError, match=r"^f.json: track 1: malformed fingerprint file \(missing field 'codes'\)"):
        exchange.parse(json.dumps(doc).encode(), "f.json")


@pytest.mark.parametrize("change,message", [
    (lambda doc: doc.update(tracks=[]), r"'tracks' must be a list of 1 to 8"),
    (lambda doc: doc.update(tracks=doc["tracks"] * 9), r"'tracks' must be a list of 1 to 8"),
    (lambda doc: doc.update(tracks={"0": doc["tracks"][0]}), r"'tracks' must be a list"),
    (lambda doc: doc.update(tracks=[7]), r"track 0: malformed fingerprint file \(a track must be an object\)"),
    (lambda doc: doc.pop("tracks"), r"missing field 'tracks'"),
    (lambda doc: doc.update(tracks=doc["tracks"] * 2), r"more than one track of one signal \(mhash16, mhash16\)"),
    (lambda doc: doc["tracks"][0].update(pipeline=[1]), r"track 0: malformed fingerprint file \('pipeline' must be"),
    (lambda doc: doc["tracks"][0].pop("pipeline"), r"track 0: malformed fingerprint file \(missing field 'pipeline'\)"),
    (lambda doc: doc["tracks"][0]["pipeline"].update(decoder="fast"), r"'pipeline.decoder' must be an object"),
    (lambda doc: doc["tracks"][0]["pipeline"].update(preprocess="1"), r"'pipeline.preprocess' must be an integer"),
    (lambda doc: doc["tracks"][0]["pipeline"].update(junk="x" * 5000), r"'pipeline' is longer than 4096 characters"),
    (lambda doc: doc["tracks"][0]["signal"].update(params={"x": "y" * 5000}), r"'signal' is longer than 4096"),
])
def test_malformed_track_lists_are_refused(change, message):
    doc = _doc()
    change(doc)
    with pytest.raises(FormatError, match=message):
        exchange.parse(json.dumps(doc).encode(), "f.json")


def test_a_file_of_several_tracks_round_trips_through_a_store(empty_guard, tmp_path):
    """Tracks of two signals, each with its pipeline: stored, indexed per signal, exported whole."""
    tracks = [_synthetic(), _synthetic(signal="phash16")]
    path = exchange.dump(tracks, "two signals", tmp_path / "two.json")
    parsed, title = exchange.load(path)
    assert title == "two signals" and [t.signal for t in parsed] == ["mhash16", "phash16"]
    assert [t.pipeline for t in parsed] == [t.pipeline for t in tracks]
    ref = empty_guard.import_fingerprint(path)
    assert ref.warnings == [] and not ref.has_keyframes
    stored = empty_guard.tracks(ref.id)
    assert [t.signal for t in stored] == ["mhash16", "phash16"]
    assert all(np.array_equal(a.codes, b.codes) for a, b in zip(stored, tracks))
    assert len(empty_guard.index.index_for("phash16")) == 40 and len(empty_guard.index) == 80
    back, _ = exchange.load(empty_guard.export(ref.id, tmp_path / "again.json"))
    assert [(t.signal, t.pipeline) for t in back] == [(t.signal, t.pipeline) for t in parsed]


def test_a_track_of_another_pipeline_is_refused_with_what_differs(empty_guard, tmp_path):
    fp = _synthetic()
    fp.pipeline = {**fp.pipeline, "preprocess": 2}
    path = exchange.dump(fp, "newer", tmp_path / "newer.json")
    with pytest.raises(FormatError, match=r"fingerprint made by another pipeline \(preprocess: 2 recorded, 1 running\)"
                                          r".*Re-ingest the references from their sources"):
        empty_guard.import_fingerprint(path)
    assert empty_guard.references() == []


def test_a_second_track_of_another_pipeline_is_left_out_with_a_warning(empty_guard, tmp_path):
    other = _synthetic(signal="phash16")
    other.pipeline["signal"]["params"]["hash_size"] = 32
    path = exchange.dump([_synthetic(), other], "mixed", tmp_path / "mixed.json")
    ref = empty_guard.import_fingerprint(path)
    assert ref.warnings == ["its phash16 track was left out (signal.params.hash_size: 32 recorded, 16 running)"]
    assert [t.signal for t in empty_guard.tracks(ref.id)] == ["mhash16"]


def test_format_1_files_read_with_the_first_release_pipeline():
    fp = _synthetic()
    (track,), title = exchange.parse(dumps_v1(fp, "old"), "old.json")
    assert title == "old"
    assert track.pipeline == first_release_pipeline("mhash16", 1, 256, 4.0)
    assert np.array_equal(track.codes, fp.codes) and np.array_equal(track.times, fp.times)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a": ' * 100_000, None])
def test_deeply_nested_json_is_a_format_error(raw):
    raw = raw or json.dumps(_doc()).replace('"Finals, game 7"', "[" * 50_000 + "]" * 50_000).encode()
    with pytest.raises(FormatError, match="JSON nested too deeply"):
        exchange.parse(raw, "deep.json")


@pytest.mark.parametrize("title,message", [
    ({"name": "Finals"}, "must be a string, not dict"),
    (["Finals"], "must be a string, not list"),
    (7, "must be a string, not int"),
    ("x" * 1_000_000, f"must be 1 to {NAME_MAX_LENGTH} characters long"),
    ("", f"must be 1 to {NAME_MAX_LENGTH} characters long"),
    ("Finals\x1b[2J\x1b[31m", "must not contain control characters"),
    ("Finals\r\n42  forged row", "must not contain control characters"),
    ("Finals\x9b31m", "must not contain control characters"),
    ("Finals\ud800", "must be valid Unicode text"),
])
def test_titles_follow_the_api_rule(empty_guard, tmp_path, title, message):
    path = tmp_path / "title.json"
    path.write_text(json.dumps(_doc(title=title)))
    with pytest.raises(FormatError, match=f"invalid title \\({message}"):
        empty_guard.import_fingerprint(path)
    assert empty_guard.references() == []


def test_unicode_titles_and_override_are_kept(empty_guard, tmp_path):
    path = exchange.dump(_synthetic(), "Finale — 決勝 ⚽", tmp_path / "ok.json.gz")
    assert empty_guard.import_fingerprint(path).title == "Finale — 決勝 ⚽"
    assert empty_guard.import_fingerprint(path, title="Game 7").title == "Game 7"


def test_the_api_and_import_share_one_title_rule():
    from guard.api.schemas import ReferenceUpdate
    from pydantic import ValidationError

    for title in ("ok", "a\x1bb", "a\x85b", "x" * 201, ""):
        try:
            check_name(title)
            core = None
        except ValueError as exc:
            core = str(exc)
        try:
            ReferenceUpdate(title=title)
            api = None
        except ValidationError:
            api = "refused"
        assert (core is None) == (api is None), title


def _import_in_thread(path, timeout=20.0):
    """``exchange.load`` in a daemon thread, so that a blocking open fails the test instead of hanging it."""
    outcome = {}

    def target():
        try:
            outcome["result"] = exchange.load(path)
        except BaseException as exc:  # noqa: BLE001 — handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"reading {path} blocked"
    return outcome


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "feed.json"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    sock_path = tmp_path / "s.json"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        link = tmp_path / "link.json"
        link.symlink_to(fifo)
        for path, kind in ((fifo, "a FIFO"), (link, "a FIFO"), ("/dev/zero", "a character device"),
                           (folder, "a directory"), (sock_path, "a socket")):
            error = _import_in_thread(path)["error"]
            assert isinstance(error, FormatError) and str(error) == f"{path}: is {kind}, not a regular file"
    error = _import_in_thread(tmp_path / "missing.json")["error"]
    assert str(error) == f"{tmp_path / 'missing.json'}: cannot read (No such file or directory)"


def test_reading_stops_past_the_byte_limit(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 5000)
    with pytest.raises(TooLargeError, match=f"{path}: larger than the limit of 4096 bytes"):
        exchange.load(path, max_bytes=4096)
    assert exchange.MAX_FILE_BYTES == 256 * 1024**2


def _gzip_of_zeros(size: int) -> bytes:
    """One gzip member of ``size`` zero bytes, compressed a thousandfold."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024**2)
    parts = [packer.compress(block[: min(len(block), size - done)]) for done in range(0, size, len(block))]
    return b"".join(parts) + packer.flush()


def test_a_gzip_bomb_is_decompressed_in_bounded_chunks(tmp_path):
    bomb = _gzip_of_zeros(64 * 1024**2)
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(TooLargeError, match=f"{path}: decompresses to more than the limit of {1024**2} bytes"):
            exchange.load(path, max_bytes=1024**2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024**2  # the limit plus a chunk, never the 64 MiB the file expands to


def test_a_file_under_the_limits_still_imports_from_gzip(empty_guard, tmp_path):
    data = exchange.dumps(_synthetic(400), "long")
    path = tmp_path / "ok.json.gz"
    path.write_bytes(gzip.compress(data))
    (fp,), title = exchange.load(path, max_bytes=len(data))
    assert (len(fp), title) == (400, "long")
    with pytest.raises(TooLargeError, match="decompresses to more than"):
        exchange.load(path, max_bytes=len(data) - 1)


# -- properties -----------------------------------------------------------------------------------

SIGNAL_BITS = {name: get_signal(name).bits for name in ("mhash16", "phash16", "dhash8", "ahash8")}
TITLES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=NAME_MAX_LENGTH)


@st.composite
def fingerprints(draw) -> tuple[Fingerprint, str]:
    """A fingerprint like ingest makes: grid times with uninformative frames left out."""
    signal = draw(st.sampled_from(sorted(SIGNAL_BITS)))
    bits = SIGNAL_BITS[signal]
    fps = draw(st.floats(exchange.MIN_SAMPLE_FPS, exchange.MAX_SAMPLE_FPS))
    grid = draw(st.integers(0, 60))
    keep = np.array(draw(st.lists(st.booleans(), min_size=grid, max_size=grid)), dtype=bool)
    times = (np.arange(grid) / fps)[keep] if grid else np.zeros(0)
    codes = draw(arrays(np.uint8, (len(times), bits // 8)))
    duration = draw(st.floats(grid / fps, grid / fps + 2 * exchange.TIME_SLACK))
    fp = Fingerprint(signal, draw(st.integers(1, exchange.MAX_SIGNAL_VERSION)), bits, fps, duration, times, codes)
    return fp, draw(TITLES)


def _assert_valid(fp: Fingerprint, title: str) -> None:
    """What every parsed file guarantees to the rest of guard."""
    assert fp.bits == get_signal(fp.signal).bits
    assert fp.codes.dtype == np.uint8 and fp.codes.shape == (len(fp), fp.bits // 8)
    assert exchange.MIN_SAMPLE_FPS <= fp.sample_fps <= exchange.MAX_SAMPLE_FPS
    assert 0 <= fp.duration <= exchange.MAX_DURATION and math.isfinite(fp.duration)
    assert len(fp) <= exchange.MAX_FRAMES
    if len(fp):
        assert np.isfinite(fp.times).all() and fp.times[0] >= 0 and (np.diff(fp.times) > 0).all()
        assert fp.times[-1] <= fp.duration + exchange.TIME_SLACK
    assert check_name(title) == title


def _parse_or_refuse(raw: bytes) -> None:
    try:
        tracks, title = exchange.parse(raw, "fuzz")
    except (FormatError, TooLargeError) as exc:
        assert str(exc).startswith("fuzz: ")
    else:
        assert 1 <= len(tracks) <= exchange.MAX_TRACKS
        assert len({t.signal for t in tracks}) == len(tracks)
        for fp in tracks:
            _assert_valid(fp, title)
            assert isinstance(fp.pipeline, dict) and fp.pipeline["signal"]["name"] == fp.signal
            assert len(json.dumps(fp.pipeline)) < 3 * exchange.MAX_DESCRIPTION_CHARS


@PROPERTY
@given(st.binary(max_size=4096))
def test_any_bytes_parse_or_give_a_format_error(raw):
    _parse_or_refuse(raw)
    _parse_or_refuse(gzip.compress(raw))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["format", "format_version", "signal", "sample_fps", "duration", "title", "frames", "times",
          "codes", "sha256", "signal.name", "signal.version", "signal.bits", "signal.params", "tracks",
          "pipeline", "pipeline.decoder", "pipeline.preprocess"]


def _track_fields(doc: dict) -> dict:
    """The object holding the track fields of a possibly already edited document."""
    tracks = doc.get("tracks")
    if doc.get("format_version") == 2 and isinstance(tracks, list) and tracks and isinstance(tracks[0], dict):
        return tracks[0]
    return doc


@PROPERTY
@given(st.sampled_from([1, 2]),
       st.lists(st.tuples(st.sampled_from(FIELDS), JSON | st.just(KeyError)), min_size=1, max_size=3))
def test_any_field_edit_parses_or_gives_a_format_error(version, edits):
    doc = _doc(version)
    for field, value in edits:
        holder, _, key = field.rpartition(".")
        container = _track_fields(doc) if field.split(".")[0] in TRACK_FIELDS else doc
        target = container if not holder else container[holder] if isinstance(container.get(holder), dict) else container
        if value is KeyError:
            target.pop(key, None)
        else:
            target[key] = value
    _parse_or_refuse(json.dumps(doc).encode())  # json.dumps writes NaN and Infinity for such floats


@PROPERTY
@given(fingerprints(), st.booleans(), st.sampled_from([1, 2]))
def test_dump_then_parse_gives_back_the_same_fingerprint(case, compressed, version):
    fp, title = case
    raw = exchange.dumps(fp, title) if version == 2 else dumps_v1(fp, title)
    (back,), back_title = exchange.parse(gzip.compress(raw) if compressed else raw, "round trip")
    assert back_title == title
    if version == 2:
        assert back.pipeline == track_pipeline(fp)
    else:
        assert back.pipeline == first_release_pipeline(fp.signal, fp.signal_version, fp.bits, fp.sample_fps)
    assert (back.signal, back.signal_version, back.bits) == (fp.signal, fp.signal_version, fp.bits)
    assert (back.sample_fps, back.duration) == (fp.sample_fps, fp.duration)
    assert np.array_equal(back.times, fp.times) and np.array_equal(back.codes, fp.codes)
    assert np.array_equal(np.unpackbits(back.codes, axis=1), np.unpackbits(fp.codes, axis=1))
    _assert_valid(back, back_title)


# -- audio tracks and the match policy (issue 12) ----------------------------------------------


def _song_tracks(guard, seed: int = 5, seconds: float = 10.0) -> list[Fingerprint]:
    """A picture track (random codes, this guard's pipeline) and a real audio track of a song."""
    from guard_synth.broadcast import audio_track

    codes = np.random.default_rng(seed).integers(0, 256, (40, guard.fingerprinter.signal.code_bytes), dtype=np.uint8)
    video = Fingerprint("mhash16", guard.fingerprinter.signal.version, guard.fingerprinter.signal.bits, 4.0, seconds,
                        np.arange(40) / 4.0, codes, pipeline=guard.fingerprinter.pipeline())
    landmarks = guard.audio.signal.landmarks(audio_track(seed, seconds, 8000, "music"))
    return [video, guard.audio.track(landmarks, seconds)]


def test_a_v2_export_carries_the_audio_track_and_the_match_policy(tmp_path):
    with Guard(Settings(home=tmp_path / "a")) as source:
        ref = source.register(_song_tracks(source), title="song", owner="o", source="t", match="audio")
        path = source.export(ref.id, tmp_path / "song.gfp.json.gz")
        stored = {t.signal: t for t in source.tracks(ref.id)}
    document = exchange.load_document(path)
    assert document.match == "audio" and document.title == "song"
    loaded = {t.signal: t for t in document.tracks}
    assert set(loaded) == {"mhash16", "audio_landmarks"}
    for name, track in stored.items():
        assert np.array_equal(loaded[name].times, track.times) and np.array_equal(loaded[name].codes, track.codes)
    assert loaded["audio_landmarks"].pipeline == track_pipeline(stored["audio_landmarks"])
    with Guard(Settings(home=tmp_path / "b")) as target:
        imported = target.import_fingerprint(path, owner="o")
        assert imported.match == "audio" and imported.warnings == []
        assert set(target.index.audio_refs()) == {imported.id}
        assert len(target.index.index_for("audio_landmarks")) == len(stored["audio_landmarks"])
        assert target.import_fingerprint(path, owner="o", match="any").match == "any"


def test_a_v1_file_still_imports_with_the_default_match_policy(tmp_path):
    with Guard(Settings(home=tmp_path / "a")) as guard:
        video = _song_tracks(guard)[0]
        path = tmp_path / "old.json"
        path.write_bytes(dumps_v1(video, "old"))
        ref = guard.import_fingerprint(path, owner="o")
        assert ref.match == "any" and ref.frames == 40


def test_an_audio_track_or_match_policy_that_breaks_the_rules_is_refused(tmp_path):
    with Guard(Settings(home=tmp_path / "a")) as guard:
        tracks = _song_tracks(guard)
    doc = json.loads(exchange.dumps(tracks, "song", "video"))
    with pytest.raises(FormatError, match="match policy"):
        exchange.parse(json.dumps({**doc, "match": "smell"}).encode(), "f")
    audio = tracks[1]
    backwards = audio.times[::-1].copy()
    raw_times, raw_codes = np.asarray(backwards, "<f8").tobytes(), audio.codes.tobytes()
    doc["tracks"][1].update(times=base64.b64encode(raw_times).decode(),
                            sha256=hashlib.sha256(raw_times + raw_codes).hexdigest())
    with pytest.raises(FormatError, match="non-decreasing"):
        exchange.parse(json.dumps(doc).encode(), "f")
