"""Hostile inputs: a corpus of broken, extreme and malicious inputs, each given to the real CLI
(``guard scan`` / ``guard ingest`` / ``guard import`` as subprocesses over a copy of a store
that already holds a reference) or to the real API (the fixtures of ``tests/api/conftest.py``).

Every case must end, in bounded time and memory, either handled (valid but extreme media:
scanned or registered) or refused precisely: exit code 2 with one line on stderr naming the
input and the problem, or an HTTP 4xx in the documented error shape. Afterwards the reference
stored before the case is still listed and still matches. The corpus is made here, with
PyAV and NumPy; nothing is downloaded. docs/reliability.md lists the kinds and outcomes.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
import pytest

from guard_synth import broadcast as synth
from guard.config import Settings
from guard_synth.encode import write_audio_only, write_video
from guard.models import Fingerprint, Reference
from guard.service import Guard
from tests.api.conftest import client, settings, tenants  # noqa: F401 — the API fixtures
from tests.api.helpers import wait_job

#: About 200 subprocess and API cases: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

#: Longest a CLI run on one hostile input may take (small files: a healthy run takes ~2 s).
TIMEOUT = 30.0
#: Address space of every CLI process (RLIMIT_AS): a bomb fails inside this, not the machine.
ADDRESS_SPACE = 3 << 30
#: Resident memory a CLI process may reach on any case (a healthy scan peaks near 0.4 GiB).
PEAK_RSS = 1 << 30
#: Extra address space the test process may take while the API parses one hostile upload.
API_HEADROOM = 1 << 30

SIZE, FPS = (320, 180), 10
KEPT_TITLE = "kept reference"
SECRET = "s3cret"
#: The error codes README.md documents for the API's error shape.
API_ERROR_CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict",
                   "too_large", "invalid", "internal_error", "unavailable"}

#: A log record on stderr (the CLI's logging format); the one error line may follow some.
LOG_RECORD = re.compile(r"^(DEBUG|INFO|WARNING) [\w.]+: ")
#: Wordings that state a media problem (the exact text is the implementation's).
MEDIA_PROBLEM = (r"empty|cannot be opened|no video stream|no decodable|damaged|no informative|"
                 r"not a (regular|media) file|too (large|big|many)|invalid|unsupported|dimensions|pixels")
#: Wordings that state a problem with a fingerprint export file.
EXPORT_PROBLEM = (r"not a guard fingerprint|malformed|invalid|checksum|finite|nan|infinit|too (large|long|deep|big)|"
                  r"limit|nest|duration|sample_fps|frames|title|gzip|decompress|not a regular file|is a|must|signal|version")


# -- running the CLI ------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished (or killed) CLI process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int  # bytes
    timed_out: bool

    @property
    def error_lines(self) -> list[str]:
        """Lines of stderr other than log records (``WARNING guard.decode: …``)."""
        return [line for line in self.stderr.splitlines() if line.strip() and not LOG_RECORD.match(line)]

    def describe(self) -> str:
        return (f"guard {' '.join(map(repr, self.args))}: exit {self.returncode} after {self.seconds:.1f} s, "
                f"peak {self.peak_rss >> 20} MiB{' (killed at the timeout)' if self.timed_out else ''}\n"
                f"stdout: {self.stdout[-2000:]!r}\nstderr: {self.stderr[-2000:]!r}")


def _guard_command() -> list[str]:
    script = Path(sys.executable).with_name("guard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "guard"]


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _child_limits(drop_dac: bool) -> Callable[[], None]:
    """What runs in the child before ``exec``: the memory cap, and for root without the
    capabilities that let it read any file (so that ``chmod 000`` bites)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        if drop_dac and os.geteuid() == 0:
            for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
                if _LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return apply


def _spawn(argv: list[str], cwd: Path, drop_dac: bool = False,
           timeout: float = TIMEOUT) -> tuple[int, float, int, bool, str, str]:
    """Run ``argv`` under the limits; returns (exit code, seconds, peak RSS, timed out, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=_child_limits(drop_dac), start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # per-child peak RSS, which Popen.wait cannot give
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    try:  # the child's own children (none expected) die with its session
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    stdout = out_path.read_bytes().decode("utf-8", "replace")
    stderr = err_path.read_bytes().decode("utf-8", "replace")
    out_path.unlink()
    err_path.unlink()
    return proc.returncode, seconds, usage.ru_maxrss * 1024, killed.is_set(), stdout, stderr


def run_guard(home: Path, *args: str | os.PathLike, drop_dac: bool = False) -> Run:
    """``guard --home HOME ARGS`` as a subprocess, bounded in time and memory."""
    argv = [*_guard_command(), "--home", str(home), *map(os.fspath, args)]
    code, seconds, rss, timed_out, stdout, stderr = _spawn(argv, home.parent, drop_dac)
    return Run([os.fspath(a) for a in args], code, stdout, stderr, seconds, rss, timed_out)


def assert_bounded(run: Run) -> None:
    """The run ended by itself, within the memory bound, without an internal error."""
    assert not run.timed_out, f"no answer within {TIMEOUT:.0f} s: {run.describe()}"
    assert run.peak_rss <= PEAK_RSS, f"peak memory over {PEAK_RSS >> 20} MiB: {run.describe()}"
    assert run.returncode >= 0, f"killed by signal {-run.returncode}: {run.describe()}"
    assert run.returncode != 4 and "Traceback" not in run.stderr, f"internal error: {run.describe()}"


def assert_refused(run: Run, token: str, problem: str) -> None:
    """Exit code 2 and one line on stderr that names ``token`` and matches ``problem``."""
    assert_bounded(run)
    assert run.returncode == 2, f"expected exit code 2: {run.describe()}"
    lines = run.error_lines
    assert len(lines) == 1, f"expected one error line on stderr: {run.describe()}"
    assert token in lines[0], f"the error does not name {token!r}: {run.describe()}"
    assert re.search(problem, lines[0], re.IGNORECASE), f"the error does not say what is wrong ({problem}): {run.describe()}"


# -- the corpus -----------------------------------------------------------------------------------


@dataclass
class Corpus:
    """What every case builds on: real encodes, a store holding one reference, its export."""

    folder: Path
    reference: Path  # 10 s, 320×180, 10 fps, H.264: the kept reference
    clip: Path  # 6 s of unrelated video, moov at the end
    faststart: Path  # the same with the moov first
    store: Path  # a store holding the reference only (copied for each case)
    fingerprint: Fingerprint  # the reference's fingerprint (its own frames find it)

    @property
    def export(self) -> Path:
        """The reference's hash-only export (plain JSON), made by ``guard export`` on first use."""
        path = self.folder / "kept.gfp.json"
        if not path.exists():
            exported = run_guard(_copy_store(self.store, self.folder / "export-store"), "export", "1", "-o", path)
            assert exported.returncode == 0, exported.describe()
        return path


def _encode(path: Path, frames, rate, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
            fmt: str | None = None, container_options: dict | None = None, pts: list[int] | None = None) -> Path:
    """Encode RGB frames fast (x264 ``ultrafast``); ``pts`` in frame periods overrides 0, 1, 2…"""
    with av.open(str(path), "w", format=fmt, container_options=container_options or {}) as out:
        stream = None
        for i, rgb in enumerate(frames):
            if stream is None:
                stream = out.add_stream(codec, rate=Fraction(rate).limit_denominator(1001))
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
                if codec == "libx264":
                    stream.options = {"preset": "ultrafast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    folder = tmp_path_factory.mktemp("hostile")
    reference = write_video(folder / "kept.mp4", synth.broadcast(1, SIZE, FPS, 10), FPS)
    clip = _encode(folder / "clip.mp4", synth.broadcast(7, SIZE, FPS, 6), FPS)
    faststart = _encode(folder / "faststart.mp4", synth.broadcast(7, SIZE, FPS, 6), FPS,
                        container_options={"movflags": "+faststart"})
    store = folder / "store"
    ingest = run_guard(store, "ingest", reference, "--title", KEPT_TITLE)
    assert ingest.returncode == 0, ingest.describe()
    with Guard(Settings(home=folder / "scratch")) as guard:
        fingerprint = guard.fingerprint(reference)
    return Corpus(folder, reference, clip, faststart, store, fingerprint)


def _copy_store(store: Path, to: Path) -> Path:
    return Path(shutil.copytree(store, to, dirs_exist_ok=True))


@pytest.fixture
def home(corpus, tmp_path) -> Path:
    """A private copy of the store with the kept reference."""
    return _copy_store(corpus.store, tmp_path / "store")


def assert_store_intact(home: Path, corpus: Corpus) -> None:
    """The kept reference is still listed, and its frames still find it through the index."""
    with Guard(Settings(home=home)) as guard:
        kept = [r for r in guard.references() if r.title == KEPT_TITLE]
        assert kept, [r.title[:80] for r in guard.references()]
        segments = guard.match(corpus.fingerprint.times, corpus.fingerprint.codes)
        assert any(s.reference_id == kept[0].id for s in segments), segments


# -- MP4 surgery ----------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[str, int, int, int]]:
    """``(type, box start, payload start, box end)`` of the ISO-BMFF boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield kind.decode("latin-1"), pos, pos + header, pos + size
        pos += size


def _box(data: bytes, *path: str) -> tuple[int, int, int]:
    """``(box start, payload start, box end)`` of the first box along ``path`` (e.g. moov, mvhd)."""
    start, end, found = 0, len(data), None
    for name in path:
        found = next((b for b in _boxes(data, start, end) if b[0] == name), None)
        assert found is not None, f"no {name} box"
        start, end = found[2], found[3]
    return found[1], found[2], found[3]


def _set_duration(data: bytearray, path: tuple[str, ...], seconds: float, timescale_at: int | None) -> None:
    """Write ``seconds`` into the duration field of an mvhd/mdhd/tkhd box (v0 or v1)."""
    _, payload, _ = _box(bytes(data), *path)
    v1 = data[payload] == 1
    if timescale_at is None:  # tkhd counts in the movie timescale
        _, movie, _ = _box(bytes(data), "moov", "mvhd")
        timescale = struct.unpack(">I", data[movie + (20 if data[movie] == 1 else 12):][:4])[0]
        at = payload + (28 if v1 else 20)
    else:
        timescale = struct.unpack(">I", data[payload + (20 if v1 else 12):][:4])[0]
        at = payload + (24 if v1 else 16)
    value = int(seconds * timescale)
    if v1:
        data[at:at + 8] = struct.pack(">Q", value)
    else:
        data[at:at + 4] = struct.pack(">I", min(value, 0xFFFFFFFF))


def _claims_ten_hours(corpus: Corpus) -> bytes:
    data = bytearray(corpus.clip.read_bytes())
    _set_duration(data, ("moov", "mvhd"), 36000, timescale_at=12)
    _set_duration(data, ("moov", "trak", "tkhd"), 36000, timescale_at=None)
    _set_duration(data, ("moov", "trak", "mdia", "mdhd"), 36000, timescale_at=12)
    return bytes(data)


def _without_moov(corpus: Corpus) -> bytes:
    """The clip without its moov box (the media data whole, nothing to index it). Renaming the
    box is not enough: FFmpeg reads a ``free`` box that holds an ``mvhd`` as the moov."""
    data = corpus.clip.read_bytes()
    start, _, end = _box(data, "moov")
    return data[:start] + data[end:]


def _mdat_damaged(corpus: Corpus, every: int, seed: int) -> bytes:
    """The clip with every ``every``-th byte of its media data replaced (1: all of it)."""
    data = bytearray(corpus.clip.read_bytes())
    _, payload, end = _box(bytes(data), "mdat")
    rng = np.random.default_rng(seed)
    positions = np.arange(payload, end, every)
    data_arr = np.frombuffer(data, dtype=np.uint8).copy()
    data_arr[positions] = rng.integers(0, 256, len(positions), dtype=np.uint8)
    return data_arr.tobytes()


def _mdat_size_lies(corpus: Corpus) -> bytes:
    data = bytearray(corpus.faststart.read_bytes())
    start, _, _ = _box(bytes(data), "mdat")
    data[start:start + 4] = struct.pack(">I", 0xFFFFFFF0)
    return bytes(data)


# -- hand-made files ------------------------------------------------------------------------------


def _png(width: int, height: int, rows: bytes) -> bytes:
    """A greyscale PNG with the given header size and (possibly too short) pixel rows."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _real_png() -> bytes:
    rows = b"".join(b"\x00" + bytes((x * 4 + y * 2) % 256 for x in range(64)) for y in range(36))
    return _png(64, 36, rows)


def _ts_random_packets(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return b"".join(b"\x47" + rng.bytes(187) for _ in range(600))


def _data_only_ts(path: Path) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_data_stream()
        for i in range(60):
            packet = av.Packet(bytes([i]) * 120)
            packet.stream, packet.time_base = stream, Fraction(1, 90000)
            packet.pts = packet.dts = i * 9000
            out.mux(packet)
    return path


def _subtitle_only_ts(path: Path) -> Path:
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("dvb_subtitle")
        for i in range(30):
            packet = av.Packet(f"line {i}".encode())
            packet.stream, packet.time_base = stream, Fraction(1, 1000)
            packet.pts = packet.dts = i * 1000
            packet.duration = 500
            out.mux(packet)
    return path


SUBRIP = "".join(f"{i}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\nline {i}\n\n" for i in range(1, 30))


def gzip_bomb(mebibytes: int) -> bytes:
    """A gzip member that inflates to ``mebibytes`` MiB of zeros (about 1 KiB per MiB).

    One MiB of zeros is deflated once and its block, byte-aligned by a full flush, repeated;
    the trailer's CRC and size are those of the whole output, so the member is valid.
    """
    chunk = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    final_empty_block = b"\x03\x00"
    return header + block * mebibytes + final_empty_block + struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)


#: The export bomb: 2 GiB once inflated, about 2 MiB on disk (under the API fixture's 4 MiB limit).
BOMB_MEBIBYTES = 2048


# -- media cases (guard scan / guard ingest) ------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """Exit code 2, one line on stderr naming the input and matching ``problem``."""

    problem: str = MEDIA_PROBLEM


@dataclass(frozen=True)
class Handled:
    """Valid though extreme input: one of ``codes``, or a precise refusal if 2 is among them."""

    codes: tuple[int, ...] = (0, 1, 2)


@dataclass(frozen=True)
class Target:
    """What a case hands the CLI, and the part of it the error must name."""

    arg: str
    token: str


@dataclass(frozen=True)
class MediaCase:
    build: Callable[[Path, Corpus], Target]
    scan: Refused | Handled | None
    ingest: Refused | Handled | None
    drop_dac: bool = False


def _file(name: str, data: bytes | Callable[[Corpus], bytes]) -> Callable[[Path, Corpus], Target]:
    def build(folder: Path, corpus: Corpus) -> Target:
        path = folder / name
        path.write_bytes(data(corpus) if callable(data) else data)
        return Target(str(path), path.name)
    return build


def _made(name: str, make: Callable[[Path, Corpus], Path]) -> Callable[[Path, Corpus], Target]:
    def build(folder: Path, corpus: Corpus) -> Target:
        path = make(folder / name, corpus)
        return Target(str(path), path.name)
    return build


def _cut(fraction: float | None = None, keep: int | None = None, source: str = "clip"):
    def data(corpus: Corpus) -> bytes:
        whole = getattr(corpus, source).read_bytes()
        end = keep if keep is not None and keep >= 0 else len(whole) + (keep or 0)
        return whole[: int(len(whole) * fraction)] if fraction is not None else whole[:end]
    return data


def _cut_inside_moov(corpus: Corpus) -> bytes:
    """The clip (moov last) cut half-way through its moov: sample tables end mid-box."""
    data = corpus.clip.read_bytes()
    start, _, end = _box(data, "moov")
    return data[: start + (end - start) // 2]


def _gradient_frames(n: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    for i in range(n):
        yield np.broadcast_to((x + y + 7 * i) % 256, (h, w, 3)).astype(np.uint8)


def _huge_frames(path: Path, corpus: Corpus) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width = stream.height = 8000
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(2):
            frame = av.VideoFrame(8000, 8000, "yuv420p")
            for plane in frame.planes:
                memoryview(plane)[:] = bytes([40 + 80 * i]) * plane.buffer_size
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _ts_with_reset(path: Path, corpus: Corpus) -> Path:
    """Unrelated video, then the reference, each with timestamps from zero: one MPEG-TS that
    steps back to its start half-way (a rip of two recordings)."""
    before = write_video(path.with_name("before.ts"), synth.broadcast(8, SIZE, FPS, 8), FPS)
    copy = write_video(path.with_name("copy.ts"), synth.broadcast(1, SIZE, FPS, 10), FPS)
    path.write_bytes(before.read_bytes() + copy.read_bytes())
    return path


def _pts_jump(path: Path, corpus: Corpus) -> Path:
    pts = list(range(40)) + [36000 * FPS + i for i in range(40)]
    return _encode(path, _gradient_frames(80, (160, 90)), FPS, fmt="matroska", pts=pts)


def _fifo(folder: Path, corpus: Corpus) -> Target:
    path = folder / "pipe.mp4"
    os.mkfifo(path)
    return Target(str(path), path.name)


def _directory(folder: Path, corpus: Corpus) -> Target:
    path = folder / "folder.mp4"
    path.mkdir()
    return Target(str(path), path.name)


def _symlink_loop(folder: Path, corpus: Corpus) -> Target:
    (folder / "a.mp4").symlink_to(folder / "b.mp4")
    (folder / "b.mp4").symlink_to(folder / "a.mp4")
    return Target(str(folder / "a.mp4"), "a.mp4")


def _dangling_symlink(folder: Path, corpus: Corpus) -> Target:
    (folder / "gone.mp4").symlink_to(folder / "never-written.mp4")
    return Target(str(folder / "gone.mp4"), "gone.mp4")


UNICODE_NAME = "clip-Ünïcødé-名前"


def _unicode_newline(valid: bool) -> Callable[[Path, Corpus], Target]:
    def build(folder: Path, corpus: Corpus) -> Target:
        path = folder / f"{UNICODE_NAME}\nsecond line\r.mp4"
        path.write_bytes(corpus.clip.read_bytes() if valid else b"not a video\n" * 40)
        return Target(str(path), UNICODE_NAME)
    return build


def _unreadable(folder: Path, corpus: Corpus) -> Target:
    path = folder / "locked.mp4"
    path.write_bytes(corpus.clip.read_bytes())
    path.chmod(0)
    return Target(str(path), path.name)


def _dev_zero(folder: Path, corpus: Corpus) -> Target:
    return Target("/dev/zero", "/dev/zero")


def _missing(folder: Path, corpus: Corpus) -> Target:
    return Target(str(folder / "nowhere.mp4"), "nowhere.mp4")


REFUSED = Refused()
HANDLED = Handled()
NOT_A_FILE = Refused(r"not a (regular|media) file|is a|fifo|pipe|device|director")

MEDIA_CASES: dict[str, MediaCase] = {
    "empty-file": MediaCase(_file("empty.mp4", b""), Refused("empty"), Refused("empty")),
    "random-bytes": MediaCase(_file("noise.mp4", np.random.default_rng(1).bytes(256 << 10)), REFUSED, REFUSED),
    "random-after-ftyp": MediaCase(
        _file("ftyp-noise.mp4", lambda c: c.clip.read_bytes()[:32] + np.random.default_rng(2).bytes(128 << 10)),
        REFUSED, REFUSED),
    "text-named-mp4": MediaCase(_file("notes.mp4", b"this is not a video\n" * 100), REFUSED, REFUSED),
    "png-named-mp4": MediaCase(_file("still.mp4", _real_png()), HANDLED, HANDLED),
    "gzip-named-mp4": MediaCase(_file("packed.mp4", gzip.compress(b"\x00" * 100_000)), REFUSED, REFUSED),
    "truncated-at-16-bytes": MediaCase(_file("cut16.mp4", _cut(keep=16)), REFUSED, REFUSED),
    "truncated-at-one-third": MediaCase(_file("cut33.mp4", _cut(1 / 3)), REFUSED, REFUSED),
    "truncated-at-two-thirds": MediaCase(_file("cut66.mp4", _cut(2 / 3)), REFUSED, REFUSED),
    "truncated-inside-moov": MediaCase(_file("cutmoov.mp4", _cut_inside_moov), HANDLED, HANDLED),
    "faststart-truncated-half": MediaCase(_file("cutfast.mp4", _cut(1 / 2, source="faststart")), HANDLED, HANDLED),
    "moov-missing": MediaCase(_file("nomoov.mp4", _without_moov), REFUSED, REFUSED),
    "moov-claims-10-hours": MediaCase(_file("tenhours.mp4", _claims_ten_hours), HANDLED, HANDLED),
    "mdat-size-lies": MediaCase(_file("mdatsize.mp4", _mdat_size_lies), HANDLED, HANDLED),
    "h264-nal-bytes-flipped": MediaCase(_file("flipped.mp4", lambda c: _mdat_damaged(c, 61, 3)), HANDLED, HANDLED),
    "h264-mdat-all-random": MediaCase(_file("garbled.mp4", lambda c: _mdat_damaged(c, 1, 4)), HANDLED, HANDLED),
    # sound alone is a reference matched by its audio, and a query searched for it (issue 12)
    "audio-only": MediaCase(_made("song.mp4", lambda p, c: write_audio_only(p, synth.audio_track(1, 3.0))),
                            HANDLED, HANDLED),
    "silent-audio-only": MediaCase(_made("hush.mp4", lambda p, c: write_audio_only(p, np.zeros(16000 * 3, np.float32))),
                                   HANDLED, Refused("nothing to fingerprint")),
    "data-only-ts": MediaCase(_made("data.ts", lambda p, c: _data_only_ts(p)), Refused("no video"), Refused("no video")),
    "subtitle-only-ts": MediaCase(_made("subs.ts", lambda p, c: _subtitle_only_ts(p)),
                                  Refused("no video"), Refused("no video")),
    "subrip-named-mp4": MediaCase(_file("subs.mp4", SUBRIP.encode()), Refused("no video|cannot be opened"),
                                  Refused("no video|cannot be opened")),
    "ts-random-packets": MediaCase(_file("noise.ts", _ts_random_packets(5)), REFUSED, REFUSED),
    "frames-8000x8000": MediaCase(_made("huge.mp4", _huge_frames), HANDLED, HANDLED),
    "frames-1x1": MediaCase(_made("one.mp4", lambda p, c: _encode(p, _gradient_frames(30, (1, 1)), FPS,
                                                                  pix_fmt="yuv444p")), HANDLED, HANDLED),
    "frames-2x2": MediaCase(_made("two.mp4", lambda p, c: _encode(p, _gradient_frames(30, (2, 2)), FPS)),
                            HANDLED, HANDLED),
    "rate-1000-fps": MediaCase(_made("fast.mp4", lambda p, c: _encode(p, _gradient_frames(2000, (64, 36)), 1000)),
                               HANDLED, HANDLED),
    "rate-one-frame-per-1000-s": MediaCase(
        _made("slow.mp4", lambda p, c: _encode(p, _gradient_frames(3, (64, 36)), Fraction(1, 1000))),
        HANDLED, HANDLED),
    "pts-jump-of-10-hours": MediaCase(_made("jump.mkv", _pts_jump), HANDLED, HANDLED),
    # The copy after the reset must be found (exit 1): the file's clock continues across it.
    "ts-timestamp-reset": MediaCase(_made("reset.ts", _ts_with_reset), Handled((1,)), None),
    "png-header-40000x40000": MediaCase(_file("bomb.mp4", _png(40000, 40000, b"\x00" * 40001)), REFUSED, REFUSED),
    "y4m-header-30000x30000": MediaCase(
        _file("bomb.y4m", b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096)), REFUSED, REFUSED),
    "directory": MediaCase(_directory, Handled((0,)), NOT_A_FILE),  # scan: a folder is scanned (nothing in it)
    "fifo": MediaCase(_fifo, NOT_A_FILE, NOT_A_FILE),
    "dev-zero": MediaCase(_dev_zero, NOT_A_FILE, NOT_A_FILE),
    "symlink-loop": MediaCase(_symlink_loop, Refused(r"loop|symbolic|no such file|cannot be read"),
                              Refused(r"loop|symbolic|no such file|cannot be read")),
    "dangling-symlink": MediaCase(_dangling_symlink, Refused("no such file"), Refused("no such file")),
    "missing-file": MediaCase(_missing, Refused("no such file"), Refused("no such file")),
    "unicode-newline-name-garbage": MediaCase(_unicode_newline(False), REFUSED, REFUSED),
    "unicode-newline-name-valid": MediaCase(_unicode_newline(True), Handled((0,)), Handled((0,))),
    "unreadable-chmod-000": MediaCase(_unreadable, Refused(r"permission|denied|cannot be read|not readable"),
                                      Refused(r"permission|denied|cannot be read|not readable"), drop_dac=True),
}

MEDIA_RUNS = [(name, command) for name, case in MEDIA_CASES.items() for command in ("scan", "ingest")
              if getattr(case, command) is not None]


def _dac_dropping_works(folder: Path) -> bool:
    """Whether a child run by this test can be kept from reading a ``chmod 000`` file."""
    probe = folder / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    code, *_ = _spawn([sys.executable, "-c", f"open({str(probe)!r}).read()"], folder, drop_dac=True)
    probe.unlink()
    return code != 0


@pytest.mark.parametrize("name, command", MEDIA_RUNS, ids=[f"{c}-{n}" for n, c in MEDIA_RUNS])
def test_hostile_media(name, command, corpus, home, tmp_path):
    case = MEDIA_CASES[name]
    folder = tmp_path / "input"
    folder.mkdir()
    if case.drop_dac and not _dac_dropping_works(folder):
        pytest.skip("running as root and CAP_DAC_OVERRIDE cannot be dropped: chmod 000 does not bite")
    target = case.build(folder, corpus)
    expect = getattr(case, command)
    run = run_guard(home, command, target.arg, drop_dac=case.drop_dac)
    if isinstance(expect, Refused):
        assert_refused(run, target.token, expect.problem)
    else:
        assert_bounded(run)
        assert run.returncode in expect.codes, run.describe()
        if run.returncode == 2:
            assert_refused(run, target.token, MEDIA_PROBLEM)
    assert_store_intact(home, corpus)


def test_folder_scan_reports_each_bad_file_and_scans_the_rest(corpus, home, tmp_path):
    """A folder of hostile files, a symlink loop back to itself and one copy: every bad file
    gets its line, the copy is still found, the walk ends."""
    folder = tmp_path / "uploads"
    (folder / "nested").mkdir(parents=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_bytes(b"not a video\n" * 40)
    (folder / "nested" / "cut.mp4").write_bytes(corpus.clip.read_bytes()[:5000])
    (folder / "nested" / "loop").symlink_to(folder, target_is_directory=True)
    shutil.copy(corpus.reference, folder / "nested" / "copy.mp4")
    run = run_guard(home, "scan", folder)
    assert_bounded(run)
    assert run.returncode == 2, run.describe()
    lines = run.error_lines
    assert len(lines) == 3, run.describe()
    for name in ("empty.mp4", "notes.mp4", "cut.mp4"):
        assert sum(name in line for line in lines) == 1, run.describe()
    assert "copy.mp4: 1 copy found" in run.stdout, run.describe()
    assert_store_intact(home, corpus)


# -- hostile URLs given to the CLI ----------------------------------------------------------------

CLI_URLS = {
    "file-url": ("file:///etc/passwd", "passwd"),
    "concat-protocol": ("concat:/etc/passwd|/etc/hosts", "concat:"),
    "subfile-protocol": ("subfile:,,start,0,end,100,,:/etc/passwd", "subfile:"),
    "data-url": ("data:video/mp4;base64,AAAAIGZ0eXBpc29t", "data:"),
    "pipe-stdin": ("pipe:0", "pipe:0"),
    "loopback-closed-port": ("http://127.0.0.1:1/clip.mp4", "127.0.0.1"),
    "cloud-metadata": ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    "ipv6-loopback": ("http://[::1]/clip.mp4", "::1"),
    "hex-ip": ("http://0x7f000001/clip.mp4", "0x7f000001"),
    "decimal-ip": ("http://2130706433/clip.mp4", "2130706433"),
    "credentials-and-crlf": (f"http://user:{SECRET}@127.0.0.1/x.mp4\r\nX-Injected: 1", "127.0.0.1"),
}


class _RecordingHandler(BaseHTTPRequestHandler):
    """Serves one file for every GET and records the request (a server guard must not reach)."""

    body = b""
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 — the http.server hook
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def bait_server(corpus, tmp_path):
    """A real HTTP server on 127.0.0.1 that serves a real video and records every request."""
    segment = write_video(tmp_path / "bait.ts", synth.broadcast(1, SIZE, FPS, 4), FPS)
    handler = type("Bait", (_RecordingHandler,), {"body": segment.read_bytes(), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-bait", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("name", sorted(CLI_URLS))
def test_hostile_url_given_to_scan(name, corpus, home):
    url, token = CLI_URLS[name]
    run = run_guard(home, "scan", url)
    assert_refused(run, token, r"no such file|not a (regular|local) file|url|refused|scheme|protocol")
    assert SECRET not in run.stderr + run.stdout, run.describe()
    assert_store_intact(home, corpus)


def test_url_of_a_live_server_is_not_fetched_by_scan(corpus, home, bait_server):
    base, seen = bait_server
    run = run_guard(home, "scan", f"{base}/clip.ts")
    assert_refused(run, "127.0.0.1", r"no such file|not a (regular|local) file|url|refused|scheme|protocol")
    assert seen == []
    assert_store_intact(home, corpus)


def _playlist(base: str) -> bytes:
    return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:4.0,\n{base}/segment0.ts\n#EXT-X-ENDLIST\n").encode()


def test_local_playlist_pointing_at_the_network_is_not_followed(corpus, home, tmp_path, bait_server):
    """Scanning a local file never makes guard fetch what the file names (an SSRF through an
    HLS playlist): the playlist is refused and the server sees no request."""
    base, seen = bait_server
    playlist = tmp_path / "evil.m3u8"
    playlist.write_bytes(_playlist(base))
    run = run_guard(home, "scan", playlist)
    assert_bounded(run)
    assert seen == [], run.describe()
    assert_refused(run, "evil.m3u8", MEDIA_PROBLEM + r"|playlist|network|url|protocol")
    assert_store_intact(home, corpus)


# -- hostile export files (guard import) ----------------------------------------------------------


def _set_everywhere(node, key: str, value) -> None:
    """Set ``key`` to ``value`` in every object of a JSON document that has it (the top level
    of format 1, the tracks and their pipelines of format 2: wherever a reader looks)."""
    if isinstance(node, dict):
        for name, child in node.items():
            if name == key:
                node[name] = value
            else:
                _set_everywhere(child, key, value)
    elif isinstance(node, list):
        for child in node:
            _set_everywhere(child, key, value)


def _export_doc(corpus: Corpus) -> dict:
    doc = json.loads(corpus.export.read_bytes())
    doc["title"] = "imported copy"
    return doc


def _variant(**changes) -> Callable[[Corpus], bytes]:
    def data(corpus: Corpus) -> bytes:
        doc = _export_doc(corpus)
        for key, value in changes.items():
            _set_everywhere(doc, key, value)
        return json.dumps(doc).encode()  # NaN and Infinity are written as the bare literals
    return data


def _raw_variant(key: str, literal: str) -> Callable[[Corpus], bytes]:
    """Put a literal JSON text where ``key``'s numbers are (for numbers json.dumps cannot write)."""
    def data(corpus: Corpus) -> bytes:
        doc = _export_doc(corpus)
        _set_everywhere(doc, key, "@@")
        return json.dumps(doc).replace('"@@"', literal).encode()
    return data


def _deeply_nested(corpus: Corpus) -> bytes:
    doc = _export_doc(corpus)
    _set_everywhere(doc, "signal", "@@")
    return json.dumps(doc).replace('"@@"', "[" * 200_000 + "]" * 200_000).encode()


def _not_gzip(corpus: Corpus) -> bytes:
    return b"\x1f\x8b\x08\x00" + np.random.default_rng(6).bytes(4096)


def _truncated_gzip(corpus: Corpus) -> bytes:
    packed = gzip.compress(corpus.export.read_bytes())
    return packed[: len(packed) // 2]


HOSTILE_TITLE = "\x1b[2J\x1b[31mFAKE\nerror: forged line\r\x07\u202e"


@dataclass(frozen=True)
class ExportCase:
    name: str  # file name
    data: Callable[[Corpus], bytes] | None  # None: a special file made by the test
    title_only: bool = False  # may be accepted if the stored title is made safe


EXPORT_CASES: dict[str, ExportCase] = {
    "nan-duration": ExportCase("nan.gfp.json", _variant(duration=float("nan"))),
    "nan-sample-fps": ExportCase("nanfps.gfp.json", _variant(sample_fps=float("nan"))),
    "infinity-duration": ExportCase("inf.gfp.json", _variant(duration=float("inf"))),
    "infinity-sample-fps": ExportCase("inffps.gfp.json", _variant(sample_fps=float("inf"))),
    "minus-infinity-duration": ExportCase("neginf.gfp.json", _variant(duration=float("-inf"))),
    "duration-1e308": ExportCase("huge.gfp.json", _variant(duration=1e308)),
    "sample-fps-1e308": ExportCase("hugefps.gfp.json", _variant(sample_fps=1e308)),
    "sample-fps-1e-308": ExportCase("tinyfps.gfp.json", _variant(sample_fps=1e-308)),
    "duration-1e999-literal": ExportCase("overflow.gfp.json", _raw_variant("duration", "1e999")),
    "frames-5000-digit-integer": ExportCase("digits.gfp.json", _raw_variant("frames", "9" * 5000)),
    "signal-bits-zero": ExportCase("bits0.gfp.json", _variant(bits=0)),
    "deep-nesting": ExportCase("deep.gfp.json", _deeply_nested),
    "gzip-bomb-2gib": ExportCase("bomb.gfp.json.gz", lambda c: gzip_bomb(BOMB_MEBIBYTES)),
    "not-gzip": ExportCase("fake.gfp.json.gz", _not_gzip),
    "truncated-gzip": ExportCase("cut.gfp.json.gz", _truncated_gzip),
    "wrong-checksum": ExportCase("sum.gfp.json", _variant(sha256="0" * 64)),
    "not-json": ExportCase("noise.gfp.json", lambda c: np.random.default_rng(7).bytes(4096)),
    "json-array": ExportCase("array.gfp.json", lambda c: b"[1, 2, 3]"),
    "huge-title-3mb": ExportCase("title.gfp.json", _variant(title="T" * 3_000_000), title_only=True),
    "control-character-title": ExportCase("ctrl.gfp.json", _variant(title=HOSTILE_TITLE), title_only=True),
    "fifo": ExportCase("pipe.gfp.json", None),
    "dev-zero": ExportCase("/dev/zero", None),
}


def _export_target(case: ExportCase, corpus: Corpus, folder: Path) -> Target:
    if case.name == "/dev/zero":
        return Target("/dev/zero", "/dev/zero")
    path = folder / case.name
    if case.data is None:
        os.mkfifo(path)
    else:
        path.write_bytes(case.data(corpus))
    return Target(str(path), path.name)


def _assert_safe_titles(titles: list[str]) -> None:
    """Titles a hostile export may leave behind: short, and with no control characters."""
    for title in titles:
        assert len(title) <= 1000, f"a title of {len(title)} characters was stored"
        assert not re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e]", title), f"unsafe title stored: {title!r}"


@pytest.mark.parametrize("name", list(EXPORT_CASES))
def test_hostile_export_given_to_import(name, corpus, home, tmp_path):
    case = EXPORT_CASES[name]
    folder = tmp_path / "input"
    folder.mkdir()
    target = _export_target(case, corpus, folder)
    run = run_guard(home, "import", target.arg)
    if case.title_only and run.returncode == 0:
        assert_bounded(run)
        with Guard(Settings(home=home)) as guard:
            _assert_safe_titles([r.title for r in guard.references() if r.title != KEPT_TITLE])
    else:
        assert_refused(run, target.token, EXPORT_PROBLEM)
    assert_store_intact(home, corpus)


# -- the API: hostile URLs ------------------------------------------------------------------------

API_URLS = {
    "file-url": "file:///etc/passwd",
    "concat-protocol": "concat:/etc/passwd|/etc/hosts",
    "subfile-protocol": "subfile:,,start,0,end,100,,:/etc/passwd",
    "data-url": "data:video/mp4;base64,AAAAIGZ0eXBpc29t",
    "pipe-stdin": "pipe:0",
    "gopher": "gopher://127.0.0.1:70/_GET",
    "loopback-closed-port": "http://127.0.0.1:1/",
    "loopback-short-form": "http://127.1/live.m3u8",
    "cloud-metadata": "http://169.254.169.254/latest/meta-data/",
    "rtmp-cloud-metadata": "rtmp://169.254.169.254/live/key",
    "ipv6-loopback": "http://[::1]/",
    "ipv4-mapped-ipv6-loopback": "http://[::ffff:127.0.0.1]/",
    "unspecified-address": "http://0.0.0.0/",
    "hex-ip": "http://0x7f000001/",
    "decimal-ip": "http://2130706433/",
    "private-network": "https://10.0.0.1/live.m3u8",
    "credentials": f"http://user:{SECRET}@127.0.0.1/live.m3u8",
    "credentials-bad-port": f"http://user:{SECRET}@127.0.0.1:99999/live.m3u8",
    "credentials-and-crlf": f"http://user:{SECRET}@127.0.0.1/x\r\nX-Injected: 1",
}

API_URL_ROUTES = {"scan-url": "/v1/scans/url", "stream": "/v1/streams"}


def assert_api_error(response, statuses: tuple[int, ...]) -> dict:
    """A 4xx in the documented shape, with a one-line message; returns the error object."""
    assert response.status_code in statuses, (response.status_code, response.text[:2000])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "code", "message", "details"}, error
    assert error["status"] == response.status_code
    assert error["code"] in API_ERROR_CODES, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert "\n" not in error["message"] and "\r" not in error["message"], error
    return error


@pytest.fixture
def api_kept(client, corpus) -> Reference:  # noqa: F811 — the API fixture
    """The reference stored before each API case (rights holder ``nba``)."""
    return client.app.state.guard.register(corpus.fingerprint, title=KEPT_TITLE, owner="nba", source="test:kept")


def assert_api_store_intact(client, tenants, kept: Reference, corpus: Corpus) -> None:  # noqa: F811
    listed = client.get("/v1/references", headers=tenants.nba)
    assert listed.status_code == 200, listed.text
    assert kept.id in [item["id"] for item in listed.json()["items"]]
    segments = client.app.state.guard.match(corpus.fingerprint.times, corpus.fingerprint.codes)
    assert any(s.reference_id == kept.id for s in segments), segments


def _no_jobs_or_streams(client, tenants) -> None:  # noqa: F811
    assert client.get("/v1/jobs", headers=tenants.admin).json()["total"] == 0
    assert client.get("/v1/streams", headers=tenants.admin).json()["items"] == []


@pytest.mark.parametrize("route", sorted(API_URL_ROUTES))
@pytest.mark.parametrize("name", list(API_URLS))
def test_hostile_url_refused_by_api(name, route, client, tenants, api_kept, corpus):  # noqa: F811
    body = {"url": API_URLS[name], "account": "fan-channel"}
    response = client.post(API_URL_ROUTES[route], headers=tenants.yt, json=body)
    assert_api_error(response, (400, 422))
    assert SECRET not in response.text
    _no_jobs_or_streams(client, tenants)
    assert_api_store_intact(client, tenants, api_kept, corpus)


# -- the API: hostile export files ----------------------------------------------------------------



def _address_space() -> int:
    """This process's current virtual size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


@contextmanager
def address_space_headroom(extra: int) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra`` while in the block:
    an upload the API inflates without bound fails with MemoryError instead of eating the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _no_upload_files_or_jobs(client, tenants) -> None:  # noqa: F811
    uploads = client.app.state.guard.settings.uploads
    assert not uploads.exists() or list(uploads.iterdir()) == [], "a refused upload left a file behind"
    assert client.get("/v1/jobs", headers=tenants.admin).json()["total"] == 0


API_EXPORT_CASES = [name for name, case in EXPORT_CASES.items() if case.data is not None]


@pytest.mark.parametrize("name", API_EXPORT_CASES)
def test_hostile_export_refused_by_api(name, client, tenants, api_kept, corpus):  # noqa: F811
    case = EXPORT_CASES[name]
    data = case.data(corpus)
    with address_space_headroom(API_HEADROOM):
        response = client.post("/v1/references/import", headers=tenants.nba,
                               files={"file": (case.name, data, "application/octet-stream")})
    if case.title_only and response.status_code == 201:
        _assert_safe_titles([response.json()["title"]])
    else:
        error = assert_api_error(response, (400, 413, 422))
        if response.status_code != 413:
            assert case.name in error["message"], error
    _no_upload_files_or_jobs(client, tenants)
    assert_api_store_intact(client, tenants, api_kept, corpus)


# -- the API: oversized and malformed uploads -----------------------------------------------------

BOUNDARY = "guard-test-boundary"


def _form(parts: list[tuple[str, bytes]], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart body from ``(Content-Disposition value, body)`` parts."""
    out = b""
    for disposition, body in parts:
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + body + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _file_part(body: bytes, name: str = "file", filename: str = "clip.mp4") -> tuple[str, bytes]:
    return f'form-data; name="{name}"; filename="{filename}"', body


@dataclass(frozen=True)
class Upload:
    """A raw request to an upload route and the statuses that may answer it."""

    body: Callable[[int], bytes | Iterator[bytes]]  # from the upload limit
    statuses: tuple[int, ...] = (400, 422)
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}"
    headers: Callable[[int], dict] = field(default=lambda limit: {})


def _chunks(data: bytes, size: int = 64 << 10) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


UPLOADS: dict[str, Upload] = {
    "content-length-over-limit": Upload(lambda limit: _form([_file_part(b"x" * 1000)]), (413,),
                                        headers=lambda limit: {"Content-Length": str(limit * 10)}),
    "body-over-limit": Upload(lambda limit: _form([_file_part(bytes(limit + (1 << 20)))]), (413,)),
    "chunked-body-over-limit": Upload(lambda limit: _chunks(_form([_file_part(bytes(limit + (1 << 20)))])), (413,)),
    "invalid-content-length": Upload(lambda limit: _form([_file_part(b"x" * 1000)]),
                                     headers=lambda limit: {"Content-Length": "12abc"}),
    "not-multipart": Upload(lambda limit: b'{"file": "clip.mp4"}', content_type="application/json"),
    "multipart-without-boundary": Upload(lambda limit: _form([_file_part(b"x" * 1000)]),
                                         content_type="multipart/form-data"),
    "boundary-mismatch": Upload(lambda limit: _form([_file_part(b"x" * 1000)], boundary="another-boundary")),
    "body-ends-inside-file-part": Upload(lambda limit: _form([_file_part(b"x" * 5000)], close=False)[:-2]),
    "empty-body": Upload(lambda limit: b""),
    "garbage-body": Upload(lambda limit: np.random.default_rng(8).bytes(8192)),
    "part-without-name": Upload(lambda limit: _form([('form-data; filename="clip.mp4"', b"x" * 1000)])),
    "header-line-without-colon": Upload(
        lambda limit: f"--{BOUNDARY}\r\nthis is not a header\r\n\r\nxxxx\r\n--{BOUNDARY}--\r\n".encode()),
    "two-file-parts": Upload(lambda limit: _form([_file_part(b"x" * 1000), _file_part(b"y" * 1000)])),
    "empty-file-part": Upload(lambda limit: _form([_file_part(b"")])),
    "too-many-fields": Upload(lambda limit: _form([(f'form-data; name="f{i}"', b"v") for i in range(200)]
                                                  + [_file_part(b"x" * 1000)])),
    "field-over-16-kib": Upload(lambda limit: _form([('form-data; name="account"', b"a" * (17 << 10)),
                                                     _file_part(b"x" * 1000)])),
    "field-name-of-1-mib": Upload(lambda limit: _form([(f'form-data; name="{"n" * (1 << 20)}"', b"v"),
                                                       _file_part(b"x" * 1000)]), (400, 413, 422)),
}

UPLOAD_ROUTES = {"scan": ("/v1/scans", "yt"), "reference": ("/v1/references", "nba")}


@pytest.mark.parametrize("route", sorted(UPLOAD_ROUTES))
@pytest.mark.parametrize("name", list(UPLOADS))
def test_malformed_or_oversized_upload(name, route, client, tenants, settings, api_kept, corpus):  # noqa: F811
    case = UPLOADS[name]
    path, tenant = UPLOAD_ROUTES[route]
    limit = settings.upload_max_bytes
    headers = {**getattr(tenants, tenant), "Content-Type": case.content_type, **case.headers(limit)}
    response = client.post(path, headers=headers, content=case.body(limit))
    assert_api_error(response, case.statuses)
    _no_upload_files_or_jobs(client, tenants)
    assert_api_store_intact(client, tenants, api_kept, corpus)


# -- the API: hostile media uploads ---------------------------------------------------------------

API_MEDIA = ["empty-file", "text-named-mp4", "truncated-at-16-bytes", "moov-missing",
             "subtitle-only-ts", "unicode-newline-name-garbage"]


@pytest.mark.parametrize("route", sorted(UPLOAD_ROUTES))
@pytest.mark.parametrize("name", API_MEDIA)
def test_hostile_media_upload(name, route, client, tenants, api_kept, corpus, tmp_path):  # noqa: F811
    """Refused at once (an empty part), or the job fails with one line naming the upload by
    its own name, never by its path on the server."""
    path, tenant = UPLOAD_ROUTES[route]
    headers = getattr(tenants, tenant)
    target = MEDIA_CASES[name].build(tmp_path, corpus)
    filename = Path(target.arg).name
    response = client.post(path, headers=headers, files={"file": (filename, Path(target.arg).read_bytes(), "video/mp4")})
    if response.status_code != 202:
        assert_api_error(response, (400, 422))
    else:
        job = wait_job(client, response.json()["id"], headers)
        assert job["status"] == "failed", job
        assert "\n" not in job["error"] and "\r" not in job["error"], job
        assert target.token in job["error"], job
        assert "upload-" not in job["error"] and str(tmp_path) not in job["error"], job
    assert_api_store_intact(client, tenants, api_kept, corpus)


def test_uploaded_playlist_pointing_at_the_network_is_not_followed(client, tenants, api_kept, corpus,  # noqa: F811
                                                                   bait_server):
    """An uploaded HLS playlist must not make the server fetch what it names (SSRF)."""
    base, seen = bait_server
    response = client.post("/v1/scans", headers=tenants.yt,
                           files={"file": ("evil.m3u8", _playlist(base), "application/vnd.apple.mpegurl")})
    if response.status_code != 202:
        assert_api_error(response, (400, 422))
    else:
        job = wait_job(client, response.json()["id"], tenants.yt)
        assert job["status"] == "failed", job
        assert "evil.m3u8" in job["error"] and "\n" not in job["error"], job
    assert seen == []
    assert_api_store_intact(client, tenants, api_kept, corpus)
