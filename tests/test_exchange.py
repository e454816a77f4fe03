"""Hash-only export/import: round trip, versioning, and precise refusal of broken files."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from guard import exchange
from guard.config import Settings
from guard.errors import FormatError
from guard.service import Guard
from tests import media


@pytest.mark.parametrize("name", ["ref.gfp.json", "ref.gfp.json.gz"])
def test_export_then_import_elsewhere_finds_the_same_copies(guard, loaded_store, tmp_path, name):
    """A rights holder fingerprints privately; the platform imports hashes only and detects."""
    _, ids = loaded_store
    exported = guard.export(ids[2], tmp_path / name)
    with Guard(Settings(home=tmp_path / "platform")) as platform:
        ref = platform.import_fingerprint(exported, owner="league", policy="cut")
        assert ref.title == "reference 2" and ref.policy == "cut" and ref.source.startswith("import:")
        copy = media.make_copy(tmp_path / "copy.mp4", 2, 10.0, 15.0, before=5.0)
        segments = platform.scan(copy).segments
        assert [s.reference_id for s in segments] == [ref.id]
        assert segments[0].reference_start == pytest.approx(10.0, abs=1.0)


def _exported(guard, ids, tmp_path):
    path = guard.export(ids[1], tmp_path / "ref.json")
    return json.loads(path.read_text()), path


MUTATIONS = {
    "not json": (lambda doc: b"\x00\x01garbage", "not a guard fingerprint file"),
    "other format": (lambda doc: {**doc, "format": "vpdq"}, "not a guard fingerprint file"),
    "newer version": (lambda doc: {**doc, "format_version": 99}, "format version 99 is newer"),
    "missing field": (lambda doc: {k: v for k, v in doc.items() if k != "codes"}, "malformed fingerprint file"),
    "bad base64": (lambda doc: {**doc, "times": "@@@"}, "malformed fingerprint file"),
    "edited codes": (lambda doc: {**doc, "codes": base64.b64encode(b"\x01" * len(base64.b64decode(doc["codes"]))).decode()}, "checksum mismatch"),
    "wrong frame count": (lambda doc: {**doc, "frames": doc["frames"] + 1}, "header says"),
    "truncated gzip": (lambda doc: gzip.compress(json.dumps(doc).encode())[:100], "not a guard fingerprint file"),
}


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_broken_export_files_are_refused_and_nothing_changes(kind, guard, loaded_store, tmp_path):
    _, ids = loaded_store
    doc, path = _exported(guard, ids, tmp_path)
    mutate, message = MUTATIONS[kind]
    broken = mutate(doc)
    path.write_bytes(broken if isinstance(broken, bytes) else json.dumps(broken).encode())
    before = [r.id for r in guard.references()]
    with pytest.raises(FormatError, match=message) as info:
        guard.import_fingerprint(path)
    assert str(path) in str(info.value)
    assert [r.id for r in guard.references()] == before


def test_other_signal_is_refused_on_import(guard, loaded_store, tmp_path):
    _, ids = loaded_store
    fp = guard.catalog.fingerprint(ids[1])
    fp.signal = "phash16"
    path = exchange.dump(fp, "other", tmp_path / "other.json")
    with pytest.raises(FormatError, match="this store needs mhash16"):
        guard.import_fingerprint(path)
