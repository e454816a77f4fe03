"""Live monitoring over real protocols on loopback: UDP, RTMP, HTTP-FLV, HLS, SRT, rehearsal files.

Streams are ~9 s long (3 s unrelated, 5 s copy of a reference, 1 s unrelated) at 320×180,
12 fps; references use ``min_seconds=2`` so decisions come quickly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from guard_synth import broadcast as synth
from guard_synth import layouts
from guard.config import LiveSettings, Settings, WebhookSettings
from guard.errors import ConflictError, InputError, URLPolicyError
from guard.regions import overlap
from guard.service import Guard
from tests.live_helpers import (
    FPS, SIZE, FFmpegPublisher, FolderServer, HLSPublisher, PacedPublisher, WebhookReceiver, encode, free_port,
    reference_frames, stream_frames, udp_port_bound, wait_until,
)

#: Live streams over real protocols, seconds each: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

REF_SEED = 7
COPY_FROM = 6.0  # reference seconds the copy starts at
LEAD, COPY, TAIL = 3.0, 5.0, 1.0
SECRET = "test-secret"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Reference and stream files, made once for the module."""
    folder = tmp_path_factory.mktemp("live-media")
    files = {
        "reference": encode(folder / "reference.mp4", reference_frames(REF_SEED, 20)),
        "copy": encode(folder / "copy.ts", stream_frames(copy_seed=REF_SEED, copy_from=COPY_FROM, lead=LEAD,
                                                         copy=COPY, tail=TAIL, transform=synth.logo)),
        "unrelated": encode(folder / "unrelated.ts", stream_frames(copy_seed=None, lead=LEAD + COPY + TAIL,
                                                                   copy=0, tail=0, other_seed=4242)),
        "copy_only": encode(folder / "copy_only.ts", stream_frames(copy_seed=REF_SEED, copy_from=COPY_FROM,
                                                                   lead=1.0, copy=COPY, tail=0, other_seed=31)),
        "copy_big": encode(folder / "copy_big.ts", stream_frames(
            copy_seed=REF_SEED, copy_from=COPY_FROM, lead=1.0, copy=COPY, tail=0, other_seed=31,
            size=(480, 270))),
        "copy_gop2": encode(folder / "copy_gop2.ts", stream_frames(copy_seed=REF_SEED, copy_from=COPY_FROM,
                                                                   lead=LEAD, copy=COPY, tail=TAIL,
                                                                   transform=synth.logo), gop=24),
        "lead_only": encode(folder / "lead_only.ts", stream_frames(copy_seed=None, lead=3.0, copy=0, tail=0,
                                                                   other_seed=77)),
    }
    return files


def _settings(home, **live) -> Settings:
    defaults = dict(stall_timeout=2.0, give_up_after=2.0, reconnect_initial=0.2, reconnect_max=1.0,
                    open_timeout=5.0, incident_idle_seconds=30.0)
    defaults.update(live)
    return Settings(home=home, allow_private_addresses=True, live=LiveSettings(**defaults),
                    webhook=WebhookSettings(backoff_initial=0.2, backoff_max=1.0, timeout=2.0))


@pytest.fixture
def receiver():
    with WebhookReceiver(SECRET) as hook:
        yield hook


@pytest.fixture
def make_guard(tmp_path, media, receiver):
    """A guard with the reference registered (policy and allowlist as asked) and a webhook."""
    made = []

    def build(policy: str = "flag", allowlist=None, **live) -> Guard:
        guard = Guard(_settings(tmp_path / f"home{len(made)}", **live))
        made.append(guard)
        guard.ingest(media["reference"], title="Final", owner="league", policy=policy, min_seconds=2.0,
                     allowlist=allowlist)
        guard.actions.add_endpoint("league", receiver.url, SECRET)
        return guard

    yield build
    for guard in made:
        guard.close()


class Events:
    """Collects a stream's monitor events (thread-safe)."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.items.append(event)

    def types(self) -> list[str]:
        with self.lock:
            return [e.type for e in self.items]


def _assert_flagged(guard: Guard, receiver: WebhookReceiver, stream_id: str) -> None:
    incidents = guard.incidents.list(stream_id=stream_id)
    assert len(incidents) == 1, incidents
    incident = incidents[0]
    assert incident.reference_title == "Final" and incident.owner == "league"
    assert incident.account == "pirate" and incident.policy == "flag"
    # The copied reference stretch is 6–11 s. The matcher may stretch a segment's start back over
    # a few unrelated frames (its relaxed per-frame radius; an engine matter), so check the overlap.
    assert incident.reference_start < COPY_FROM + COPY and incident.reference_end > COPY_FROM
    assert incident.reference_end <= COPY_FROM + COPY + 2.0
    assert incident.decided >= incident.first_seen
    flagged = receiver.wait_for("incident.flagged", 1, timeout=10)
    assert [e["incident"]["id"] for e in flagged] == [incident.id]
    assert flagged[0]["incident"]["reference_id"] == incident.reference_id


def test_udp_copy_in_the_middle_is_flagged_with_evidence_and_webhook(make_guard, media, receiver):
    guard = make_guard()
    url = f"udp://127.0.0.1:{free_port('udp')}"
    events = Events()
    guard.monitor(url, stream_id="udp-1", account="pirate", platform="tube", on_event=events)
    publisher = PacedPublisher(media["copy"], url, "mpegts").start()
    final = guard.streams.wait("udp-1", timeout=30)
    publisher.stop()
    assert final.status == "ended" and final.frames > 20
    _assert_flagged(guard, receiver, "udp-1")
    incident = guard.incidents.list(stream_id="udp-1")[0]
    assert incident.platform == "tube" and not incident.live  # closed when the stream ended
    entered = publisher.entered_at(LEAD)
    assert incident.decided - entered < 6.0, "decision must come within seconds of the copy"
    full = guard.incidents.get(incident.id)
    kinds = sorted(e["kind"] for e in full.evidence)
    assert kinds == ["query", "reference"]
    jpeg = guard.incidents.evidence_jpeg(full.evidence[0]["id"])
    assert jpeg[:2] == b"\xff\xd8"
    assert wait_until(lambda: guard.incidents.get(incident.id).action_delivered is not None, 10)
    assert "incident.flagged" in events.types() and events.types()[-1] == "stream.ended"
    assert receiver.bad_signatures == 0


class _SteppedClock:
    """The ``time`` module, but its wall clock steps ``step`` seconds forward ``after`` seconds
    (an NTP correction); the steady clock goes on."""

    def __init__(self, step: float, after: float):
        self.step, self.at = step, time.monotonic() + after

    def time(self) -> float:
        return time.time() + (self.step if time.monotonic() >= self.at else 0.0)

    def __getattr__(self, name: str):
        return getattr(time, name)


def test_a_wall_clock_step_mid_stream_is_not_lag(make_guard, media, receiver, monkeypatch):
    import guard.decode
    import guard.monitor

    clock = _SteppedClock(step=7.0, after=3.0)
    monkeypatch.setattr(guard.decode, "time", clock)
    monkeypatch.setattr(guard.monitor, "time", clock)
    guard_ = make_guard()
    url = f"udp://127.0.0.1:{free_port('udp')}"
    guard_.monitor(url, stream_id="stepped", account="pirate")
    with PacedPublisher(media["copy"], url, "mpegts") as publisher:
        final = guard_.streams.wait("stepped", timeout=30)
    assert publisher.error is None and time.monotonic() > clock.at
    assert final.status == "ended" and final.frames > 20
    assert final.lag < 1.0, f"lag {final.lag:.2f} s: the wall clock's step was taken for lag"
    _assert_flagged(guard_, receiver, "stepped")


def test_unrelated_stream_gives_nothing(make_guard, media, receiver):
    guard = make_guard()
    url = f"udp://127.0.0.1:{free_port('udp')}"
    guard.monitor(url, stream_id="clean", account="someone")
    with PacedPublisher(media["unrelated"], url, "mpegts") as publisher:
        final = guard.streams.wait("clean", timeout=30)
    assert publisher.error is None
    assert final.status == "ended" and final.frames > 20
    assert guard.incidents.list(stream_id="clean") == []
    assert guard.actions.events() == []


def test_allowlisted_account_is_not_flagged(make_guard, media, receiver):
    guard = make_guard(allowlist=["LeagueTV"])
    url = f"udp://127.0.0.1:{free_port('udp')}"
    events = Events()
    guard.monitor(url, stream_id="licensed", account="leaguetv", on_event=events)
    with PacedPublisher(media["copy"], url, "mpegts"):
        final = guard.streams.wait("licensed", timeout=30)
    assert final.status == "ended"
    assert "stream.allowlisted" in events.types(), "the copy was seen and excused"
    assert guard.incidents.list(stream_id="licensed") == []
    assert receiver.events == {}


needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI (.ci/install-system-deps.sh)")


@needs_ffmpeg
def test_rtmp_cut_policy_sends_takedown_and_stops(make_guard, media, receiver):
    guard = make_guard(policy="cut")
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/pirate"
    with FFmpegPublisher(media["copy"], url, "flv", listen=True) as publisher:
        guard.monitor(url, stream_id="rtmp-cut", account="pirate", platform="tube")
        final = guard.streams.wait("rtmp-cut", timeout=30)
        stopped_at = time.time()
        assert final.status == "cut"
        cut = receiver.wait_for("stream.cut", 1, timeout=10)
    assert len(cut) == 1
    assert cut[0]["stream"]["id"] == "rtmp-cut" and cut[0]["stream"]["status"] == "cut"
    incident = guard.incidents.get(cut[0]["incident"]["id"])
    assert incident.policy == "cut" and incident.platform == "tube"
    # Monitoring stopped before the stream did: the publisher still had media to send.
    assert stopped_at < publisher.entered_at(LEAD + COPY + TAIL)
    assert wait_until(lambda: guard.incidents.get(incident.id).action_delivered is not None, 10)
    assert guard.incidents.get(incident.id).action_delivered - incident.decided < 5.0


@needs_ffmpeg
def test_http_flv_copy_is_flagged(make_guard, media, receiver):
    guard = make_guard()
    url = f"http://127.0.0.1:{free_port()}/live.flv"
    with FFmpegPublisher(media["copy"], url, "flv", listen=True):
        guard.monitor(url, stream_id="flv-1", account="pirate")
        final = guard.streams.wait("flv-1", timeout=30)
    assert final.status == "ended"
    _assert_flagged(guard, receiver, "flv-1")


def test_hls_live_playlist_with_rollover_is_flagged(make_guard, media, receiver, tmp_path):
    guard = make_guard()
    folder = tmp_path / "hls"
    publisher = HLSPublisher(media["copy"], folder, segment_seconds=1.0, list_size=3)
    with FolderServer(folder) as server:
        publisher.start()
        assert wait_until(lambda: publisher.playlist.exists(), 10)
        guard.monitor(server.url("live.m3u8"), stream_id="hls-1", account="pirate")
        final = guard.streams.wait("hls-1", timeout=40)
        publisher.stop()
    assert publisher.sequence > 0, "old segments rolled out of the playlist"
    assert final.status == "ended"
    _assert_flagged(guard, receiver, "hls-1")


def test_hls_segments_longer_than_the_stall_timeout_do_not_end_the_stream(make_guard, media, receiver, tmp_path):
    # 2 s keyframe interval → 2 s segments; FFmpeg's HLS demuxer waits for each next segment inside
    # one read, which used to hit the 1 s stall timeout and look like the playlist's end.
    guard = make_guard(stall_timeout=1.0)
    folder = tmp_path / "hls-long"
    publisher = HLSPublisher(media["copy_gop2"], folder, segment_seconds=1.0, list_size=3)
    events = Events()
    with FolderServer(folder) as server:
        publisher.start()
        assert wait_until(lambda: publisher.playlist.exists(), 10)
        guard.monitor(server.url("live.m3u8"), stream_id="hls-long", account="pirate", on_event=events)
        final = guard.streams.wait("hls-long", timeout=40)
        publisher.stop()
    assert max(d for _, d in publisher.segments) >= 1.9
    assert final.status == "ended" and final.frames >= 4 * (LEAD + COPY), final
    _assert_flagged(guard, receiver, "hls-long")


def test_hls_playlist_turning_bad_after_open_stops_the_stream(make_guard, media, receiver, tmp_path):
    guard = make_guard()
    folder = tmp_path / "hls-bad"
    publisher = HLSPublisher(media["unrelated"], folder, segment_seconds=1.0, list_size=3,
                             inject_uri="file:///etc/passwd", inject_after=3)
    with FolderServer(folder) as server:
        publisher.start()
        assert wait_until(lambda: publisher.playlist.exists(), 10)
        guard.monitor(server.url("live.m3u8"), stream_id="hls-bad", account="pirate")
        final = guard.streams.wait("hls-bad", timeout=30)
        still_publishing = not publisher.done.is_set()
        publisher.stop()
    assert final.status == "failed" and "file" in final.error and "http or https" in final.error, final
    assert final.frames > 0, "the stream played before its playlist turned bad"
    assert still_publishing, "stopped because of the playlist, not because the stream ended"


@needs_ffmpeg  # and PyAV's FFmpeg has no libsrt: guard relays SRT through the CLI
def test_srt_copy_is_flagged(make_guard, media, receiver):
    guard = make_guard()
    port = free_port("udp")
    with FFmpegPublisher(media["copy"], f"srt://127.0.0.1:{port}?mode=listener"):
        guard.monitor(f"srt://127.0.0.1:{port}?mode=caller", stream_id="srt-1", account="pirate")
        final = guard.streams.wait("srt-1", timeout=40)
    assert final.status == "ended", final
    _assert_flagged(guard, receiver, "srt-1")


def test_stream_dies_and_comes_back_with_reset_timestamps(make_guard, media, receiver):
    guard = make_guard(give_up_after=8.0, stall_timeout=1.0)
    url = f"udp://127.0.0.1:{free_port('udp')}"
    events = Events()
    guard.monitor(url, stream_id="flaky", account="pirate", on_event=events)
    with PacedPublisher(media["lead_only"], url, "mpegts") as first:
        assert first.done.wait(15)
    assert wait_until(lambda: "stream.reconnecting" in events.types(), 10)
    # The publisher restarts from timestamp zero, now showing the copy.
    with PacedPublisher(media["copy_only"], url, "mpegts") as second:
        assert second.done.wait(15)
        assert receiver.wait_for("incident.flagged", 1, timeout=10)
    final = guard.streams.wait("flaky", timeout=20)
    assert final.reconnects >= 1 and final.status == "ended"
    _assert_flagged(guard, receiver, "flaky")


def test_resolution_change_and_timestamp_reset_mid_stream(make_guard, media, receiver):
    guard = make_guard(give_up_after=4.0)
    url = f"udp://127.0.0.1:{free_port('udp')}"
    events = Events()
    guard.monitor(url, stream_id="resize", account="pirate", on_event=events)
    with PacedPublisher(media["lead_only"], url, "mpegts") as first:
        assert first.done.wait(15)
    with PacedPublisher(media["copy_big"], url, "mpegts") as second:  # 480×270, timestamps from 0
        assert second.done.wait(15)
    final = guard.streams.wait("resize", timeout=20)
    assert final.width == 480 and final.height == 270
    _assert_flagged(guard, receiver, "resize")


def test_realtime_rehearsal_of_a_local_file(make_guard, media, receiver):
    guard = make_guard()
    started = time.time()
    final = guard.monitor(str(media["copy"]), stream_id="rehearsal", account="pirate", realtime=True,
                          wait=True, timeout=30)
    assert time.time() - started >= LEAD + COPY - 1.0, "played at real-time pace"
    assert final.status == "ended" and final.realtime
    _assert_flagged(guard, receiver, "rehearsal")


def test_local_files_and_refused_urls_never_start(make_guard, media):
    guard = make_guard()
    with pytest.raises(InputError, match="real-time rehearsal"):
        guard.monitor(str(media["copy"]), account="pirate")
    for url in (f"file://{media['copy']}", "concat:/etc/passwd|/etc/hosts", "pipe:0", "subfile:,,start,0,end,0,:/x"):
        with pytest.raises(URLPolicyError):
            guard.monitor(url, account="pirate")
    strict = Guard(guard.settings.replace(allow_private_addresses=False))
    try:
        with pytest.raises(URLPolicyError, match="non-public"):
            strict.monitor("rtmp://127.0.0.1:1935/live/x", account="pirate")
    finally:
        strict.close()
    assert guard.streams.list() == []


def test_many_streams_one_bad_does_not_stall_the_others(make_guard, media, receiver):
    guard = make_guard(give_up_after=3.0)
    urls = [f"udp://127.0.0.1:{free_port('udp')}" for _ in range(3)]
    dead = f"rtmp://127.0.0.1:{free_port()}/live/nothing"  # nobody listens: connection refused
    guard.monitor(dead, stream_id="dead", account="x")
    for i, url in enumerate(urls):
        guard.monitor(url, stream_id=f"multi-{i}", account="pirate")
    with pytest.raises(ConflictError):
        guard.monitor(urls[0], stream_id="multi-0", account="pirate")
    publishers = [PacedPublisher(media["copy"], url, "mpegts").start() for url in urls]
    try:
        finals = [guard.streams.wait(f"multi-{i}", timeout=40) for i in range(3)]
    finally:
        for p in publishers:
            p.stop()
    assert [f.status for f in finals] == ["ended"] * 3
    assert receiver.wait_for("incident.flagged", 3, timeout=10)
    for i in range(3):
        _assert_flagged_one(guard, f"multi-{i}")
    dead_final = guard.streams.wait("dead", timeout=20)
    assert dead_final.status == "failed" and "unreachable" in dead_final.error
    listed = {s.id: s for s in guard.streams.list()}
    assert set(listed) >= {"dead", "multi-0", "multi-1", "multi-2"}


def _assert_flagged_one(guard: Guard, stream_id: str) -> None:
    incidents = guard.incidents.list(stream_id=stream_id)
    assert len(incidents) == 1 and incidents[0].reference_title == "Final"


def test_stream_clock_stays_monotonic_across_resets_and_jumps():
    from guard.decode import StreamClock

    clock = StreamClock(period=0.25, max_jump=5.0)
    wall = 1000.0
    times = [clock(t, wall + t) for t in np.arange(0, 2, 0.25)]  # normal
    times.append(clock(0.0, wall + 2.25))  # reset to zero
    times.append(clock(0.25, wall + 2.5))
    times.append(clock(500.0, wall + 2.75))  # jump forward by minutes
    times.append(clock(500.25, wall + 3.0))
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(3.0, abs=0.3), "spacing follows the wall clock across breaks"
    assert clock.rebases == 2


# -- issue 11: UDP/SRT listeners need no private-address permission; HLS playlists that come late --


def _cli(home, *args, env=None) -> subprocess.Popen:
    """``python -m guard --home home ...`` as a real process, with no GUARD_* settings but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    return subprocess.Popen([sys.executable, "-m", "guard", "--home", str(home), *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**clean, **(env or {})})


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@needs_ffmpeg
def test_cli_monitors_a_udp_listener_on_the_wildcard_address_without_private_permission(tmp_path, media):
    """The README's example: udp://0.0.0.0:PORT binds this machine's port, it calls no private host."""
    home = tmp_path / "home"
    with Guard(Settings(home=home)) as guard:
        guard.ingest(media["reference"], title="Final", owner="league", min_seconds=2.0)
    port = free_port("udp")
    proc = _cli(home, "monitor", f"udp://0.0.0.0:{port}", "--stream-id", "live-42", "--account", "fan-channel",
                "--json", "--max-seconds", "16")
    publisher = FFmpegPublisher(media["copy"], f"udp://127.0.0.1:{port}?pkt_size=1316")
    try:
        assert wait_until(lambda: udp_port_bound(port) or proc.poll() is not None, 30)
        assert proc.poll() is None, "guard monitor exited before listening"
        publisher.start()
        out, err = _finish(proc)
    finally:
        publisher.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert proc.returncode == 1, (out, err)  # 1: a copy was flagged
    assert {e["stream_id"] for e in events} == {"live-42"}
    assert types[0] == "stream.started" and "stream.connected" in types and types[-1] == "stream.ended"
    flagged = [e for e in events if e["type"] == "incident.flagged"]
    assert len(flagged) == 1 and flagged[0]["reference_title"] == "Final", types


def test_cli_refuses_a_private_udp_sender_and_names_the_flag_and_variable(tmp_path):
    proc = _cli(tmp_path / "home", "monitor", "udp://10.1.2.3:5000", "--account", "fan-channel")
    out, err = _finish(proc)
    assert proc.returncode == 2, (out, err)
    assert "non-public" in err and "--allow-private-addresses" in err and "GUARD_ALLOW_PRIVATE_ADDRESSES=1" in err


def test_hls_playlist_missing_at_start_is_retried_until_the_packager_writes_it(make_guard, media, receiver,
                                                                             tmp_path):
    guard = make_guard(start_timeout=20.0)
    folder = tmp_path / "hls-late"
    folder.mkdir()
    events = Events()
    with FolderServer(folder) as server:
        info = guard.monitor(server.url("live.m3u8"), stream_id="hls-late", account="pirate", on_event=events)
        assert info.status == "starting"
        # Nothing is published yet: the server answers 404 while guard backs off (0.2, 0.4, 0.8, 1 s).
        assert wait_until(lambda: events.types().count("stream.reconnecting") >= 5, 15)
        publisher = HLSPublisher(media["copy"], folder, segment_seconds=1.0, list_size=3).start()
        try:
            final = guard.streams.wait("hls-late", timeout=40)
        finally:
            publisher.stop()
        answers = server.answers("live.m3u8")
    missing = [at for code, at in answers if code == 404]
    served = [at for code, at in answers if code == 200]
    assert len(missing) >= 5 and max(missing) - min(missing) >= 2.0, answers
    assert served and min(served) > max(missing), "played once the playlist appeared"
    retries = [e.detail for e in events.items if e.type == "stream.reconnecting"]
    assert "404" in retries[0] and "playlist not available yet" in retries[0]
    assert final.status == "ended" and final.error is None and final.frames > 20, final
    _assert_flagged(guard, receiver, "hls-late")


def test_hls_playlist_that_never_appears_fails_after_the_start_timeout(make_guard, tmp_path):
    guard = make_guard(start_timeout=1.5)
    folder = tmp_path / "hls-never"
    folder.mkdir()
    events = Events()
    with FolderServer(folder) as server:
        started = time.monotonic()
        guard.monitor(server.url("live.m3u8"), stream_id="hls-never", account="pirate", on_event=events)
        final = guard.streams.wait("hls-never", timeout=20)
        elapsed = time.monotonic() - started
        answers = server.answers("live.m3u8")
    assert final.status == "failed" and final.frames == 0
    assert "did not become available within 1.5 s" in final.error and "404" in final.error, final.error
    assert 1.5 <= elapsed < 10
    assert len(answers) >= 3 and {code for code, _ in answers} == {404}
    assert "stream.reconnecting" in events.types() and events.types()[-1] == "stream.ended"


def test_cli_takes_the_start_timeout_from_the_environment(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with FolderServer(folder) as server:
        proc = _cli(tmp_path / "home", "monitor", server.url("live.m3u8"), "--account", "fan-channel",
                    "--allow-private-addresses", env={"GUARD_LIVE_START_TIMEOUT": "1"})
        out, err = _finish(proc)
    assert proc.returncode == 2, (out, err)  # not at once: after retrying for a second
    assert "stream.reconnecting" in out and "did not become available within 1 s" in out, out


# -- issue 11: every reading kind live; a copy under a still panel --------------------------------


def test_udp_picture_in_picture_seen_late_is_read_back_to_where_the_copy_starts(make_guard, receiver, tmp_path):
    """A borderless picture-in-picture over a background that stays still for its first 7 s:
    the window shows (motion contrast) only when the background moves; live, it is read back
    in the frames before too, so the incident's window segment starts where the copy does."""
    # the reference from 7.5 s: its first seconds are too plain to be told apart in a small window
    inset = stream_frames(copy_seed=REF_SEED, copy_from=7.5, lead=1.0, copy=12.0, tail=1.0)
    moving = list(synth.broadcast(86, SIZE, FPS, 14.0, styles=("shapes",)))
    still_for = int(7 * FPS)
    backgrounds = [moving[0]] * still_for + moving[still_for:]
    source = encode(tmp_path / "pip-late.ts", (synth.picture_in_picture(f, b, 0.4, "bl")
                                                for f, b in zip(inset, backgrounds)))
    guard = make_guard()
    incident = _the_incident_over_udp(guard, source, "pip-late")
    windowed = [s for s in guard.incidents.get(incident.id).segments if s["modality"] == "video-region"]
    assert windowed, "the copy is found in the window"
    assert min(s["query_start"] for s in windowed) == pytest.approx(1.0, abs=1.0), windowed


def _the_incident_over_udp(guard: Guard, source, stream_id: str):
    """Publish ``source`` (an 8 s copy from ``COPY_FROM``) over UDP to a monitor of ``guard``
    until it ends; the stream's one incident, which names the copied stretch."""
    port = free_port("udp")
    url = f"udp://127.0.0.1:{port}"
    guard.monitor(url, stream_id=stream_id, account="pirate")
    assert wait_until(lambda: udp_port_bound(port), 10)
    with FFmpegPublisher(source, f"{url}?pkt_size=1316"):
        final = guard.streams.wait(stream_id, timeout=40)
    assert final.status == "ended" and final.frames > 30, final
    (incident,) = guard.incidents.list(stream_id=stream_id)
    assert incident.reference_title == "Final" and incident.account == "pirate"
    assert incident.reference_start < COPY_FROM + 8.0 and incident.reference_end > COPY_FROM + 2.0
    return incident


@needs_ffmpeg
def test_udp_copy_under_a_still_panel_is_flagged_through_its_live_masked_readings(make_guard, receiver, tmp_path):
    """A pirate's panel covers a quarter of the picture for the whole stream. The copy's plain
    codes miss it; the masked readings, found live over a trailing window, flag it."""
    frames = stream_frames(copy_seed=REF_SEED, copy_from=COPY_FROM, lead=LEAD, copy=8.0, tail=TAIL)
    source = encode(tmp_path / "panel.ts", (synth.overlay(f, 0.25, "tl", seed=1) for f in frames))
    guard = make_guard()
    scanned = guard.fingerprint(source, overlays=True)
    assert guard.match(scanned.times, scanned.codes) == [], "plain readings alone do not find it"
    incident = _the_incident_over_udp(guard, source, "panel")
    assert [e["incident"]["id"] for e in receiver.wait_for("incident.flagged", 1, timeout=10)] == [incident.id]


# -- issue 14: the game in a window of a streamer's layout --------------------------------------


@needs_ffmpeg
def test_udp_stream_in_a_streamer_layout_is_flagged_with_the_window(make_guard, receiver, tmp_path):
    """A streamer shows the game in a window of 30 % of the picture beside a webcam and a
    scrolling chat. Whole-frame readings miss it; the window's own readings, tracked live,
    flag it and the incident says where in the frame the copy sits."""
    layout = layouts.streamer_layout(0.30, "bl", 12, SIZE)
    frames = stream_frames(copy_seed=REF_SEED, copy_from=COPY_FROM, lead=LEAD, copy=8.0, tail=TAIL)
    source = encode(tmp_path / "layout.ts", layouts.map_frames(layout, frames, FPS))
    guard = make_guard()
    scanned = guard.fingerprint(source)
    assert guard.match(scanned.times, scanned.codes) == [], "whole-frame readings alone do not find it"
    incident = _the_incident_over_udp(guard, source, "layout")
    windowed = [s for s in guard.incidents.get(incident.id).segments if s["modality"] == "video-region"]
    assert windowed, "the copy is found in the window"
    x0, y0, x1, y1 = layout.box
    left, top, right, bottom = windowed[0]["region"]
    assert overlap((top, bottom, left, right), (y0 / SIZE[1], y1 / SIZE[1], x0 / SIZE[0], x1 / SIZE[0])) >= 0.8
    assert [e["incident"]["id"] for e in receiver.wait_for("incident.flagged", 1, timeout=10)] == [incident.id]

