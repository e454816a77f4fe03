#!/usr/bin/env python
"""Retrain guard's calibrated copy probability (issue 12) on a TRAINING corpus, never the evaluation one.

    python scripts/train_calibration.py TRAIN_DIR [--out guard/data/calibration-v1.json] [--jobs 2]

1. Builds (or reuses) the training corpus: ``scripts/make_corpus.py``'s generator at seed 11
   (:data:`TRAIN_SEED`; the evaluation corpus of ``scripts/eval.py`` is seed 7, refused here)
   with :data:`TRAIN_PROFILE`: every family of the full profile, the audio ones too, smaller.
2. Ingests its references into a fresh store and fingerprints every query and negative once
   (picture and sound), then matches it with calibration off:

   - **shipped**: the matcher's defaults, what guard reports;
   - **relaxed** (:func:`relaxed_settings`): lower gates (matched fraction, uniqueness,
     seed frames, audio votes, mirrored length), so near misses show up as segments. At the
     shipped gates the training corpus has (almost) no false segment, and a model cannot learn
     what a false one looks like from none;
   - **parts**: the picture and sound segments that fused into an ``audio+video`` one, each
     on its own (a copy with its other half muted or altered);
   - **held out** (queries): the relaxed gates with the query's own reference hidden, so
     look-alike references show up.

   The relaxed, parts and held-out segments are the training set; the threshold keeps out
   the false segments of every pass.

3. Labels each segment (1: names the query's reference and overlaps its copied stretch, as
   ``scripts/eval.py`` counts a detection correct; 0: anything else, every segment on a
   negative), fits the logistic regression of :mod:`guard.calibration` (scikit-learn), checks
   it by cross-validation grouped by file (Brier score, log loss, against the placeholder
   score and an isotonic step on top), and picks the decision threshold: the lowest one that
   no segment on the training negatives reaches, whatever the pass (0 false incidents in their
   2 h, relaxed gates included); the tables show what it lets through elsewhere (queries whose
   own reference is hidden: another reference with the same photo or song).
4. Writes the model file and prints the tables (``--reliability`` also the reliability bins).

``--scans FILE`` keeps the labelled segments (JSON) and reuses them on the next run, so a refit
takes seconds. scikit-learn is needed here only (``pip install "scikit-learn>=1.4,<2"``), never at
run time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_corpus  # noqa: E402

from guard import audio_match, calibration  # noqa: E402
from guard.audio_fingerprint import fingerprint_media  # noqa: E402
from guard.config import Settings  # noqa: E402
from guard.index.landmarks import LandmarkHits  # noqa: E402
from guard.models import Segment  # noqa: E402
from guard.search import Searcher, allowed_by_policy, fuse  # noqa: E402
from guard.service import Guard  # noqa: E402

log = logging.getLogger("train_calibration")

#: The evaluation corpus is seed 7 (scripts/eval.py): never train on it.
TRAIN_SEED = 11
EVAL_SEED = 7

#: Every family of the full profile (the audio ones too), smaller and cheaper: 10 references
#: at 640×360 (plus the full profile's references with recorded sound), 3 queries per family,
#: 2 h of negatives. It follows make_corpus's generator: new families join it.
TRAIN_PROFILE = replace(
    make_corpus.FULL, name="train", references=10, ref_seconds=(45.0, 90.0), ref_sizes=((640, 360),),
    render_width=None, queries_per_family=3, copy_seconds=(8.0, 30.0), negative_seconds=7200.0,
)

#: The relaxed pass: gates lowered so near misses become segments (the training set), and
#: copies as short as an owner may ask for (``min_seconds`` 2 s instead of the default 5 s).
RELAXED_MATCH = {"min_matched_fraction": 0.2, "min_uniqueness": 0.25, "min_seed_frames": 2, "mirror_min_factor": 1.0}
RELAXED_AUDIO = audio_match.AudioMatchSettings(min_votes=7)
RELAXED_MIN_SECONDS = 2.0
#: The prefix pass: each query cut this many seconds into its copy (a live window's first looks).
PREFIX_SECONDS = (3.0, 5.0, 8.0)

#: Regularisation strengths tried (inverse, scikit-learn's ``C``); the best cross-validated log loss wins.
C_GRID = (0.1, 1.0, 10.0)
FOLDS = 5


# --------------------------------------------------------------------------------------------
# Scanning


def relaxed_settings(settings: Settings) -> Settings:
    """``settings`` with the relaxed gates and calibration off."""
    return settings.replace(match=settings.match.replace(calibrated=False, **RELAXED_MATCH))


def label(segment: dict, query: dict | None) -> int:
    """1 when ``segment`` names the query's reference and overlaps its copied stretch (what
    scripts/eval.py counts as correct); 0 otherwise, and always on a negative (``query`` None)."""
    if query is None or segment["reference"] != query["reference"]:
        return 0
    truth = query["truth"]
    return int(min(segment["query_end"], truth["query_end"]) > max(segment["query_start"], truth["query_start"]))


def _record(segment: Segment, names: dict[int, str], query: dict | None, bits: int) -> dict:
    out = {"reference": names.get(segment.reference_id, f"db{segment.reference_id}"),
           "query_start": round(segment.query_start, 3), "query_end": round(segment.query_end, 3),
           "modality": segment.modality, "matched_fraction": round(segment.matched_fraction, 4),
           "matched_frames": segment.matched_frames, "mean_distance": round(segment.mean_distance, 3),
           "uniqueness": round(segment.uniqueness, 4), "raw_score": round(segment.score, 4),
           "features": [round(v, 6) for v in calibration.features(segment, bits)]}
    out["label"] = label(out, query)
    return out


def scan_corpus(manifest: dict, folder: Path) -> dict:
    """The passes over the training files: ``{"files": [...], "seconds": ..., "bits": ...}``,
    each file with its kind, family, duration and the labelled segments of each pass:
    ``shipped`` (what guard reports), ``relaxed`` (lower gates), ``parts`` (the picture and
    sound segments that fused into the relaxed pass's ``audio+video`` ones) and, for queries,
    ``held_out`` (relaxed gates with the query's own reference hidden: whatever resembles it
    elsewhere shows up, parts included)."""
    files = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guard-train-") as home:
        settings = Settings(home=Path(home))
        settings = settings.replace(match=settings.match.replace(calibrated=False))
        with Guard(settings) as guard:
            names = {guard.ingest(folder / ref["file"], title=ref["id"]).id: ref["id"]
                     for ref in manifest["references"]}
            ids = {name: ref_id for ref_id, name in names.items()}
            bits = guard.fingerprinter.signal.bits
            work = [("query", q) for q in manifest["queries"]] + [("negative", n) for n in manifest["negatives"]]
            for k, (kind, item) in enumerate(work):
                query = item if kind == "query" else None
                fp, landmarks, audio_end = fingerprint_media(guard.fingerprinter, guard.audio, folder / item["file"],
                                                             query=True)
                short = _View(guard.index, min_seconds=RELAXED_MIN_SECONDS)
                relaxed, parts = _relaxed_match(guard, short, fp, landmarks)
                passes = {"shipped": guard.searcher.match_file(fp, landmarks), "relaxed": relaxed, "parts": parts}
                if query is not None:
                    hidden = _View(guard.index, ids[query["reference"]], RELAXED_MIN_SECONDS)
                    passes["held_out"] = sum(_relaxed_match(guard, hidden, fp, landmarks), [])
                    passes["held_out_shipped"] = _relaxed_match(
                        guard, _View(guard.index, ids[query["reference"]]), fp, landmarks, relaxed=False)[0]
                    passes["prefixes"] = _prefixes(guard, short, fp, landmarks, query, relaxed + parts)
                files.append({"id": item["id"], "kind": kind, "family": item.get("family", "negative"),
                              "duration": max(fp.duration, audio_end),
                              **{key: [_record(s, names, query, bits) for s in found] for key, found in passes.items()}})
                log.info("[%d/%d] %s: %s", k + 1, len(work), item["id"],
                         ", ".join(f"{len(found)} {key}" for key, found in passes.items()))
    return {"files": files, "seconds": round(time.perf_counter() - started, 1), "bits": bits}


def _prefixes(guard: Guard, index, fp, landmarks, query: dict, seen: list[Segment]) -> list[Segment]:
    """The relaxed segments of the query's first seconds into its copy (:data:`PREFIX_SECONDS`):
    short copies, as a live window first sees them, not already in ``seen``."""
    known = {_key(s) for s in seen}
    out: list[Segment] = []
    for seconds in PREFIX_SECONDS:
        end = query["truth"]["query_start"] + seconds
        keep = fp.times < end
        cut = replace(fp, times=fp.times[keep], codes=fp.codes[keep],
                      masked=None if fp.masked is None else fp.masked.take(keep))
        heard = None if landmarks is None else landmarks.take(landmarks.times < end)
        for segment in sum(_relaxed_match(guard, index, cut, heard), []):
            if _key(segment) not in known:
                known.add(_key(segment))
                out.append(segment)
    return out


def _key(segment: Segment) -> tuple:
    return (segment.reference_id, segment.modality, round(segment.query_start, 2), round(segment.query_end, 2))


class _View:
    """The reference index with one reference hidden (what a copy of it meets were it not
    registered) and every reference's ``min_seconds`` replaced, if asked."""

    def __init__(self, index, hidden: int | None = None, min_seconds: float | None = None):
        self.index, self.ref_id, self.min_seconds = index, hidden, min_seconds

    def _shown(self, refs) -> dict:
        return {i: r if self.min_seconds is None else replace(r, min_seconds=self.min_seconds)
                for i, r in refs.items() if i != self.ref_id}

    @property
    def refs(self) -> dict:
        return self._shown(self.index.refs)

    def sync(self) -> None:
        self.index.sync()

    def search(self, codes, radius, max_hits):
        return self.index.search(codes, radius, max_hits)  # vote() skips hits of references not in refs

    def search_masked(self, codes, masks, radius, max_hits):
        return self.index.search_masked(codes, masks, radius, max_hits)

    def audio_refs(self) -> dict:
        return self._shown(self.index.audio_refs())

    def search_landmarks(self, hashes):
        hits = self.index.search_landmarks(hashes)
        keep = hits.ref_ids != self.ref_id
        return LandmarkHits(hits.query_index[keep], hits.ref_ids[keep], hits.ref_times[keep])

    def match_policies(self) -> dict:
        return self.index.match_policies()


def _relaxed_match(guard: Guard, index, fp, landmarks, relaxed: bool = True) -> tuple[list[Segment], list[Segment]]:
    """:meth:`Searcher.match_file` with the relaxed gates (picture and sound; ``relaxed``
    False: the shipped ones) over ``index``, and the picture and sound segments that were fused
    into ``audio+video`` ones (each alone is what a copy with its other half muted or altered
    would give)."""
    settings = relaxed_settings(guard.settings) if relaxed else guard.settings
    searcher = Searcher(index, settings.match, guard.fingerprinter.signal, 1.0 / settings.sample_fps, guard.audio.signal)
    video = searcher.match(fp.times, fp.codes, fp.masked, raw=True) if len(fp) else []
    audio: list[Segment] = []
    if landmarks is not None and len(landmarks):
        index.sync()
        refs = dict(index.audio_refs())
        hits = index.search_landmarks(landmarks.hashes)
        audio = audio_match.find_segments(landmarks, hits, guard.audio.signal.params,
                                          {i: r.title for i, r in refs.items()},
                                          {i: r.min_seconds for i, r in refs.items()},
                                          RELAXED_AUDIO if relaxed else audio_match.AudioMatchSettings())
    segments = fuse(video, audio) if audio else video
    parts = [s for s in video + audio if not any(s is kept for kept in segments)]
    policies = index.match_policies()
    return allowed_by_policy(segments, policies), allowed_by_policy(parts, policies)


# --------------------------------------------------------------------------------------------
# Fitting


#: The passes the model learns from (the shipped pass's segments are among the relaxed ones).
TRAINING_PASSES = ("relaxed", "parts", "held_out", "prefixes")
#: Every pass, for the tables (the threshold keeps out the false segments on negatives of all).
PASSES = ("shipped", "relaxed", "parts", "held_out", "prefixes", "held_out_shipped")


def dataset(scans: dict, keys: tuple[str, ...] = TRAINING_PASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels, file groups and placeholder scores of some passes' segments."""
    rows = [(s["features"], s["label"], k, s["raw_score"]) for k, f in enumerate(scans["files"])
            for key in keys for s in f.get(key, [])]
    if not rows:
        return np.zeros((0, len(calibration.FEATURES))), np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    x, y, groups, raw = zip(*rows)
    return np.asarray(x, float), np.asarray(y, int), np.asarray(groups, int), np.asarray(raw, float)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Logistic regression with every weight ≥ 0: a feature whose weight comes out negative is
    dropped (the most negative first) and the rest fitted again. Returns weights and intercept."""
    from sklearn.linear_model import LogisticRegression

    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    intercept = 0.0
    while active:
        model = LogisticRegression(C=c, max_iter=5000).fit(x[:, active], y)
        weights = model.coef_[0]
        if (weights >= 0).all():
            coef[:] = 0.0
            coef[active] = weights
            intercept = float(model.intercept_[0])
            break
        active.pop(int(np.argmin(weights)))
    else:
        intercept = float(math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6)))
    return coef, intercept


def _predict(coef: np.ndarray, intercept: float, x: np.ndarray) -> np.ndarray:
    return calibration.Calibration(tuple(coef), intercept, 0.5).predict(x)


def _isotonic(p: np.ndarray, y: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, raw: np.ndarray, c: float) -> dict:
    """Out-of-fold predictions (folds by file) of the logistic model, the logistic model with
    an isotonic step fitted on its training folds, and the placeholder score."""
    from sklearn.model_selection import GroupKFold

    folds = min(FOLDS, len(np.unique(groups)))
    logistic, isotonic = np.zeros(len(y)), np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        coef, b = fit_logistic(x[train], y[train], c)
        logistic[test] = _predict(coef, b, x[test])
        isotonic[test] = _isotonic(_predict(coef, b, x[train]), y[train]).predict(logistic[test])
    return {"logistic": logistic, "logistic+isotonic": isotonic, "placeholder score": np.clip(raw, 0, 1)}


def scores(p: np.ndarray, y: np.ndarray) -> dict:
    """Brier score and log loss."""
    from sklearn.metrics import brier_score_loss, log_loss

    q = np.clip(p, 1e-6, 1 - 1e-6)
    return {"brier": round(float(brier_score_loss(y, q)), 4), "log_loss": round(float(log_loss(y, q, labels=[0, 1])), 4)}


# --------------------------------------------------------------------------------------------
# The threshold


def threshold_table(scans: dict, model: calibration.Calibration) -> list[dict]:
    """For candidate thresholds: false segments (negatives, queries) of both passes at or above
    it, and the shipped pass's recall over the training queries."""
    p = _probabilities(scans, model)
    queries = [k for k, f in enumerate(scans["files"]) if f["kind"] == "query"]
    rows = []
    for t in sorted({0.0, *np.round(np.arange(0.05, 1.0, 0.05), 2).tolist(), _lowest_clean(scans, p)}):
        row = {"threshold": t}
        for key in PASSES:
            false_neg = false_q = 0
            for f, probs in zip(scans["files"], p[key]):
                false = sum(1 for s, q in zip(f.get(key, []), probs) if q >= t and not s["label"])
                false_neg += false if f["kind"] == "negative" else 0
                false_q += false if f["kind"] == "query" else 0
            row[f"{key}_false_negatives"], row[f"{key}_false_queries"] = false_neg, false_q
        found = sum(1 for k in queries if any(s["label"] and q >= t for s, q in
                                              zip(scans["files"][k]["shipped"], p["shipped"][k])))
        row["shipped_recall"] = round(found / max(len(queries), 1), 4)
        rows.append(row)
    return rows


def _lowest_clean(scans: dict, p: dict) -> float:
    """The lowest threshold (in steps of 0.01) above the probability of every segment on the
    training negatives, whatever the pass: 0 false incidents on them."""
    worst = max([float(q) for key in p for f, probs in zip(scans["files"], p[key]) if f["kind"] == "negative"
                 for s, q in zip(f.get(key, []), probs) if not s["label"]], default=0.0)
    return round(min(math.floor(worst * 100 + 1) / 100, 1.0), 2)


def _probabilities(scans: dict, model: calibration.Calibration) -> dict[str, list[np.ndarray]]:
    """Each pass's probabilities, file by file."""
    width = len(calibration.FEATURES)
    return {key: [model.predict(np.asarray([s["features"] for s in f.get(key, [])], float).reshape(-1, width))
                  for f in scans["files"]] for key in PASSES}


# --------------------------------------------------------------------------------------------
# Output


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_rows(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def train(scans: dict, manifest: dict) -> tuple[calibration.Calibration, str]:
    """Fit, cross-validate, choose the threshold; the model and the printed report."""
    x, y, groups, raw = dataset(scans)
    if len(set(y.tolist())) < 2:
        raise SystemExit(f"need copies and non-copies to fit: {int(y.sum())} of {len(y)} segments are copies")
    by_c = {c: cross_validate(x, y, groups, raw, c) for c in C_GRID}
    best_c = min(C_GRID, key=lambda c: scores(by_c[c]["logistic"], y)["log_loss"])
    cv = {name: scores(p, y) for name, p in by_c[best_c].items()}
    coef, intercept = fit_logistic(x, y, best_c)
    # Isotonic is kept only if it clearly beats the logistic model out of fold: its flat steps
    # would also tie a fused segment with its parts.
    use_isotonic = cv["logistic+isotonic"]["log_loss"] < 0.9 * cv["logistic"]["log_loss"]
    isotonic = None
    if use_isotonic:
        iso = _isotonic(_predict(coef, intercept, x), y)
        isotonic = (tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_))
    model = calibration.Calibration(tuple(float(c) for c in coef), intercept, 0.5, scans.get("bits", 256), isotonic)
    table = threshold_table(scans, model)
    threshold = _lowest_clean(scans, _probabilities(scans, model))
    chosen = next(r for r in table if r["threshold"] == threshold)
    negative_hours = sum(f["duration"] for f in scans["files"] if f["kind"] == "negative") / 3600
    query_hours = sum(f["duration"] for f in scans["files"] if f["kind"] == "query") / 3600
    info = {
        "false_incident_rate": {
            "rule": "the lowest threshold (0.01 steps) above every segment on the training negatives, at the "
                    "shipped and at relaxed gates (min_seconds 2 s): 0 false incidents in their 2 h",
            "held_out_false_at_threshold": {"relaxed": chosen["held_out_false_queries"],
                                            "shipped": chosen["held_out_shipped_false_queries"]},
            "per_hour_on_training_negatives": 0.0, "negative_hours": round(negative_hours, 2),
            "query_hours": round(query_hours, 2),
            "shipped_recall_on_training_queries": chosen["shipped_recall"],
        },
        "training": {
            "corpus": "scripts/make_corpus.py generator, profile 'train' (scripts/train_calibration.py)",
            "corpus_seed": manifest["seed"], "evaluation_seed_excluded": EVAL_SEED, "commit": _commit(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "queries": len(manifest["queries"]), "negatives": len(manifest["negatives"]),
            "segments": int(len(y)), "copies": int(y.sum()), "C": best_c,
            "dropped_features": [n for n, w in zip(calibration.FEATURES, coef) if w == 0.0],
            "cross_validation": {"folds": min(FOLDS, len(np.unique(groups))), "grouped_by": "file", **cv},
            "isotonic_chosen": use_isotonic,
        },
    }
    model = replace(model, threshold=threshold, info=info)
    report = [
        f"training segments (relaxed gates, own reference held out too): {len(y)}, copies {int(y.sum())}, non-copies {int(len(y) - y.sum())}; "
        f"{len(manifest['queries'])} queries, {negative_hours:.2f} h of negatives; C = {best_c}",
        "",
        markdown_rows(["model (out of fold, grouped by file)", "Brier", "log loss"],
                      [[name, s["brier"], s["log_loss"]] for name, s in cv.items()]),
        "",
        markdown_rows(["feature", "weight"], [[n, round(w, 4)] for n, w in zip(calibration.FEATURES, coef)]
                      + [["(intercept)", round(intercept, 4)]]),
        "",
        markdown_rows(["threshold", "false on negatives (shipped)", "false in queries (shipped)",
                       "false on negatives (relaxed)", "false in queries (relaxed)", "false in queries (parts)",
                       "false in queries (held out)", "false in prefixes", "false in queries (held out, shipped)",
                       "recall (shipped)"],
                      [[r["threshold"], r["shipped_false_negatives"], r["shipped_false_queries"],
                        r["relaxed_false_negatives"], r["relaxed_false_queries"], r["parts_false_queries"],
                        r["held_out_false_queries"], r["prefixes_false_queries"], r["held_out_shipped_false_queries"],
                        r["shipped_recall"]] for r in table]),
        "",
        f"decision threshold {threshold}: {chosen['shipped_false_negatives'] + chosen['relaxed_false_negatives']} false "
        f"on {negative_hours:.2f} h of negatives, recall {chosen['shipped_recall']} on the training queries; "
        f"isotonic {'kept' if use_isotonic else 'not kept'}",
    ]
    return model, "\n".join(report)


def counts_table(scans: dict) -> str:
    """Segments per pass, kind and label."""
    rows = []
    for key in PASSES:
        for kind in ("query", "negative"):
            if key in ("held_out", "parts", "prefixes", "held_out_shipped") and kind == "negative":
                continue
            segs = [s for f in scans["files"] if f["kind"] == kind for s in f.get(key, [])]
            rows.append([key, kind, len(segs), sum(s["label"] for s in segs), sum(1 - s["label"] for s in segs)])
    return markdown_rows(["pass", "files", "segments", "copies", "non-copies"], rows)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="training corpus folder (built or completed first)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--jobs", type=int, default=1, help="corpus render processes")
    parser.add_argument("--out", type=Path, default=Path(calibration.__file__).parent / "data" / calibration.DEFAULT_FILE)
    parser.add_argument("--scans", type=Path, default=None, help="labelled segments JSON: reused when present, "
                        "written otherwise (default: FOLDER/calibration-scans.json)")
    parser.add_argument("--rescan", action="store_true", help="scan again even when the scans file exists")
    parser.add_argument("--reliability", action="store_true", help="also print the out-of-fold reliability bins")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.seed == EVAL_SEED:
        parser.error(f"seed {EVAL_SEED} is the evaluation corpus: never train on it")
    manifest = make_corpus.build(args.folder, TRAIN_PROFILE, args.seed, args.jobs)
    scans_path = args.scans or args.folder / "calibration-scans.json"
    if scans_path.is_file() and not args.rescan:
        scans = json.loads(scans_path.read_text())
    else:
        scans = scan_corpus(manifest, args.folder)
        scans["seed"] = args.seed
        scans_path.write_text(json.dumps(scans))
    if scans.get("seed") != args.seed:
        raise SystemExit(f"{scans_path} holds scans of seed {scans.get('seed')}, not {args.seed}: use --rescan")
    print(counts_table(scans))
    print()
    model, report = train(scans, manifest)
    print(report)
    if args.reliability:
        x, y, groups, raw = dataset(scans)
        p = cross_validate(x, y, groups, raw, model.info["training"]["C"])["logistic"]
        print()
        print(calibration.reliability_markdown(calibration.reliability(p, y)))
    model.save(args.out)
    print(f"\nwrote {args.out} (scans in {scans.get('seconds', 0)} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
