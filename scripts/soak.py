"""Soak: one ``guard serve`` monitors live streams under API read load for a while; its memory,
descriptors, threads and stream lag are sampled, printed as a table over time, and judged.

    python scripts/soak.py --minutes 30                 # the full soak (8 streams)
    python scripts/soak.py --minutes 2                  # the CI mode
    python scripts/soak.py --minutes 1 --streams 4 --interval 3

Set-up: a store with one reference (policy ``flag``, min 3 s) and webhook endpoints of its
rights holder and of the platform, both pointing at a loopback receiver (``http.server`` in a
thread) that checks every signature with :func:`guard.actions.verify_signature`. ``guard
serve`` is started on it and every stream is submitted through ``POST /v1/streams`` as
``udp://127.0.0.1:PORT``; Debian's ``ffmpeg`` publishes each as MPEG-TS (``-re``, copy, a
bounded ``-stream_loop``) from a generated 38 s loop, 320×180 at 10 fps. Even-numbered streams
carry an 8 s copy of the reference in every loop (15 s in), so incidents open and close and
their ``incident.flagged`` / ``incident.updated`` webhooks go out all along; odd-numbered ones
carry only unrelated content. A reader thread keeps requesting ``GET /v1/incidents``,
``GET /v1/streams`` and ``GET /metrics`` (admin key, one keep-alive connection, 0.1 s apart).

Every ``--interval`` seconds the script reads the server's RSS and thread count
(``/proc/PID/status``), its open descriptors (``/proc/PID/fd``) and the streams' state and lag
(``GET /v1/streams``), and prints a row.

Verdict (each must hold; fits are least-squares lines over the second half of the samples,
when start-up effects are over):

- memory flat: fitted RSS growth over the second half ≤ max(5 % of its median RSS, 0.5 MB per
  minute of it). In a 2-minute run the 5 % floor (about 12 MB) decides, so it catches only
  gross leaks and start-up growth that does not settle; the 30-minute soak is the memory test
  (a leak of 1 MB/min shows as 15 MB over its second half);
- descriptors bounded: those other than the catalog's (sockets, pipes, files) have a fitted
  growth over the second half ≤ 2, and no sample of the second half above the first half's
  maximum + 4 (a request or a webhook in flight holds one briefly); the catalog's grow only
  with the threads: guard opens one SQLite connection (2 descriptors: the database and its
  WAL) per thread that uses the catalog and closes those of ended threads, so their fitted
  growth must stay ≤ 2 + 2 × the threads' fitted growth;
- threads flat: fitted growth over the second half ≤ 2 (thread pools grow and shrink with the
  load: the API's worker threads idle out after 10 s, so a peak alone says nothing);
- no lag growth: every stream's lag in the second half < 2 s, and the fitted growth of the
  worst lag over it ≤ 1 s;
- 0 errors: HTTP errors (any request of the script answered ≥ 400 or failing), monitor errors
  (a stream that ended, failed or reports an error), webhook failures (failed delivery
  attempts, outbox rows failed or still pending at the end, signatures the receiver refused),
  and ERROR / Traceback lines in the server's log;
- detection works: every stream carrying the copy has an incident once its copy has played,
  and the others none (a false incident counts as an error).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guard.actions import ActionCenter  # noqa: E402
from guard.config import Settings, WebhookSettings  # noqa: E402
from guard.service import Guard  # noqa: E402
from guard.store import Catalog  # noqa: E402
from tests.live_helpers import (  # noqa: E402
    FFmpegPublisher,
    encode,
    free_port,
    reference_frames,
    stream_frames,
    wait_until,
)
from tests.server_helpers import Api, CountingReceiver, GuardServer  # noqa: E402

SIZE, FPS = (320, 180), 10
#: One loop of a stream: unrelated content, the copy (even streams only), unrelated content.
LEAD, COPY, TAIL = 15.0, 8.0, 15.0
LOOP = LEAD + COPY + TAIL
REFERENCE_SEED = 7
MIN_SECONDS = 3.0
#: Tolerances of the verdict (see the module docstring).
RSS_FLOOR_SHARE, RSS_MB_PER_MINUTE = 0.05, 0.5
FD_GROWTH, FD_SPIKE = 2.0, 4
LAG_LIMIT, LAG_GROWTH = 2.0, 1.0
#: How long after its copy starts a stream must have its incident (detection takes ~3 s).
DETECTION_MARGIN = 8.0


@dataclass
class Sample:
    """One reading of the server."""

    t: float
    rss_mb: float
    fds: int
    threads: int
    live: int
    lag_max: float
    lag_mean: float
    frames: int
    incidents: int
    deliveries: int
    reads: int
    errors: int
    fd_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def catalog_fds(self) -> int:
        """Descriptors of the catalog's files (its SQLite connections)."""
        return self.fd_kinds.get("catalog", 0)

    @property
    def other_fds(self) -> int:
        return self.fds - self.catalog_fds


@dataclass
class SoakResult:
    """Samples, error counts by kind, and the verdict: check name → (passed, detail)."""

    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)
    verdict: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.verdict.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class ReadLoad:
    """A thread reading incidents, streams and metrics in turn until stopped."""

    PATHS = ("/v1/incidents?limit=20", "/v1/streams?limit=50", "/metrics")

    def __init__(self, port: int, token: str, pause: float = 0.1):
        self.api = Api(port, token, timeout=10, keep_alive=True)
        self.pause = pause
        self.reads = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            path = self.PATHS[i % len(self.PATHS)]
            i += 1
            try:
                status, body = self.api.request("GET", path)
                if status >= 400:
                    self.errors.append(f"GET {path}: {status} {body[:200]!r}")
            except (OSError, ValueError) as exc:
                self.errors.append(f"GET {path}: {type(exc).__name__}: {exc}")
            self.reads += 1
            self.stop.wait(self.pause)
        self.api.close()

    def start(self) -> ReadLoad:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def proc_status(pid: int) -> tuple[float, int, int]:
    """RSS in MB, open descriptors and threads of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"])


def fd_kinds(pid: int) -> dict[str, int]:
    """A process's descriptors by kind (socket, pipe, anon_inode:[eventfd], …, file), so that a
    growth says what grew."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        kind = target.split(":")[0] if target.startswith(("socket:", "pipe:")) else \
            target if target.startswith("anon_inode:") else "catalog" if "/catalog.sqlite" in target else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _kind_changes(first: dict[str, int], last: dict[str, int]) -> str:
    changed = [f"{k} {first.get(k, 0)} → {last.get(k, 0)}" for k in sorted(first.keys() | last.keys())
               if first.get(k, 0) != last.get(k, 0)]
    return "; by kind " + ", ".join(changed) if changed else ""


def growth(samples: list[Sample], attr: str) -> tuple[float, float]:
    """Least-squares growth of ``attr`` over the second half of the samples, and that half's length (s)."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return 0.0, 0.0
    t = np.array([s.t for s in half])
    y = np.array([float(getattr(s, attr)) for s in half])
    slope = float(np.polyfit(t - t[0], y, 1)[0])
    return slope * (t[-1] - t[0]), float(t[-1] - t[0])


def make_media(folder: Path) -> tuple[Path, Path, Path]:
    """The reference, a loop with a copy of it, and a loop of unrelated content."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = folder / "reference.mp4"
    copy_loop, clean_loop = folder / "copy-loop.mp4", folder / "clean-loop.mp4"
    if not reference.exists():
        encode(reference, reference_frames(REFERENCE_SEED, 20.0, SIZE, FPS), FPS)
    if not copy_loop.exists():
        encode(copy_loop, stream_frames(copy_seed=REFERENCE_SEED, copy_from=4.0, lead=LEAD, copy=COPY, tail=TAIL,
                                        other_seed=900, size=SIZE, fps=FPS), FPS)
    if not clean_loop.exists():
        encode(clean_loop, stream_frames(copy_seed=None, lead=LOOP, copy=0.0, tail=0.0, other_seed=901,
                                         size=SIZE, fps=FPS), FPS)
    return reference, copy_loop, clean_loop


def run_soak(seconds: float, streams: int = 8, interval: float = 5.0, workdir: Path | None = None,
             out=print) -> SoakResult:
    """Run the soak for ``seconds`` with ``streams`` streams; print the table; return the result."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("the soak needs Debian's ffmpeg CLI (apt-get install ffmpeg)")
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="guard-soak-")) if own else Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    result = SoakResult()
    reference, copy_loop, clean_loop = make_media(folder / "media")
    home = folder / "store"
    shutil.rmtree(home, ignore_errors=True)
    secrets_by_path = {"/hook/league": "league-secret", "/hook/tube": "tube-secret"}
    receiver = CountingReceiver(secrets_by_path).up()
    server = GuardServer(home, folder / "server.log", {"GUARD_ALLOW_PRIVATE_ADDRESSES": "1"})
    publishers: list[FFmpegPublisher] = []
    load: ReadLoad | None = None
    http_errors: list[str] = []
    started_at: dict[str, float] = {}
    try:
        with Guard(Settings(home=home, allow_private_addresses=True)) as guard:
            admin = guard.keys.create("admin", "ops")[1]
            platform = guard.keys.create("platform", "tube")[1]
            guard.ingest(reference, title="final", owner="league", policy="flag", min_seconds=MIN_SECONDS)
            for owner in ("league", "tube"):
                guard.actions.add_endpoint(owner, receiver.url(f"/hook/{owner}"), secrets_by_path[f"/hook/{owner}"])
        server.start()
        api = Api(server.port, platform)
        loops = math.ceil((seconds + 30) / LOOP) + 1
        ids = []
        for i in range(streams):
            port = free_port("udp")
            status, body = api.json("POST", "/v1/streams", {"url": f"udp://127.0.0.1:{port}",
                                                            "account": f"channel{i}", "stream_id": f"soak-{i}"})
            if status != 201:
                raise RuntimeError(f"POST /v1/streams answered {status}: {body}")
            ids.append(body["id"])
            _wait_bound(port)
            source = copy_loop if i % 2 == 0 else clean_loop
            publishers.append(FFmpegPublisher(source, f"udp://127.0.0.1:{port}?pkt_size=1316", loops=loops).start())
            started_at[body["id"]] = time.monotonic()
        load = ReadLoad(server.port, admin).start()
        admin_api = Api(server.port, admin)
        out(f"soak: {streams} streams ({(streams + 1) // 2} with a copy), {seconds:.0f} s, a sample every "
            f"{interval:g} s; guard serve pid {server.pid}; store {home}")
        out(_header())
        t0 = time.monotonic()
        deadline = t0 + seconds
        while True:
            sample = _sample(server.pid, admin_api, receiver, load, t0, http_errors)
            result.samples.append(sample)
            out(_row(sample))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(interval, left))  # the sampling period
        final = _streams(admin_api, http_errors)
        for sid in ids:
            status, body = api.json("POST", f"/v1/streams/{sid}/stop")
            if status != 200:
                http_errors.append(f"POST /v1/streams/{sid}/stop: {status} {body}")
        elapsed = {sid: time.monotonic() - t for sid, t in started_at.items()}
    finally:
        if load is not None:
            load.close()
        for publisher in publishers:
            publisher.stop()
        server.stop()
        receiver.down()
    _judge(result, final, ids, elapsed, home, server, receiver, load, http_errors)
    out(_report(result))
    if own and result.ok:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _wait_bound(port: int) -> None:
    """Until the monitor listens on its UDP port, so the stream's start is not sent into the void."""
    try:
        from tests.live_helpers import udp_port_bound
    except ImportError:  # an older helper module: the first packets may be lost, which is harmless
        return
    wait_until(lambda: udp_port_bound(port), timeout=10)


def _streams(api: Api, errors: list[str]) -> list[dict]:
    try:
        status, body = api.json("GET", "/v1/streams?limit=500")
    except (OSError, ValueError) as exc:
        errors.append(f"GET /v1/streams: {exc}")
        return []
    if status != 200:
        errors.append(f"GET /v1/streams: {status} {body}")
        return []
    return body["items"]


def _sample(pid: int, api: Api, receiver: CountingReceiver, load: ReadLoad, t0: float,
            errors: list[str]) -> Sample:
    rss, fds, threads = proc_status(pid)
    items = _streams(api, errors)
    lags = [s["lag"] for s in items if s["active"]] or [0.0]
    return Sample(
        t=time.monotonic() - t0, rss_mb=rss, fds=fds, threads=threads,
        live=sum(1 for s in items if s["status"] == "live"), lag_max=max(lags), lag_mean=float(np.mean(lags)),
        frames=sum(s["frames"] for s in items), incidents=sum(s["incidents"] for s in items),
        deliveries=sum(len(v) for v in receiver.snapshot().values()),
        reads=load.reads, errors=len(load.errors) + len(errors), fd_kinds=fd_kinds(pid),
    )


def _judge(result: SoakResult, final: list[dict], ids: list[str], elapsed: dict[str, float], home: Path,
           server: GuardServer, receiver: CountingReceiver, load: ReadLoad | None, http_errors: list[str]) -> None:
    samples = result.samples
    examples = result.error_examples
    http = list(http_errors) + (list(load.errors) if load else [])
    by_id = {s["id"]: s for s in final}
    monitor = [f"{sid}: {by_id[sid]['status']} ({by_id[sid]['error']})" for sid in ids
               if sid not in by_id or by_id[sid]["status"] not in ("live", "starting", "reconnecting")
               or by_id[sid]["error"]]
    catalog = Catalog(home / "catalog.sqlite")
    try:
        outbox = ActionCenter(catalog, WebhookSettings())
        attempts = [d for d in outbox.deliveries(limit=1_000_000)
                    if d.status_code is None or not 200 <= d.status_code < 300]
        rows = outbox.outbox(limit=1_000_000)
    finally:
        catalog.close()
    webhook = [f"attempt {d.attempt} of {d.event_id}: {d.status_code} {d.error}" for d in attempts]
    webhook += [f"outbox row {r.id} ({r.event_type}) {r.status}" for r in rows if r.status != "delivered"]
    webhook += [f"receiver refused: {r}" for r in receiver.rejected]
    log_lines = [line for line in server.tail(10_000_000).splitlines() if re.search(r"\bERROR\b|Traceback", line)]
    copy_ids = ids[0::2]
    played = [sid for sid in copy_ids if elapsed.get(sid, 0.0) > LEAD + DETECTION_MARGIN]
    missed = [sid for sid in played if by_id.get(sid, {}).get("incidents", 0) == 0]
    false = [f"{sid}: {by_id[sid]['incidents']} incident(s)" for sid in ids[1::2]
             if by_id.get(sid, {}).get("incidents", 0)]
    result.errors = {"http": len(http), "monitor": len(monitor), "webhook": len(webhook),
                     "server log": len(log_lines), "false incidents": len(false)}
    for kind, items in (("http", http), ("monitor", monitor), ("webhook", webhook), ("server log", log_lines),
                        ("false incidents", false)):
        examples += [f"{kind}: {item}" for item in items[:5]]

    rss_growth, window = growth(samples, "rss_mb")
    median_rss = float(np.median([s.rss_mb for s in samples[len(samples) // 2:]]))
    rss_limit = max(RSS_FLOOR_SHARE * median_rss, RSS_MB_PER_MINUTE * window / 60)
    fd_growth, _ = growth(samples, "other_fds")
    catalog_growth, _ = growth(samples, "catalog_fds")
    thread_growth, _ = growth(samples, "threads")
    catalog_limit = FD_GROWTH + 2 * max(thread_growth, 0.0)
    half = len(samples) // 2
    first, second = samples[:half] or samples, samples[half:]
    fd_peak = max(s.other_fds for s in second) - max(s.other_fds for s in first)
    thread_peak = max(s.threads for s in second) - max(s.threads for s in first)
    lag_growth, _ = growth(samples, "lag_max")
    lag_worst = max(s.lag_max for s in second)
    deliveries = samples[-1].deliveries if samples else 0
    result.verdict = {
        "memory flat": (rss_growth <= rss_limit,
                        f"RSS {samples[0].rss_mb:.0f} → {samples[-1].rss_mb:.0f} MB; fitted growth over the last "
                        f"{window:.0f} s {rss_growth:+.1f} MB (limit {rss_limit:.1f} MB)"),
        "descriptors bounded": (fd_growth <= FD_GROWTH and fd_peak <= FD_SPIKE and catalog_growth <= catalog_limit,
                                f"{samples[0].fds} → {samples[-1].fds} ({samples[-1].catalog_fds} of the catalog); "
                                f"others: fitted growth {fd_growth:+.1f} (limit {FD_GROWTH:g}), second-half peak "
                                f"{fd_peak:+d} over the first (limit +{FD_SPIKE}); catalog: fitted growth "
                                f"{catalog_growth:+.1f} (limit {catalog_limit:.1f})"
                                + _kind_changes(samples[len(samples) // 2].fd_kinds, samples[-1].fd_kinds)),
        "threads flat": (thread_growth <= FD_GROWTH,
                         f"{samples[0].threads} → {samples[-1].threads}; fitted growth {thread_growth:+.1f}; "
                         f"second-half peak {thread_peak:+d}"),
        "no lag growth": (lag_worst < LAG_LIMIT and lag_growth <= LAG_GROWTH,
                          f"worst lag in the second half {lag_worst:.2f} s (limit {LAG_LIMIT:g} s); fitted growth "
                          f"{lag_growth:+.2f} s (limit {LAG_GROWTH:g} s)"),
        "0 errors": (result.error_count == 0,
                     ", ".join(f"{k} {v}" for k, v in result.errors.items()) + f"; {deliveries} webhooks received, "
                     f"{load.reads if load else 0} API reads"),
        "detection": (not missed,
                      f"{len(played) - len(missed)} of {len(played)} copy streams past their copy have an incident"
                      + (f"; none on {missed}" if missed else "")),
    }


def _header() -> str:
    return ("|      t | RSS MB | fds | catalog fds | threads | live | max lag | mean lag | frames | incidents "
            "| webhooks | API reads | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _row(s: Sample) -> str:
    return (f"| {s.t:5.0f} s | {s.rss_mb:6.1f} | {s.fds:3d} | {s.catalog_fds:11d} | {s.threads:7d} | {s.live:4d} "
            f"| {s.lag_max:5.2f} s "
            f"| {s.lag_mean:6.2f} s | {s.frames:6d} | {s.incidents:9d} | {s.deliveries:8d} | {s.reads:9d} "
            f"| {s.errors:6d} |")


def _report(result: SoakResult) -> str:
    lines = ["", "Verdict"]
    for name, (passed, detail) in result.verdict.items():
        lines.append(f"  {'PASS' if passed else 'FAIL'}  {name}: {detail}")
    if result.error_examples:
        lines.append("Errors (first few of each kind)")
        lines += [f"  - {e}" for e in result.error_examples]
    lines.append(f"\nsoak {'passed' if result.ok else 'FAILED'}")
    return "\n".join(lines)


def _print(line: str) -> None:
    print(line, flush=True)  # rows appear as they come, also when the output goes to a file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (CI: 2; full: 30)")
    parser.add_argument("--streams", type=int, default=8, help="live streams (default 8)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--workdir", type=Path, help="keep media, store and server log here")
    args = parser.parse_args()
    if args.minutes <= 0 or args.streams < 1 or args.interval <= 0:
        parser.error("--minutes, --streams and --interval must be positive")
    result = run_soak(args.minutes * 60, args.streams, args.interval, args.workdir, out=_print)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
