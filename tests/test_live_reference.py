"""Live references over real protocols on loopback: a "broadcast feed" is published live and
ingested as it airs (in another process, as ``guard ingest --live``), a transformed restream
of it (re-encoded, a logo) is published live some seconds later (or earlier) and monitored by
this process; the incident names the live reference and the restream's delay.

Feeds are synthetic broadcasts at 320×180, 12 fps; references use ``min_seconds=2``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from guard.config import LiveSettings, Settings
from guard.service import Guard
from guard_synth import broadcast as synth
from guard_synth.encode import write_video
from guard_synth.publish import remux_interleaved
from tests.live_helpers import FPS, OTHER_STYLES, SIZE, FolderServer, HLSPublisher, PacedPublisher, encode, free_port, reference_frames, udp_port_bound, wait_until

pytestmark = pytest.mark.slow

FEED_SEED = 21
FEED_SECONDS = 40.0
LIVE = dict(stall_timeout=3.0, give_up_after=30.0, reconnect_initial=0.2, reconnect_max=0.5, open_timeout=5.0,
            incident_idle_seconds=30.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The feed, its restream (a logo, re-encoded) and an unrelated stream, made once."""
    folder = tmp_path_factory.mktemp("live-reference-media")
    return {
        "feed": encode(folder / "feed.ts", reference_frames(FEED_SEED, FEED_SECONDS)),
        "restream": encode(folder / "restream.ts", (synth.logo(f) for f in reference_frames(FEED_SEED, FEED_SECONDS))),
        # photo pans of two seeds can show the same photo: unrelated content avoids them
        "unrelated": encode(folder / "unrelated.ts", synth.broadcast(4242, SIZE, FPS, 20.0, styles=OTHER_STYLES)),
    }


def _frames_from(seed: int, start: float, duration: float):
    return synth.broadcast(seed, (320, 180), 12, duration, start=start)


def _settings(home: Path, **live) -> Settings:
    return Settings(home=home, allow_private_addresses=True, live=LiveSettings(**{**LIVE, **live}))


def _udp() -> tuple[str, int]:
    port = free_port("udp")
    return f"udp://127.0.0.1:{port}", port


class IngestProcess:
    """``guard ingest --live URL`` in a process of its own, as an operator runs it."""

    def __init__(self, home: Path, url: str, *args: str):
        # the feed may start some seconds after the ingest listens: it waits for it
        env = {**os.environ, "GUARD_ALLOW_PRIVATE_ADDRESSES": "1",
               **{f"GUARD_LIVE__{k.upper()}": str(v) for k, v in {**LIVE, "give_up_after": 60.0}.items()}}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "guard", "--home", str(home), "ingest", "--live", url, "--title", "Game 7",
             "--owner", "league", "--min-seconds", "2", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def end(self, sig: int = signal.SIGINT, timeout: float = 40.0) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


def _live_reference(guard: Guard, timeout: float = 30.0):
    assert wait_until(lambda: any(r.live_status == "live" for r in guard.references()), timeout)
    return next(r for r in guard.references() if r.live_status == "live")


def _restream_caught(tmp_path, media, delay: float, unrelated: bool = False, feed: str = "feed"):
    """Publish the feed, ingest it in another process, publish the restream ``delay`` s later
    (negative: earlier) and monitor it here; return the guard, the live reference, the
    restream's incidents and the publishers' real offset (s)."""
    home = tmp_path / "home"
    feed_url, feed_port = _udp()
    pirate_url, pirate_port = _udp()
    guard = Guard(_settings(home))
    ingest = IngestProcess(home, feed_url)
    try:
        ref = _live_reference(guard)
        assert wait_until(lambda: udp_port_bound(feed_port), 30)

        def watch_pirate():
            guard.monitor(pirate_url, stream_id="pirate", account="pirate")
            assert wait_until(lambda: udp_port_bound(pirate_port), 30)

        late = delay > 20.0  # a monitor waiting that long for its stream would give up first
        if not late:
            watch_pirate()
        if unrelated:
            other_url, other_port = _udp()
            guard.monitor(other_url, stream_id="other", account="someone")
            assert wait_until(lambda: udp_port_bound(other_port), 30)
        first, second = ((media[feed], feed_url), (media["restream"], pirate_url))[:: 1 if delay >= 0 else -1]
        leader = PacedPublisher(*first).start()
        others = [PacedPublisher(media["unrelated"], other_url).start()] if unrelated else []
        if late:
            time.sleep(delay - 5.0)
            watch_pirate()
        assert wait_until(lambda: leader.started_wall is not None, 10)
        time.sleep(max(0.0, leader.started_wall + abs(delay) - time.time()))
        follower = PacedPublisher(*second).start()
        feed, pirate = (leader, follower) if delay >= 0 else (follower, leader)
        assert wait_until(lambda: guard.incidents.list(stream_id="pirate"), 40), ingest.end()[2][-3000:]
        incidents = guard.incidents.list(stream_id="pirate")
        offset = pirate.started_wall - feed.started_wall
        for publisher in (leader, follower, *others):
            publisher.stop()
        return guard, ref, incidents, offset, (ingest, others)
    except BaseException:
        ingest.__exit__()
        guard.close()
        raise


@pytest.mark.parametrize("delay", [5.0, -10.0], ids=["5s-behind", "10s-ahead"])
def test_a_restream_of_a_feed_still_airing_is_caught_with_its_delay(tmp_path, media, delay):
    guard, ref, incidents, offset, (ingest, _) = _restream_caught(tmp_path, media, delay, unrelated=delay > 0)
    with ingest, guard:
        incident = incidents[0]
        assert incident.reference_id == ref.id and incident.reference_title == "Game 7"
        assert incident.delay == pytest.approx(offset, abs=1.0), incident
        aired_start = guard.reference(ref.id).aired_start
        assert aired_start is not None and incident.aired_at == pytest.approx(aired_start + incident.reference_start,
                                                                              abs=0.5)
        # both clocks start with their stream: the restream shows moment t of the feed at its own t
        assert incident.query_start == pytest.approx(incident.reference_start, abs=1.5)
        if delay > 0:
            assert guard.incidents.list(stream_id="other") == [], "an unrelated stream alongside gives nothing"
        code, out, err = ingest.end()
        assert code == 0, err[-2000:]
        assert "ended" in out
        ended = guard.reference(ref.id)
        assert ended.live_status == "ended" and ended.duration >= incident.reference_end - 0.5 and ended.aired_start is not None
        assert ended.has_keyframes


def test_a_restream_90_s_behind_a_feed_still_airing_is_caught(tmp_path, media):
    media = {**media, "long_feed": encode(tmp_path / "long_feed.ts", reference_frames(FEED_SEED, 105.0))}
    guard, ref, incidents, offset, (ingest, _) = _restream_caught(tmp_path, media, 90.0, feed="long_feed")
    with ingest, guard:
        assert incidents[0].reference_id == ref.id
        assert incidents[0].delay == pytest.approx(offset, abs=1.0), incidents[0]
        assert guard.reference(ref.id).live_status == "live", "caught while the feed still airs"


def test_a_crashed_ingest_leaves_a_consistent_reference_that_ends_on_restart(tmp_path, media):
    home = tmp_path / "home"
    feed_url, feed_port = _udp()
    with Guard(_settings(home)) as guard, IngestProcess(home, feed_url) as ingest:
        ref = _live_reference(guard)
        assert wait_until(lambda: udp_port_bound(feed_port), 30)
        with PacedPublisher(media["feed"], feed_url):
            assert wait_until(lambda: guard.reference(ref.id).duration > 12, 30)
            ingest.end(signal.SIGKILL)
        assert guard.reference(ref.id).live_status == "live", "nobody has noticed yet"
    with Guard(_settings(home)) as restarted:  # the next start ends it
        ended = restarted.reference(ref.id)
        assert ended.live_status == "ended" and ended.duration > 12
        track = next(t for t in restarted.tracks(ref.id) if t.signal == restarted.fingerprinter.signal.name)
        assert len(track) == ended.frames and np.all(np.diff(track.times) > 0)
        assert len(restarted.index.refs[ref.id].times) == len(track), "the index agrees with the catalog"
        copy = encode(tmp_path / "vod.ts", (synth.logo(f) for f in _frames_from(FEED_SEED, 2.0, 8.0)))
        found = restarted.scan(copy).segments
        assert found and found[0].reference_id == ref.id
        assert found[0].reference_start == pytest.approx(2.0, abs=1.0)


def _in_process(tmp_path, **live):
    return Guard(_settings(tmp_path / "home", **live))


def test_a_feed_that_drops_for_10_s_keeps_one_timeline_with_a_gap_and_no_false_match(tmp_path, media):
    """The feed airs 0–12 s, is away 10 s, comes back at 22 s; a restream of the whole game 5 s
    behind it is matched before and after the gap at one alignment, never across it."""
    folder = tmp_path / "media"
    folder.mkdir()
    before = encode(folder / "before.ts", _frames_from(FEED_SEED, 0.0, 12.0))
    after = encode(folder / "after.ts", _frames_from(FEED_SEED, 22.0, 16.0))
    feed_url, feed_port = _udp()
    pirate_url, pirate_port = _udp()
    with _in_process(tmp_path) as guard:
        ingest = guard.start_live_reference(feed_url, title="Game 7", owner="league", min_seconds=2)
        assert wait_until(lambda: udp_port_bound(feed_port), 30)
        guard.monitor(pirate_url, stream_id="pirate", account="pirate")
        assert wait_until(lambda: udp_port_bound(pirate_port), 30)
        with PacedPublisher(before, feed_url) as first:
            time.sleep(5.0)
            with PacedPublisher(media["restream"], pirate_url) as pirate:
                assert first.done.wait(20)
                time.sleep(22.0 - (time.time() - first.started_wall))  # away until the game's 22nd second
                with PacedPublisher(after, feed_url) as second:
                    assert second.done.wait(30)
                    assert wait_until(lambda: guard.reference(ingest.reference.id).duration > 35, 10)
                offset = pirate.started_wall - first.started_wall
                pirate.stop()
        ingest.stop()
        assert ingest.wait(30)
        ref = guard.reference(ingest.reference.id)
        assert ref.live_status == "ended"
        assert len(ref.gaps) == 1 and ref.gaps[0] == pytest.approx((12.0, 22.0), abs=1.5), ref.gaps
        incidents = guard.incidents.list(stream_id="pirate")
        assert incidents and all(i.reference_id == ref.id for i in incidents)
        assert all(i.delay == pytest.approx(offset, abs=1.0) for i in incidents), incidents
        segments = [s for i in incidents for s in guard.incidents.get(i.id).segments]
        assert all(abs(s["offset"]) < 1.5 for s in segments), "one alignment before and after the gap"
        assert max(s["reference_end"] for s in segments) > 26.0, "matched again after the feed came back"
        track = next(t for t in guard.tracks(ref.id) if t.signal == guard.fingerprinter.signal.name)
        start, end = ref.gaps[0]
        assert not np.any((track.times > start + 0.5) & (track.times < end - 0.5)), "nothing aired in the gap"
        assert np.all(np.diff(track.times) > 0)


def test_retention_drops_old_fingerprints_from_the_catalog_and_the_index_together(tmp_path, media):
    feed_url, feed_port = _udp()
    retain = 8.0
    with _in_process(tmp_path) as guard:
        ingest = guard.start_live_reference(feed_url, title="24/7 channel", owner="league", min_seconds=2,
                                            retain_hours=retain / 3600)
        assert wait_until(lambda: udp_port_bound(feed_port), 30)
        with PacedPublisher(media["feed"], feed_url) as feed:
            assert wait_until(lambda: guard.reference(ingest.reference.id).duration > 30, 45)
            feed.stop()
        ingest.stop()
        assert ingest.wait(30)
        ref_id = ingest.reference.id
        end = guard.reference(ref_id).duration
        track = next(t for t in guard.tracks(ref_id) if t.signal == guard.fingerprinter.signal.name)
        assert track.times[0] >= end - retain - 3.0 and track.times[-1] >= end - 1.0
        assert all(k.media_time >= track.times[0] - 2.0 for k in guard.reference_keyframes(ref_id))
        guard.index.sync()
        assert np.array_equal(guard.index.refs[ref_id].times, track.times), "the index dropped them too"
        early = encode(tmp_path / "early.ts", _frames_from(FEED_SEED, 1.0, 6.0))
        late = encode(tmp_path / "late.ts", _frames_from(FEED_SEED, end - 7.0, 6.0))
        assert guard.scan(early).segments == [], "what retention dropped is no longer matched"
        assert [s.reference_id for s in guard.scan(late).segments] == [ref_id]
    with _in_process(tmp_path) as reopened:
        assert np.array_equal(reopened.index.refs[ref_id].times, track.times)


def test_a_restream_carrying_only_the_feeds_sound_is_caught_by_it(tmp_path):
    """The restream shows another picture but carries the feed's sound 4 s behind it: the live
    reference's landmarks grow as it airs and the restream is matched by them."""
    rate = 16000
    song = synth.audio_track(5, 24.0, rate, "music")
    feed = remux_interleaved(write_video(tmp_path / "feed.mp4", reference_frames(FEED_SEED, 24.0), 12, audio=song,
                                         sample_rate=rate, options={"g": "12"}), tmp_path / "feed.ts")
    other = remux_interleaved(write_video(tmp_path / "other.mp4", reference_frames(4242, 24.0), 12, audio=song,
                                          sample_rate=rate, options={"g": "12"}), tmp_path / "other.ts")
    feed_url, feed_port = _udp()
    pirate_url, pirate_port = _udp()
    with _in_process(tmp_path) as guard:
        ingest = guard.start_live_reference(feed_url, title="Concert", owner="label", min_seconds=3)
        assert wait_until(lambda: udp_port_bound(feed_port), 30)
        guard.monitor(pirate_url, stream_id="fan", account="fan")
        assert wait_until(lambda: udp_port_bound(pirate_port), 30)
        with PacedPublisher(feed, feed_url, audio=True) as first:
            time.sleep(4.0)
            with PacedPublisher(other, pirate_url, audio=True) as pirate:
                assert wait_until(lambda: guard.incidents.list(stream_id="fan"), 30)
                offset = pirate.started_wall - first.started_wall
        ingest.stop()
        assert ingest.wait(30)
        assert ingest.status.landmarks > 100
        incident = guard.incidents.list(stream_id="fan")[0]
        assert incident.reference_id == ingest.reference.id
        assert {s["modality"] for s in guard.incidents.get(incident.id).segments} == {"audio"}
        assert incident.delay == pytest.approx(offset, abs=1.0), incident


def test_an_hls_feed_is_ingested_as_it_airs(tmp_path, media):
    """A feed published as a live HLS playlist (segments rolling out) is a live reference like
    any other; the feed guard sees trails its publisher by a segment or two, so the delay it
    reports is at most the publishers' offset."""
    folder = tmp_path / "hls"
    pirate_url, pirate_port = _udp()
    publisher = HLSPublisher(media["feed"], folder, segment_seconds=1.0, list_size=3)
    with FolderServer(folder) as server, _in_process(tmp_path) as guard:
        publisher.start()
        assert wait_until(lambda: publisher.playlist.exists(), 10)
        ingest = guard.start_live_reference(server.url("live.m3u8"), title="Game 7", owner="league", min_seconds=2)
        guard.monitor(pirate_url, stream_id="pirate", account="pirate")
        assert wait_until(lambda: udp_port_bound(pirate_port), 30)
        assert wait_until(lambda: guard.reference(ingest.reference.id).duration > 2, 20)
        time.sleep(max(0.0, publisher.started_wall + 8.0 - time.time()))
        with PacedPublisher(media["restream"], pirate_url) as pirate:
            assert wait_until(lambda: guard.incidents.list(stream_id="pirate"), 30)
            offset = pirate.started_wall - publisher.started_wall
        publisher.stop()
        ingest.stop()
        assert ingest.wait(30)
        incident = guard.incidents.list(stream_id="pirate")[0]
        assert incident.reference_id == ingest.reference.id
        assert offset - 5.0 <= incident.delay <= offset + 1.0, (incident.delay, offset)
        assert guard.reference(ingest.reference.id).live_status == "ended"
