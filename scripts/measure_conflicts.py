#!/usr/bin/env python
"""How much closer one owner's version of shared footage is than another's, against look-alikes.

Two rights holders can register the same footage: the league's feed and a broadcaster's
version of it (its logo, its ticker, its own encode). A pirate copy of either matches both,
one alignment a few bits closer. A look-alike (another programme showing the same photo, shot
differently) also matches, further off. The matcher keeps a weaker segment of *another owner*
over the same query span when its mean distance there is within ``conflict_margin`` bits of
the closer one (see :func:`guard.match.distinct_segments`); this script measures both gaps.

For several seeds it registers a programme as owner ``league`` and its broadcaster version as
owner ``broadcaster``, scans pirate copies of each (re-encode, scale + logo, crop, letterbox),
and prints the mean-distance gap between the two owners' alignments over the shared span. The
look-alike gap comes from photo pans of two seeds that show the same photos.

    python scripts/measure_conflicts.py [--seeds 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from guard.config import MatchSettings, Settings
from guard.match import aligned_distances
from guard.service import Guard
from guard_synth import broadcast as synth

SIZE, FPS, SECONDS = (320, 180), 10, 30.0

PIRATES = {
    "re-encode": lambda f, t: f,
    "scale 50% + logo": lambda f, t: synth.logo(synth.resize(synth.scale(f, 0.5), SIZE), "tl", seed=9),
    "crop 10%": lambda f, t: synth.resize(synth.crop(f, 0.1), SIZE),
    "letterbox": lambda f, t: synth.letterbox(f, (320, 240)),
}


def broadcaster(frame: np.ndarray, t: float) -> np.ndarray:
    """The broadcaster's version of the league feed: its logo and its ticker."""
    return synth.ticker(synth.logo(frame, "tr", 0.1, seed=3), t, seed=4)


def _video(folder: Path, name: str, frames, bit_rate: int | None = None) -> Path:
    return synth.make_video(folder / f"{name}.mp4", frames, FPS, bit_rate=bit_rate)


def _transformed(style: str, seed: int, change, start: float = 0.0, seconds: float = SECONDS):
    times = np.arange(0.0, seconds, 1.0 / FPS) + start
    for t, frame in zip(times, synth.frames_at(style, seed, SIZE, times)):
        yield change(frame, t)


def rival_pairs(guard: Guard, path: Path) -> list[dict]:
    """Pairs of segments of different references restating one query span (more than half of
    the shorter): the mean-distance gap over the shared span, and each segment's figures."""
    fp = guard.fingerprint(path, overlays=True)
    segments = guard.match(fp.times, fp.codes, fp.masked)
    refs = guard.index.refs
    pairs = []
    for i, a in enumerate(segments):
        for b in segments[i + 1:]:
            inter = min(a.query_end, b.query_end) - max(a.query_start, b.query_start)
            if a.reference_id == b.reference_id or inter <= 0.5 * min(a.duration, b.duration):
                continue
            shared = (fp.times >= max(a.query_start, b.query_start)) & (fp.times < min(a.query_end, b.query_end))
            means = [aligned_distances(fp.times[shared], fp.codes[shared], refs[s.reference_id],
                                       s.reference_start - s.rate * s.query_start, s.rate, 0.3)[0].mean()
                     for s in (a, b)]
            near, far = (a, b) if means[0] <= means[1] else (b, a)
            pairs.append({"gap": abs(means[0] - means[1]), "cover": inter / near.duration,
                          "near": near, "far": far})
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    keep_all = MatchSettings(rival_margin=1e6)  # no rival dropped: every pair is measured
    versions: dict[str, list[dict]] = {name: [] for name in PIRATES}
    look_alike: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        media = Path(folder)
        for seed in range(args.seeds):
            with Guard(Settings(home=media / f"store{seed}", match=keep_all)) as guard:
                feed = _video(media, f"feed{seed}", _transformed("broadcast", seed, lambda f, t: f))
                version = _video(media, f"version{seed}", _transformed("broadcast", seed, broadcaster), 400_000)
                guard.ingest(feed, title="league feed", owner="league")
                guard.ingest(version, title="broadcaster version", owner="broadcaster")
                for name, pirate in PIRATES.items():
                    copy = _video(media, f"copy{seed}", _transformed("broadcast", seed, pirate, 5.0, 20.0), 300_000)
                    versions[name] += rival_pairs(guard, copy)
            with Guard(Settings(home=media / f"looks{seed}", match=keep_all)) as guard:
                for k in (0, 1):
                    guard.ingest(_video(media, f"pan{seed}{k}", synth.photo_pan(100 + 2 * seed + k, SIZE, FPS, SECONDS,
                                                                               photo="astronaut")),
                                 title=f"pan {k}", owner=f"owner{k}")
                query = _video(media, f"q{seed}", synth.photo_pan(100 + 2 * seed, SIZE, FPS, SECONDS,
                                                                  photo="astronaut"), 300_000)
                look_alike += rival_pairs(guard, query)
    table([*((f"two versions of the footage, pirate: {k}", v) for k, v in versions.items()),
           ("look-alike (same photo, another pan)", look_alike)])


def table(rows: list[tuple[str, list[dict]]]) -> None:
    """Print the pairs' figures per kind of pair."""
    print("| pair over one query span | cases | gap (bits) min / median / max | far segment's share of the "
          "near one's span | far score / near score |")
    print("|---|---:|---:|---:|---:|")
    for name, pairs in rows:
        if not pairs:
            print(f"| {name} | 0 | — | — | — |")
            continue
        gaps = [p["gap"] for p in pairs]
        covers = [p["far"].duration / p["near"].duration for p in pairs]
        scores = [p["far"].score / max(p["near"].score, 1e-9) for p in pairs]
        print(f"| {name} | {len(pairs)} | {min(gaps):.1f} / {statistics.median(gaps):.1f} / {max(gaps):.1f} "
              f"| {min(covers):.2f}–{max(covers):.2f} | {min(scores):.2f}–{max(scores):.2f} |")


if __name__ == "__main__":
    main()
