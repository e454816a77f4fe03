#!/usr/bin/env python
"""Distance distributions of same vs different content, per frame signal and transformation.

This is the measurement behind guard's choice of descriptor and of the matcher's two radii
(docs/descriptors.md). For every candidate signal it fingerprints synthetic references and
pirated copies of them (re-encoded through FFmpeg), then prints:

- same content: the distance of each copy frame to the reference frame at the same instant
  (closest within ±0.3 s, as the matcher aligns), as quantiles, in % of the code length;
- different content: all pairs of frames from unrelated videos, low quantiles — how close an
  unrelated frame gets, i.e. what a radius lets through by chance.

Usage: python scripts/measure_descriptors.py [--refs 4] [--seconds 40] [--out docs/descriptors.md]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from guard_synth import broadcast as synth
from guard.fingerprint import Fingerprinter
from guard.match import RefFrames, aligned_distances
from guard.signals import get_signal, hamming

SIGNALS = ["phash8", "phash16", "dhash16", "ahash16", "mhash16"]
SIZE, FPS = (640, 360), 30
REF_PHOTOS = synth.PHOTOS[:8]
OTHER_PHOTOS = synth.PHOTOS[8:]

TRANSFORMS = {
    "re-encode 200 kb/s": (lambda f, t: f, {"bit_rate": 200_000}),
    "scale 50%": (lambda f, t: synth.scale(f, 0.5), {}),
    "letterbox 4:3": (lambda f, t: synth.letterbox(f, (480, 360)), {}),
    "pillarbox 21:9→16:9": (lambda f, t: synth.pillarbox(synth.resize(f, (640, 272)), (640, 360)), {}),
    "crop 5%": (lambda f, t: synth.crop(f, 0.05), {}),
    "greyscale": (lambda f, t: synth.greyscale(f), {}),
    "corner logo": (lambda f, t: synth.logo(f, "tr", 0.12), {}),
    "crop 10% + logo": (lambda f, t: synth.logo(synth.crop(f, 0.10), "br", 0.12), {}),
}


def _render(path: Path, seed: int, seconds: float, transform=None, photos=None, **kw) -> Path:
    frames = synth.broadcast(seed, SIZE, FPS, seconds, photos=photos)
    if transform is not None:
        frames = (transform(f, i / FPS) for i, f in enumerate(frames))
    return synth.make_video(path, frames, FPS, **kw)


def _quantiles(values: np.ndarray, qs) -> list[float]:
    return [float(np.quantile(values, q)) for q in qs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as Markdown here")
    parser.add_argument("--signals", default=",".join(SIGNALS), help="comma-separated signal names")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="guard-descriptors-"))
    refs = [_render(work / f"ref{s}.mp4", s, args.seconds, photos=REF_PHOTOS) for s in range(1, args.refs + 1)]
    others = [_render(work / f"other{s}.mp4", s, args.seconds, photos=OTHER_PHOTOS) for s in range(101, 101 + args.refs)]
    copies = {
        name: [
            _render(work / f"{i}-{j}.mp4", j + 1, args.seconds, fn, photos=REF_PHOTOS, **kw)
            for j in range(args.refs)
        ]
        for i, (name, (fn, kw)) in enumerate(TRANSFORMS.items())
    }

    lines = ["| signal | bits | transformation | same p50 | same p90 | same p99 |",
             "|---|---:|---|---:|---:|---:|"]
    diff_lines = ["| signal | bits | different p0.01% | p0.1% | p1% | min |", "|---|---:|---:|---:|---:|---:|"]
    for name in args.signals.split(","):
        fper = Fingerprinter(get_signal(name), sample_fps=4.0)
        bits = fper.signal.bits
        ref_fps = [fper.fingerprint_file(p) for p in refs]
        for tname, paths in copies.items():
            dists = []
            for ref_fp, path in zip(ref_fps, paths):
                q = fper.fingerprint_file(path)
                ref = RefFrames("", 0.0, ref_fp.times, ref_fp.codes)
                d, _ = aligned_distances(q.times, q.codes, ref, 0.0, 1.0, 0.3)
                dists.append(d[d <= bits])
            pct = 100 * np.concatenate(dists) / bits
            p50, p90, p99 = _quantiles(pct, [0.5, 0.9, 0.99])
            lines.append(f"| {name} | {bits} | {tname} | {p50:.1f}% | {p90:.1f}% | {p99:.1f}% |")
        other_codes = np.concatenate([fper.fingerprint_file(p).codes for p in others])
        ref_codes = np.concatenate([fp.codes for fp in ref_fps])
        pairs = hamming(ref_codes[:, None, :], other_codes[None, :, :]).ravel()
        pct = 100 * pairs / bits
        q1, q2, q3 = _quantiles(pct, [0.0001, 0.001, 0.01])
        diff_lines.append(f"| {name} | {bits} | {q1:.1f}% | {q2:.1f}% | {q3:.1f}% | {pct.min():.1f}% |")

    report = "\n".join(
        ["Same content (copy frame vs reference frame at the same instant), distance in % of bits:", "",
         *lines, "", f"Different content ({args.refs} references × {args.refs} unrelated videos, all frame pairs):", "",
         *diff_lines]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
