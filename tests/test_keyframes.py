"""Reference keyframes: small pictures kept at ingest, in the reference's transaction, for evidence."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from guard import exchange
from guard.keyframes import KEYFRAME_INTERVAL, KEYFRAME_WIDTH, keyframe
from tests import media


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)


def _reference_picture(seed: int, t: float) -> np.ndarray:
    """Reference ``seed``'s frame at ``t`` seconds, made small like a keyframe."""
    frame = next(iter(media.reference_frames(seed, start=t, seconds=0.1)))
    return _pixels(keyframe(t, frame).jpeg)


def test_ingest_keeps_a_keyframe_every_two_seconds_on_the_fingerprint_clock(guard, loaded_store):
    _, ids = loaded_store
    ref = guard.reference(ids[1])
    assert ref.has_keyframes and ref.to_dict()["has_keyframes"] is True
    frames = guard.reference_keyframes(ref.id)
    assert [k.media_time for k in frames] == pytest.approx(np.arange(0, media.REF_SECONDS, KEYFRAME_INTERVAL), abs=0.05)
    assert {(k.width, k.height) for k in frames} == {(KEYFRAME_WIDTH, 90)}
    assert all(Image.open(io.BytesIO(k.jpeg)).size == (160, 90) for k in frames)
    assert sum(len(k.jpeg) for k in frames) < 20 * 8000, "a few kilobytes each"


def test_the_keyframe_nearest_a_reference_time_shows_that_moment(guard, loaded_store):
    _, ids = loaded_store
    shot = guard.reference_keyframe(ids[1], 10.7)
    assert shot.media_time == pytest.approx(10.0, abs=0.05)
    picture = _pixels(shot.jpeg)
    same, later = _reference_picture(1, shot.media_time), _reference_picture(1, shot.media_time + 12.0)
    assert np.abs(picture - same).mean() < 0.5 * np.abs(picture - later).mean()
    assert guard.reference_keyframe(ids[1], media.REF_SECONDS + 30.0) is None, "nothing that far away"


def test_hash_only_imports_have_no_keyframes_and_removal_takes_them_away(guard, loaded_store, empty_guard,
                                                                          reference_files, tmp_path):
    _, ids = loaded_store
    imported = empty_guard.import_fingerprint(guard.export(ids[3], tmp_path / "ref3.json"))
    assert not imported.has_keyframes and empty_guard.reference_keyframe(imported.id, 4.0) is None
    assert b"jpeg" not in exchange.dumps(guard.tracks(ids[3]), "t").lower(), "exports carry hashes only"
    ingested = empty_guard.ingest(reference_files[3], title="with pictures", source="upload:ref3.mp4")
    assert ingested.has_keyframes and ingested.source == "upload:ref3.mp4"
    empty_guard.remove_reference(ingested.id)
    assert empty_guard.catalog.query("SELECT COUNT(*) FROM keyframes") == [(0,)]
