#!/usr/bin/env python
"""guard beside open audio fingerprinters on the corpus's audio families (issue 12).

    python scripts/compare_audio.py CORPUS_DIR --eval-json results.json [--families audio]
                                    [--negatives 4] [--json compare.json] [--tools fpcalc,audfprint]

The same queries and references as ``scripts/eval.py`` (``CORPUS_DIR/corpus.json``); guard's
figures come from an eval JSON of that corpus. Each tool is run at its standard settings:

- **Chromaprint** (``fpcalc`` from Debian's ``libchromaprint-tools``): raw fingerprints of the
  whole file (``fpcalc -raw -json -length 0 -ignore-errors``), then Chromaprint's own segment matcher
  (``FingerprintMatcher`` of chromaprint 1.4+, re-implemented here in NumPy): the best offset
  from a histogram of the sub-fingerprints' top 12 bits, the bit errors of the aligned 32-bit
  sub-fingerprints smoothed by a Gaussian (σ = 8 items), cut where their gradient peaks, and
  every piece whose mean bit error is under the default threshold (10 of 32 bits) reported as a
  match. One item is 1365 samples at 11025 Hz (0.124 s); a segment's end adds the fingerprint's
  delay (2.6 s), as Chromaprint's own ``GetHashDuration`` does.
- **audfprint** (Dan Ellis's landmark fingerprinter, PyPI fork ``audfprint2``): ``audfprint new``
  of the references, then ``audfprint match --find-time-range`` of each query at the defaults
  (density 20, 5 aligned hashes, the best match only); the time range is its localization.

Counts: *found* = a reported match names the right reference and overlaps the copy (eval's rule);
*localized* = found with IoU ≥ 0.8 (issue 12's audio target); *false* = matches naming another
reference or lying outside the copy, and matches on negatives. The script installs nothing: a
missing tool is reported with its install line, and its columns read n/a.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_corpus  # noqa: E402
from eval import Detection, score_query  # noqa: E402

LOCALIZED_IOU = 0.8

INSTALL = {
    "fpcalc": "apt-get update && apt-get install -y libchromaprint-tools",
    "audfprint": "python -m venv /tmp/afpv && /tmp/afpv/bin/pip install audfprint2  "
                 "(then --audfprint /tmp/afpv/bin/audfprint; it needs the ffmpeg binary: apt-get install -y ffmpeg)",
}

# Chromaprint's default algorithm (TEST2) and matcher constants.
CP_SAMPLE_RATE = 11025
CP_FRAME = 4096
CP_HOP = CP_FRAME - (CP_FRAME - CP_FRAME // 3)  # frame overlap is size − size/3: 1365 samples
CP_ITEM_SECONDS = CP_HOP / CP_SAMPLE_RATE
CP_DELAY_SECONDS = ((5 - 1) + (16 - 1)) * CP_HOP / CP_SAMPLE_RATE + (CP_FRAME - CP_HOP) / CP_SAMPLE_RATE
CP_ALIGN_BITS = 12
CP_MATCH_THRESHOLD = 10.0  # FingerprintMatcher::kDefaultMatchThreshold (mean bit errors of 32)
CP_GRADIENT_PEAK = 0.15
CP_MERGE_SCORE = 0.7
#: A stricter reading of the same matches (mean bit errors under 5 of 32, BER < 0.16): the
#: default threshold is meant for two fingerprints already thought related (AcoustID looks the
#: candidates up first), so against every reference it also passes unrelated stretches at 7–10.
CP_STRICT_THRESHOLD = 5.0


# --------------------------------------------------------------------------------------------
# Chromaprint


def fpcalc_fingerprint(path: Path, cache: Path, fpcalc: str) -> np.ndarray:
    """The raw Chromaprint fingerprint (uint32 per item) of the whole file, cached as JSON."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    if not cache.is_file():
        # -ignore-errors: fpcalc 1.5.1 with FFmpeg 5 reports the end of the file as a decoding
        # error (exit 3) after printing the whole fingerprint.
        out = subprocess.run([fpcalc, "-raw", "-json", "-length", "0", "-ignore-errors", str(path)],
                             capture_output=True, text=True, check=True, timeout=600)
        cache.write_text(out.stdout)
    return np.asarray(json.loads(cache.read_text())["fingerprint"], dtype=np.int64).astype(np.uint32)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.astype(">u4").view(np.uint8).reshape(-1, 4), axis=1).sum(axis=1)


def _gaussian(x: np.ndarray, sigma: float = 8.0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma, mode="nearest")


def chromaprint_segments(query: np.ndarray, ref: np.ndarray) -> list[tuple[int, int, int, float]]:
    """Chromaprint's ``FingerprintMatcher::Match(query, ref)``: (query item, reference item,
    items, mean bit errors) of each matching segment at the best alignment."""
    if len(query) < 2 or len(ref) < 2:
        return []
    shift = 32 - CP_ALIGN_BITS
    qk, rk = query >> shift, ref >> shift
    order = np.argsort(rk, kind="stable")
    rs = rk[order]
    lo, hi = np.searchsorted(rs, qk, "left"), np.searchsorted(rs, qk, "right")
    histogram = np.zeros(len(query) + len(ref), np.int64)
    for i in np.flatnonzero(hi > lo):
        np.add.at(histogram, i + len(ref) - order[lo[i]:hi[i]], 1)
    left = np.concatenate([[True], histogram[1:] >= histogram[:-1]])
    right = np.concatenate([histogram[:-1] >= histogram[1:], [True]])
    peaks = np.flatnonzero((histogram > 1) & left & right)
    if len(peaks) == 0:
        return []
    best = max(peaks, key=lambda i: (histogram[i], i))  # the C++ sorts (count, index) descending
    diff = int(best) - len(ref)
    q0, r0 = max(diff, 0), max(-diff, 0)
    size = min(len(query) - q0, len(ref) - r0)
    bits = _popcount(query[q0:q0 + size] ^ ref[r0:r0 + size]).astype(np.float64)
    gradient = np.abs(np.gradient(_gaussian(bits))) if size > 1 else np.zeros(size)
    cuts: list[int] = []
    for i in range(1, size - 1):
        g = gradient[i]
        if g > CP_GRADIENT_PEAK and g >= gradient[i - 1] and g >= gradient[i + 1]:
            if not cuts or cuts[-1] + 1 < i:
                cuts.append(i)
    cuts.append(size)
    segments: list[list] = []
    begin = 0
    for end in cuts:
        score = float(bits[begin:end].mean())
        if score < CP_MATCH_THRESHOLD:
            if segments and abs(segments[-1][3] - score) < CP_MERGE_SCORE:
                s = segments[-1]  # merged (Segment::merged): mean score weighted by length
                s[3] = (s[3] * s[2] + score * (end - begin)) / (s[2] + end - begin)
                s[2] = q0 + end - s[0]
            else:
                segments.append([q0 + begin, r0 + begin, end - begin, score])
        begin = end
    return [tuple(s) for s in segments]  # type: ignore[misc]


def run_chromaprint(manifest: dict, folder: Path, queries: list[dict], negatives: list[dict],
                    fpcalc: str) -> dict:
    """Detections of every query and negative against every reference."""
    cache = folder / "compare-cache" / "fpcalc"
    started = time.perf_counter()
    refs = {r["id"]: fpcalc_fingerprint(folder / r["file"], cache / (Path(r["file"]).stem + ".json"), fpcalc)
            for r in manifest["references"]}

    def detect(spec: dict) -> list[Detection]:
        fp = fpcalc_fingerprint(folder / spec["file"], cache / (Path(spec["file"]).stem + ".json"), fpcalc)
        out = []
        for ref_id, ref in refs.items():
            for q_item, r_item, items, score in chromaprint_segments(fp, ref):
                start = q_item * CP_ITEM_SECONDS
                out.append(Detection(ref_id, round(start, 3), round(start + items * CP_ITEM_SECONDS
                                                                     + CP_DELAY_SECONDS, 3),
                                     round(r_item * CP_ITEM_SECONDS, 3), 1.0, round(score, 2)))
        return out

    rows = [score_query(q, detect(q)) for q in queries]
    negs = [{"id": n["id"], "detections": [d.__dict__ for d in detect(n)]} for n in negatives]
    return {"queries": rows, "negatives": negs, "seconds": round(time.perf_counter() - started, 1)}


def stricter(result: dict, queries: list[dict], threshold: float) -> dict:
    """The same Chromaprint matches, keeping those whose mean bit errors are under ``threshold``."""
    def keep(dets: list[dict]) -> list[Detection]:
        return [Detection(**d) for d in dets if d["score"] < threshold]

    rows = [score_query(q, keep(r["detections"])) for q, r in zip(queries, result["queries"])]
    negs = [{"id": n["id"], "detections": [d.__dict__ for d in keep(n["detections"])]} for n in result["negatives"]]
    return {"queries": rows, "negatives": negs, "seconds": result["seconds"]}


# --------------------------------------------------------------------------------------------
# audfprint

_MATCHED = re.compile(r"Matched\s+([\d.]+) s starting at\s+([\d.]+) s in (.+?) to time\s+([\d.]+) s in (.+?) with")


def run_audfprint(manifest: dict, folder: Path, queries: list[dict], negatives: list[dict],
                  audfprint: str) -> dict:
    """``audfprint new`` of the references, ``audfprint match -R`` of each query and negative."""
    started = time.perf_counter()
    names = {str(folder / r["file"]): r["id"] for r in manifest["references"]}
    with tempfile.TemporaryDirectory(prefix="audfprint-") as work:
        db = os.path.join(work, "refs.pklz")
        # Options go before the command: its argparse takes no option after the file list starts.
        subprocess.run([audfprint, "-d", db, "new", *names], check=True, capture_output=True, text=True,
                       timeout=3600)
        files = [str(folder / s["file"]) for s in [*queries, *negatives]]
        out = subprocess.run([audfprint, "-d", db, "-R", "--verbose", "match", *files], check=True,
                             capture_output=True, text=True, timeout=3600)
    found: dict[str, list[Detection]] = {f: [] for f in files}
    for line in (out.stdout + "\n" + out.stderr).splitlines():
        m = _MATCHED.search(line)
        if m and m.group(3) in found:
            length, q_start, ref_time = float(m.group(1)), float(m.group(2)), float(m.group(4))
            found[m.group(3)].append(Detection(names.get(m.group(5), m.group(5)), q_start, q_start + length,
                                               ref_time))
    rows = [score_query(q, found[str(folder / q["file"])]) for q in queries]
    negs = [{"id": n["id"], "detections": [d.__dict__ for d in found[str(folder / n["file"])]]}
            for n in negatives]
    return {"queries": rows, "negatives": negs, "seconds": round(time.perf_counter() - started, 1)}


# --------------------------------------------------------------------------------------------
# Table


def family_figures(rows: list[dict], family: str) -> dict:
    """found, localized (IoU ≥ 0.8) and false matches of one family's rows."""
    mine = [r for r in rows if r["family"] == family]
    return {"queries": len(mine), "found": sum(r["found"] for r in mine),
            "localized": sum(r["found"] and r["iou"] >= LOCALIZED_IOU for r in mine),
            "false": sum(r["false"] for r in mine),
            "iou": round(float(np.mean([r["iou"] for r in mine if r["found"]])), 3)
            if any(r["found"] for r in mine) else None}


def table(families: list[str], results: dict[str, dict | None], negatives: list[dict]) -> str:
    """Markdown: per family, each tool's found / localized / false; then negatives."""
    tools = list(results)
    head = "| family | queries | " + " | ".join(f"{t} found | {t} localized | {t} false" for t in tools) + " |"
    lines = [head, "|---|---:|" + "---:|" * (3 * len(tools))]
    for family in families:
        cells = []
        count = None
        for t in tools:
            r = results[t]
            if r is None:
                cells += ["n/a"] * 3
                continue
            f = family_figures(r["queries"], family)
            count = f["queries"]
            cells += [f"{f['found']}/{f['queries']}", f"{f['localized']}/{f['queries']}", str(f["false"])]
        lines.append(f"| {family} | {count if count is not None else '?'} | " + " | ".join(cells) + " |")
    hours = sum(n["duration"] for n in negatives) / 3600
    cells = []
    for t in tools:
        r = results[t]
        cells += ["", "", "n/a" if r is None else str(sum(len(n["detections"]) for n in r["negatives"]))]
    lines.append(f"| negatives ({len(negatives)} files, {hours:.2f} h): false matches | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def guard_from_eval(report: dict, queries: list[dict], negatives: list[dict]) -> dict | None:
    """guard's rows for these queries and negatives from an eval JSON (None if any is missing)."""
    rows = {r["id"]: r for r in report["guard"]["queries"]}
    negs = {n["id"]: n for n in report["guard"]["negatives"]}
    if any(q["id"] not in rows for q in queries) or any(n["id"] not in negs for n in negatives):
        return None
    return {"queries": [rows[q["id"]] for q in queries], "negatives": [negs[n["id"]] for n in negatives],
            "seconds": None}


def _version(path: str, key: str) -> str:
    flag = "-version" if key == "fpcalc" else "--version"
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "version unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "version unknown"


def _tool(name: str, given: str | None) -> str | None:
    path = given or shutil.which(name)
    return path if path and (os.path.isfile(path) or shutil.which(path)) else None


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the corpus folder (corpus.json and its files)")
    parser.add_argument("--eval-json", type=Path, required=True, help="scripts/eval.py's JSON on this corpus")
    parser.add_argument("--families", default="audio", help="comma-separated; 'audio' = every audio family")
    parser.add_argument("--negatives", type=int, default=None,
                        help="the first N negatives (default: the ones the eval JSON scored)")
    parser.add_argument("--tools", default="fpcalc,audfprint")
    parser.add_argument("--fpcalc", default=None, help="path of fpcalc (default: on PATH)")
    parser.add_argument("--audfprint", default=None, help="path of the audfprint CLI (default: on PATH)")
    parser.add_argument("--json", type=Path, default=None, help="write the results (for eval.py --audio-compare)")
    args = parser.parse_args(argv)

    manifest = json.loads((args.folder / "corpus.json").read_text())
    report = json.loads(args.eval_json.read_text())
    names = [f.strip() for f in args.families.split(",")]
    families = [f for f in manifest["profile"]["families"]
                if f in (make_corpus.AUDIO_FAMILIES if "audio" in names else ()) or f in names]
    queries = [q for q in manifest["queries"] if q["family"] in families and (args.folder / q["file"]).is_file()]
    scored = [n["id"] for n in report["guard"]["negatives"]]
    negatives = (manifest["negatives"][: args.negatives] if args.negatives is not None
                 else [n for n in manifest["negatives"] if n["id"] in scored])
    negatives = [n for n in negatives if (args.folder / n["file"]).is_file()]
    families = [f for f in families if any(q["family"] == f for q in queries)]

    results: dict[str, dict | None] = {"guard": guard_from_eval(report, queries, negatives)}
    notes = []
    if results["guard"] is None:
        notes.append("- guard: the eval JSON lacks some of these queries or negatives: its columns read n/a.")
    runners = {"fpcalc": ("Chromaprint", run_chromaprint), "audfprint": ("audfprint", run_audfprint)}
    for key in [t.strip() for t in args.tools.split(",") if t.strip()]:
        label, run = runners[key]
        path = _tool(key, getattr(args, key))
        if path is None:
            results[label] = None
            notes.append(f"- {label}: `{key}` not found; install with `{INSTALL[key]}`.")
            print(f"{label}: {key} not found; install with: {INSTALL[key]}", file=sys.stderr)
            continue
        results[label] = run(manifest, args.folder, queries, negatives, path)
        notes.append(f"- {label} ({_version(path, key)}): `{path}`, {results[label]['seconds']} s for {len(queries)} queries and "
                     f"{len(negatives)} negatives against {len(manifest['references'])} references"
                     + (" (fingerprints cached in CORPUS/compare-cache)." if key == "fpcalc" else "."))
        if key == "fpcalc":
            strict = f"Chromaprint < {CP_STRICT_THRESHOLD:g} bits"
            results[strict] = stricter(results[label], queries, CP_STRICT_THRESHOLD)
            notes.append(f"- {strict}: the same matches, only those under {CP_STRICT_THRESHOLD:g} mean bit "
                         f"errors (default {CP_MATCH_THRESHOLD:g}): unrelated audio scored 7–10 here.")
    text = table(families, results, negatives)
    print(text)
    print("\n".join(notes))
    if args.json:
        args.json.write_text(json.dumps({
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "families": families, "table": text, "notes": notes,
            "results": {k: (None if v is None else {**v, "families": {f: family_figures(v["queries"], f)
                                                                      for f in families}})
                        for k, v in results.items()},
        }, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
