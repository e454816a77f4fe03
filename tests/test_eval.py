"""The accuracy benchmark's quick mode: corpus determinism, scoring rules, and floors on guard.

The quick run (``scripts/eval.py --quick``) builds a small corpus in a temporary folder and scores
it end to end through ``Guard``; it takes about 2 minutes on 2 busy cores.
"""

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def _load(name: str, module: str):
    spec = importlib.util.spec_from_file_location(module, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod  # dataclasses look their module up while the class is built
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(SCRIPTS))
    return mod


make_corpus = _load("make_corpus", "guard_bench_make_corpus")
bench = _load("eval", "guard_bench_eval")


# -- corpus -------------------------------------------------------------------------------------


def test_full_corpus_plan_meets_the_issue():
    plan = make_corpus.plan(make_corpus.FULL, 7)
    refs, queries, negatives = plan["references"], plan["queries"], plan["negatives"]
    assert len(refs) >= 20
    # The recording references (after the others) have a small picture: their sound is the point.
    assert all(60 <= r["duration"] <= 180 and r["size"][1] in (720, 1080) for r in refs[:make_corpus.FULL.references])
    assert all(60 <= r["duration"] <= 180 for r in refs)
    assert len({q["family"] for q in queries}) >= 16
    assert all(10 <= q["truth"]["ref_end"] - q["truth"]["ref_start"] <= 40 for q in queries)
    assert sum(n["duration"] for n in negatives) >= 3 * 3600


def test_plan_is_deterministic_and_negatives_never_share_content():
    a, b = make_corpus.plan(make_corpus.QUICK, 11), make_corpus.plan(make_corpus.QUICK, 11)
    assert a == b
    assert make_corpus.plan(make_corpus.QUICK, 12)["references"] != a["references"]
    ref_seeds = {r["seed"] for r in a["references"]}
    other_seeds = {n["seed"] for n in a["negatives"]} | {q["filler_seed"] for q in a["queries"]}
    assert not ref_seeds & other_seeds
    assert all(set(n["photos"]) == set(make_corpus.OTHER_PHOTOS) for n in a["negatives"])
    assert not set(make_corpus.REFERENCE_PHOTOS) & set(make_corpus.OTHER_PHOTOS)


def test_query_truth_spans_fit_inside_query_and_reference():
    plan = make_corpus.plan(make_corpus.FULL, 7)
    refs = {r["id"]: r for r in plan["references"]}
    for q in plan["queries"]:
        t = q["truth"]
        assert 0 < t["query_start"] < t["query_end"] < q["duration"]
        assert 0 <= t["ref_start"] < t["ref_end"] <= refs[q["reference"]]["duration"]
        copied = t["ref_end"] - t["ref_start"]
        assert t["query_end"] - t["query_start"] == pytest.approx(copied / t["rate"], abs=0.01)


# -- audio families (issue 12) ------------------------------------------------------------------


def test_full_plan_has_every_audio_family_with_three_queries_and_their_distortions():
    plan = make_corpus.plan(make_corpus.FULL, 7)
    by_family: dict[str, list[dict]] = {}
    for q in plan["queries"]:
        by_family.setdefault(q["family"], []).append(q)
    for family in make_corpus.AUDIO_FAMILIES:
        assert len(by_family[family]) >= 3 and all(q["audio_only"] for q in by_family[family]), family
    assert {q["truth"]["rate"] for q in by_family["fan_concert"]} == {1.02}
    assert {q["truth"]["rate"] for q in by_family["audio_speed"]} == {1.05, 0.95}
    fan = by_family["fan_concert"][0]["variant"]
    assert (fan["crowd_snr_db"], fan["band_hz"], fan["audio_bit_rate"]) == (5.0, [150.0, 7000.0], 64000)
    assert all(q["variant"]["commentary_snr_db"] == 0.0 for q in by_family["audio_commentary"])
    # Every newer audio family copies a real-recording reference at least once (or its fallback).
    recorded = {r["id"] for r in plan["references"] if "audio" in r}
    assert len(recorded) == make_corpus.FULL.recording_references
    for family in make_corpus.RECORDING_FAMILIES:
        assert any(q["reference"] in recorded and "ref_audio" in q for q in by_family[family]), family


def test_recording_references_and_new_families_move_no_earlier_file():
    plan = make_corpus.plan(make_corpus.FULL, 7)
    before = make_corpus.plan(replace(make_corpus.FULL, recording_references=0), 7)
    old_families = [f for f in make_corpus.FAMILIES if f not in make_corpus.RECORDING_FAMILIES]
    files = {q["file"] for q in plan["queries"]}
    assert all(q["file"] in files for q in before["queries"] if q["family"] in old_families)
    assert [r["file"] for r in plan["references"][:20]] == [r["file"] for r in before["references"]]
    # Negatives keep their picture; every fourth keeps its sound (and file) too.
    kinds = [(n.get("audio") or {}).get("kind") for n in plan["negatives"]]
    assert kinds[:4] == [None, "recorded_music", "commentary", "fan"]
    assert [n["seed"] for n in plan["negatives"]] == [n["seed"] for n in before["negatives"]]


TINY = replace(
    make_corpus.QUICK, name="tiny", references=2, ref_seconds=(16.0, 18.0), ref_sizes=((96, 54),),
    families=make_corpus.RECORDING_FAMILIES, queries_per_family=3, copy_seconds=(6.0, 7.0),
    filler_seconds=(2.0, 3.0), negative_seconds=8.0, negative_file_seconds=2.0, negative_size=(64, 36),
    recording_references=3, recording_ref_size=(96, 54), recording_ref_seconds=(10.0, 12.0),
)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return folder, make_corpus.build(folder, TINY, 7)


def test_tiny_audio_corpus_renders_deterministically_with_sound(tiny_corpus):
    import av

    folder, manifest = tiny_corpus
    assert manifest == {**make_corpus.plan(TINY, 7), "build": manifest["build"],
                        "build_history": manifest["build_history"]}
    assert make_corpus.build(folder, TINY, 7)["build"]["rendered_files"] == 0
    for q in manifest["queries"]:
        with av.open(str(folder / q["file"])) as container:
            stream = container.streams.audio[0]
            assert stream.codec_context.channels == 1 and len(container.streams.video) == 1
            if q["family"] == "fan_concert":
                assert stream.bit_rate <= 72_000
        pcm = make_corpus.query_audio(q)
        assert np.array_equal(pcm, make_corpus.query_audio(q))
        assert len(pcm) == pytest.approx(q["duration"] * q["sample_rate"], abs=q["sample_rate"] * 0.01)
        assert 0.01 < float(np.sqrt(np.mean(pcm ** 2))) and float(np.abs(pcm).max()) <= 0.95 + 1e-6
    # Negatives carry sound of every kind (their scans match it too), their pictures as before.
    assert {(n.get("audio") or {}).get("kind") for n in manifest["negatives"]} == set(make_corpus.NEGATIVE_AUDIO)
    for n in manifest["negatives"]:
        with av.open(str(folder / n["file"])) as container:
            assert len(container.streams.audio) == 1 and len(container.streams.video) == 1


def test_audio_speed_and_commentary_carry_the_reference_sound_only_in_the_copy(tiny_corpus):
    from guard_synth import music

    _, manifest = tiny_corpus
    q = next(q for q in manifest["queries"] if q["family"] == "audio_speed")
    t, sr = q["truth"], q["sample_rate"]
    source = make_corpus.programme_audio(q["ref_style"], q["ref_seed"], t["ref_start"], t["ref_end"] - t["ref_start"],
                                         sr, q.get("ref_audio"))
    start = int(round(t["query_start"] * sr))
    copied = make_corpus.query_audio(q)[start: start + len(source) // 2]
    assert np.allclose(copied, music.change_speed(source, t["rate"])[: len(copied)], atol=1e-5)
    # The streamer talks at equal loudness: what is added over the copy is as loud as the copy.
    q = next(q for q in manifest["queries"] if q["family"] == "audio_commentary")
    plain = make_corpus.query_audio({**q, "variant": {}})
    mixed = make_corpus.query_audio(q)
    a, b = int(round(q["truth"]["query_start"] * sr)), int(round(q["truth"]["query_end"] * sr))
    scale = float(np.dot(mixed[a:b], plain[a:b]) / np.dot(plain[a:b], plain[a:b]))  # fit_level's factor
    assert music.snr_db(plain[a:b], mixed[a:b] / scale - plain[a:b]) == pytest.approx(0.0, abs=1.0)


def test_picture_only_run_drops_the_sound_evidence(tiny_corpus):
    # The tiny corpus' queries copy the reference's sound under another picture: with the
    # references registered by their picture alone, nothing is found and nothing is false.
    folder, manifest = tiny_corpus
    with_sound = bench.run_guard(manifest, folder, certainty=True)
    picture = bench.run_guard(manifest, folder, certainty=False, picture_only=True)
    assert with_sound["overall"]["recall"] > 0
    # A copy in the sound is timed by replaying the sound block by block: each found copy is
    # found again before its end (plus the matcher's gap) and after some of it was heard.
    truths = {q["id"]: q["truth"] for q in manifest["queries"]}
    found = [r for r in with_sound["queries"] if r["found"] and r["family"] in make_corpus.AUDIO_FAMILIES]
    assert found
    for row in found:
        copy = truths[row["id"]]["query_end"] - truths[row["id"]]["query_start"]
        assert 0 < row["time_to_certain"] <= copy + 6.0, row
    assert picture["overall"]["recall"] == 0 and picture["overall"]["false_matches_in_queries"] == 0
    assert picture["settings"]["picture_only"] and not with_sound["settings"]["picture_only"]


def test_eval_targets_and_subsets_cover_the_audio_families():
    assert bench.targets("fan_concert") == (0.95, 0.8) and bench.targets("audio_only") == (0.95, 0.8)
    assert bench.targets("crop") == (0.98, 0.9) and bench.targets("mirror") is None
    families = bench._family_filter("audio,crop", make_corpus.FULL)
    assert families == ["crop", *make_corpus.AUDIO_FAMILIES]
    plan = make_corpus.plan(make_corpus.FULL, 7)
    sub = bench.subset_manifest(plan, families, 2)
    assert {q["family"] for q in sub["queries"]} == set(families) and len(sub["negatives"]) == 2
    # What is rendered for a check is what it scores: every negative asked for, the streamer
    # layouts' included (they come after the programme's).
    everything = bench.subset_manifest(plan, families, len(plan["negatives"]))["negatives"]
    rendered = bench._subset(families, len(plan["negatives"]), plan)
    assert any(n["id"].startswith("neg_streamer") for n in everything)
    assert all(rendered("negative", n) for n in everything)
    assert not bench._subset(families, 2, plan)("negative", plan["negatives"][2])
    rows = [{**bench.score_query(q, [bench.Detection(q["reference"], q["truth"]["query_start"],
                                                      q["truth"]["query_end"], q["truth"]["ref_start"])]),
             "time_to_certain": None} for q in sub["queries"]]
    summary = bench.summarize(sub, rows, [{"id": n["id"], "false": 0} for n in sub["negatives"]])
    assert summary["families"]["fan_concert"]["target_met"] and summary["families"]["fan_concert"]["target_iou"] == 0.8
    # Audio copies must also be found within 10 s of copied sound.
    slow = [{**r, "time_to_certain": 12.0 if r["family"] == "fan_concert" else 4.0} for r in rows]
    slow_summary = bench.summarize(sub, slow, [{"id": n["id"], "false": 0} for n in sub["negatives"]])
    assert not slow_summary["families"]["fan_concert"]["target_met"]
    assert slow_summary["families"]["audio_only"]["target_met"]
    assert summary["overall"]["negative_hours"] == pytest.approx(1200 / 3600, abs=1e-3)


def test_chromaprint_matcher_finds_and_places_a_copied_stretch():
    compare = _load("compare_audio", "guard_bench_compare_audio")
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 2**32, 600, dtype=np.uint64).astype(np.uint32)
    noise = rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.uint32)
    copy = ref[200:380].copy()
    copy ^= (rng.random(len(copy)) < 0.1).astype(np.uint32) << np.uint32(3)  # a few bit errors
    query = np.concatenate([noise[:100], copy, noise[100:]])
    segments = compare.chromaprint_segments(query, ref)
    assert len(segments) == 1
    q_item, r_item, items, score = segments[0]
    assert abs(q_item - 100) <= 8 and abs(r_item - 200) <= 8 and abs(items - 180) <= 16 and score < 3
    assert compare.chromaprint_segments(noise, ref) == []


# -- scoring rules ------------------------------------------------------------------------------


def _query(rate=1.0):
    return {"id": "q", "family": "f", "reference": "ref01",
            "truth": {"query_start": 10.0, "query_end": 30.0, "ref_start": 50.0, "ref_end": 70.0, "rate": rate}}


def test_score_counts_right_reference_overlap_as_found_and_measures_it():
    row = bench.score_query(_query(), [bench.Detection("ref01", 12.0, 30.0, 52.5)])
    assert row["found"] and row["false"] == 0
    assert row["iou"] == pytest.approx(18 / 20)
    assert row["offset_error"] == pytest.approx(0.5)


def test_score_treats_wrong_reference_and_outside_spans_as_false():
    dets = [bench.Detection("ref02", 10.0, 30.0, 50.0), bench.Detection("ref01", 31.0, 40.0, 71.0)]
    row = bench.score_query(_query(), dets)
    assert not row["found"] and row["false"] == 2 and row["iou"] == 0.0


def test_offset_error_follows_the_playback_rate():
    truth_rate = 1.1
    det = bench.Detection("ref01", 10.0, 28.0, 50.0, rate=truth_rate)
    assert bench.score_query(_query(truth_rate), [det])["offset_error"] == pytest.approx(0.0, abs=1e-9)


# -- the quick run, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    out = folder / "report.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "eval.py"), str(folder), "--quick", "--no-vpdq", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {"folder": folder, "stdout": run.stdout, "report": json.loads(out.read_text())}


# Floors and ceilings measured on the quick corpus (seed 7). Session 1 (three engine states:
# pHash, per-frame bars, mhash16): 14/16 overall, mean IoU 0.91–0.93, crop 0.0–0.5,
# brightness 0.5–1.0, 0–6 false segments in queries and 0–8 false incidents in the 10 minutes
# of negatives. Session 2 (copies re-drawn as maximal-scoring spans, rivals resolved by the
# closer alignment, b0e12d0): 14/16, mean IoU 0.97, every family but crop at 1.00 (the quick
# profile's 20 % crop at low resolution leaves no seeds), 0 false segments, 0 false incidents.
# The margins allow one more miss in each family that passed in every state, one more overall,
# and a couple of false matches; tighten them as guard improves (the full-corpus targets are
# recall ≥ 0.98, IoU ≥ 0.9 and zero false incidents).
FAMILY_RECALL_FLOOR = 0.5
PASSING_FAMILIES = ("reencode_300k", "scale_360p", "letterbox_pillarbox", "greyscale_sepia", "logo",
                    "overlay_25pct")
OVERALL_RECALL_FLOOR = 0.8
IOU_FLOOR = 0.9
NEGATIVE_FALSE_INCIDENTS_CEILING = 2
QUERY_FALSE_MATCHES_CEILING = 2


@pytest.mark.slow
def test_quick_recall_floors(quick_report):
    guard = quick_report["report"]["guard"]
    assert guard["overall"]["recall"] >= OVERALL_RECALL_FLOOR
    assert guard["overall"]["iou"] >= IOU_FLOOR
    for family in PASSING_FAMILIES:
        assert guard["families"][family]["recall"] >= FAMILY_RECALL_FLOOR, family


@pytest.mark.slow
def test_quick_false_match_ceilings(quick_report):
    overall = quick_report["report"]["guard"]["overall"]
    assert overall["negative_hours"] == pytest.approx(10 / 60, abs=1e-3)
    assert overall["false_incidents_on_negatives"] <= NEGATIVE_FALSE_INCIDENTS_CEILING
    assert overall["false_matches_in_queries"] <= QUERY_FALSE_MATCHES_CEILING


@pytest.mark.slow
def test_quick_report_prints_every_family_and_says_when_vpdq_is_absent(quick_report):
    report, stdout = quick_report["report"], quick_report["stdout"]
    for family in make_corpus.QUICK.families:
        assert f"| {family} |" in stdout
    assert report["vpdq"] == {"available": False, "reason": "skipped (--no-vpdq)"}
    assert "| n/a |" in stdout
    assert report["guard"]["timings"]["ingest_seconds"] > 0


@pytest.mark.slow
def test_quick_corpus_is_cached(quick_report):
    manifest = make_corpus.build(quick_report["folder"], make_corpus.QUICK, 7)
    assert manifest["build"]["rendered_files"] == 0
    assert manifest["build"]["cached_files"] == 4 + 16 + 2


@pytest.mark.slow
def test_a_run_is_rendered_again_from_its_json(quick_report, tmp_path):
    compare = tmp_path / "compare.json"
    compare.write_text(json.dumps({"date": "today", "table": "| family | side by side |\n|---|---|",
                                   "notes": ["- a tool's note"]}))
    page, again = tmp_path / "page.md", tmp_path / "again.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "eval.py"), str(quick_report["folder"]), "--render",
         str(quick_report["folder"] / "report.json"), "--audio-compare", str(compare), "--json", str(again),
         "--write-doc", str(page)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # Nothing is scored again: the same results table, now with the side-by-side one on the page.
    first_table = quick_report["stdout"].split("\n\nguard scored in")[0]
    assert run.stdout.split("\n\nguard scored in")[0] == first_table
    rendered = json.loads(again.read_text())
    assert rendered["guard"]["queries"] == quick_report["report"]["guard"]["queries"]
    # (the quick corpus has no audio family: the side-by-side table has no section to go in)
    text = page.read_text()
    assert first_table.split("\n\nReliability")[0] in text and "--render results.json --audio-compare" in text
