"""Helpers of the API tests: wait for jobs, upload references, scan files."""

from __future__ import annotations

import functools
import io
import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

from fastapi.testclient import TestClient

#: Size and frame rate of the generated test videos (small, to keep the suite fast).
SIZE, FPS = (320, 180), 10


def wait_job(client: TestClient, job_id: int, headers: dict, timeout: float = 60.0) -> dict:
    """Poll a job until it is final (the job queue's own wait, then one read through the API)."""
    client.app.state.guard.jobs.wait(job_id, timeout)
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] in ("done", "failed"), job
    return job


def upload_reference(client: TestClient, path: Path, headers: dict, **fields) -> dict:
    """Upload a reference, wait for its ingest; return the reference."""
    with open(path, "rb") as fh:
        r = client.post("/v1/references", headers=headers, files={"file": (path.name, fh, "video/mp4")},
                        data=fields)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"], headers)
    assert job["status"] == "done", job
    return job["result"]["reference"]


def scan_file(client: TestClient, path: Path, headers: dict) -> dict:
    """Upload a file to scan, wait for the scan; return the finished job."""
    with open(path, "rb") as fh:
        r = client.post("/v1/scans", headers=headers, files={"file": (path.name, fh, "video/mp4")})
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["id"], headers)


class RangeHTTPHandler(SimpleHTTPRequestHandler):
    """A static file handler that honours ``Range`` (FFmpeg seeks in MP4 over HTTP)."""

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not match:
            return super().send_head()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        start = int(match.group(1))
        end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return io.BytesIO(data[start : end + 1])

    def log_message(self, *args):
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``folder``; yields its base URL, stops at exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHTTPHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Receiver:
    """A real webhook receiver on 127.0.0.1 that records every POST (headers and body)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[tuple[dict, bytes]] = []
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.received:
                    receiver.requests.append((dict(self.headers), body))
                    receiver.received.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-receiver", daemon=True)

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[dict, bytes]]:
        """Block until ``count`` requests arrived (or ``timeout``); return them."""
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
