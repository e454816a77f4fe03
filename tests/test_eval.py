"""The accuracy benchmark's quick mode: corpus determinism, scoring rules, and floors on guard.

The quick run (``scripts/eval.py --quick``) builds a small corpus in a temporary folder and scores
it end to end through ``Guard``; it takes about 2 minutes on 2 busy cores.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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
    assert all(60 <= r["duration"] <= 180 and r["size"][1] in (720, 1080) for r in refs)
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
