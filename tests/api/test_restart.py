"""A `guard serve` killed with jobs queued loses none of them: after a restart the queued
ingest runs on its upload (issue 16). Real server subprocesses on 127.0.0.1, real uploads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from guard_synth import broadcast as synth
from guard_synth.encode import write_video

from ..live_helpers import free_port

#: Real server processes killed and restarted.
pytestmark = pytest.mark.slow

GUARD = [sys.executable, "-c", "from guard.cli import main; main()"]
SIZE = (160, 96)
FPS = 10
#: Length of the reference whose ingest keeps the only worker busy (cheap to encode as MPEG-4
#: from a few looped frames, some seconds to fingerprint).
LONG_SECONDS = 1800


def _guard(env, *args) -> str:
    out = subprocess.run([*GUARD, *args], capture_output=True, text=True, timeout=60, check=True, env=env)
    return out.stdout.strip()


def _start(env, port: int, log: Path) -> subprocess.Popen:
    """`guard serve` on 127.0.0.1:port, once /healthz answers (30 s at most)."""
    with open(log, "ab") as out:
        process = subprocess.Popen([*GUARD, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"server did not come up:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _poll(client, path: str, until, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(path).raise_for_status().json()
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def _upload(client, path: Path, title: str) -> str:
    with open(path, "rb") as fh:
        r = client.post("/v1/references", files={"file": (path.name, fh, "video/mp4")},
                        data={"title": title, "policy": "flag"})
    assert r.status_code == 202, r.text
    return r.headers["location"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("restart-media")
    loop = list(synth.broadcast(7, SIZE, FPS, 6))
    long = write_video(folder / "long.mp4", (loop[i % len(loop)] for i in range(LONG_SECONDS * FPS)), FPS,
                       codec="mpeg4")
    short = write_video(folder / "short.mp4", synth.broadcast(1, SIZE, FPS, 12), FPS)
    return long, short


def test_a_queued_upload_survives_a_sigkill_and_is_ingested_after_the_restart(tmp_path, videos):
    long, short = videos
    home, log = tmp_path / "home", tmp_path / "serve.log"
    env = {**os.environ, "GUARD_HOME": str(home), "GUARD_JOB_WORKERS": "1"}
    nba_key = _guard(env, "keys", "create", "--role", "rights_holder", "--owner", "nba")
    yt_key = _guard(env, "keys", "create", "--role", "platform", "--owner", "yt")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start(env, port, log)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {nba_key}"}, timeout=30) as nba:
            first = _upload(nba, long, "Long")
            assert _poll(nba, first, lambda j: j["status"] != "queued", 30)["status"] == "running"
            second = _upload(nba, short, "Short")
            assert nba.get(second).json()["status"] == "queued"
            assert nba.get(first).json()["status"] == "running", "the long ingest ended too soon for this test"
            uploads = sorted((home / "uploads").glob("upload-*"))
            assert len(uploads) == 2
            process.kill()  # SIGKILL, by PID: no shutdown code runs
            process.wait(10)

            process = _start(env, port, log)
            interrupted = _poll(nba, first, lambda j: j["status"] in ("done", "failed"), 30)
            assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
            ingested = _poll(nba, second, lambda j: j["status"] in ("done", "failed"), 60)
            assert ingested["status"] == "done", (ingested, log.read_text(errors="replace")[-3000:])
            reference = ingested["result"]["reference"]
            assert reference["title"] == "Short"
            assert [r["title"] for r in nba.get("/v1/references").json()["items"]] == ["Short"]
            assert not any((home / "uploads").glob("upload-*")), "uploads of finished jobs are deleted"

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {yt_key}"}, timeout=30) as yt, \
                open(short, "rb") as fh:
            r = yt.post("/v1/scans", files={"file": ("copy.mp4", fh, "video/mp4")}, data={"account": "a1"})
            assert r.status_code == 202, r.text
            scan = _poll(yt, r.headers["location"], lambda j: j["status"] in ("done", "failed"), 60)
        assert scan["status"] == "done", scan
        assert [m["reference_id"] for m in scan["result"]["matches"]] == [reference["id"]]
    finally:
        _stop(process)
