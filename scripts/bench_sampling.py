#!/usr/bin/env python
"""The sampling rate by measurement: detection, localization, time to detect and cost per fps.

This is the measurement behind ``Settings.sample_fps`` (docs/sampling.md). Synthetic references
(``guard_synth.broadcast``, 320×180, 30 fps, H.264) and pirated copies of them — a stretch of a reference
between unrelated material, transformed — are fingerprinted and matched by
``guard.service.Guard`` at each sampling rate, with the references' ``min_seconds`` at 2 s.
It prints one table per measure:

- (a) whole-file scans: copies found (right reference, offset within 1 s), false segments, and
  the error of the reported start and end of the copied stretch;
- (b) time to detect, as a live monitor sees it: the query's sampled frames are fed in growing
  prefixes, one every 0.25 s of query time, to ``Guard.match``; the latency is the copy time
  (seconds from the copy's first frame) of the first prefix that yields the right segment. A
  live monitor adds its decision interval and transport/decoding delay on top;
- (c) fingerprinting cost: ``Guard.fingerprint`` of each reference against a plain decode of
  every frame (``guard.decode.decode_all_frames``) of the same file, in the same process; and
  the same for one 720p file, where decoding weighs as it does on real broadcasts.

Usage: python scripts/bench_sampling.py [--rates 1,2,3,4,5,6] [--refs 4] [--cost-size 1280x720] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard import decode
from guard_synth import broadcast as synth
from guard.config import Settings
from guard.models import Segment
from guard.service import Guard

SIZE, FPS = (320, 180), 30
REF_SECONDS = 40.0
COPY_SECONDS = 15.0
AFTER_SECONDS = 3.0
REF_PHOTOS = synth.PHOTOS[:8]
OTHER_PHOTOS = synth.PHOTOS[8:]
MIN_SECONDS = 2.0
PREFIX_STEP = 0.25
OFFSET_TOLERANCE = 1.0

FAMILIES = {
    "re-encode 150 kb/s": (lambda f: f, {"bit_rate": 150_000}),
    "scale 50% + logo": (lambda f: synth.logo(synth.scale(f, 0.5), "tr", 0.12), {}),
    "letterbox 4:3": (lambda f: synth.letterbox(f, (320, 240)), {}),
    "crop 5%": (lambda f: synth.crop(f, 0.05), {}),
}


@dataclass
class Copy:
    """A pirated copy file and where the stolen stretch sits in it and in its reference."""

    path: Path
    seed: int
    family: str
    before: float  # copy starts at this query time
    ref_start: float  # ... showing the reference from this time

    @property
    def end(self) -> float:
        return self.before + COPY_SECONDS


def _broadcast(seed: int, seconds: float, start: float = 0.0, photos=REF_PHOTOS, size=SIZE):
    return synth.broadcast(seed, size, FPS, seconds, start=start, photos=photos)


def make_media(work: Path, refs: int) -> tuple[dict[int, Path], list[Copy]]:
    """References 1..refs, and one copy of each per family at seeded random places."""
    rng = np.random.default_rng(2026)
    references = {s: synth.make_video(work / f"ref{s}.mp4", _broadcast(s, REF_SECONDS), FPS)
                  for s in range(1, refs + 1)}
    copies = []
    for seed in references:
        for i, (family, (transform, options)) in enumerate(FAMILIES.items()):
            before = round(float(rng.uniform(4.0, 8.0)), 3)
            ref_start = round(float(rng.uniform(2.0, REF_SECONDS - COPY_SECONDS - 2.0)), 3)
            probe = transform(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))
            size = (probe.shape[1], probe.shape[0])
            parts = [
                _broadcast(seed + 500 + 10 * i, before, photos=OTHER_PHOTOS, size=size),
                (transform(f) for f in _broadcast(seed, COPY_SECONDS, start=ref_start)),
                _broadcast(seed + 700 + 10 * i, AFTER_SECONDS, photos=OTHER_PHOTOS, size=size),
            ]
            path = synth.make_video(work / f"copy{seed}-{i}.mp4", synth.splice(parts), FPS, **options)
            copies.append(Copy(path, seed, family, before, ref_start))
    return references, copies


def right_segments(segments: list[Segment], copy: Copy, ref_id: int) -> list[Segment]:
    """Segments naming the copy's reference at the right alignment and overlapping the copy."""
    true_offset = copy.ref_start - copy.before
    return [s for s in segments if s.reference_id == ref_id and abs(s.offset - true_offset) <= OFFSET_TOLERANCE
            and s.query_end > copy.before and s.query_start < copy.end]


def time_to_detect(guard: Guard, times: np.ndarray, codes: np.ndarray, copy: Copy, ref_id: int) -> float:
    """Copy seconds until a growing prefix of the query first yields the right segment (inf: never)."""
    last = -1
    for seen in np.arange(PREFIX_STEP, COPY_SECONDS + 1e-9, PREFIX_STEP):
        k = int(np.searchsorted(times, copy.before + seen, side="right"))
        if k == last:
            continue
        last = k
        if right_segments(guard.match(times[:k], codes[:k]), copy, ref_id):
            return float(seen)
    return float("inf")


def _best_seconds(run, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _q(values: list[float], q: float) -> str:
    """A quantile of latencies or errors; ``inf`` (never detected) counts as the largest value."""
    if not values:
        return "—"
    values = np.asarray(values, dtype=np.float64)
    method = "linear" if np.isfinite(values).all() else "inverted_cdf"
    value = float(np.quantile(values, q, method=method))
    return f"{value:.2f}" if np.isfinite(value) else "never"


def make_cost_file(work: Path, size: tuple[int, int], seconds: float) -> Path:
    """A larger file for the cost measure: at 320×180 decoding is so cheap that per-sample work dominates."""
    return synth.make_video(work / f"cost{size[0]}x{size[1]}.mp4", _broadcast(99, seconds, size=size), FPS)


def bench_rate(fps: float, work: Path, references: dict[int, Path], copies: list[Copy], repeat: int,
               cost_file: Path | None) -> dict:
    """Every measure at one sampling rate."""
    out: dict = {"found": 0, "false": 0, "start": [], "end": [], "latency": [], "by_family": {}}
    with Guard(Settings(home=work / f"home-{fps:g}", sample_fps=fps, job_workers=1)) as guard:
        ref_ids = {seed: guard.ingest(path, min_seconds=MIN_SECONDS).id for seed, path in references.items()}
        for copy in copies:
            fp = guard.fingerprint(copy.path)
            ref_id = ref_ids[copy.seed]
            segments = guard.match(fp.times, fp.codes)
            right = right_segments(segments, copy, ref_id)
            out["false"] += len([s for s in segments if s not in right])
            family = out["by_family"].setdefault(copy.family, {"found": 0, "latency": []})
            if right:
                best = max(right, key=lambda s: min(s.query_end, copy.end) - max(s.query_start, copy.before))
                out["found"] += 1
                family["found"] += 1
                out["start"].append(abs(best.query_start - copy.before))
                out["end"].append(abs(best.query_end - copy.end))
            latency = time_to_detect(guard, fp.times, fp.codes, copy, ref_id)
            out["latency"].append(latency)
            family["latency"].append(latency)
        decode_s = sum(_best_seconds(lambda p=p: decode.decode_all_frames(p), repeat) for p in references.values())
        fingerprint_s = sum(_best_seconds(lambda p=p: guard.fingerprint(p), repeat) for p in references.values())
        if cost_file is not None:
            out["big_decode_s"] = _best_seconds(lambda: decode.decode_all_frames(cost_file), repeat)
            out["big_fingerprint_s"] = _best_seconds(lambda: guard.fingerprint(cost_file), repeat)
    out["decode_s"], out["fingerprint_s"] = decode_s, fingerprint_s
    return out


def tables(results: dict[float, dict], copies: int, refs: int, cost_name: str | None) -> list[str]:
    families = list(FAMILIES)
    a = [f"(a) Whole-file scans of {copies} copies ({COPY_SECONDS:.0f} s stolen, min_seconds {MIN_SECONDS:g} s):", "",
         "| fps | found | false segments | start err p50 (s) | start err max (s) | end err p50 (s) | end err max (s) |",
         "|---:|---:|---:|---:|---:|---:|---:|"]
    b = ["(b) Time to detect: copy seconds until a growing prefix (step 0.25 s) yields the right segment:", "",
         "| fps | detected | p50 (s) | p90 (s) | max (s) | " + " | ".join(f"{f} p50" for f in families) + " |",
         "|---:|---:|---:|---:|---:|" + "---:|" * len(families)]
    c = [f"(c) Cost: fingerprinting {refs} references ({refs} × {REF_SECONDS:.0f} s, {SIZE[0]}×{SIZE[1]} "
         f"{FPS} fps H.264) vs plain decode of every frame, same process, best of runs:", "",
         "| fps | plain decode (s) | fingerprint (s) | fingerprint / decode | "
         + (f"{cost_name}: decode (s) | fingerprint (s) | fingerprint / decode | " if cost_name else "")
         + "codes per media hour |",
         "|---:|---:|---:|---:|" + ("---:|---:|---:|" if cost_name else "") + "---:|"]
    for fps, r in results.items():
        a.append(f"| {fps:g} | {r['found']}/{copies} | {r['false']} | {_q(r['start'], .5)} | {_q(r['start'], 1)} "
                 f"| {_q(r['end'], .5)} | {_q(r['end'], 1)} |")
        lat = r["latency"]
        per_family = [_q(r["by_family"][f]["latency"], .5) for f in families]
        b.append(f"| {fps:g} | {sum(np.isfinite(lat))}/{copies} | {_q(lat, .5)} | {_q(lat, .9)} | {_q(lat, 1)} | "
                 + " | ".join(per_family) + " |")
        big = (f"{r['big_decode_s']:.2f} | {r['big_fingerprint_s']:.2f} | "
               f"{r['big_fingerprint_s'] / r['big_decode_s']:.2f} | ") if cost_name else ""
        c.append(f"| {fps:g} | {r['decode_s']:.2f} | {r['fingerprint_s']:.2f} | "
                 f"{r['fingerprint_s'] / r['decode_s']:.2f} | {big}{3600 * fps:,.0f} |")
    return [*a, "", *b, "", *c]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,2,3,4,5,6")
    parser.add_argument("--refs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cost measurement (best kept)")
    parser.add_argument("--cost-size", default="1280x720", help="also time a file of this size ('' to skip)")
    parser.add_argument("--cost-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as Markdown here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="guard-bench-sampling-"))
    references, copies = make_media(work, args.refs)
    cost_file, cost_name = None, None
    if args.cost_size:
        size = tuple(int(v) for v in args.cost_size.split("x"))
        cost_file = make_cost_file(work, size, args.cost_seconds)
        cost_name = f"{args.cost_seconds:.0f} s {size[0]}×{size[1]}"
    results = {}
    for fps in [float(r) for r in args.rates.split(",")]:
        started = time.perf_counter()
        results[fps] = bench_rate(fps, work, references, copies, args.repeat, cost_file)
        print(f"{fps:g} fps done in {time.perf_counter() - started:.0f} s", flush=True)
    text = "\n".join(tables(results, len(copies), len(references), cost_name))
    print()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
