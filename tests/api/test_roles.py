"""`guard serve --roles`: an API process and a worker process over one store (issue 11).

Real processes on 127.0.0.1: ``--roles api`` (via ``GUARD_ROLES``) answers HTTP and only
records work; ``--roles jobs,dispatch`` (no HTTP) runs the queued jobs and sends the webhooks,
including an event the API process published.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from guard.actions import ActionCenter
from guard.store import Catalog

from ..server_helpers import GUARD, Api, CountingReceiver, GuardServer, clip

#: Two real server processes over one store.
pytestmark = pytest.mark.slow

SECRET = "roles-secret"


def _guard(env: dict, *args: str) -> str:
    done = subprocess.run([*GUARD, *args], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _poll(api: Api, path: str, until, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = api.json("GET", path)
        assert status == 200, body
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


class Workers:
    """``guard serve --roles jobs,dispatch``: no port; ready once it says so on stderr."""

    def __init__(self, home: Path, log: Path, env: dict):
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen([*GUARD, "--home", str(home), "serve", "--roles", "jobs,dispatch"],
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        _wait_for(lambda: "running jobs, dispatch" in log.read_text(errors="replace") or self.process.poll() is not None,
                  60, "the worker process did not start", log)
        assert self.process.poll() is None, log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


def test_an_api_process_records_work_that_a_worker_process_runs_and_delivers_once(tmp_path):
    home, log = tmp_path / "home", tmp_path / "serve.log"
    video = clip(tmp_path / "final.mp4", photo=3, seconds=8)
    with CountingReceiver({"/hook": SECRET}) as receiver:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GUARD_")}
        env.update(GUARD_HOME=str(home), GUARD_JOB_WORKERS="1", GUARD_ALLOW_PRIVATE_ADDRESSES="1",
                   GUARD_WEBHOOK__URL=receiver.url("/hook"), GUARD_WEBHOOK__SECRET=SECRET,
                   GUARD_WEBHOOK__BACKOFF_INITIAL="0.2")
        nba = _guard(env, "keys", "create", "--role", "rights_holder", "--owner", "nba")
        yt = _guard(env, "keys", "create", "--role", "platform", "--owner", "yt")
        api_process = GuardServer(home, log, env={**env, "GUARD_ROLES": "api"}).start()
        workers = None
        try:
            rights, platform = Api(api_process.port, nba), Api(api_process.port, yt)
            status, job = rights.upload("/v1/references", video, {"title": "Final", "policy": "flag"})
            assert status == 202, job
            # Nothing runs it yet: the API process has no jobs role.
            queued = _poll(rights, f"/v1/jobs/{job['id']}", lambda j: j["status"] != "queued", 1.5)
            assert queued["status"] == "queued"

            workers = Workers(home, log, env)
            ingested = _poll(rights, f"/v1/jobs/{job['id']}", lambda j: j["status"] in ("done", "failed"), 90)
            assert ingested["status"] == "done", (ingested, api_process.tail())

            status, scan = platform.upload("/v1/scans", video, {"account": "pirate"})
            assert status == 202, scan
            scanned = _poll(platform, f"/v1/scans/{scan['id']}", lambda j: j["status"] in ("done", "failed"), 90)
            assert scanned["status"] == "done", scanned
            [incident_id] = scanned["result"]["incidents"]

            # Published by the worker process (the scan), sent by its dispatcher.
            _wait_for(lambda: "incident.flagged" in receiver.types.values(), 30, "incident.flagged not delivered", log)
            # Published by the API process (the review), sent by the other process's dispatcher.
            status, _ = rights.json("POST", f"/v1/incidents/{incident_id}/review", {"action": "confirm"})
            assert status == 200
            _wait_for(lambda: "incident.updated" in receiver.types.values(), 30, "incident.updated not delivered", log)

            catalog = Catalog(home / "catalog.sqlite")
            try:
                rows = ActionCenter(catalog).outbox()
            finally:
                catalog.close()
            assert len(rows) == 2 and all(r.status == "delivered" and r.attempts == 1 for r in rows)
            deliveries = receiver.snapshot()
            assert sorted(receiver.types[event_id] for _, event_id in deliveries) == ["incident.flagged",
                                                                                       "incident.updated"]
            assert all(len(times) == 1 for times in deliveries.values()), deliveries  # each delivered once
            assert receiver.rejected == []
        finally:
            codes = [workers.stop() if workers is not None else 0, api_process.stop()]
        assert codes[0] == 0, log.read_text(errors="replace")[-3000:]
