"""``guard demo``: a reference broadcast, a pirated copy of part of it, and the scan that finds it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from guard_synth import broadcast as synth
from guard.service import Guard

DEMO_OWNER = "demo"
DEMO_TITLE = "guard demo: league final (synthetic)"
REF_SIZE, REF_FPS, REF_SECONDS = (480, 270), 30, 50.0
COPY_FROM, COPY_SECONDS = 18.0, 22.0
PIRATE_FPS = 25
BEFORE, AFTER = 12.0, 8.0


def _make_reference(path: Path) -> Path:
    frames = synth.broadcast(2024, REF_SIZE, REF_FPS, REF_SECONDS, photos=synth.PHOTOS[:8])
    audio = synth.audio_track(2024, REF_SECONDS, style="music")
    return synth.make_video(path, frames, REF_FPS, audio=audio)


def _pirate(frame):
    """What a re-streamer does: scale down, box into 4:3, stamp a channel logo."""
    small = synth.scale(frame, 0.5)
    return synth.logo(synth.letterbox(small, (240, 180)), corner="tr", size_fraction=0.14, seed=7)


def _make_copy(path: Path) -> Path:
    size = (240, 180)
    before = synth.shapes(77, size, PIRATE_FPS, BEFORE)
    stolen = synth.broadcast(2024, REF_SIZE, PIRATE_FPS, COPY_SECONDS, start=COPY_FROM, photos=synth.PHOTOS[:8])
    after = synth.concert(78, size, PIRATE_FPS, AFTER)
    frames = synth.splice([before, (_pirate(f) for f in stolen), after])
    return synth.make_video(path, frames, PIRATE_FPS, bit_rate=250_000)


def run_demo(guard: Guard, echo: Callable[[str], None] | None = None) -> dict:
    """Build the demo media under ``<store>/demo``, register the reference once, scan the copy.

    Returns a report: the reference, the expected and the detected segments, and timings.
    """
    say = echo or (lambda _msg: None)
    folder = guard.home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reference_path, copy_path = folder / "reference.mp4", folder / "pirated-copy.mp4"
    if not reference_path.exists():
        say(f"making a {REF_SECONDS:.0f} s reference broadcast → {reference_path}")
        _make_reference(reference_path)
    if not copy_path.exists():
        say(f"making a pirated copy (scaled, letterboxed, logo, 25 fps, 250 kb/s) → {copy_path}")
        _make_copy(copy_path)
    made = time.perf_counter()

    existing = [r for r in guard.references(DEMO_OWNER) if r.title == DEMO_TITLE]
    ref = existing[0] if existing else guard.ingest(
        reference_path, title=DEMO_TITLE, owner=DEMO_OWNER, policy="cut", min_seconds=5.0
    )
    say(f"reference {ref.id} registered: {ref.title} ({ref.duration:.1f} s)")
    ingested = time.perf_counter()
    result = guard.scan(copy_path)
    scanned = time.perf_counter()

    say(f"expected: query {BEFORE:.1f}–{BEFORE + COPY_SECONDS:.1f} s copies reference "
        f"{COPY_FROM:.1f}–{COPY_FROM + COPY_SECONDS:.1f} s")
    for s in result.segments:
        say(f"detected: query {s.query_start:.1f}–{s.query_end:.1f} s copies reference {s.reference_id} "
            f"'{s.reference_title}' {s.reference_start:.1f}–{s.reference_end:.1f} s "
            f"(matched {s.matched_fraction:.0%}, score {s.score:.2f})")
    if not result.segments:
        say("detected: nothing (this is a bug: please report it)")
    timings = {"make_media_s": made - started, "ingest_s": ingested - made, "scan_s": scanned - ingested}
    say("timings: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    return {
        "reference": ref.to_dict(),
        "expected": {"query_start": BEFORE, "query_end": BEFORE + COPY_SECONDS,
                     "reference_start": COPY_FROM, "reference_end": COPY_FROM + COPY_SECONDS},
        "found": bool(result.segments),
        "scan": result.to_dict(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
