"""Live publishing on loopback for ``guard demo --live``, the tests and the benchmark scripts.

:class:`PacedPublisher` remuxes an encoded file with PyAV at real-time pace to a URL (MPEG-TS
over ``udp://127.0.0.1:PORT``), as a broadcaster's encoder or a pirate's restream sends it.
Every publisher records ``started_wall``: the wall-clock time its first packet went out, so
the moment media time ``t`` entered the stream is ``started_wall + t - first_time``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import av


def free_port(kind: str = "tcp") -> int:
    """A port nothing listens on right now (for UDP or TCP on 127.0.0.1)."""
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def udp_port_bound(port: int) -> bool:
    """Whether a socket of this machine is bound to UDP ``port`` (read from /proc: probing by
    binding the port would race with the program under test binding it)."""
    suffix = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            if any(row.split()[1].endswith(suffix) for row in list(rows)[1:]):
                return True
    return False


def remux_interleaved(source: str | os.PathLike, target: str | os.PathLike, fmt: str = "mpegts") -> Path:
    """Copy ``source``'s video and audio packets into ``target`` ordered by time.

    :func:`guard_synth.encode.write_video` writes the sound after the whole picture; a file
    published at real-time pace must carry them side by side, as a live encoder sends them.
    """
    target = Path(target)
    with av.open(str(source)) as src:
        streams = [*src.streams.video[:1], *src.streams.audio[:1]]
        timed = [(float(p.dts * p.time_base), n, p) for n, p in enumerate(src.demux(streams)) if p.dts is not None]
        packets = [p for _, _, p in sorted(timed, key=lambda item: item[:2])]
        with av.open(str(target), mode="w", format=fmt) as out:
            mapping = {s.index: out.add_stream_from_template(s) for s in streams}
            for packet in packets:
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
    return target


class PublisherThread:
    """A publisher running in a daemon thread: :meth:`start`, :meth:`stop`, or ``with``.

    Subclasses implement ``_run`` (checking ``stop_event``) and set ``first_time`` (media time
    of the first packet) and ``started_wall`` (when it went out). A failure ends the thread
    and is kept in ``error``.
    """

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.started_wall: float | None = None
        self.first_time: float | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._guarded, daemon=True)

    def start(self):
        """Start publishing in the background; returns the publisher."""
        self._thread.start()
        return self

    def _guarded(self):
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 — surfaced to the caller through .error
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        raise NotImplementedError

    def entered_at(self, media_time: float) -> float:
        """Wall-clock time media time ``media_time`` (s from the file start) entered the stream."""
        assert self.started_wall is not None, "publisher has not sent anything yet"
        return self.started_wall + media_time - (self.first_time or 0.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop publishing and wait (up to ``timeout`` s) for the thread to end."""
        self.stop_event.set()
        self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PacedPublisher(PublisherThread):
    """Remux ``source`` to ``url`` (MPEG-TS over UDP) at real-time pace with PyAV.

    ``loops`` replays the file, timestamps continuing. ``audio`` also sends the file's first
    sound track (the file must interleave it with the picture: :func:`remux_interleaved`).
    Stops at the end, or when stopped.
    """

    def __init__(self, source: Path, url: str, fmt: str = "mpegts", loops: int = 1, audio: bool = False):
        super().__init__()
        self.source, self.url, self.fmt, self.loops, self.audio = source, url, fmt, loops, audio

    def _run(self):
        with av.open(self.source) as src:
            in_stream = src.streams.video[0]
            in_streams = [in_stream, *(src.streams.audio[:1] if self.audio else [])]
            out = av.open(self.url, mode="w", format=self.fmt)
            try:
                out_streams = {s.index: out.add_stream_from_template(s) for s in in_streams}
                duration = float(in_stream.duration * in_stream.time_base) if in_stream.duration else 0.0
                for loop in range(self.loops):
                    src.seek(0)
                    shift = loop * duration
                    for packet in src.demux(in_streams):
                        if self.stop_event.is_set():
                            return
                        if packet.dts is None:
                            continue
                        time_base = packet.stream.time_base
                        t = float(packet.dts * time_base) + shift
                        self._pace(t)
                        if shift:
                            step = int(round(shift / time_base))
                            packet.pts, packet.dts = packet.pts + step, packet.dts + step
                        packet.stream = out_streams[packet.stream.index]
                        out.mux(packet)
            finally:
                with contextlib.suppress(Exception):
                    out.close()

    def _pace(self, t: float) -> None:
        now = time.time()
        if self.first_time is None or self.started_wall is None:
            self.first_time, self.started_wall = t, now
        wait = self.started_wall + (t - self.first_time) - now
        if wait > 0:
            self.stop_event.wait(wait)
