"""The searchable view of the catalog: one index per signal, checked against the running pipeline
(issue 11), and index files written through temporary files of their own, so that two processes
sharing a store never take each other's half-written file or lose their rename (issue 16)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from guard import preprocess
from guard.config import Settings
from guard.errors import FormatError, NotFoundError, StoreError
from guard.index import FaissBinaryIndex, faiss_binary
from guard.models import Fingerprint
from guard.service import Guard
from guard.signals import get_signal

BITS = 256


def _run_together(scripts: list[str], timeout: float = 120) -> None:
    """Start every script in its own interpreter at once; each must exit 0 and print ok."""
    processes = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(s)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for s in scripts]
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            assert process.returncode == 0 and out.strip() == "ok", err[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def test_two_processes_saving_one_index_file_do_not_collide(tmp_path):
    path = tmp_path / "index.faiss"
    writer = """
        import numpy as np
        from pathlib import Path
        from guard.index import FaissBinaryIndex
        index = FaissBinaryIndex({bits})
        index.add(np.arange({n}, dtype=np.int64), np.random.default_rng({n}).integers(0, 256, ({n}, {bits} // 8), dtype=np.uint8))
        for _ in range(200):
            index.save(Path({path!r}))
        print("ok")
    """
    _run_together([writer.format(bits=BITS, n=n, path=str(path)) for n in (3000, 5000)])
    assert len(FaissBinaryIndex.load(path, BITS)) in (3000, 5000)
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"], "no temporary file is left behind"


def test_two_processes_registering_into_one_store_keep_its_index_whole(tmp_path):
    home = tmp_path / "store"
    Guard(Settings(home=home)).close()  # the catalog exists before both writers open it
    writer = """
        import numpy as np
        from pathlib import Path
        from guard.config import Settings
        from guard.models import Fingerprint
        from guard.service import Guard
        rng = np.random.default_rng({seed})
        with Guard(Settings(home=Path({home!r}))) as guard:
            signal = guard.fingerprinter.signal
            for i in range(12):
                fp = Fingerprint(signal=signal.name, signal_version=signal.version, bits=signal.bits,
                                 sample_fps=4.0, duration=10.0, times=np.arange(40) / 4.0,
                                 codes=rng.integers(0, 256, (40, signal.bits // 8), dtype=np.uint8))
                guard.register(fp, title=f"w{seed}-{{i}}", owner="o", source="test")
        print("ok")
    """
    _run_together([writer.format(seed=seed, home=str(home)) for seed in (1, 2)])
    with Guard(Settings(home=home)) as guard:
        assert len(guard.references()) == 24
        assert len(guard.index.index) == 24 * 40
    assert not [p.name for p in home.iterdir() if p.name.endswith(".tmp")], "no temporary file is left behind"


# -- tracks per signal, the pipeline they were made by, the index layout (issue 11) ---------------


def _track(guard, seed: int, signal: str | None = None, frames: int = 40) -> Fingerprint:
    """A track as the guard's fingerprinter makes it (its pipeline), with random codes."""
    known = get_signal(signal) if signal else guard.fingerprinter.signal
    codes = np.random.default_rng(seed).integers(0, 256, (frames, known.bits // 8), dtype=np.uint8)
    return Fingerprint(known.name, known.version, known.bits, 4.0, frames / 4.0, np.arange(frames) / 4.0, codes,
                       pipeline=guard.fingerprinter.pipeline(known))


def _stored_pipeline(home, ref_id: int, change) -> None:
    """Edit the pipeline a reference's tracks record, as another guard version would have written it."""
    db = sqlite3.connect(home / "catalog.sqlite")
    try:
        (raw,) = db.execute("SELECT pipeline FROM tracks WHERE ref_id = ?", (ref_id,)).fetchone()
        pipeline = json.loads(raw)
        change(pipeline)
        db.execute("UPDATE tracks SET pipeline = ? WHERE ref_id = ?", (json.dumps(pipeline), ref_id))
        db.commit()
    finally:
        db.close()


def test_a_store_of_another_preprocessing_version_is_refused_saying_what_to_do(tmp_path, monkeypatch):
    with Guard(Settings(home=tmp_path)) as guard:
        ids = [guard.register(_track(guard, seed), title=f"r{seed}", owner="o", source="test").id for seed in (1, 2)]
    monkeypatch.setattr(preprocess, "PREPROCESS_VERSION", 2)  # a guard whose preprocessing changed
    with pytest.raises(FormatError) as info:
        Guard(Settings(home=tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'catalog.sqlite'}: fingerprints made by another pipeline")
    assert f"references {ids[0]}, {ids[1]}: mhash16 tracks differ (preprocess: 1 recorded, 2 running)" in message
    assert message.endswith("Re-ingest the references from their sources, or import their exports made with "
                            "the matching version.")
    monkeypatch.undo()
    with Guard(Settings(home=tmp_path)) as guard:
        assert len(guard.index) == 80


def test_a_track_of_other_signal_parameters_is_refused_at_open(tmp_path):
    with Guard(Settings(home=tmp_path)) as guard:
        kept = guard.register(_track(guard, 1), title="kept", owner="o", source="test")
        changed = guard.register(_track(guard, 2), title="changed", owner="o", source="test")
    _stored_pipeline(tmp_path, changed.id, lambda p: p["signal"]["params"].update(threshold="mean"))
    with pytest.raises(FormatError, match=rf"reference {changed.id}: mhash16 tracks differ "
                                          r"\(signal.params.threshold: \"mean\" recorded, \"median\" running\)"):
        Guard(Settings(home=tmp_path))
    _stored_pipeline(tmp_path, changed.id, lambda p: p["decoder"].update(grey_size=64, sample_fps=2.0, fast=False))
    with pytest.raises(FormatError) as info:
        Guard(Settings(home=tmp_path))
    assert "decoder.grey_size: 64 recorded, 128 running" in str(info.value)
    assert "sample_fps" not in str(info.value) and "fast" not in str(info.value), "not what shapes a code"
    assert f"reference {kept.id}" not in str(info.value)


def test_a_store_made_with_another_signal_says_which_references_lack_the_running_one(tmp_path):
    with Guard(Settings(home=tmp_path, signal="phash16")) as guard:
        ref = guard.register(_track(guard, 1), title="p", owner="o", source="test")
    with pytest.raises(FormatError, match=rf"reference {ref.id}: no mhash16 track, the signal this guard matches "
                                          r"with \(mhash16 v1\)\. Re-ingest"):
        Guard(Settings(home=tmp_path))
    with Guard(Settings(home=tmp_path, signal="phash16")) as guard:
        assert guard.index.signals() == ["phash16"]


def test_one_index_per_signal_present_and_the_matcher_uses_the_running_ones(tmp_path):
    with Guard(Settings(home=tmp_path)) as guard:
        both = guard.register([_track(guard, 1), _track(guard, 1, "phash16")], title="both", owner="o",
                              source="test")
        only = guard.register(_track(guard, 2), title="video only", owner="o", source="test")
        assert guard.index.signals() == ["mhash16", "phash16"]
        assert len(guard.index.index_for("phash16")) == 40 and set(guard.index.index_for("phash16").refs) == {both.id}
        assert set(guard.index.refs) == {both.id, only.id} and len(guard.index.index) == 80
        with pytest.raises(NotFoundError, match="no reference has a dhash8 track"):
            guard.index.index_for("dhash8")
        fp = _track(guard, 1)
        assert [s.reference_id for s in guard.match(fp.times, fp.codes)] == [both.id]
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith("index")} == {
        "index.faiss", "index.json", "index-phash16.faiss", "index-phash16.json"}
    with Guard(Settings(home=tmp_path)) as guard:  # both indexes load from their files
        assert len(guard.index) == 120
        guard.remove_reference(both.id)
        assert len(guard.index.index_for("phash16")) == 0 and len(guard.index) == 40
    for name in ("index.json", "index-phash16.json"):
        assert json.loads((tmp_path / name).read_text())["generation"] == 3


def test_a_multihash_index_records_its_bit_permutation_and_is_rebuilt_when_it_differs(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(faiss_binary, "MULTIHASH_FROM", 50)
    with Guard(Settings(home=tmp_path)) as guard:
        for seed in (1, 2):
            guard.register(_track(guard, seed), title=f"r{seed}", owner="o", source="test")
    (tmp_path / "index.json").unlink()
    Guard(Settings(home=tmp_path)).close()  # rebuilt from the catalog: multi-hash at this size
    meta = json.loads((tmp_path / "index.json").read_text())
    assert meta["kind"] == "multihash" and meta["permutation"] == faiss_binary.permutation_id(BITS)
    with pytest.raises(StoreError, match="stored under bit permutation 'sha256:0000'"):
        FaissBinaryIndex.load(tmp_path / "index.faiss", BITS, permutation="sha256:0000")
    (tmp_path / "index.json").write_text(json.dumps({**meta, "permutation": "sha256:0000"}))
    with caplog.at_level("INFO"), Guard(Settings(home=tmp_path)) as guard:
        fp = _track(guard, 2)
        assert [s.reference_title for s in guard.match(fp.times, fp.codes)] == ["r2"]
    assert "stored under bit permutation 'sha256:0000'" in caplog.text and "rebuilding" in caplog.text
    assert json.loads((tmp_path / "index.json").read_text())["permutation"] == faiss_binary.permutation_id(BITS)


# -- the audio landmark index (issue 12) -------------------------------------------------------


def _audio_track(seed: int, seconds: float = 12.0):
    from guard.audio_fingerprint import AudioFingerprinter
    from guard_synth.broadcast import audio_track

    fingerprinter = AudioFingerprinter()
    landmarks = fingerprinter.signal.landmarks(audio_track(seed, seconds, 8000, "music"))
    return fingerprinter.track(landmarks, seconds)


def test_the_audio_index_is_saved_reloaded_rebuilt_when_stale_and_forgets_deleted_references(tmp_path):
    home = tmp_path / "home"
    with Guard(Settings(home=home)) as guard:
        first = guard.register([_track(guard, 1), _audio_track(1)], title="one", owner="o", source="t")
        second = guard.register([_track(guard, 2), _audio_track(2)], title="two", owner="o", source="t")
        audio = guard.index.index_for("audio_landmarks")
        both = len(audio)
        assert set(audio.refs) == {first.id, second.id} and both > 500
        meta = json.loads((home / "index-audio_landmarks.json").read_text())
        assert meta["generation"] == guard.reference_repository.generation() and meta["vectors"] == both
    with Guard(Settings(home=home)) as guard:  # loaded from its file
        assert len(guard.index.index_for("audio_landmarks")) == both
        guard.remove_reference(first.id)
        left = len(guard.index.index_for("audio_landmarks"))
        from guard.audio_fingerprint import hashes_of

        gone = hashes_of(_audio_track(1).codes)
        assert 0 < left < both and first.id not in set(guard.index.search_landmarks(gone).ref_ids.tolist())
    # A crash between the catalog's commit and the index's save leaves a stale record: rebuilt.
    meta = json.loads((home / "index-audio_landmarks.json").read_text())
    (home / "index-audio_landmarks.json").write_text(json.dumps({**meta, "generation": meta["generation"] - 1}))
    (home / "index-audio_landmarks.npz").write_bytes(b"damaged")
    with Guard(Settings(home=home)) as guard:
        assert len(guard.index.index_for("audio_landmarks")) == left
        assert set(guard.index.index_for("audio_landmarks").refs) == {second.id}
    assert json.loads((home / "index-audio_landmarks.json").read_text())["generation"] == meta["generation"]
