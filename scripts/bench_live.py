"""Live monitoring benchmarks: detection latency and stream capacity. Prints markdown tables.

    python scripts/bench_live.py latency [--runs 24] [--parallel 2]
    python scripts/bench_live.py audio-latency [--runs 12] [--negatives 4] [--parallel 2]
    python scripts/bench_live.py capacity [--streams 8,12,16,20] [--seconds 20] [--omp-threads N] [--audio [on|both]]
                                          [--regions on|off|both] [--layout] [--processes N]
    python scripts/bench_live.py all

Latency: live streams on loopback (UDP via PyAV; RTMP, SRT via Debian's ffmpeg CLI; HLS with
1 s segments) carry 3 s of unrelated content, then a copy of a reference (re-encoded,
letterboxed, logo, scaled), then 1 s unrelated. References use policy ``cut`` and
``min_seconds=2``. Measured: first copied frame entering the stream (publisher clock) →
incident decided, and decision → ``stream.cut`` webhook received by a real HTTP receiver.
Unrelated-only streams count false incidents.

Audio latency (issue 12): streams whose picture is unrelated but whose sound copies a
reference's (3 s of speech, then 10 s of the reference's soundtrack, then 1 s of speech; 320×180
12 fps H.264 + 64 kb/s AAC) published by Debian's ffmpeg CLI over UDP, RTMP and SRT. Measured:
first copied sound entering the stream → incident decided (modality ``audio``). Negatives:
another song of the same synthetic style under an unrelated picture.

Capacity: N 720p30 H.264 streams published over UDP by ffmpeg (``-re -stream_loop``, copy),
all monitored by one guard process for ``--seconds``. A stream keeps up when its lag (growth
of wall clock minus stream clock) stays under 2 s and it sampled ≥ 90 % of the frames it
should have (UDP drops what a slow reader does not take). Besides guard's own CPU, the table
shows the publishers' CPU (the ffmpeg children) and the CPU everything else on the machine used
meanwhile (``/proc/stat``), since the machine is shared and other jobs decide what is left, and
how many query frames each stream sent the reference index per second (plain, mirrored and
masked readings; counted on the index view every search goes through). ``--omp-threads N``
sets ``OMP_NUM_THREADS`` before FAISS loads: each FAISS search starts OpenMP threads, whose
start and spin-waiting cost more than a search of a few frames on a busy machine. ``--audio``
publishes the streams with a soundtrack (music, AAC 96 kb/s mono 48 kHz), which guard decodes,
fingerprints and matches beside the picture; ``--audio both`` measures each count without and
with sound, back to back (the table's "sound" column). ``--regions`` (issue 14) switches the
reading of windows inside the frames (``match.regions``, on by default) off, on or both;
``--layout`` shows the game in a streamer layout (a window of 30 % of the picture beside a
webcam and a chat) so the region readings have windows to read. ``--processes N`` runs N monitor
processes over one store, as N ``guard serve --roles monitor`` would (each takes an even share of
the recorded streams): Python runs one process's streams on one core at a time (the GIL).
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
from guard_synth import layouts  # noqa: E402
from guard_synth.encode import write_video  # noqa: E402
from guard.config import PROCESS_ROLES, LiveSettings, MatchSettings, Settings, WebhookSettings  # noqa: E402
from guard.service import Guard  # noqa: E402
from tests.live_helpers import (  # noqa: E402
    FFmpegPublisher, FolderServer, HLSPublisher, PacedPublisher, WebhookReceiver, encode, free_port,
    reference_frames, stream_frames, udp_port_bound, wait_until,
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


def _publish(protocol: str, source: Path, folder: Path, sound: bool = False):
    """Start a publisher; return (url guard pulls, publisher, cleanup). ``sound``: the source's
    audio stream is published too (PyAV's paced UDP publisher sends the picture only; the HLS
    publisher always writes both)."""
    if protocol == "udp":
        url = f"udp://127.0.0.1:{free_port('udp')}"
        if sound:
            return url, FFmpegPublisher(source, url + "?pkt_size=1316", "mpegts"), None
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
                 stream_id: str, expect_copy: bool, sound: bool = False, lead: float = LEAD,
                 seconds: float = LEAD + COPY + TAIL) -> dict:
    url, publisher, server = _publish(protocol, source, folder, sound)
    try:
        if protocol == "udp":
            guard.monitor(url, stream_id=stream_id, account="pirate")
            wait_until(lambda: udp_port_bound(int(url.rsplit(":", 1)[1])), 10)
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
        final = guard.streams.wait(stream_id, timeout=seconds + 25)
        if final.active:
            final = guard.streams.stop(stream_id)
    finally:
        publisher.stop()
        if server is not None:
            server.__exit__(None, None, None)
    incidents = guard.incidents.list(stream_id=stream_id)
    row = {"protocol": protocol, "stream": stream_id, "incidents": len(incidents), "status": final.status}
    if incidents:
        row["modality"] = "/".join(sorted({s["modality"] for s in guard.incidents.get(incidents[-1].id).segments}))
    if expect_copy and incidents:
        incident = incidents[-1]
        entered = publisher.entered_at(lead)
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
        def run(job) -> dict:
            protocol, src, sid, expect, plan = job
            try:
                row = _latency_run(guard, receiver, protocol, src, folder, sid, expect)
            except Exception as exc:  # noqa: BLE001 — a benchmark reports failures, it does not stop
                row = {"protocol": protocol, "stream": sid, "incidents": 0, "status": f"error {exc!r}"}
            row["expect"] = expect
            if plan:
                row["transform"], row["seed"] = plan[2], plan[1]
            print(f"  {sid:<8} {protocol:<5} {row.get('transform', 'negative'):<11} "
                  f"incident {row.get('to_incident', float('nan')):6.2f} s  webhook "
                  f"{row.get('to_webhook', float('nan')):5.2f} s  ({row['status']}, {row['incidents']} incidents)",
                  file=sys.stderr)
            return row

        rows += _run_jobs(jobs, run, parallel)
    _latency_table(rows, parallel)


def _run_jobs(jobs: list, run, parallel: int) -> list[dict]:
    """``run(job)`` for every job, ``parallel`` at a time; the rows in the order they finished."""
    queue, rows, lock = list(jobs), [], threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop(0)
            row = run(job)
            with lock:
                rows.append(row)

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows


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


# -- audio latency (issue 12) ------------------------------------------------------------------

AUDIO_LEAD, AUDIO_COPY, AUDIO_TAIL = 3.0, 10.0, 1.0


def _heard_copy(path: Path, picture_seed: int, song: np.ndarray | None, copy_from: float, rate: int,
                other_song: int | None = None) -> Path:
    """An unrelated picture over speech, then ``song`` from ``copy_from`` (or, for a negative,
    another song of the same style), then speech."""
    seconds = AUDIO_LEAD + AUDIO_COPY + AUDIO_TAIL
    if song is None:
        middle = synth.audio_track(other_song or 0, AUDIO_COPY, rate, "music")
    else:
        middle = song[int(copy_from * rate): int((copy_from + AUDIO_COPY) * rate)]
    sound = np.concatenate([synth.audio_track(picture_seed, AUDIO_LEAD, rate, "speech"), middle,
                            synth.audio_track(picture_seed + 1, AUDIO_TAIL, rate, "speech")])
    frames = synth.shapes(picture_seed, (320, 180), 12, seconds)
    return write_video(path, frames, 12, audio=sound, sample_rate=rate, audio_bit_rate=64000,
                       options={"preset": "veryfast", "tune": "zerolatency", "g": "12"})


def bench_audio_latency(runs: int, parallel: int, protocols: list[str], negatives: int) -> None:
    """Time from the first copied sound to the incident, on streams that copy a reference's
    sound under an unrelated picture (see the module docstring)."""
    if shutil.which("ffmpeg") is None:
        raise SystemExit("audio-latency needs the ffmpeg CLI to publish streams with sound")
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-audio-"))
    seeds, rate = [7, 11, 23, 31], 16000
    print(f"making media in {folder} ...", file=sys.stderr)
    songs = {s: synth.audio_track(s, 30, rate, "music") for s in seeds}
    refs = {s: write_video(folder / f"ref{s}.mp4", reference_frames(s, 30), 12, audio=songs[s], sample_rate=rate,
                           options={"preset": "veryfast", "tune": "zerolatency", "g": "12"}) for s in seeds}
    jobs = []
    for i in range(runs):
        seed, copy_from = seeds[i % len(seeds)], 2.0 + 3.0 * (i % 5)
        source = _heard_copy(folder / f"run{i}.mp4", 2000 + 2 * i, songs[seed], copy_from, rate)
        jobs.append((protocols[i % len(protocols)], source, f"aud-{i}", True, seed))
    for i in range(negatives):
        source = _heard_copy(folder / f"neg{i}.mp4", 3000 + 2 * i, None, 0.0, rate, other_song=60 + i)
        jobs.append((protocols[i % len(protocols)], source, f"aneg-{i}", False, None))
    settings = Settings(home=folder / "home", allow_private_addresses=True,
                        live=LiveSettings(stall_timeout=2.0, give_up_after=2.0, reconnect_initial=0.2,
                                          reconnect_max=1.0, open_timeout=10.0),
                        webhook=WebhookSettings(backoff_initial=0.2, timeout=2.0))
    rows: list[dict] = []
    seconds = AUDIO_LEAD + AUDIO_COPY + AUDIO_TAIL
    with Guard(settings) as guard, WebhookReceiver(SECRET) as receiver:
        for seed, path in refs.items():
            guard.ingest(path, title=f"ref{seed}", owner="league", policy="cut", min_seconds=2.0)
        guard.actions.add_endpoint("*", receiver.url, SECRET)
        def run(job) -> dict:
            protocol, src, sid, expect, seed = job
            try:
                row = _latency_run(guard, receiver, protocol, src, folder, sid, expect, sound=True,
                                   lead=AUDIO_LEAD, seconds=seconds)
            except Exception as exc:  # noqa: BLE001 — a benchmark reports failures, it does not stop
                row = {"protocol": protocol, "stream": sid, "incidents": 0, "status": f"error {exc!r}"}
            row["expect"], row["seed"] = expect, seed
            print(f"  {sid:<8} {protocol:<5} incident {row.get('to_incident', float('nan')):6.2f} s  "
                  f"({row['status']}, {row['incidents']} incidents {row.get('modality', '')})", file=sys.stderr)
            return row

        rows += _run_jobs(jobs, run, parallel)
    print(f"\n### Audio time to certain (sound-only copies, min_seconds = 2 s, {parallel} streams at a time)\n")
    print("| transport | runs | detected | as `audio` | median to incident | p95 to incident | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    groups = {"all": [r for r in rows if r["expect"]]}
    for protocol in sorted({r["protocol"] for r in rows if r["expect"]}):
        groups[protocol.upper()] = [r for r in rows if r["expect"] and r["protocol"] == protocol]
    for name, group in groups.items():
        lat = [r["to_incident"] for r in group if "to_incident" in r]
        as_audio = sum(1 for r in group if r.get("modality") == "audio")
        print(f"| {name} | {len(group)} | {len(lat)} | {as_audio} | {_fmt(statistics.median(lat) if lat else None)} | "
              f"{_fmt(_percentile(lat, 95))} | {_fmt(max(lat) if lat else None)} |")
    negative_rows = [r for r in rows if not r["expect"]]
    print(f"\nFalse incidents: {sum(r['incidents'] for r in negative_rows)} on {len(negative_rows)} streams of "
          f"unrelated music in the same synthetic style; {sum(max(0, r['incidents'] - 1) for r in rows if r['expect'])} "
          "extra on the copy streams.")


# -- capacity ---------------------------------------------------------------------------------


def _make_720p(path: Path, seconds: float, sound: bool = False, layout: bool = False) -> Path:
    if path.exists():
        return path
    print(f"rendering {seconds:.0f} s of 720p30{' with sound' if sound else ''}{' in a streamer layout' if layout else ''}"
          f" into {path} ...", file=sys.stderr)
    small = synth.broadcast(99, (640, 360), 30, seconds)
    if layout:  # the game in a window of 30 % of the picture, beside a webcam and a chat
        small = layouts.map_frames(layouts.streamer_layout(0.3, "bl", 5, (640, 360)), small, 30)
    frames = (synth.resize(f, (1280, 720)) for f in small)
    # x264 veryfast defaults (3 B-frames, 2 s GOP) at 3 Mbit/s: a typical 720p30 live upload;
    # with sound, music as AAC at 96 kb/s, 48 kHz.
    audio = synth.audio_track(99, seconds, 48000, "music") if sound else None
    return write_video(path, frames, 30, bit_rate=3_000_000, options={"preset": "veryfast", "g": "60"},
                       audio=audio, sample_rate=48000, audio_bit_rate=96000 if sound else None)


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
    masked searches alike), and the query landmarks its landmark index is asked about, by
    wrapping the index's search methods on that one instance."""

    def __init__(self, index):
        self.count = 0
        self.landmarks = 0
        self._lock = threading.Lock()
        for name in ("search", "search_masked", "search_landmarks"):
            setattr(index, name, self._counted(getattr(index, name), name == "search_landmarks"))

    def _counted(self, method, landmarks: bool):
        def search(codes, *args, **kwargs):
            with self._lock:
                if landmarks:
                    self.landmarks += len(codes)
                else:
                    self.count += len(codes)
            return method(codes, *args, **kwargs)

        return search


def _decode_cost(source: Path, seconds: float) -> float:
    """CPU seconds per media second for guard's live decode path alone (fast options, sampling)."""
    start = _cpu()
    options = decode.LiveOptions(reconnect=False, flush_interval=1.0)
    media = 0.0
    for batch in decode.live_batches(str(source), options, threading.Event()):
        media = max([media, *batch.times[-1:], *(a.start + a.duration for a in batch.audio)])
    return (_cpu() - start) / max(media, 1e-9)


def _capacity_settings(home: Path, regions: bool) -> Settings:
    return Settings(home=home, allow_private_addresses=True, live=LiveSettings(stall_timeout=5.0, give_up_after=10.0),
                    match=MatchSettings(regions=regions))


def _measure(guard: Guard, ids: list[str], seconds: float, queries: QueryCounter) -> dict:
    """Over ``seconds``: each stream's lag every 0.5 s, frames sampled and sound heard (s), and
    this process's CPU and index queries."""
    frames0 = [guard.streams.get(i).frames for i in ids]
    heard0 = [guard.streams.get(i).audio_seconds for i in ids]
    cpu0, t0, queries0, landmarks0 = _cpu(), time.monotonic(), queries.count, queries.landmarks
    lags: list[list[float]] = [[] for _ in ids]
    while time.monotonic() - t0 < seconds:
        time.sleep(0.5)
        for stream_lags, i in zip(lags, ids):
            stream_lags.append(guard.streams.get(i).lag)
    return {"elapsed": time.monotonic() - t0, "cpu": _cpu() - cpu0, "lags": lags,
            "frames": [guard.streams.get(i).frames - f for i, f in zip(ids, frames0)],
            "heard": [guard.streams.get(i).audio_seconds - h for i, h in zip(ids, heard0)],
            "queries": queries.count - queries0, "landmarks": queries.landmarks - landmarks0}


def _monitor_worker(home: Path, regions: bool, seconds: float, go, results) -> None:
    """One monitor process (``guard serve --roles monitor`` as a function): takes its share of the
    recorded streams, measures them once ``go`` is set, puts what it measured on ``results``."""
    with Guard(_capacity_settings(home, regions), roles=["monitor"]) as guard:
        queries = QueryCounter(guard.index)
        guard.start(poll_interval=0.2)  # its first look reports its load (none yet)
        results.put("ready")
        go.wait(120)
        results.put(_measure(guard, guard.streams.running_here(), seconds, queries))
        guard.streams.shutdown()


class _MonitorWorkers:
    """``count`` monitor processes over one store, started before the streams are recorded."""

    def __init__(self, count: int, home: Path, regions: bool, seconds: float):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no FAISS or OpenMP state forked
        self.go, self.results = context.Event(), context.Queue()
        self.processes = [context.Process(target=_monitor_worker, args=(home, regions, seconds, self.go, self.results))
                          for _ in range(count)]
        for process in self.processes:
            process.start()
        self.seconds = seconds
        # Streams recorded before every process reported would all go to the first one up: a
        # benchmark's start, not a service's (its monitor processes run before streams come).
        assert all(self.results.get(timeout=120) == "ready" for _ in self.processes)
        time.sleep(0.5)

    def measure(self) -> list[dict]:
        self.go.set()
        return [self.results.get(timeout=self.seconds + 120) for _ in self.processes]

    def close(self) -> None:
        for process in self.processes:
            process.join(60)


def bench_capacity(counts: list[int], seconds: float, source_seconds: float, sound_modes: tuple[bool, ...] = (False,),
                   region_modes: tuple[bool, ...] = (True,), layout: bool = False, processes: int = 1) -> None:
    folder = Path(tempfile.mkdtemp(prefix="guard-bench-cap-"))
    sources, decode_costs = {}, {}
    for sound in sound_modes:
        # With sound, MP4: PyAV's MPEG-TS muxer would hold the sound back behind 10 s of picture
        # (not interleaved); ffmpeg's -c copy to MPEG-TS interleaves it as a live encoder does.
        name = f"guard-bench-720p30{'-layout' if layout else ''}{'-sound.mp4' if sound else '.ts'}"
        sources[sound] = _make_720p(Path(tempfile.gettempdir()) / name, source_seconds, sound, layout)
        decode_costs[sound] = _decode_cost(sources[sound], source_seconds)
        print(f"decode alone{' (picture + sound)' if sound else ''}: {decode_costs[sound]:.3f} CPU-s per "
              "stream-second", file=sys.stderr)
    # The reference has a soundtrack too, so the sound of every stream is looked up and matched.
    ref = write_video(folder / "ref.mp4", reference_frames(7, 20), 12, audio=synth.audio_track(7, 20, 16000, "music"),
                      options={"preset": "veryfast", "tune": "zerolatency", "g": "12"})
    use_ffmpeg = shutil.which("ffmpeg") is not None
    if not use_ffmpeg and any(sound_modes):
        raise SystemExit("--audio needs the ffmpeg CLI to publish streams with sound")
    rows = []
    for n, sound, regions in [(n, sound, regions) for n in counts for sound in sound_modes for regions in region_modes]:
        source, decode_per_stream = sources[sound], decode_costs[sound]
        settings = _capacity_settings(folder / f"home{n}{'-sound' if sound else ''}{'-regions' if regions else ''}",
                                      regions)
        with Guard(settings, roles=["api"] if processes > 1 else PROCESS_ROLES) as guard:
            guard.ingest(ref, title="ref", owner="league", min_seconds=2.0)
            queries = QueryCounter(guard.index)
            ids = [f"cap-{i}" for i in range(n)]
            urls = [f"udp://127.0.0.1:{free_port('udp')}" for _ in range(n)]
            workers = _MonitorWorkers(processes, settings.home, regions, seconds) if processes > 1 else None
            for stream_id, url in zip(ids, urls):
                guard.monitor(url, stream_id=stream_id, account=stream_id)
            publishers = [FFmpegPublisher(source, url + "?pkt_size=1316", loops=100) if use_ffmpeg
                          else PacedPublisher(source, url, loops=100) for url in urls]
            children0, pub_t0 = _children_cpu(), time.monotonic()
            for p in publishers:
                p.start()
            time.sleep(4.0)  # warm-up: a benchmark's fixed measuring window, not synchronisation
            machine0 = _machine_busy()
            measured = workers.measure() if workers else [_measure(guard, ids, seconds, queries)]
            machine1 = _machine_busy()
            for p in publishers:
                p.stop()
            publishers_cores = (_children_cpu() - children0) / (time.monotonic() - pub_t0)
            if workers:
                workers.close()
            guard.streams.shutdown()
        elapsed = max(m["elapsed"] for m in measured)
        cpu = sum(m["cpu"] for m in measured)
        lags = [lag for m in measured for lag in m["lags"]]
        frames = [f for m in measured for f in m["frames"]]
        heard = [h / elapsed for m in measured for h in m["heard"]]
        query_rate = sum(m["queries"] for m in measured) / elapsed / n
        landmark_rate = sum(m["landmarks"] for m in measured) / elapsed / n
        ticks = machine1[1] - machine0[1]
        machine_cores = (machine1[0] - machine0[0]) / ticks * (os.cpu_count() or 1) if ticks else float("nan")
        expected = elapsed * settings.sample_fps
        coverage = [f / expected for f in frames]
        p95_lag = [_percentile(stream_lags, 95) for stream_lags in lags]
        # A stream with sound also has to be heard: ≥ 90 % of its sound decoded and placed.
        ok = sum(1 for c, lag, h in zip(coverage, p95_lag, heard) if c >= 0.9 and lag < 2.0 and (not sound or h >= 0.9))
        rows.append((n, sound, regions, ok, cpu / elapsed, cpu / elapsed / n, decode_per_stream, float(np.median(coverage)),
                     min(coverage), float(np.median(p95_lag)), max(p95_lag),
                     publishers_cores if use_ffmpeg else float("nan"),
                     machine_cores - cpu / elapsed - (publishers_cores if use_ffmpeg else 0.0), query_rate,
                     min(heard), landmark_rate))
        print(f"  {n} streams{' with sound' if sound else ''}{' with region readings' if regions else ''}: {ok} keep up, CPU {cpu / elapsed:.2f} cores, "
              f"{query_rate:.1f} index queries/s and {landmark_rate:.0f} landmark lookups/s per stream, "
              f"least sound heard {min(heard):.0%} of real time; streams per monitor process: "
              f"{'/'.join(str(len(m['lags'])) for m in measured)}", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the workers' not included
    omp = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"\n### Capacity: 720p30 H.264 over UDP{', the game in a streamer layout' if layout else ''}, {seconds:.0f} s "
          f"per step, {os.cpu_count()} cores, {processes} monitor process{'es' if processes > 1 else ''}, "
          f"OMP_NUM_THREADS {omp}\n")
    print("| streams | sound | regions | keeping up | guard CPU (cores) | CPU per stream | decode share | publishers CPU | "
          "other jobs CPU | median frames kept | worst | median p95 lag | worst p95 lag | "
          "index queries/s per stream | least sound heard | landmark lookups/s per stream |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (n, sound, regions, ok, cores, per, decode_per_stream, cov_med, cov_min, lag_med, lag_max, pub, other, query_rate,
         heard, landmark_rate) in rows:
        share = min(decode_per_stream / per, 1.0) if per else float("nan")
        print(f"| {n} | {'on' if sound else 'off'} | {'on' if regions else 'off'} | {ok} | {cores:.2f} | {per:.3f} | {share:.0%} | {pub:.2f} | "
              f"{max(other, 0.0):.2f} | {cov_med:.0%} | {cov_min:.0%} | {lag_med:.2f} s | {lag_max:.2f} s | "
              f"{query_rate:.1f} | {f'{heard:.0%}' if sound else '–'} | {f'{landmark_rate:.0f}' if sound else '–'} |")
    for sound, cost in decode_costs.items():
        print(f"\nDecode alone{' (picture + sound)' if sound else ''} (guard's live path: skip loop filter + "
              f"non-reference frames, 1 thread, 4 fps sampled to 128×128 grey{'; sound to mono 8 kHz' if sound else ''}): "
              f"{cost:.3f} CPU-s per stream-second, i.e. at most {(os.cpu_count() or 1) / cost:.1f} streams on this "
              "machine.")
    print(f"Peak RSS {rss:.0f} MB.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["latency", "audio-latency", "capacity", "all"])
    parser.add_argument("--runs", type=int, default=24, help="copy runs over UDP/RTMP/SRT")
    parser.add_argument("--hls-runs", type=int, default=4)
    parser.add_argument("--negatives", type=int, default=4, help="unrelated streams (false incidents)")
    parser.add_argument("--parallel", type=int, default=2, help="latency runs at a time")
    parser.add_argument("--protocols", default="udp,rtmp,srt")
    parser.add_argument("--streams", default="8,12,16,20,24")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--audio", nargs="?", const="on", default="off", choices=["off", "on", "both"],
                        help="capacity: publish the streams with sound (both: without, then with)")
    parser.add_argument("--regions", default="on", choices=["off", "on", "both"],
                        help="capacity: read windows inside the frames (issue 14; both: without, then with)")
    parser.add_argument("--layout", action="store_true",
                        help="capacity: the streams show the game in a streamer layout (windows to read)")
    parser.add_argument("--processes", type=int, default=1,
                        help="capacity: monitor processes sharing the store (as `guard serve --roles monitor` each); "
                             "the streams are recorded by a process without the monitor role")
    parser.add_argument("--omp-threads", type=int, default=None,
                        help="OMP_NUM_THREADS for FAISS (set before it loads; default: OpenMP's)")
    args = parser.parse_args()
    protocols = [p for p in args.protocols.split(",") if p]
    if shutil.which("ffmpeg") is None:
        protocols = [p for p in protocols if p == "udp"]
        print("no ffmpeg CLI: RTMP and SRT runs skipped", file=sys.stderr)
    if args.what in ("latency", "all"):
        bench_latency(args.runs, args.parallel, protocols, args.hls_runs, args.negatives)
    if args.what in ("audio-latency", "all"):
        bench_audio_latency(args.runs, args.parallel, protocols, args.negatives)
    if args.what in ("capacity", "all"):
        sound_modes = {"off": (False,), "on": (True,), "both": (False, True)}[args.audio]
        region_modes = {"off": (False,), "on": (True,), "both": (False, True)}[args.regions]
        bench_capacity([int(n) for n in args.streams.split(",")], args.seconds, 30.0, sound_modes, region_modes,
                       args.layout, args.processes)


if __name__ == "__main__":
    main()
