#!/usr/bin/env python
"""Load test of the HTTP API: concurrent clients reading while an ingest runs.

Starts ``guard serve`` (real uvicorn) on 127.0.0.1 over a fresh store with a few references,
scans and incidents, then runs ``--clients`` concurrent clients for ``--duration`` seconds.
Each client loops over three reads: a reference lookup (``GET /v1/references/{id}``), an
incident listing (``GET /v1/incidents?limit=20``) and a scan-status read
(``GET /v1/scans/{id}``), with ``--think`` seconds between requests on average (uniform in
0.5–1.5 × think, first request within the first think time, so that clients do not fire in
synchronised waves; ``--think 0`` is a closed loop: each client sends its next request as soon
as the previous answer arrives). Meanwhile one more client, in its own process, keeps an
ingest running: it uploads a 60 s reference video, waits for its job, deletes the reference and
starts again. Prints one table row per operation (Markdown).

    python scripts/bench_api.py --think 0.5         # 200 clients, 30 s, ~400 requests/s offered
    python scripts/bench_api.py                     # closed loop: as fast as the server answers
    python scripts/bench_api.py --clients 50 --duration 10 --no-ingest

Everything stays on loopback, is bounded by ``--duration``, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx2 as httpx

from guard_synth import broadcast as synth
from guard.config import Settings
from guard_synth.encode import write_video
from guard.service import Guard

SIZE, FPS = (320, 180), 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(home: Path, media: Path) -> dict:
    """Media, keys, references, a few scans with incidents; returns what the clients need."""
    reference = write_video(media / "reference.mp4", synth.broadcast(7, SIZE, FPS, 20), FPS)
    pirate = write_video(media / "pirate.mp4", synth.broadcast(7, SIZE, FPS, 10, start=5), FPS)
    upload = write_video(media / "ingest.mp4", synth.broadcast(8, SIZE, FPS, 60), FPS)
    with Guard(Settings(home=home)) as guard:
        rights = guard.keys.create("rights_holder", "league")[1]
        platform = guard.keys.create("platform", "tube")[1]
        ref_ids = [guard.ingest(reference, title=f"match {i}", owner="league").id for i in range(5)]
        scan_ids = []
        for _ in range(5):
            job = guard.jobs.submit("scan", owner="tube", role="platform",
                                    params={"_path": str(pirate), "filename": "pirate.mp4", "account": "x"})
            scan_ids.append(guard.jobs.wait(job.id, 120).id)
    return {"rights": rights, "platform": platform, "refs": ref_ids, "scans": scan_ids, "upload": upload}


def start_server(home: Path, port: int) -> subprocess.Popen:
    """``guard serve`` in a subprocess (its log goes to ``<home>/server.log``); waits until it answers."""
    command = [sys.executable, "-c", "from guard.cli import main; main()", "--home", str(home), "serve",
               "--host", "127.0.0.1", "--port", str(port)]
    log = open(home / "server.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("server did not start: " + (home / "server.log").read_text()[-2000:])


class Connection:
    """One keep-alive HTTP/1.1 connection with a minimal client (GET only).

    A full HTTP client library costs more CPU per request than the server does; on a shared
    2-core machine it would measure the load generator, not guard. This one writes the request
    line and headers and reads the status, ``Content-Length`` and body, nothing more.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, token: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n\r\n"
                          .encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def reader(host: str, port: int, world: dict, index: int, stop_at: float, think: float,
                 results: dict) -> None:
    refs, scans = world["refs"], world["scans"]
    ops = [
        ("reference lookup", lambda i: f"/v1/references/{refs[i % len(refs)]}", world["rights"]),
        ("incident listing", lambda i: "/v1/incidents?limit=20", world["rights"]),
        ("scan status", lambda i: f"/v1/scans/{scans[i % len(scans)]}", world["platform"]),
    ]
    connection = Connection(host, port)
    i = index
    jitter = random.Random(index)
    if think:  # clients start spread over one think time, not in one synchronised burst
        await asyncio.sleep(jitter.uniform(0, think))
    try:
        while time.monotonic() < stop_at:
            name, path, token = ops[i % len(ops)]
            started = time.perf_counter()
            try:
                ok = await connection.get(path(i), token) == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                await connection.close()
                connection = Connection(host, port)
            results[name].append((time.perf_counter() - started, ok))
            i += 1
            if think:
                await asyncio.sleep(jitter.uniform(0.5 * think, 1.5 * think))
    finally:
        await connection.close()


def ingester(port: int, token: str, upload: str, stop_at_wall: float, out) -> None:
    """Keep one ingest running until ``stop_at_wall``: upload, wait for the job, delete, repeat.

    Runs in its own process, so that building a multi-megabyte upload never stalls the
    readers' event loop (their latencies would then measure the load generator).
    """
    headers = {"Authorization": f"Bearer {token}"}
    data = Path(upload).read_bytes()
    samples = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        while time.time() < stop_at_wall:
            started = time.perf_counter()
            r = client.post("/v1/references", files={"file": ("ingest.mp4", data, "video/mp4")})
            ok = r.status_code == 202
            if ok:
                location = r.headers["location"]
                while (job := client.get(location).json())["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                ok = job["status"] == "done"
                if ok:
                    client.delete(f"/v1/references/{job['result']['reference']['id']}")
            samples.append((time.perf_counter() - started, ok))
    out.send(samples)


async def read_load(port: int, world: dict, clients: int, stop_at: float, think: float) -> dict:
    results: dict = defaultdict(list)
    await asyncio.gather(*[reader("127.0.0.1", port, world, i, stop_at, think, results) for i in range(clients)])
    return results


def run(port: int, world: dict, clients: int, duration: float, think: float,
        ingest: bool = True) -> tuple[dict, float]:
    """The readers in this process's event loop, the ingester in another process."""
    started = time.monotonic()
    receive, send = multiprocessing.Pipe(duplex=False)
    uploader = None
    if ingest:
        uploader = multiprocessing.Process(
            target=ingester, args=(port, world["rights"], str(world["upload"]), time.time() + duration, send))
        uploader.start()
    results = asyncio.run(read_load(port, world, clients, started + duration, think))
    if uploader is not None:
        results["ingest (upload → done)"] = receive.recv() if receive.poll(120) else []
        uploader.join(30)
    return results, time.monotonic() - started


def table(results: dict, elapsed: float) -> str:
    lines = ["| operation | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, samples in results.items():
        times = sorted(t for t, _ in samples)
        errors = sum(1 for _, ok in samples if not ok)
        q = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
        lines.append(f"| {name} | {len(samples)} | {errors} | {len(samples) / elapsed:.0f} | {q[49] * 1000:.1f} "
                     f"| {q[89] * 1000:.1f} | {q[98] * 1000:.1f} | {times[-1] * 1000:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--think", type=float, default=0.0, help="Pause between a client's requests (s).")
    parser.add_argument("--no-ingest", action="store_true", help="Reads only (for comparison).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        home, media = Path(tmp) / "store", Path(tmp)
        world = prepare(home, media)
        port = free_port()
        server = start_server(home, port)
        try:
            results, elapsed = run(port, world, args.clients, args.duration, args.think, not args.no_ingest)
        finally:
            if os.environ.get("GUARD_BENCH_LOG"):
                Path(os.environ["GUARD_BENCH_LOG"]).write_bytes((home / "server.log").read_bytes())
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"{args.clients} clients, {args.duration:g} s, think {args.think:g} s, "
          f"{'no ingest' if args.no_ingest else 'one ingest running'}, "
          f"{os.cpu_count()} CPUs (client and server on the same machine)\n")
    print(table(results, elapsed))


if __name__ == "__main__":
    main()
