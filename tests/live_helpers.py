"""Live-stream fixtures for the monitoring tests and ``scripts/bench_live.py``.

Real publishers on loopback, all bounded and stoppable:

- :class:`PacedPublisher` — PyAV remuxes an encoded file at its own pace as MPEG-TS to
  ``udp://127.0.0.1:PORT`` (from :mod:`guard_synth.publish`, shared with ``guard demo --live``).
- :class:`HLSPublisher` — writes an HLS live playlist segment by segment into a folder that
  :class:`FolderServer` serves over HTTP (segments roll over: only the last few are listed).
- :class:`FFmpegPublisher` — Debian's ``ffmpeg`` CLI for what PyAV cannot publish: an RTMP or
  HTTP-FLV server in ``-listen 1`` mode (guard connects and pulls) and an SRT listener.
- :class:`WebhookReceiver` — an HTTP server checking guard's signatures and counting deliveries.

Each publisher records ``started_wall``: the wall-clock time its first packet went out, so the
moment media time ``t`` entered the stream is ``started_wall + t - first_time``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np

from guard_synth import broadcast as synth
from guard.actions import verify_signature
from guard_synth.encode import write_video
# Re-exported: the tests and scripts/bench_live.py take them from here.
from guard_synth.publish import PacedPublisher as PacedPublisher
from guard_synth.publish import PublisherThread as _Thread
from guard_synth.publish import free_port
from guard_synth.publish import udp_port_bound as udp_port_bound
from guard.errors import WebhookError

SIZE = (320, 180)
FPS = 12
#: Styles of the unrelated stream content (no photos, which every seed draws from).
OTHER_STYLES = ("shapes",)


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# -- media ------------------------------------------------------------------------------------


def encode(path: Path, frames, fps: float = FPS, gop: int | None = None) -> Path:
    """Encode RGB frames to H.264 (1 s keyframes, no lookahead: how live encoders run)."""
    options = {"preset": "veryfast", "tune": "zerolatency", "g": str(gop or int(fps))}
    return write_video(path, frames, fps, options=options)


def reference_frames(seed: int, duration: float, size=SIZE, fps: float = FPS):
    """A synthetic broadcast used as reference content."""
    return synth.broadcast(seed, size, fps, duration)


def stream_frames(
    *,
    copy_seed: int | None,
    copy_from: float = 0.0,
    lead: float = 4.0,
    copy: float = 8.0,
    tail: float = 2.0,
    other_seed: int = 999,
    transform=None,
    size=SIZE,
    fps: float = FPS,
):
    """Unrelated content for ``lead`` s, then ``copy`` s of reference ``copy_seed`` from
    ``copy_from`` (optionally transformed), then ``tail`` s unrelated again."""
    # Unrelated content avoids the photo styles: photo pans of two seeds can show the same photo.
    parts = [synth.broadcast(other_seed, size, fps, lead, styles=OTHER_STYLES)]
    if copy_seed is not None and copy > 0:
        copied = synth.broadcast(copy_seed, size, fps, copy, start=copy_from)
        if transform is not None:
            copied = (transform(f) for f in copied)
        parts.append(copied)
    if tail > 0:
        parts.append(synth.broadcast(other_seed, size, fps, tail, start=lead + copy, styles=OTHER_STYLES))
    return synth.splice(parts)


# -- publishers -------------------------------------------------------------------------------


class HLSPublisher(_Thread):
    """Write ``source`` (its picture and first sound) as a live HLS playlist into ``folder``,
    one segment at a time.

    Segments are cut at keyframes once ``segment_seconds`` long; the playlist lists the last
    ``list_size`` (older ones are deleted: rollover). ``#EXT-X-ENDLIST`` closes it at the end.
    ``inject_uri``: from segment ``inject_after`` on, the playlist also lists this URI (a
    playlist that turns bad after guard checked it).
    """

    def __init__(self, source: Path, folder: Path, segment_seconds: float = 1.0, list_size: int = 4,
                 name: str = "live.m3u8", inject_uri: str | None = None, inject_after: int = 2):
        super().__init__()
        self.inject_uri, self.inject_after = inject_uri, inject_after
        self.source, self.folder = source, Path(folder)
        self.segment_seconds, self.list_size = segment_seconds, list_size
        self.playlist = self.folder / name
        self.segments: list[tuple[str, float]] = []
        self.sequence = 0
        self.folder.mkdir(parents=True, exist_ok=True)

    def _run(self):
        with av.open(self.source) as src:
            in_stream = src.streams.video[0]
            streams = [in_stream, *src.streams.audio[:1]]  # the picture and the first sound, if any
            out, out_streams, seg_start, index = None, {}, 0.0, 0
            for packet in src.demux(*streams):
                if self.stop_event.is_set():
                    break
                if packet.dts is None:
                    continue
                t = float(packet.pts * packet.stream.time_base)
                video = packet.stream.index == in_stream.index
                if video and packet.is_keyframe and (out is None or t - seg_start >= self.segment_seconds - 1e-3):
                    if out is not None:
                        out.close()
                        self._publish(index, t - seg_start)
                        index += 1
                    out = av.open(str(self.folder / f"seg{index:05d}.ts"), mode="w", format="mpegts")
                    out_streams = {s.index: out.add_stream_from_template(s) for s in streams}
                    seg_start = t
                if out is None:  # sound before the first keyframe has no segment to go to
                    continue
                if self.first_time is None:
                    self.first_time, self.started_wall = t, time.time()
                packet.stream = out_streams[packet.stream.index]
                out.mux(packet)
                # A segment becomes visible only when complete: pace on its end, like a live packager.
                wait = self.started_wall + (t - self.first_time) - time.time()
                if wait > 0 and self.stop_event.wait(wait):
                    break
            if out is not None:
                out.close()
                self._publish(index, float(in_stream.duration * in_stream.time_base) - seg_start
                              if in_stream.duration else self.segment_seconds, end=True)

    def _publish(self, index: int, duration: float, end: bool = False) -> None:
        self.segments.append((f"seg{index:05d}.ts", duration))
        while len(self.segments) > self.list_size:
            old, _ = self.segments.pop(0)
            self.sequence += 1
            with contextlib.suppress(OSError):
                (self.folder / old).unlink()
        target = max(1, int(np.ceil(max(d for _, d in self.segments))))
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{self.sequence}"]
        for name, seg_duration in self.segments:
            lines += [f"#EXTINF:{seg_duration:.3f},", name]
        if self.inject_uri and index >= self.inject_after:
            lines += ["#EXTINF:1.000,", self.inject_uri]
        if end:
            lines.append("#EXT-X-ENDLIST")
        tmp = self.playlist.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.playlist)


class FFmpegPublisher:
    """Debian's ``ffmpeg`` CLI publishing a file at real-time pace (``-re``).

    Used where PyAV cannot publish: SRT (no libsrt in PyAV's FFmpeg) and server ("listen")
    mode for RTMP and HTTP-FLV (PyAV opens outputs without protocol options). ``-re`` paces
    from the process start, so media time ``t`` enters the stream at about ``started_wall + t``
    (a client connecting later first gets the backlog in a burst, like a real live server).
    """

    def __init__(self, source: Path, url: str, fmt: str = "mpegts", listen: bool = False, loops: int = 1):
        binary = shutil.which("ffmpeg")
        if binary is None:
            raise RuntimeError("ffmpeg CLI not installed")
        loop = ["-stream_loop", str(loops - 1)] if loops > 1 else []
        self.args = [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-re", *loop, "-i", str(source),
                     "-c", "copy", "-f", fmt, *(["-listen", "1"] if listen else []), url]
        self.proc: subprocess.Popen | None = None
        self.started_wall: float | None = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.started_wall = time.time()
        return self

    def entered_at(self, media_time: float) -> float:
        """Wall-clock time media time ``media_time`` entered the stream (about)."""
        return self.started_wall + media_time

    @property
    def finished(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        if isinstance(code, int):  # every answer, errors included (send_error logs through here)
            self.server.answers.append((self.path, int(code), time.monotonic()))


class FolderServer:
    """A threading HTTP server for one folder on 127.0.0.1 (an ephemeral port).

    A file not (yet) in the folder is answered 404, as a streaming server does for a playlist
    its packager has not written. :meth:`answers` lists ``(status, monotonic time)`` per path.
    """

    def __init__(self, folder: Path):
        handler = lambda *a, **kw: _QuietHandler(*a, directory=str(folder), **kw)  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.answers = []
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def answers(self, name: str) -> list[tuple[int, float]]:
        """``(status, time.monotonic())`` of every request for ``/name`` so far."""
        return [(code, at) for path, code, at in list(self.server.answers) if path == f"/{name}"]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class _PostServer(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_posts(answer, port: int = 0, tls: ssl.SSLContext | None = None):
    """A threaded HTTP(S) server on 127.0.0.1 answering every POST with the status
    ``answer(path, headers, body)`` returns (empty body). Returns ``(server, thread)``; stop it
    with :func:`stop_serving`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(answer(self.path, self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = _PostServer(("127.0.0.1", port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return server, thread


def stop_serving(server, thread) -> None:
    """Stop a server from :func:`serve_posts` and close its port."""
    server.shutdown()
    server.server_close()
    thread.join(5)


class WebhookReceiver:
    """A real HTTP webhook receiver: verifies signatures, deduplicates by event id, counts.

    ``status`` is what it answers (set 503 to simulate an outage without closing the port);
    :meth:`down`/:meth:`up` close and reopen the port itself. ``events`` maps event id →
    body for accepted deliveries; ``posts`` counts every request, ``duplicates`` repeats.
    """

    def __init__(self, secret: str, port: int | None = None):
        self.secret = secret
        self.port = port or free_port()
        self.status = 200
        self.events: dict[str, dict] = {}
        self.arrivals: dict[str, float] = {}
        self.posts = 0
        self.duplicates = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        self.server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self, tls: ssl.SSLContext | None = None):
        self.server, self._thread = serve_posts(lambda path, headers, body: self.accept(headers, body),
                                                self.port, tls)
        return self

    def down(self) -> None:
        if self.server is not None:
            stop_serving(self.server, self._thread)
            self.server = None

    def accept(self, headers, body: bytes) -> int:
        with self.lock:
            self.posts += 1
            if self.status != 200:
                return self.status
            try:
                verify_signature(self.secret, headers.get("Guard-Timestamp"), body, headers.get("Guard-Signature", ""))
            except WebhookError:
                self.bad_signatures += 1
                return 401
            event = json.loads(body)
            if event["id"] != headers.get("Idempotency-Key"):
                self.bad_signatures += 1
                return 400
            if event["id"] in self.events:
                self.duplicates += 1
            else:
                self.events[event["id"]] = event
                self.arrivals[event["id"]] = time.time()
            self.received.notify_all()
            return 200

    def of_type(self, event_type: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events.values() if e["type"] == event_type]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.received:
            while True:
                found = [e for e in self.events.values() if e["type"] == event_type]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self.received.wait(remaining)

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()
