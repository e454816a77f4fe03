"""Live reference benchmarks (issue 13): detection latency, appends while querying, storage.
Prints markdown tables.

    python scripts/bench_live_reference.py latency [--runs 4] [--delays 5,30,90] [--protocols udp,rtmp] [--negatives 2]
    python scripts/bench_live_reference.py append [--feeds 1,4,16] [--seconds 30]
    python scripts/bench_live_reference.py all

Latency: for each delay, ``--runs`` broadcast feeds per transport (320×180, 12 fps H.264, 1 s
keyframes) are published on loopback — UDP by PyAV, RTMP by Debian's ffmpeg CLI in listen mode —
and each is ingested live by its own ``guard ingest --live`` process (another process than the
monitors, as an operator runs it; ``--min-seconds 2``). ``delay`` seconds after a feed starts, a
pirate restream of it (a channel logo, scaled to 0.75, re-encoded) starts over the same transport
and this process monitors it. Measured: the restream's first frame (every frame of it is copied)
entering the stream → incident decided, and the incident's reported delay against the real
offset of the two publishers. ``--negatives`` unrelated streams are monitored alongside every
group (false incidents). All runs of one delay play at once.

Append: a store with three file references; this process (the reader, as a monitor's process)
queries it in a loop — ``sync()`` (which takes the chunks the ingests committed since) and a
search of a 24 s window of unrelated frames, what every monitor decision does — first idle, then
while N feeds (picture and music, published by Debian's ffmpeg CLI) are ingested live by N
``guard ingest --live`` processes. Reported: query p50 / p99
(idle and while appending), how far the reader's view trails the feeds (wall clock now minus the
newest aired moment it can match, sampled at every query), the ingests' CPU per aired second,
and disk (catalog growth) and memory (reader RSS growth) per hour of live reference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guard_synth import broadcast as synth  # noqa: E402
from guard.config import LiveSettings, Settings  # noqa: E402
from guard.service import Guard  # noqa: E402
from guard_synth.encode import write_video  # noqa: E402
from guard_synth.publish import remux_interleaved  # noqa: E402
from tests.live_helpers import (  # noqa: E402
    OTHER_STYLES, FFmpegPublisher, PacedPublisher, encode, free_port, reference_frames, udp_port_bound, wait_until,
)

SIZE, FPS = (320, 180), 12
LIVE = dict(stall_timeout=3.0, give_up_after=200.0, reconnect_initial=0.2, reconnect_max=0.5, open_timeout=5.0)
TAIL = 15.0  # seconds of restream after its start: detection must happen within them


def _percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def _fmt(value, unit: str = " s") -> str:
    return "–" if value is None or value != value else f"{value:.2f}{unit}"


def _settings(home: Path) -> Settings:
    return Settings(home=home, allow_private_addresses=True, live=LiveSettings(**LIVE))


class Ingest:
    """``guard ingest --live URL`` in a process of its own."""

    def __init__(self, home: Path, url: str, title: str):
        env = {**os.environ, "GUARD_ALLOW_PRIVATE_ADDRESSES": "1",
               **{f"GUARD_LIVE__{k.upper()}": str(v) for k, v in LIVE.items()}}
        self.log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would block it once full
        self.process = subprocess.Popen(
            [sys.executable, "-m", "guard", "--home", str(home), "ingest", "--live", url, "--title", title,
             "--owner", "league", "--policy", "cut", "--min-seconds", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)

    def cpu(self) -> float:
        """CPU seconds the process used so far."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def end(self) -> str:
        """End the ingest (as Ctrl-C does); returns what it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        return text


def _publisher(protocol: str, source: Path) -> tuple[str, object]:
    """(URL guard pulls, a publisher not yet started)."""
    if protocol == "udp":
        url = f"udp://127.0.0.1:{free_port('udp')}"
        return url, PacedPublisher(source, url)
    if protocol == "rtmp":
        url = f"rtmp://127.0.0.1:{free_port()}/live/feed"
        return url, FFmpegPublisher(source, url, "flv", listen=True)
    raise ValueError(protocol)


def _wait_listening(protocol: str, url: str) -> None:
    if protocol == "udp":
        wait_until(lambda: udp_port_bound(int(url.rsplit(":", 1)[1])), 20)


# -- latency ----------------------------------------------------------------------------------


def _latency_group(folder: Path, delay: float, protocols: list[str], runs: int, negatives: int) -> list[dict]:
    """Every run of one delay at once; one row per run (and per negative stream)."""
    home = folder / f"store-{delay:g}"
    guard = Guard(_settings(home))
    seconds = delay + TAIL + 3.0
    jobs = []
    for protocol in protocols:
        for run in range(runs):
            seed = 1000 + int(delay) * 10 + run + (500 if protocol == "rtmp" else 0)
            feed = encode(folder / f"feed-{seed}.ts", reference_frames(seed, seconds))
            restream = encode(folder / f"restream-{seed}.ts",
                              (synth.logo(synth.resize(f, (240, 136))) for f in reference_frames(seed, seconds)))
            jobs.append({"protocol": protocol, "seed": seed, "feed": feed, "restream": restream})
    # Unrelated streams avoid the photo styles: photo pans of two seeds can show the same photo.
    others = [encode(folder / f"other-{delay:g}-{n}.ts",
                     synth.broadcast(7000 + int(delay) * 10 + n, SIZE, FPS, TAIL + 10.0, styles=OTHER_STYLES))
              for n in range(negatives)]
    ingests: list[Ingest] = []
    publishers: list = []
    try:
        for job in jobs:
            job["feed_url"], job["feed_pub"] = _publisher(job["protocol"], job["feed"])
            job["pirate_url"], job["pirate_pub"] = _publisher(job["protocol"], job["restream"])
            job["stream"] = f"pirate-{job['protocol']}-{job['seed']}"
            ingests.append(Ingest(home, job["feed_url"], f"feed {job['seed']}"))
        # Feeds start once their ingest runs (an RTMP ingest retries every 0.5 s until the
        # publisher listens), so a feed's publisher clock is when guard could first read it.
        assert wait_until(lambda: len([r for r in guard.references() if r.live_status == "live"]) == len(jobs), 60)
        for job in jobs:
            _wait_listening(job["protocol"], job["feed_url"])
            job["feed_pub"].start()
            publishers.append(job["feed_pub"])
        assert wait_until(lambda: all(j["feed_pub"].started_wall is not None for j in jobs), 20)
        start = min(j["feed_pub"].started_wall for j in jobs)
        time.sleep(max(0.0, start + delay - 4.0 - time.time()))
        for job in jobs:  # UDP monitors listen before their publisher starts
            if job["protocol"] == "udp":
                guard.monitor(job["pirate_url"], stream_id=job["stream"], account="pirate")
                _wait_listening("udp", job["pirate_url"])
        negative_ids = []
        for n, other in enumerate(others):
            url, publisher = _publisher("udp", other)
            negative_ids.append(f"other-{delay:g}-{n}")
            guard.monitor(url, stream_id=negative_ids[-1], account="someone")
            _wait_listening("udp", url)
            publishers.append(publisher.start())
        for job in sorted(jobs, key=lambda j: j["feed_pub"].started_wall):
            time.sleep(max(0.0, job["feed_pub"].started_wall + delay - time.time()))
            job["pirate_pub"].start()
            publishers.append(job["pirate_pub"])
            if job["protocol"] == "rtmp":
                guard.monitor(job["pirate_url"], stream_id=job["stream"], account="pirate")
        assert wait_until(lambda: all(j["pirate_pub"].started_wall is not None for j in jobs), 20)
        deadline = max(j["pirate_pub"].started_wall for j in jobs) + TAIL
        wait_until(lambda: all(guard.incidents.list(stream_id=j["stream"]) for j in jobs), deadline - time.time())
        rows = []
        for job in jobs:
            incidents = guard.incidents.list(stream_id=job["stream"])
            row = {"protocol": job["protocol"], "delay": delay, "incidents": len(incidents), "expect": True}
            if incidents:
                first = incidents[0]
                row["to_incident"] = first.decided - job["pirate_pub"].entered_at(0.0)
                offset = job["pirate_pub"].started_wall - job["feed_pub"].started_wall
                row["delay_error"] = (first.delay - offset) if first.delay is not None else float("nan")
                row["named"] = first.reference_title == f"feed {job['seed']}"
            rows.append(row)
        for stream_id in negative_ids:
            rows.append({"protocol": "udp", "delay": delay, "expect": False,
                         "incidents": len(guard.incidents.list(stream_id=stream_id))})
        return rows
    finally:
        for publisher in publishers:
            publisher.stop()
        for ingest in ingests:
            log = ingest.end()
            if os.environ.get("BENCH_DEBUG"):
                print(log[-2000:], file=sys.stderr)
        if os.environ.get("BENCH_DEBUG"):
            for info in guard.streams.list():
                print(info, file=sys.stderr)
            for ref in guard.references():
                print(ref, file=sys.stderr)
        guard.close()


def bench_latency(delays: list[float], protocols: list[str], runs: int, negatives: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-liveref-"))
    rows: list[dict] = []
    try:
        for delay in delays:
            started = time.monotonic()
            group = _latency_group(folder, delay, protocols, runs, negatives)
            rows += group
            found = sum(1 for r in group if "to_incident" in r)
            print(f"delay {delay:g} s: {found} of {sum(r['expect'] for r in group)} detected "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n### Live references: detection latency (first copied frame → incident; min_seconds = 2 s)\n")
    print("| transport | delay | runs | detected, right reference | median | p95 | max | median \\|delay error\\| | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for protocol in protocols:
        for delay in delays:
            group = [r for r in rows if r["expect"] and r["protocol"] == protocol and r["delay"] == delay]
            _latency_row(protocol.upper(), f"{delay:g} s", group)
    _latency_row("all", "", [r for r in rows if r["expect"]])
    negatives = [r for r in rows if not r["expect"]]
    extra = sum(max(0, r["incidents"] - 1) for r in rows if r["expect"])
    print(f"\nFalse incidents: {sum(r['incidents'] for r in negatives)} on {len(negatives)} unrelated streams; "
          f"{extra} extra incidents on the copy streams.")


def _latency_row(name: str, delay: str, group: list[dict]) -> None:
    lat = [r["to_incident"] for r in group if "to_incident" in r and r.get("named")]
    err = [abs(r["delay_error"]) for r in group if "delay_error" in r]
    print(f"| {name} | {delay} | {len(group)} | {len(lat)} | {_fmt(statistics.median(lat) if lat else None)} | "
          f"{_fmt(_percentile(lat, 95))} | {_fmt(max(lat) if lat else None)} | "
          f"{_fmt(statistics.median(err) if err else None)} | {_fmt(max(err) if err else None)} |")


# -- appends while querying -------------------------------------------------------------------


def _stored_bytes(home: Path, ref_ids: list[int]) -> tuple[int, int]:
    """Bytes the catalog holds for these references: (fingerprint tracks and their live
    chunks, keyframe JPEGs)."""
    marks = ",".join("?" * len(ref_ids))
    with contextlib.closing(sqlite3.connect(home / "catalog.sqlite")) as db:
        tracks = sum(db.execute(f"SELECT COALESCE(SUM(length(times) + length(codes)), 0) FROM {table} "
                                f"WHERE ref_id IN ({marks})", ref_ids).fetchone()[0]
                     for table in ("tracks", "track_chunks"))
        pictures = db.execute(f"SELECT COALESCE(SUM(length(jpeg)), 0) FROM keyframes WHERE ref_id IN ({marks})",
                              ref_ids).fetchone()[0]
    return int(tracks), int(pictures)


def _held_bytes(guard: Guard, ref_ids: list[int]) -> int:
    """Bytes of the reader's in-memory arrays for these references: frame times and codes of
    each track, held once by the matcher's view and once more by the index (FAISS codes and an
    id per vector, or the landmark table's hash, id and time per landmark)."""
    total = 0
    for refs in (guard.index.refs, guard.index.audio_refs()):
        for ref_id in ref_ids:
            frames = refs.get(ref_id)
            if frames is not None:
                total += 2 * (frames.times.nbytes + frames.codes.nbytes) + 8 * len(frames.times)
    return total


def _query_loop(guard: Guard, codes: np.ndarray, seconds: float, aired_starts: dict[int, float] | None = None
                ) -> tuple[list[float], list[float]]:
    """Query latencies (s) for ``seconds``, and how far the reader's view of each live reference
    trails the wall clock after each query (s: now minus when its newest matchable frame aired)."""
    latencies: list[float] = []
    trails: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        guard.index.sync()
        guard.searcher.search(codes)
        latencies.append(time.perf_counter() - t0)
        now = time.time()
        for ref_id, aired_start in (aired_starts or {}).items():
            frames = guard.index.refs.get(ref_id)
            if frames is not None and len(frames.times):
                trails.append(now - (aired_start + float(frames.times[-1])))
        time.sleep(0.02)
    return latencies, trails


def bench_append(feed_counts: list[int], seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-append-"))
    try:
        _bench_append(folder, feed_counts, seconds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _bench_append(folder: Path, feed_counts: list[int], seconds: float) -> None:
    home = folder / "store"
    guard = Guard(_settings(home))
    for n in range(3):
        guard.ingest(encode(folder / f"ref-{n}.mp4", reference_frames(300 + n, 60.0)), title=f"file {n}",
                     owner="league")
    codes = guard.fingerprint(encode(folder / "query.mp4", reference_frames(999, 24.0))).codes
    feed_seconds = seconds + 20.0
    feeds = [_feed_with_sound(folder, 400 + n, feed_seconds) for n in range(max(feed_counts))]
    idle, _ = _query_loop(guard, codes, 10.0)
    rows = [{"feeds": 0, "latencies": idle, "trails": [], "cpu": float("nan"), "disk": float("nan"),
             "pictures": float("nan"), "memory": float("nan")}]
    for count in feed_counts:
        rows.append(_append_run(guard, home, feeds[:count], codes, seconds))
    guard.close()

    print("\n### Live references: appends while querying (reader in another process than the ingests)\n")
    print("| live feeds | queries | query p50 | query p99 | p99 vs idle | reader's view behind the feed: median | p95 "
          "| ingest CPU per aired second | catalog per aired hour: fingerprints | keyframes | reader memory per aired hour |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    idle_p99 = _percentile(idle, 99)
    for row in rows:
        lat, trails = row["latencies"], row["trails"]
        print(f"| {row['feeds']} | {len(lat)} | {_percentile(lat, 50) * 1e3:.1f} ms | {_percentile(lat, 99) * 1e3:.1f} ms "
              f"| {_percentile(lat, 99) / idle_p99:.2f}× | {_fmt(_percentile(trails, 50) if trails else None)} | "
              f"{_fmt(_percentile(trails, 95) if trails else None)} | {_fmt(row['cpu'], ' CPU-s')} | "
              f"{_fmt(row['disk'], ' MB')} | {_fmt(row['pictures'], ' MB')} | {_fmt(row['memory'], ' MB')} |")


def _feed_with_sound(folder: Path, seed: int, seconds: float) -> Path:
    """A broadcast feed with music (AAC), picture and sound interleaved as a live encoder sends them."""
    made = write_video(folder / f"feed-{seed}.mp4", reference_frames(seed, seconds), FPS,
                       audio=synth.audio_track(seed, seconds, 16000, "music"),
                       options={"preset": "veryfast", "tune": "zerolatency", "g": str(FPS)})
    return remux_interleaved(made, folder / f"feed-{seed}.ts")


def _append_run(guard: Guard, home: Path, feeds: list[Path], codes: np.ndarray, seconds: float) -> dict:
    ingests, publishers = [], []
    before = {r.id for r in guard.references()}
    try:
        urls = [f"udp://127.0.0.1:{free_port('udp')}" for _ in feeds]
        ingests = [Ingest(home, url, f"live {n}") for n, url in enumerate(urls)]
        for url, feed in zip(urls, feeds):
            _wait_listening("udp", url)
            # ffmpeg publishes from processes of its own: publisher threads here would share the
            # reader's interpreter lock and slow its queries down themselves
            publishers.append(FFmpegPublisher(feed, url + "?pkt_size=1316", "mpegts").start())

        def airing() -> list:
            return [r for r in guard.references() if r.id not in before and r.aired_start is not None]

        wait_until(lambda: len(airing()) == len(feeds), 30)
        time.sleep(3.0)  # past the ingests' start-up
        live = {r.id: r.aired_start for r in airing()}
        cpu0, aired0 = sum(i.cpu() for i in ingests), _aired(guard, live)
        latencies, trails = _query_loop(guard, codes, seconds, live)
        cpu, aired = sum(i.cpu() for i in ingests) - cpu0, _aired(guard, live) - aired0
    finally:
        for publisher in publishers:
            publisher.stop()
        for ingest in ingests:
            ingest.end()
    guard.index.sync()
    hours = _aired(guard, live) / 3600
    tracks, pictures = _stored_bytes(home, list(live))
    return {"feeds": len(feeds), "latencies": latencies, "trails": trails, "cpu": cpu / max(aired, 1e-9),
            "disk": tracks / 1e6 / hours, "pictures": pictures / 1e6 / hours,
            "memory": _held_bytes(guard, list(live)) / 1e6 / hours}


def _aired(guard: Guard, refs: dict[int, float]) -> float:
    """Seconds aired so far by these live references, as the catalog has them."""
    return sum(guard.reference(ref_id).duration for ref_id in refs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["latency", "append", "all"])
    parser.add_argument("--runs", type=int, default=4, help="latency runs per transport and delay")
    parser.add_argument("--delays", default="5,30,90")
    parser.add_argument("--protocols", default="udp,rtmp")
    parser.add_argument("--negatives", type=int, default=2, help="unrelated streams per delay")
    parser.add_argument("--feeds", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=30.0, help="append: seconds of queries per feed count")
    args = parser.parse_args()
    protocols = [p for p in args.protocols.split(",") if p]
    if shutil.which("ffmpeg") is None and "rtmp" in protocols:
        protocols.remove("rtmp")
        print("no ffmpeg CLI: RTMP runs skipped", file=sys.stderr)
    if args.what in ("latency", "all"):
        bench_latency([float(d) for d in args.delays.split(",")], protocols, args.runs, args.negatives)
    if args.what in ("append", "all"):
        bench_append([int(n) for n in args.feeds.split(",")], args.seconds)


if __name__ == "__main__":
    main()
