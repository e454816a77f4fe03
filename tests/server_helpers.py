"""Shared by ``scripts/fault_inject.py``, ``scripts/soak.py`` and their tests.

- :class:`GuardServer` — ``guard serve`` as a child process on a free loopback port; stopped
  (SIGINT) or killed (SIGKILL) by its own PID only.
- :class:`Api` — a small stdlib HTTP client with a bearer key: JSON requests, and multipart
  uploads that can be paced so that a kill lands in the middle of one.
- :class:`CountingReceiver` — a webhook receiver on 127.0.0.1 (``http.server`` in a thread)
  with one secret per path; it checks every POST with :func:`guard.actions.verify_signature`
  and records every delivery per ``(path, Guard-Event-Id)``, repeats included.
- :func:`clip` — a small synthetic video (320×180, 10 fps) drawn from one photo of its own,
  so that two clips never share a picture.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from guard_synth import broadcast as synth
from guard.actions import verify_signature
from guard_synth.encode import write_video
from guard.errors import WebhookError
from tests.live_helpers import free_port, serve_posts, stop_serving

SIZE = (320, 180)
FPS = 10
#: ``guard`` run by this interpreter (whatever the PATH holds).
GUARD = [sys.executable, "-m", "guard"]


def clip(path: Path, photo: int, seconds: float, *, start: float = 0.0, seed: int | None = None,
         transform=None) -> Path:
    """Write ``seconds`` of a synthetic broadcast built on photo number ``photo`` only."""
    if path.exists():
        return path
    frames = synth.broadcast(100 + photo if seed is None else seed, SIZE, FPS, seconds, start=start,
                             photos=[synth.PHOTOS[photo]])
    if transform is not None:
        frames = (transform(f) for f in frames)
    return write_video(path, frames, FPS)


# -- the server --------------------------------------------------------------------------------


class GuardServer:
    """``guard --home HOME serve`` on a free port of 127.0.0.1, its output appended to ``log``."""

    def __init__(self, home: Path, log: Path, env: dict[str, str] | None = None):
        self.home, self.log = Path(home), Path(log)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    def start(self, timeout: float = 60.0) -> GuardServer:
        """Start and wait until ``/healthz`` answers; raises RuntimeError if it does not."""
        self.port = free_port()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*GUARD, "--home", str(self.home), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"guard serve exited with {self.process.returncode}: {self.tail()}")
            try:
                status, _ = Api(self.port, None, timeout=2).json("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"guard serve did not answer within {timeout:.0f} s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL this server (by its PID) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# -- a client ----------------------------------------------------------------------------------


class Api:
    """Requests to ``127.0.0.1:port`` with ``Authorization: Bearer token``; one connection each
    (or one kept alive with ``keep_alive=True``, reopened after an error)."""

    def __init__(self, port: int, token: str | None, timeout: float = 30.0, keep_alive: bool = False):
        self.port, self.token, self.timeout, self.keep_alive = port, token, timeout, keep_alive
        self._conn: http.client.HTTPConnection | None = None

    def _headers(self, extra: dict | None = None) -> dict:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None or not self.keep_alive:
            self.close()
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        """``(status, body)``; OSError / http.client errors propagate (after closing the connection)."""
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if not self.keep_alive:
            self.close()
        return response.status, data

    def json(self, method: str, path: str, payload=None) -> tuple[int, object]:
        """A JSON request; the answer parsed when it is JSON, else its text."""
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self.request(method, path, body, {"Content-Type": "application/json"} if body else None)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")

    def upload(self, path: str, file: Path, fields: dict[str, str], *, chunk: int = 16384,
               seconds: float = 0.0, on_sent=None) -> tuple[int, object]:
        """POST ``file`` as the multipart ``file`` part with ``fields``, spread over ``seconds``.

        ``on_sent()`` is called when the whole body is out (the server may still be answering).
        """
        boundary = "guard-" + secrets.token_hex(8)
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
                 f"Content-Type: video/mp4\r\n\r\n").encode()
        body = head + file.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.putrequest("POST", path)
            for name, value in self._headers({"Content-Type": f"multipart/form-data; boundary={boundary}",
                                              "Content-Length": str(len(body))}).items():
                conn.putheader(name, value)
            conn.endheaders()
            pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
            pause = seconds / len(pieces) if pieces else 0.0
            for piece in pieces:
                conn.send(piece)
                if pause:
                    time.sleep(pause)  # pacing the upload, so a kill can land inside it
            if on_sent is not None:
                on_sent()
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")


# -- webhooks ----------------------------------------------------------------------------------


class CountingReceiver:
    """Webhook receiver on 127.0.0.1: ``secrets`` maps a path (``/hook/x``) to its signing secret.

    Every POST is verified with :func:`guard.actions.verify_signature` and its body's ``id``
    compared with ``Guard-Event-Id`` and ``Idempotency-Key``; a valid one is answered 200 and
    its arrival time recorded in ``deliveries[(path, event_id)]`` (repeats included: that list
    has one time per delivery). Invalid ones are answered 401/400 and listed in ``rejected``.
    ``delay`` seconds pass between recording a delivery and answering it.
    """

    def __init__(self, secrets_by_path: dict[str, str], delay: float = 0.0):
        self.secrets = dict(secrets_by_path)
        self.delay = delay
        self.deliveries: dict[tuple[str, str], list[float]] = {}
        self.types: dict[str, str] = {}
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accept(self, path: str, headers, body: bytes) -> int:
        secret = self.secrets.get(path)
        event_id = headers.get("Guard-Event-Id", "")
        with self.lock:
            if secret is None:
                self.rejected.append(f"{path}: unknown path")
                return 404
            try:
                verify_signature(secret, headers.get("Guard-Timestamp"), body, headers.get("Guard-Signature", ""))
                event = json.loads(body)
            except (WebhookError, ValueError) as exc:
                self.rejected.append(f"{path} {event_id}: {exc}")
                return 401
            if not (event.get("id") == event_id == headers.get("Idempotency-Key")):
                self.rejected.append(f"{path} {event_id}: body id {event.get('id')!r} differs from its headers")
                return 400
            self.deliveries.setdefault((path, event_id), []).append(time.time())
            self.types[event_id] = event.get("type", "?")
            return 200

    def snapshot(self) -> dict[tuple[str, str], list[float]]:
        """A copy of the deliveries so far."""
        with self.lock:
            return {key: list(times) for key, times in self.deliveries.items()}

    def up(self) -> CountingReceiver:
        self.server, self._thread = serve_posts(self._answer)
        self.port = self.server.server_address[1]
        return self

    def _answer(self, path: str, headers, body: bytes) -> int:
        status = self.accept(path, headers, body)
        if self.delay:
            time.sleep(self.delay)  # a slow receiver: recorded on arrival, answered later
        return status

    def down(self) -> None:
        if self.server is not None:
            stop_serving(self.server, self._thread)
            self.server = None

    def __enter__(self) -> CountingReceiver:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


# -- scripts -----------------------------------------------------------------------------------


def load_script(name: str):
    """Import ``scripts/<name>.py`` as module ``guard_script_<name>`` (scripts is not a package)."""
    import importlib.util

    scripts = Path(__file__).resolve().parent.parent / "scripts"
    module = f"guard_script_{name}"
    if module in sys.modules:
        return sys.modules[module]
    spec = importlib.util.spec_from_file_location(module, scripts / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod
