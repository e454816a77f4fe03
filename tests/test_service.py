"""Guard's roles in one test process: two services over one store, as two `guard serve` would be."""

from __future__ import annotations

import shutil
import time

import pytest

from guard.config import Settings
from guard.errors import ConfigError, ConflictError
from guard.service import Guard

from tests.server_helpers import clip


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_streams_recorded_without_the_monitor_role_run_where_it_is(tmp_path):
    video = clip(tmp_path / "live.mp4", photo=5, seconds=20)
    settings = Settings(home=tmp_path / "home")
    with Guard(settings, roles=["api"]) as api, Guard(settings, roles=["monitor"]) as monitor:
        assert (api.roles, monitor.roles) == (("api",), ("monitor",))
        # Nobody claimed it yet: a stop ends it at once.
        waiting = api.monitor(str(video), stream_id="s-cancelled", account="fan", realtime=True)
        assert waiting.status == "starting" and waiting.url == "live.mp4" and api.streams.active_count == 0
        assert api.streams.stop("s-cancelled").status == "stopped"

        # Claimed, but its file is gone by then: the stream fails, with the reason.
        gone = shutil.copy(video, tmp_path / "gone.mp4")
        api.monitor(str(gone), stream_id="s-gone", account="fan", realtime=True)
        (tmp_path / "gone.mp4").unlink()
        assert monitor.streams.take_requests() == 0
        failed = api.streams.get("s-gone")
        assert failed.status == "failed" and "no such file" in failed.error and not failed.active

        api.monitor(str(video), stream_id="s-live", account="fan", realtime=True)
        with pytest.raises(ConflictError):
            api.monitor(str(video), stream_id="s-live", account="fan", realtime=True)
        assert monitor.streams.take_requests() == 1
        assert monitor.streams.take_requests() == 0, "a request is claimed once"
        assert monitor.streams.active_count == 1 and api.streams.active_count == 0
        assert _until(lambda: api.streams.get("s-live").status == "live", 20)

        monitor.start(poll_interval=0.1)  # from now on the monitor process obeys stop requests
        stopped = api.streams.stop("s-live", timeout=20)
        assert stopped.status == "stopped" and not stopped.active
        assert _until(lambda: monitor.streams.active_count == 0, 10)


def test_monitor_processes_sharing_a_store_split_the_recorded_streams(tmp_path):
    # Python runs one process's streams on one core at a time: monitor processes sharing a store
    # each take an even share of the recorded streams, whichever looks first.
    video = clip(tmp_path / "live.mp4", photo=5, seconds=20)
    settings = Settings(home=tmp_path / "home")
    with Guard(settings, roles=["api"]) as api, Guard(settings, roles=["monitor"]) as first, \
            Guard(settings, roles=["monitor"]) as second:
        assert first.streams.take_requests() == 0 and second.streams.take_requests() == 0  # both report
        for i in range(5):
            api.monitor(str(video), stream_id=f"s-{i}", account="fan", realtime=True)
        assert first.streams.take_requests() == 3  # ⌈5 / 2⌉
        assert first.streams.take_requests() == 0, "the rest is the other process's share"
        assert second.streams.take_requests() == 2
        api.monitor(str(video), stream_id="s-5", account="fan", realtime=True)
        assert first.streams.take_requests() == 0 and second.streams.take_requests() == 1
        first.streams.shutdown()  # its load is withdrawn: the other takes every new stream
        for i in (6, 7):
            api.monitor(str(video), stream_id=f"s-{i}", account="fan", realtime=True)
        assert second.streams.take_requests() == 2
        assert api.streams.repository.start_requests(10) == [], "every stream was claimed once"


def test_roles_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown role"):
        Guard(Settings(home=tmp_path), roles=["api", "web"])


# -- audio fingerprints wired in (issue 12) ----------------------------------------------------

from guard.audio_fingerprint import fingerprint_media  # noqa: E402
from tests.audio_media import AUDIO_ONLY_REFERENCE_START, AUDIO_ONLY_SPAN, make_audio_media  # noqa: E402


@pytest.fixture(scope="module")
def audio_media(tmp_path_factory):
    """Reference and copies with soundtracks (see tests/audio_media.py), made once."""
    return make_audio_media(tmp_path_factory.mktemp("audio-media"))


@pytest.fixture
def audio_guard(tmp_path, audio_media):
    """A store holding the music reference, with its id."""
    with Guard(Settings(home=tmp_path / "home")) as service:
        ref = service.ingest(audio_media["reference"], title="song")
        yield service, ref


def test_a_reference_with_sound_gets_an_audio_track_and_one_without_only_its_picture(audio_guard, audio_media):
    guard, ref = audio_guard
    tracks = {t.signal: t for t in guard.tracks(ref.id)}
    assert set(tracks) == {"mhash16", "audio_landmarks"} and ref.match == "any"
    audio = tracks["audio_landmarks"]
    assert len(audio) > 300 and audio.pipeline["decoder"]["sample_rate"] == 8000
    assert audio.pipeline["signal"]["name"] == "audio_landmarks" and audio.pipeline["signal"]["params"]
    silent = guard.ingest(audio_media["silent"], title="silent")
    assert [t.signal for t in guard.tracks(silent.id)] == ["mhash16"]


def test_an_audio_only_copy_is_found_by_its_sound_and_localized(audio_guard, audio_media):
    guard, ref = audio_guard
    result = guard.scan(audio_media["audio_only"])
    assert len(result.segments) == 1
    segment = result.segments[0]
    assert (segment.reference_id, segment.modality) == (ref.id, "audio")
    start, end = AUDIO_ONLY_SPAN
    assert abs(segment.query_start - start) <= 1 and abs(segment.query_end - end) <= 1
    assert abs(segment.reference_start - AUDIO_ONLY_REFERENCE_START) <= 1


def test_picture_and_sound_of_one_copy_fuse_into_one_segment_scored_above_each(audio_guard, audio_media):
    guard, ref = audio_guard
    fp, landmarks, _ = fingerprint_media(guard.fingerprinter, guard.audio, audio_media["both"], query=True)
    assert landmarks is not None
    video = guard.searcher.match(fp.times, fp.codes, fp.masked)
    audio = guard.searcher.match_audio(landmarks)
    assert [s.modality for s in video] == ["video"] and [s.modality for s in audio] == ["audio"]
    [fused] = guard.scan(audio_media["both"]).segments
    assert fused.modality == "audio+video" and fused.reference_id == ref.id
    assert fused.score > max(video[0].score, audio[0].score)
    assert abs(fused.reference_start - 2.0) <= 1 and abs(fused.query_start) <= 1


def test_the_match_policy_says_which_copies_count(audio_guard, audio_media):
    guard, ref = audio_guard
    assert [s.modality for s in guard.scan(audio_media["silent"]).segments] == ["video"]
    guard.update_reference(ref.id, match="video")
    assert guard.scan(audio_media["audio_only"]).segments == []
    assert [s.modality for s in guard.scan(audio_media["both"]).segments] == ["audio+video"]
    guard.update_reference(ref.id, match="audio")
    assert guard.scan(audio_media["silent"]).segments == []
    assert [s.modality for s in guard.scan(audio_media["audio_only"]).segments] == ["audio"]
    assert guard.reference(ref.id).match == "audio"
    with pytest.raises(Exception, match="match policy"):
        guard.update_reference(ref.id, match="smell")


def test_a_still_picture_over_music_and_a_file_without_video_are_matched_by_their_sound(tmp_path, audio_media):
    with Guard(Settings(home=tmp_path / "home")) as guard:
        still = guard.ingest(audio_media["still"], title="still")
        sound = guard.ingest(audio_media["sound_only"], title="sound only", match="audio")
        assert sound.frames == 0 and sound.duration >= 13 and sound.match == "audio"
        assert sound.warnings == ["no informative picture: it is matched by its audio only"]
        assert [t.signal for t in guard.tracks(sound.id)] == ["audio_landmarks", "mhash16"]
        [found] = guard.scan(audio_media["still_copy"]).segments
        assert (found.reference_id, found.modality) == (still.id, "audio") and abs(found.reference_start - 1) <= 1
        [found] = guard.scan(audio_media["sound_only_copy"]).segments
        assert (found.reference_id, found.modality) == (sound.id, "audio") and abs(found.reference_start - 2) <= 1


def test_a_restarted_guard_still_matches_by_sound_and_deleting_a_reference_forgets_its_landmarks(tmp_path, audio_media):
    settings = Settings(home=tmp_path / "home")
    with Guard(settings) as guard:
        ref = guard.ingest(audio_media["reference"], title="song")
        landmarks = len(guard.index.index_for("audio_landmarks"))
        assert landmarks > 300
    assert (tmp_path / "home" / "index-audio_landmarks.npz").is_file()
    with Guard(settings) as guard:
        assert len(guard.index.index_for("audio_landmarks")) == landmarks
        assert [s.modality for s in guard.scan(audio_media["audio_only"]).segments] == ["audio"]
        guard.remove_reference(ref.id)
        assert len(guard.index.index_for("audio_landmarks")) == 0
        assert guard.scan(audio_media["audio_only"]).segments == []
    with Guard(settings) as guard:  # no reference has audio any more: no audio index
        assert guard.index.audio_refs() == {} and guard.scan(audio_media["audio_only"]).segments == []
