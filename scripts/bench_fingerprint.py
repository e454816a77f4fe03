#!/usr/bin/env python
"""Fingerprinting throughput against plain decoding of the same files, in one process.

For each generated H.264 file it prints source frames per second for:

- plain PyAV decode of every frame (threaded, no options): the baseline;
- guard fingerprinting (sampling at 4 fps, FFmpeg-side grey scaling, batched hashing) with its
  fast decoder options (skip the loop filter, skip non-reference frames), and without them;
- guard fingerprinting as scans do it, with the still-overlay analysis (block motion at 64×64
  and masked readings) and the region readings (windows and filmed screens, issue 14) on top of
  the fast options;
- per-frame ``imagehash`` on PIL images (every frame converted to RGB, hashed by imagehash).

Each size is measured on three contents: a broadcast filling the frame, the broadcast in a
window of a streamer's layout (webcam, chat, alerts), and on a TV filmed by a phone.

Then the query session's own cost per sampled frame (decoding excluded): file batches of 32
and live batches of one frame, plain readings only and with the still-overlay analysis (whole
query for files, trailing window live).

Then the cost of matching files by their sound too (issue 12): a whole scan (``scan_file``:
decode, fingerprint, search, match) of a 480p30 file with a music soundtrack that is also the
only reference, with audio and without (the same file, its picture only), against plain PyAV
decoding of its video in the same process; the goal is at most 15 % more with audio. Runs
alternate and the median is kept (other processes share the CPU: the load average is printed).
With ``--store HOME --negatives FILE…`` it also times scans of those files (e.g. the accuracy
corpus' 10-minute negatives) against the references of that store, with audio and without.

Then it checks that the fast options leave detection unchanged: the same pirated copy is
scanned with and without them and the localized segments are compared.

Usage: python scripts/bench_fingerprint.py [--seconds 20] [--repeat 3] [--tables speed session audio accuracy]
       [--store HOME --negatives FILE ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from guard import decode
from guard_synth import broadcast as synth
from guard_synth import layouts
from guard.config import Settings
from guard.fingerprint import Fingerprinter, QuerySession
from guard.jobs import scan_file
from guard.service import Guard

FILES = {"720p30 H.264": ((1280, 720), 30), "480p30 H.264": ((854, 480), 30)}
#: What the files show (issue 14): a broadcast filling the frame, the broadcast in a window of a
#: streamer's layout (windows to read every frame), the broadcast on a TV filmed by a phone (a
#: screen to find and rectify). Drawn at 640×360 and scaled to the file's size.
CONTENT = {
    "": None,
    ", streamer layout": lambda: layouts.streamer_layout(0.3, "bl", 5, (640, 360)),
    ", filmed TV": lambda: layouts.camcorded_tv(2, 20, (640, 360)),
}


def _best_rate(frames: int, run, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return frames / best


def _imagehash_rate(path: Path, limit: int) -> float:
    """Decode frames to PIL and hash each with imagehash, the per-frame way."""
    started, count = time.perf_counter(), 0
    for _, rgb in decode.rgb_frames(path, sample_fps=1000.0):
        imagehash.average_hash(Image.fromarray(rgb), hash_size=16, mean=np.median)
        count += 1
        if count >= limit:
            break
    return count / (time.perf_counter() - started)


def _speed_table(work: Path, seconds: float, repeat: int) -> list[str]:
    rows = ["| file | plain decode fps | guard fps (fast) | ratio | guard scan fps (+ overlay readings) | ratio "
            "| guard fps (no options) | ratio | imagehash per frame fps | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fast, full = Fingerprinter("mhash16", 4.0, True), Fingerprinter("mhash16", 4.0, False)
    for (name, (size, fps)), (shown, scene) in [(f, c) for f in FILES.items() for c in CONTENT.items()]:
        if scene is None:
            path = synth.make_video(work / f"{size[1]}p.mp4", synth.broadcast(5, size, fps, seconds), fps)
        else:
            small = layouts.map_frames(scene(), synth.broadcast(5, (640, 360), fps, seconds), fps)
            slug = shown.strip(", ").replace(" ", "-")
            path = synth.make_video(work / f"{size[1]}p-{slug}.mp4", (synth.resize(f, size) for f in small), fps)
        name += shown
        frames = decode.decode_all_frames(path)
        plain = _best_rate(frames, lambda path=path: decode.decode_all_frames(path), repeat)
        guard_fast = _best_rate(frames, lambda path=path: fast.fingerprint_file(path), repeat)
        guard_scan = _best_rate(frames, lambda path=path: fast.fingerprint_file(path, overlays=True), repeat)
        guard_full = _best_rate(frames, lambda path=path: full.fingerprint_file(path), repeat)
        per_frame = _imagehash_rate(path, limit=min(frames, 300))
        rows.append(
            f"| {name}, {frames} frames | {plain:,.0f} | {guard_fast:,.0f} | {guard_fast / plain:.2f}× | "
            f"{guard_scan:,.0f} | {guard_scan / plain:.2f}× | "
            f"{guard_full:,.0f} | {guard_full / plain:.2f}× | {per_frame:,.0f} | {per_frame / plain:.2f}× |"
        )
    return rows


def _session_table(work: Path, repeat: int) -> list[str]:
    """CPU per sampled frame of :class:`QuerySession`, by batch size and overlay analysis."""
    path = work / "720p.mp4"
    batches = list(decode.sample_frames(path))
    times = np.concatenate([b.times for b in batches])
    grey = np.concatenate([b.grey for b in batches])
    signal = Fingerprinter("mhash16").signal
    rows = ["| query session | batch | ms per sampled frame |", "|---|---:|---:|"]
    for overlays, size in ((None, 32), ("file", 32), (None, 1), ("live", 1)):
        best = float("inf")
        for _ in range(repeat):
            session, started = QuerySession(signal, overlays), time.process_time()
            for at in range(0, len(times), size):
                session.add(decode.FrameBatch(times[at:at + size], grey[at:at + size]))
            session.finish()
            best = min(best, time.process_time() - started)
        rows.append(f"| overlays {overlays or 'none'} | {size} | {best / len(times) * 1e3:.2f} |")
    return rows


def _scan_times(ports_by_mode: dict, path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of ``scan_file`` per mode, the modes alternating run by run."""
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in ports_by_mode}
    for _ in range(repeat):
        for mode, ports in ports_by_mode.items():
            wall, cpu = time.perf_counter(), time.process_time()
            scan_file(ports, path)
            runs[mode].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {mode: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
            for mode, got in runs.items()}


def _with_and_without_audio(guard: Guard) -> dict:
    """The scan ports of ``guard`` without audio and with it."""
    ports = guard._job_ports
    return {"picture only": ports.__class__(**{**ports.__dict__, "audio": None}), "picture + audio": ports}


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def _audio_table(work: Path, seconds: float, repeat: int) -> list[str]:
    """Whole-scan time of one file with its soundtrack matched too, and without, against plain decoding."""
    size, fps = (854, 480), 30
    path = synth.make_video(work / "audio-480p.mp4", synth.broadcast(6, size, fps, seconds), fps,
                            audio=synth.audio_track(6, seconds, 16000, "music"), sample_rate=16000)
    rows = [f"Scan of a {seconds:.0f} s 480p30 H.264 file with music (AAC), median of {repeat} ({_load()}):", "",
            "| 480p30 file with music | wall s | CPU s | × real time | scan speed / plain decode | cost |",
            "|---|---:|---:|---:|---:|---:|"]
    with Guard(Settings(home=work / "store-audio")) as guard:
        guard.ingest(path, title="reference")
        modes = _with_and_without_audio(guard)
        scan_file(modes["picture + audio"], path)  # warm: index, imports
        plain = []
        timings: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for _ in range(repeat):  # plain decode and the two scans alternate: the load hits each alike
            wall, cpu = time.perf_counter(), time.process_time()
            decode.decode_all_frames(path)
            plain.append((time.perf_counter() - wall, time.process_time() - cpu))
            for mode, got in _scan_times(modes, path, 1).items():
                timings[mode].append(got)
    runs = {"plain PyAV decode (video)": plain, **timings}
    walls = {mode: statistics.median(w for w, _ in got) for mode, got in runs.items()}
    cpus = {mode: statistics.median(c for _, c in got) for mode, got in runs.items()}
    best = {mode: min(c for _, c in got) for mode, got in runs.items()}
    base = walls["plain PyAV decode (video)"]
    for mode in runs:
        cost = f"{walls[mode] / walls['picture only'] - 1:+.0%}" if mode != "plain PyAV decode (video)" else "—"
        rows.append(f"| {mode} | {walls[mode]:.2f} | {cpus[mode]:.2f} | {seconds / walls[mode]:.0f}× | "
                    f"{base / walls[mode]:.2f}× | {cost} |")
    rows += ["", f"scan with audio / scan without: {walls['picture + audio'] / walls['picture only']:.2f} wall, "
             f"{cpus['picture + audio'] / cpus['picture only']:.2f} CPU (medians), "
             f"{best['picture + audio'] / best['picture only']:.2f} CPU (best runs); goal ≤ 1.15"]
    return rows


def _negatives_table(store: Path, files: list[Path], repeat: int) -> list[str]:
    """Scans of long unrelated files against a store's references, with audio and without."""
    rows = [f"Scans against the references of {store}, median of {repeat} ({_load()}):", "",
            "| file | media s | picture only: wall s | CPU s | picture + audio: wall s | CPU s | ratio (wall) | "
            "ratio (CPU) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    totals = {"picture only": [0.0, 0.0], "picture + audio": [0.0, 0.0]}
    media = 0.0
    with Guard(Settings(home=store)) as guard:
        modes = _with_and_without_audio(guard)
        scan_file(modes["picture + audio"], files[0])  # warm: index, imports
        for path in files:
            seconds = decode.probe(path).duration
            media += seconds
            got = _scan_times(modes, path, repeat)
            for mode, (wall, cpu) in got.items():
                totals[mode][0] += wall
                totals[mode][1] += cpu
            off, on = got["picture only"], got["picture + audio"]
            rows.append(f"| {path.name} | {seconds:.0f} | {off[0]:.2f} | {off[1]:.2f} | {on[0]:.2f} | {on[1]:.2f} | "
                        f"{on[0] / off[0]:.2f} | {on[1] / off[1]:.2f} |")
    without, heard = totals["picture only"], totals["picture + audio"]
    rows.append(f"| all ({media / without[0]:.0f}× / {media / heard[0]:.0f}× real time) | {media:.0f} | "
                f"{without[0]:.2f} | {without[1]:.2f} | {heard[0]:.2f} | {heard[1]:.2f} | "
                f"{heard[0] / without[0]:.2f} | {heard[1] / without[1]:.2f} |")
    return rows


def _accuracy_table(work: Path) -> list[str]:
    """Scan the same copies with and without the fast decoder options."""
    size, fps = (1280, 720), 30
    ref = synth.make_video(work / "acc-ref.mp4", synth.broadcast(9, size, fps, 40.0), fps)
    copies = {
        "re-encode 600 kb/s": (lambda f: f, {"bit_rate": 600_000}),
        "scale 50% + logo": (lambda f: synth.logo(synth.scale(f, 0.5), "tr"), {}),
        "letterbox 4:3": (lambda f: synth.letterbox(f, (960, 720)), {}),
    }
    rows = ["| copy (10–30 s of the reference) | options | query span | reference span | matched | mean distance |",
            "|---|---|---|---|---:|---:|"]
    for fast in (True, False):
        settings = Settings(home=work / f"store-{fast}", fast_decode=fast)
        with Guard(settings) as guard:
            guard.ingest(ref, title="reference")
            for name, (transform, options) in copies.items():
                path = work / f"acc-{abs(hash(name))}.mp4"
                if not path.exists():
                    stolen = (transform(f) for f in synth.broadcast(9, size, fps, 20.0, start=10.0))
                    synth.make_video(path, stolen, fps, **options)
                for s in guard.scan(path).segments:
                    rows.append(
                        f"| {name} | {'fast' if fast else 'none'} | {s.query_start:.2f}–{s.query_end:.2f} s | "
                        f"{s.reference_start:.2f}–{s.reference_end:.2f} s | {s.matched_fraction:.0%} | {s.mean_distance:.1f} |"
                    )
    return rows


TABLES = ("speed", "session", "audio", "accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each generated file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best, or median for audio)")
    parser.add_argument("--tables", nargs="*", choices=TABLES, default=list(TABLES), help="which tables to print")
    parser.add_argument("--store", type=Path, help="a store whose references --negatives are scanned against")
    parser.add_argument("--negatives", type=Path, nargs="*", default=[], help="files to scan with and without audio")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="guard-bench-"))
    tables = {
        "speed": lambda: _speed_table(work, args.seconds, args.repeat),
        "session": lambda: _session_table(work, args.repeat),
        "audio": lambda: _audio_table(work, args.seconds, args.repeat),
        "accuracy": lambda: _accuracy_table(work),
    }
    if "session" in args.tables and "speed" not in args.tables:
        raise SystemExit("the session table reads the speed table's 720p file: ask for both")
    for name in args.tables:
        print("\n".join(tables[name]()))
        print()
    if args.negatives:
        if args.store is None:
            raise SystemExit("--negatives needs --store (a store holding the references)")
        print("\n".join(_negatives_table(args.store, args.negatives, args.repeat)))


if __name__ == "__main__":
    main()
