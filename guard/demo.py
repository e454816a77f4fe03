"""``guard demo``: a reference broadcast, a pirated copy of part of it, and the scan that finds it.

``guard demo --live`` (:func:`run_live_demo`): a broadcast feed fingerprinted as it airs and a
pirate restream of it, both published live on loopback, and the incident naming the feed.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from guard_synth import broadcast as synth
from guard.config import Settings
from guard.errors import GuardError
from guard.incidents import Incident
from guard.service import Guard
from guard_synth.publish import PacedPublisher, free_port, remux_interleaved, udp_port_bound

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


LIVE_DEMO_TITLE = "guard demo: live league final (synthetic feed)"
LIVE_FEED_SECONDS, LIVE_FPS, LIVE_SIZE = 40.0, 25, (400, 224)
LIVE_DELAY = 8.0
LIVE_TIMEOUT = 40.0


def _make_live_media(folder: Path) -> tuple[Path, Path]:
    """The feed (picture and music) and the pirate's restream of it (scaled, boxed, a logo,
    re-encoded at a low rate), both interleaved MPEG-TS ready to publish at real-time pace."""
    feed, restream = folder / "feed.ts", folder / "restream.ts"
    if feed.exists() and restream.exists():
        return feed, restream
    music = synth.audio_track(2026, LIVE_FEED_SECONDS, style="music")
    frames = synth.broadcast(2026, LIVE_SIZE, LIVE_FPS, LIVE_FEED_SECONDS, photos=synth.PHOTOS[:8])
    synth.make_video(folder / "feed.mp4", frames, LIVE_FPS, audio=music)
    frames = synth.broadcast(2026, LIVE_SIZE, LIVE_FPS, LIVE_FEED_SECONDS, photos=synth.PHOTOS[:8])
    synth.make_video(folder / "restream.mp4", (_pirate(f) for f in frames), LIVE_FPS, audio=music,
                     bit_rate=250_000, audio_bit_rate=64_000)
    for name in ("feed", "restream"):
        remux_interleaved(folder / f"{name}.mp4", folder / f"{name}.ts")
        (folder / f"{name}.mp4").unlink()
    return feed, restream


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def run_live_demo(settings: Settings, echo: Callable[[str], None] | None = None) -> dict:
    """Publish a broadcast feed and, :data:`LIVE_DELAY` s later, a pirate restream of it, both
    over UDP on loopback; fingerprint the feed as it airs (a live reference) while monitoring
    the restream, and report the incident with the restream's delay.

    The demo's store is ``<store>/demo/live/store``, made afresh on each run (loopback
    addresses are allowed there only). Returns a report: the reference, the incident, the
    publishers' real offset and timings.
    """
    say = echo or (lambda _msg: None)
    folder = settings.home / "demo" / "live"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say(f"making a {LIVE_FEED_SECONDS:.0f} s broadcast feed and its pirate restream → {folder}")
    feed_path, restream_path = _make_live_media(folder)
    made = time.perf_counter()
    store = folder / "store"
    shutil.rmtree(store, ignore_errors=True)
    feed_port, pirate_port = free_port("udp"), free_port("udp")
    feed_url, pirate_url = f"udp://127.0.0.1:{feed_port}", f"udp://127.0.0.1:{pirate_port}"
    guard = Guard(settings.replace(home=store, allow_private_addresses=True))
    publishers: list[PacedPublisher] = []
    try:
        ingest = guard.start_live_reference(feed_url, title=LIVE_DEMO_TITLE, owner=DEMO_OWNER, policy="cut",
                                            min_seconds=3.0)
        guard.monitor(pirate_url, stream_id="pirate", account="pirate-channel")
        if not _wait(lambda: udp_port_bound(feed_port) and udp_port_bound(pirate_port), 20.0):
            raise GuardError("the live demo's UDP listeners did not open")
        say(f"live reference {ingest.reference.id} listens on {feed_url}; monitoring the restream on {pirate_url}")
        feed = PacedPublisher(feed_path, feed_url, audio=True).start()
        publishers.append(feed)
        say(f"feed on air; the pirate restreams it (scaled, boxed, a logo, 250 kb/s) {LIVE_DELAY:.0f} s later")
        if not _wait(lambda: feed.started_wall is not None, 10.0):
            raise GuardError(f"the demo feed could not be published: {feed.error}")
        assert feed.started_wall is not None
        time.sleep(max(0.0, feed.started_wall + LIVE_DELAY - time.time()))
        pirate = PacedPublisher(restream_path, pirate_url, audio=True).start()
        publishers.append(pirate)
        found = _wait(lambda: bool(guard.incidents.list(stream_id="pirate")), LIVE_TIMEOUT)
        detected = time.perf_counter()
        incidents = guard.incidents.list(stream_id="pirate")
        offset = (pirate.started_wall or 0.0) - feed.started_wall
        for incident in incidents:
            say(_describe(incident, offset))
        if not found:
            say("incident: none (this is a bug: please report it)")
        reference = guard.end_live_reference(ingest.reference.id)
        say(f"live reference {reference.id} {reference.live_status}: {reference.duration:.1f} s fingerprinted")
    finally:
        for publisher in publishers:
            publisher.stop()
        guard.close()
    timings = {"make_media_s": made - started, "live_s": detected - made}
    say("timings: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in timings.items()))
    return {
        "reference": reference.to_dict(),
        "found": found,
        "incidents": [incident.to_dict() for incident in incidents],
        "publisher_offset_s": round(offset, 3),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


def _describe(incident: Incident, offset: float) -> str:
    aired = time.strftime("%H:%M:%S", time.localtime(incident.aired_at)) if incident.aired_at else "?"
    delay = f"{incident.delay:.1f} s" if incident.delay is not None else "?"
    return (f"incident {incident.id}: stream {incident.stream_id!r} restreams live reference {incident.reference_id} "
            f"'{incident.reference_title}' (aired {aired}), delay {delay} (published {offset:.1f} s later); "
            f"decided {incident.detection_seconds:.1f} s after its first copied frame, policy {incident.policy}")
