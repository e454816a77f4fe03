"""Live streams matched by their sound (issue 12): the picture and the first audio stream come
through one packet loop on one stream clock, the sound's landmarks are matched incrementally and
fused with the picture's segments, as a scanned file's are.

Real UDP MPEG-TS streams on loopback, published by Debian's ``ffmpeg`` CLI (``-re -c copy``,
H.264 + AAC), 320×180 at 10 fps, 12–14 s each. The reference is 14 s of a synthetic broadcast
over synthetic music (``min_seconds = 2``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from guard_synth import broadcast as b
from guard_synth.encode import write_audio_only, write_video
from guard.config import LiveSettings, Settings
from guard.models import Segment
from guard.search import agree
from guard.service import Guard
from tests.live_helpers import FFmpegPublisher, FolderServer, HLSPublisher, free_port, udp_port_bound, wait_until

#: Live streams over UDP, 20 s each: `pytest -m "not slow"` leaves them out.
live_stream = [pytest.mark.slow,
               pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI to publish")]

SIZE, FPS, RATE = (320, 180), 10, 16000


def _live(test):
    for mark in live_stream:
        test = mark(test)
    return test


#: The sound-only copy: reference seconds 2–12 heard at stream seconds 3–13.
COPY_FROM, COPY_START, COPY_SECONDS = 2.0, 3.0, 10.0


def _write(path: Path, frames, audio: np.ndarray) -> Path:
    return write_video(path, frames, FPS, audio=audio, sample_rate=RATE, options={"g": str(FPS)})


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("live-audio")
    song = b.audio_track(7, 14, RATE, "music")
    copied = song[int(COPY_FROM * RATE): int((COPY_FROM + COPY_SECONDS) * RATE)]
    speech = b.audio_track(3, COPY_START, RATE, "speech")
    return {
        "reference": _write(folder / "reference.mp4", b.broadcast(7, SIZE, FPS, 14), song),
        # An unrelated picture over speech, then the reference's sound, then speech again.
        "heard": _write(folder / "heard.mp4", b.shapes(99, SIZE, FPS, 14),
                        np.concatenate([speech, copied, b.audio_track(4, 1, RATE, "speech")])),
        # Unrelated for 3 s, then the reference's picture and sound together.
        "both": _write(folder / "both.mp4", b.splice([b.shapes(98, SIZE, FPS, COPY_START),
                                                      b.broadcast(7, SIZE, FPS, COPY_SECONDS, start=COPY_FROM)]),
                       np.concatenate([speech, copied])),
        # The same sound without any picture (a radio-style stream).
        "sound_only": write_audio_only(folder / "sound_only.m4a", np.concatenate(
            [speech, copied, b.audio_track(4, 1, RATE, "speech")]), RATE),
        # Another song of the same synthetic style under an unrelated picture.
        "other_song": _write(folder / "other_song.mp4", b.shapes(97, SIZE, FPS, 14),
                             b.audio_track(21, 14, RATE, "music")),
    }


@pytest.fixture
def make_guard(tmp_path, media):
    made = []

    def build(match: str = "any") -> Guard:
        live = LiveSettings(stall_timeout=2.0, give_up_after=2.0, reconnect_initial=0.2, reconnect_max=1.0,
                            open_timeout=5.0, incident_idle_seconds=30.0)
        guard = Guard(Settings(home=tmp_path / f"home{len(made)}", allow_private_addresses=True, live=live))
        made.append(guard)
        guard.ingest(media["reference"], title="Anthem", owner="league", min_seconds=2.0, match=match)
        return guard

    yield build
    for guard in made:
        guard.close()


def _monitor(guard: Guard, source: Path, stream_id: str):
    """Monitor a UDP port, publish ``source`` to it once guard listens, wait for the end."""
    port = free_port("udp")
    url = f"udp://127.0.0.1:{port}"
    guard.monitor(url, stream_id=stream_id, account="pirate")
    assert wait_until(lambda: udp_port_bound(port), 10), "guard never bound the port"
    with FFmpegPublisher(source, url + "?pkt_size=1316", "mpegts") as publisher:
        final = guard.streams.wait(stream_id, timeout=40)
    assert final.status == "ended", final
    return final, publisher


def _modalities(guard: Guard, incident_id: int) -> set[str]:
    return {s["modality"] for s in guard.incidents.get(incident_id).segments}


@_live
def test_a_stream_whose_sound_is_a_reference_raises_an_audio_incident_localized_within_a_second(make_guard, media):
    guard = make_guard()
    final, publisher = _monitor(guard, media["heard"], "heard")
    assert final.frames > 40 and final.audio_seconds > 12, final
    incidents = guard.incidents.list(stream_id="heard")
    assert len(incidents) == 1, incidents
    incident = incidents[0]
    assert incident.reference_title == "Anthem" and _modalities(guard, incident.id) == {"audio"}
    # The stream clock starts with the first frame, which is the file's first: file times.
    assert incident.query_start == pytest.approx(COPY_START, abs=1.0)
    assert incident.query_end == pytest.approx(COPY_START + COPY_SECONDS, abs=1.0)
    assert incident.reference_start == pytest.approx(COPY_FROM, abs=1.0)
    assert incident.reference_end == pytest.approx(COPY_FROM + COPY_SECONDS, abs=1.0)
    assert incident.decided - publisher.entered_at(COPY_START) < 10.0, "decided within 10 s of the copied sound"
    assert incident.first_seen <= incident.decided


def _monitor_over(guard: Guard, transport: str, source: Path, stream_id: str, folder: Path):
    """Monitor ``source`` published over RTMP, SRT or a live HLS playlist; wait for the end."""
    if transport == "hls":
        publisher = HLSPublisher(source, folder, segment_seconds=1.0, list_size=3)
        with FolderServer(folder) as server:
            publisher.start()
            assert wait_until(lambda: publisher.playlist.exists(), 10)
            guard.monitor(server.url("live.m3u8"), stream_id=stream_id, account="pirate")
            final = guard.streams.wait(stream_id, timeout=40)
            publisher.stop()
        return final
    if transport == "rtmp":
        url = f"rtmp://127.0.0.1:{free_port()}/live/pirate"
        published, watched = FFmpegPublisher(source, url, "flv", listen=True), url
    else:
        port = free_port("udp")
        published = FFmpegPublisher(source, f"srt://127.0.0.1:{port}?mode=listener")
        watched = f"srt://127.0.0.1:{port}?mode=caller"
    with published:
        guard.monitor(watched, stream_id=stream_id, account="pirate")
        return guard.streams.wait(stream_id, timeout=40)


@_live
@pytest.mark.parametrize("transport", ["rtmp", "srt", "hls"])
def test_an_audio_only_copy_raises_an_audio_incident_over_every_transport(make_guard, media, transport, tmp_path):
    # The sound comes through every transport guard monitors, as over UDP above: RTMP (FLV),
    # SRT (relayed through the ffmpeg CLI) and HLS (MPEG-TS segments with picture and sound).
    guard = make_guard()
    final = _monitor_over(guard, transport, media["heard"], f"heard-{transport}", tmp_path / "hls")
    assert final.status == "ended" and final.audio_seconds > 11, final
    incidents = guard.incidents.list(stream_id=f"heard-{transport}")
    assert len(incidents) == 1, incidents
    assert _modalities(guard, incidents[0].id) == {"audio"}
    assert incidents[0].reference_start == pytest.approx(COPY_FROM, abs=1.0)


@_live
def test_a_stream_without_a_picture_is_matched_by_its_sound(make_guard, media):
    guard = make_guard()
    final, _ = _monitor(guard, media["sound_only"], "radio")
    assert final.frames == 0 and final.audio_seconds > 12 and (final.width, final.height) == (0, 0), final
    incidents = guard.incidents.list(stream_id="radio")
    assert len(incidents) == 1 and _modalities(guard, incidents[0].id) == {"audio"}, incidents
    assert incidents[0].query_start == pytest.approx(COPY_START, abs=1.0)
    assert incidents[0].first_seen <= incidents[0].decided


@_live
def test_a_reference_matched_by_its_picture_only_is_not_raised_by_its_sound(make_guard, media):
    guard = make_guard(match="video")
    final, _ = _monitor(guard, media["heard"], "heard-video-policy")
    assert final.audio_seconds > 12
    assert guard.incidents.list(stream_id="heard-video-policy") == []


@_live
def test_picture_and_sound_of_one_copy_raise_one_audio_and_video_incident(make_guard, media):
    guard = make_guard()
    final, _ = _monitor(guard, media["both"], "both")
    assert final.frames > 40 and final.audio_seconds > 11, final
    incidents = guard.incidents.list(stream_id="both")
    assert len(incidents) == 1, incidents
    assert _modalities(guard, incidents[0].id) == {"audio+video"}
    assert incidents[0].query_start == pytest.approx(COPY_START, abs=1.0)


@_live
def test_unrelated_music_of_the_same_style_raises_nothing(make_guard, media):
    guard = make_guard()
    final, _ = _monitor(guard, media["other_song"], "other-song")
    assert final.audio_seconds > 12
    assert guard.incidents.list(stream_id="other-song") == []


def test_the_live_sound_matcher_reports_what_a_whole_match_reports_for_its_window(tmp_path, media):
    """LiveAudioSearch keeps each landmark's hits while it is in the window: at every decision
    it gives what Searcher.match_audio gives for the window's landmarks, and looks up new
    landmarks only (all of them again once a reference is added)."""
    with Guard(Settings(home=tmp_path / "home")) as guard:
        landmarks, _ = guard.audio.landmarks_of_file(media["heard"], query=True)
        live = guard.searcher.live_audio(6.0)
        found, lookups, added = [], [], []
        for step, start in enumerate(np.arange(0.0, 14.0, 0.5)):
            if step == 8:
                guard.ingest(media["reference"], title="Anthem", owner="league", min_seconds=2.0)
            before = live.queries
            chunk = landmarks.take(np.flatnonzero((landmarks.times >= start) & (landmarks.times < start + 0.5)))
            live.add(chunk)
            assert len(live) and live.landmarks.times.min() >= live.landmarks.times.max() - 6.0
            segments = live.segments()
            assert segments == guard.searcher.match_audio(live.landmarks)
            found += segments
            lookups.append(live.queries - before)
            added.append(len(live) if step == 8 else len(chunk))
        assert lookups[:8] == [0] * 8, "nothing to look up before the reference exists"
        assert lookups[8:] == added[8:], "the whole window once the reference came, then new landmarks only"
        assert {s.modality for s in found} == {"audio"} and {s.reference_title for s in found} == {"Anthem"}


def _segment(modality: str, start: float, end: float, offset: float, rate: float) -> Segment:
    return Segment(reference_id=1, reference_title="r", query_start=start, query_end=end,
                   reference_start=start + offset, reference_end=start + offset + rate * (end - start),
                   offset=offset, rate=rate, matched_fraction=0.5, score=0.5, matched_frames=10,
                   mean_distance=0.0, modality=modality)


def test_picture_and_sound_agree_when_their_alignments_place_the_copy_alike_all_along():
    """The picture's rate comes from a coarse grid: a 10 s copy the picture places at rate 0.95
    and the sound at 1.0 is one copy (0.25 s apart at the ends); over 60 s the two lines part."""
    sound = _segment("audio", 2.5, 13.0, -1.0, 1.0)
    assert agree(_segment("video", 3.0, 12.8, -0.75, 0.95), sound)
    assert agree(_segment("video", 3.0, 12.8, -1.0, 1.01), sound)
    assert not agree(_segment("video", 3.0, 12.8, 1.5, 1.0), sound)
    long_sound = _segment("audio", 0.0, 60.0, -1.0, 1.0)
    assert not agree(_segment("video", 0.0, 60.0, 0.5, 0.95), long_sound)
