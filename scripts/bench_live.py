"""Live monitoring benchmarks: detection latency and stream capacity. Prints markdown tables.

    python scripts/bench_live.py latency [--runs 24] [--parallel 2]
    python scripts/bench_live.py capacity [--streams 8,12,16,20] [--seconds 20] [--omp-threads N]
    python scripts/bench_live.py all

Latency: live streams on loopback (UDP via PyAV; RTMP, SRT via Debian's ffmpeg CLI; HLS with
1 s segments) carry 3 s of unrelated content, then a copy of a reference (re-encoded,
letterboxed, logo, scaled), then 1 s unrelated. References use policy ``cut`` and
``min_seconds=2``. Measured: first copied frame entering the stream (publisher clock) →
incident decided, and decision → ``stream.cut`` webhook received by a real HTTP receiver.
Unrelated-only streams count false incidents.

Capacity: N 720p30 H.264 streams published over UDP by ffmpeg (``-re -stream_loop``, copy),
all monitored by one guard process for ``--seconds``. A stream keeps up when its lag (growth
of wall clock minus stream clock) stays under 2 s and it sampled ≥ 90 % of the frames it
should have (UDP drops what a slow reader does not take). Besides guard's own CPU, the table
shows the publishers' CPU (the ffmpeg children) and the CPU everything else on the machine used
meanwhile (``/proc/stat``), since the machine is shared and other jobs decide what is left, and
how many query frames each stream sent the reference index per second (plain, mirrored and
masked readings; counted on the index view every search goes through). ``--omp-threads N``
sets ``OMP_NUM_THREADS`` before FAISS loads: each FAISS search starts OpenMP threads, whose
start and spin-waiting cost more than a search of a few frames on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

if "--omp-threads" in sys.argv[:-1]:  # before FAISS loads: OpenMP reads it once
    os.environ["OMP_NUM_THREADS"] = sys.argv[sys.argv.index("--omp-threads") + 1]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guard import decode  # noqa: E402
from guard_synth import broadcast as synth  # noqa: E402
from guard_synth.encode import write_video  # noqa: E402
from guard.config import LiveSettings, Settings, WebhookSettings  # noqa: E402
from guard.service import Guard  # noqa: E402
from tests.live_helpers import (  # noqa: E402
    FFmpegPublisher, FolderServer, HLSPublisher, PacedPublisher, WebhookReceiver, encode, free_port,
    reference_frames, stream_frames,
)

SECRET = "bench"
LEAD, COPY, TAIL = 3.0, 5.0, 1.0
#: name → (frame transform of the copied part, stream size). Every copy is also re-encoded.
TRANSFORMS = {
    "re-encode": (None, (320, 180)),
    "letterbox": (lambda f: synth.letterbox(synth.resize(f, (320, 136)), (320, 180)), (320, 180)),
    "logo": (synth.logo, (320, 180)),
    "scale 0.75": (None, (240, 136)),  # the whole stream at 240×136 (synth renders any size)
}


def _percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


# -- latency ----------------------------------------------------------------------------------


def _publish(protocol: str, source: Path, folder: Path):
    """Start a publisher; return (url guard pulls, publisher, cleanup)."""
    if protocol == "udp":
        url = f"udp://127.0.0.1:{free_port('udp')}"
        return url, PacedPublisher(source, url), None
    if protocol == "rtmp":
        url = f"rtmp://127.0.0.1:{free_port()}/live/bench"
        return url, FFmpegPublisher(source, url, "flv", listen=True), None
    if protocol == "srt":
        port = free_port("udp")
        return (f"srt://127.0.0.1:{port}?mode=caller",
                FFmpegPublisher(source, f"srt://127.0.0.1:{port}?mode=listener"), None)
    if protocol == "hls":
        hls = folder / f"hls-{time.monotonic_ns()}"
        server = FolderServer(hls.parent)
        server.__enter__()
        publisher = HLSPublisher(source, hls, segment_seconds=1.0, list_size=4)
        return server.url(f"{hls.name}/live.m3u8"), publisher, server
    raise ValueError(protocol)


def _latency_run(guard: Guard, receiver: WebhookReceiver, protocol: str, source: Path, folder: Path,
                 stream_id: str, expect_copy: bool) -> dict:
    url, publisher, server = _publish(protocol, source, folder)
    try:
        if protocol == "udp":
            guard.monitor(url, stream_id=stream_id, account="pirate")
            publisher.start()
        elif protocol == "hls":
            publisher.start()
            deadline = time.time() + 10
            while not publisher.playlist.exists() and time.time() < deadline:
                time.sleep(0.05)
            guard.monitor(url, stream_id=stream_id, account="pirate")
        else:
            publisher.start()
            guard.monitor(url, stream_id=stream_id, account="pirate")
        final = guard.streams.wait(stream_id, timeout=LEAD + COPY + TAIL + 25)
        if final.active:
            final = guard.streams.stop(stream_id)
    finally:
        publisher.stop()
        if server is not None:
            server.__exit__(None, None, None)
    incidents = guard.incidents.list(stream_id=stream_id)
    row = {"protocol": protocol, "stream": stream_id, "incidents": len(incidents), "status": final.status}
    if expect_copy and incidents:
        incident = incidents[-1]
        entered = publisher.entered_at(LEAD)
        row["to_incident"] = incident.decided - entered
        cut = [e for e in receiver.wait_for("stream.cut", 1, timeout=0) if e["incident"]["id"] == incident.id]
        if not cut:
            deadline = time.time() + 5
            while time.time() < deadline and not cut:
                time.sleep(0.05)
                cut = [e for e in receiver.of_type("stream.cut") if e["incident"]["id"] == incident.id]
        if cut:
            row["to_webhook"] = receiver.arrivals[cut[0]["id"]] - incident.decided
    return row


def bench_latency(runs: int, parallel: int, protocols: list[str], hls_runs: int, negatives: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-live-"))
    seeds = [7, 11, 23, 31]
    print(f"making media in {folder} ...", file=sys.stderr)
    refs = {s: encode(folder / f"ref{s}.mp4", reference_frames(s, 30)) for s in seeds}
    plans = []
    for i in range(runs):
        seed = seeds[i % len(seeds)]
        name, transform = list(TRANSFORMS.items())[(i // len(seeds)) % len(TRANSFORMS)]
        copy_from = 4.0 + 3.0 * (i % 5)
        plans.append((protocols[i % len(protocols)], seed, name, transform, copy_from))
    for i in range(hls_runs):
        seed = seeds[i % len(seeds)]
        name, transform = list(TRANSFORMS.items())[i % len(TRANSFORMS)]
        plans.append(("hls", seed, name, transform, 5.0 + 2.0 * i))
    sources = []
    for i, (_protocol, seed, _name, transform, copy_from) in enumerate(plans):
        path = folder / f"run{i}.ts"
        encode(path, stream_frames(copy_seed=seed, copy_from=copy_from, lead=LEAD, copy=COPY, tail=TAIL,
                                   transform=transform[0], size=transform[1], other_seed=1000 + i))
        sources.append(path)
    negative_sources = [encode(folder / f"neg{i}.ts", stream_frames(copy_seed=None, lead=LEAD + COPY + TAIL, copy=0,
                                                                    tail=0, other_seed=5000 + i))
                        for i in range(negatives)]
    settings = Settings(home=folder / "home", allow_private_addresses=True,
                        live=LiveSettings(stall_timeout=2.0, give_up_after=2.0, reconnect_initial=0.2,
                                          reconnect_max=1.0, open_timeout=10.0),
                        webhook=WebhookSettings(backoff_initial=0.2, timeout=2.0))
    rows: list[dict] = []
    with Guard(settings) as guard, WebhookReceiver(SECRET) as receiver:
        for seed, path in refs.items():
            guard.ingest(path, title=f"ref{seed}", owner="league", policy="cut", min_seconds=2.0)
        guard.actions.add_endpoint("*", receiver.url, SECRET)
        jobs = [(p[0], src, f"lat-{i}", True, p) for i, (p, src) in enumerate(zip(plans, sources))]
        jobs += [(protocols[i % len(protocols)], src, f"neg-{i}", False, None) for i, src in enumerate(negative_sources)]
        lock = threading.Lock()

        def worker(queue):
            while True:
                with lock:
                    if not queue:
                        return
                    protocol, src, sid, expect, plan = queue.pop(0)
                try:
                    row = _latency_run(guard, receiver, protocol, src, folder, sid, expect)
                except Exception as exc:  # noqa: BLE001 — a benchmark reports failures, it does not stop
                    row = {"protocol": protocol, "stream": sid, "incidents": 0, "status": f"error {exc!r}"}
                row["expect"] = expect
                if plan:
                    row["transform"], row["seed"] = plan[2], plan[1]
                with lock:
                    rows.append(row)
                    print(f"  {sid:<8} {protocol:<5} {row.get('transform', 'negative'):<11} "
                          f"incident {row.get('to_incident', float('nan')):6.2f} s  webhook "
                          f"{row.get('to_webhook', float('nan')):5.2f} s  ({row['status']}, {row['incidents']} incidents)",
                          file=sys.stderr)

        queue = list(jobs)
        threads = [threading.Thread(target=worker, args=(queue,)) for _ in range(parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    _latency_table(rows, parallel)


def _latency_table(rows: list[dict], parallel: int) -> None:
    print(f"\n### Detection latency (min_seconds = 2 s, 4 fps sampling, {parallel} streams at a time)\n")
    print("| transport | runs | detected | median to incident | p95 to incident | max | median decision → webhook | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    groups = {"UDP / RTMP / SRT": [r for r in rows if r["expect"] and r["protocol"] != "hls"]}
    for protocol in sorted({r["protocol"] for r in rows if r["expect"]}):
        groups[protocol.upper()] = [r for r in rows if r["expect"] and r["protocol"] == protocol]
    for name, group in groups.items():
        lat = [r["to_incident"] for r in group if "to_incident" in r]
        hook = [r["to_webhook"] for r in group if "to_webhook" in r]
        print(f"| {name} | {len(group)} | {len(lat)} | {_fmt(statistics.median(lat) if lat else None)} | "
              f"{_fmt(_percentile(lat, 95))} | {_fmt(max(lat) if lat else None)} | "
              f"{_fmt(statistics.median(hook) if hook else None)} | {_fmt(max(hook) if hook else None)} |")
    print("\n| transformation | runs | median to incident | max |")
    print("|---|---:|---:|---:|")
    for name in TRANSFORMS:
        lat = [r["to_incident"] for r in rows if r.get("transform") == name and "to_incident" in r]
        print(f"| {name} | {len(lat)} | {_fmt(statistics.median(lat) if lat else None)} | {_fmt(max(lat) if lat else None)} |")
    negatives = [r for r in rows if not r["expect"]]
    false_in_negatives = sum(r["incidents"] for r in negatives)
    extra = sum(max(0, r["incidents"] - 1) for r in rows if r["expect"])
    print(f"\nFalse incidents: {false_in_negatives} on {len(negatives)} unrelated streams, "
          f"{extra} extra on the {len(rows) - len(negatives)} copy streams.")


def _fmt(value) -> str:
    return "–" if value is None or value != value else f"{value:.2f} s"


# -- capacity ---------------------------------------------------------------------------------


def _make_720p(path: Path, seconds: float) -> Path:
    if path.exists():
        return path
    print(f"rendering {seconds:.0f} s of 720p30 into {path} ...", file=sys.stderr)
    small = synth.broadcast(99, (640, 360), 30, seconds)
    frames = (synth.resize(f, (1280, 720)) for f in small)
    # x264 veryfast defaults (3 B-frames, 2 s GOP) at 3 Mbit/s: a typical 720p30 live upload.
    return write_video(path, frames, 30, bit_rate=3_000_000, options={"preset": "veryfast", "g": "60"})


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat (every process, all users)."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class QueryCounter:
    """Counts the query frames a guard's reference index is asked about (plain, mirrored and
    masked searches alike), by wrapping the index's search methods on that one instance."""

    def __init__(self, index):
        self.count = 0
        self._lock = threading.Lock()
        for name in ("search", "search_masked"):
            setattr(index, name, self._counted(getattr(index, name)))

    def _counted(self, method):
        def search(codes, *args, **kwargs):
            with self._lock:
                self.count += len(codes)
            return method(codes, *args, **kwargs)

        return search


def _decode_cost(source: Path, seconds: float) -> float:
    """CPU seconds per media second for guard's live decode path alone (fast options, sampling)."""
    start = _cpu()
    options = decode.LiveOptions(reconnect=False, flush_interval=1.0)
    media = 0.0
    for batch in decode.live_batches(str(source), options, threading.Event()):
        media = float(batch.times[-1])
    return (_cpu() - start) / max(media, 1e-9)


def bench_capacity(counts: list[int], seconds: float, source_seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-cap-"))
    source = _make_720p(Path(tempfile.gettempdir()) / "guard-bench-720p30.ts", source_seconds)
    decode_per_stream = _decode_cost(source, source_seconds)
    print(f"decode alone: {decode_per_stream:.3f} CPU-s per stream-second", file=sys.stderr)
    ref = encode(folder / "ref.mp4", reference_frames(7, 20))
    use_ffmpeg = shutil.which("ffmpeg") is not None
    rows = []
    for n in counts:
        settings = Settings(home=folder / f"home{n}", allow_private_addresses=True,
                            live=LiveSettings(stall_timeout=5.0, give_up_after=10.0))
        with Guard(settings) as guard:
            guard.ingest(ref, title="ref", owner="league", min_seconds=2.0)
            queries = QueryCounter(guard.index)
            urls = [f"udp://127.0.0.1:{free_port('udp')}" for _ in range(n)]
            for i, url in enumerate(urls):
                guard.monitor(url, stream_id=f"cap-{i}", account=f"acct{i}")
            publishers = [FFmpegPublisher(source, url + "?pkt_size=1316", loops=100) if use_ffmpeg
                          else PacedPublisher(source, url, loops=100) for url in urls]
            children0, pub_t0 = _children_cpu(), time.monotonic()
            for p in publishers:
                p.start()
            warmup = 4.0
            time.sleep(warmup)  # a benchmark's fixed measuring window, not synchronisation
            frames0 = [guard.streams.get(f"cap-{i}").frames for i in range(n)]
            cpu0, t0, machine0, queries0 = _cpu(), time.monotonic(), _machine_busy(), queries.count
            lags = [[] for _ in range(n)]
            while time.monotonic() - t0 < seconds:
                time.sleep(0.5)
                for i in range(n):
                    lags[i].append(guard.streams.get(f"cap-{i}").lag)
            elapsed = time.monotonic() - t0
            cpu = _cpu() - cpu0
            query_rate = (queries.count - queries0) / elapsed / n
            machine1 = _machine_busy()
            frames = [guard.streams.get(f"cap-{i}").frames - frames0[i] for i in range(n)]
            for p in publishers:
                p.stop()
            publishers_cores = (_children_cpu() - children0) / (time.monotonic() - pub_t0)
            guard.streams.shutdown()
        ticks = machine1[1] - machine0[1]
        machine_cores = (machine1[0] - machine0[0]) / ticks * (os.cpu_count() or 1) if ticks else float("nan")
        expected = elapsed * settings.sample_fps
        coverage = [f / expected for f in frames]
        p95_lag = [_percentile(stream_lags, 95) for stream_lags in lags]
        ok = sum(1 for c, lag in zip(coverage, p95_lag) if c >= 0.9 and lag < 2.0)
        rows.append((n, ok, cpu / elapsed, cpu / elapsed / n, float(np.median(coverage)), min(coverage),
                     float(np.median(p95_lag)), max(p95_lag), publishers_cores if use_ffmpeg else float("nan"),
                     machine_cores - cpu / elapsed - (publishers_cores if use_ffmpeg else 0.0), query_rate))
        print(f"  {n} streams: {ok} keep up, CPU {cpu / elapsed:.2f} cores, "
              f"{query_rate:.1f} index queries/s per stream", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    omp = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"\n### Capacity: 720p30 H.264 over UDP, {seconds:.0f} s per step, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS {omp}\n")
    print("| streams | keeping up | guard CPU (cores) | CPU per stream | decode share | publishers CPU | "
          "other jobs CPU | median frames kept | worst | median p95 lag | worst p95 lag | "
          "index queries/s per stream |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, ok, cores, per, cov_med, cov_min, lag_med, lag_max, pub, other, query_rate in rows:
        share = min(decode_per_stream / per, 1.0) if per else float("nan")
        print(f"| {n} | {ok} | {cores:.2f} | {per:.3f} | {share:.0%} | {pub:.2f} | {max(other, 0.0):.2f} | "
              f"{cov_med:.0%} | {cov_min:.0%} | {lag_med:.2f} s | {lag_max:.2f} s | {query_rate:.1f} |")
    print(f"\nDecode alone (guard's live path: skip loop filter + non-reference frames, 1 thread, 4 fps "
          f"sampled to 128×128 grey): {decode_per_stream:.3f} CPU-s per stream-second, i.e. at most "
          f"{(os.cpu_count() or 1) / decode_per_stream:.1f} streams on this machine. Peak RSS {rss:.0f} MB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["latency", "capacity", "all"])
    parser.add_argument("--runs", type=int, default=24, help="copy runs over UDP/RTMP/SRT")
    parser.add_argument("--hls-runs", type=int, default=4)
    parser.add_argument("--negatives", type=int, default=4, help="unrelated streams (false incidents)")
    parser.add_argument("--parallel", type=int, default=2, help="latency runs at a time")
    parser.add_argument("--protocols", default="udp,rtmp,srt")
    parser.add_argument("--streams", default="8,12,16,20,24")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--omp-threads", type=int, default=None,
                        help="OMP_NUM_THREADS for FAISS (set before it loads; default: OpenMP's)")
    args = parser.parse_args()
    protocols = [p for p in args.protocols.split(",") if p]
    if shutil.which("ffmpeg") is None:
        protocols = [p for p in protocols if p == "udp"]
        print("no ffmpeg CLI: RTMP and SRT runs skipped", file=sys.stderr)
    if args.what in ("latency", "all"):
        bench_latency(args.runs, args.parallel, protocols, args.hls_runs, args.negatives)
    if args.what in ("capacity", "all"):
        bench_capacity([int(n) for n in args.streams.split(",")], args.seconds, 30.0)


if __name__ == "__main__":
    main()
