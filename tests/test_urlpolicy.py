"""URL safety: schemes, addresses, HLS playlists, and FFmpeg's protocol whitelist underneath."""

from __future__ import annotations

import threading

import pytest

from guard import decode
from guard.errors import InputError, StreamError, URLPolicyError
from guard.urlpolicy import PlaylistWatcher, check_url, playlist_uris, protocol_whitelist, redact
from tests.live_helpers import FolderServer, encode, reference_frames


@pytest.mark.parametrize("url", [
    "rtmp://127.0.0.1/live/key", "rtmps://127.0.0.1:443/live/key", "http://127.0.0.1:8080/x.flv",
    "https://127.0.0.1/x.flv", "srt://127.0.0.1:9000?mode=caller", "udp://127.0.0.1:5000",
])
def test_network_schemes_pass_when_private_addresses_are_allowed(url):
    checked = check_url(url, allow_private_addresses=True, fetch_playlists=False)
    assert checked.scheme == url.split("://")[0]
    assert checked.whitelist == protocol_whitelist(checked.scheme)
    assert "file" not in checked.whitelist.split(",")


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "file:/etc/passwd", "concat:/etc/passwd|/etc/hosts", "subfile:,,start,0,end,0,:/etc/passwd",
    "data:text/plain;base64,aGVsbG8=", "pipe:0", "/etc/passwd", "ftp://example.com/x.ts", "hls+http://1.1.1.1/x.m3u8",
    "gopher://1.1.1.1/", "tcp://1.1.1.1:80", "unix:///tmp/sock", "crypto+file:///x", "",
])
def test_other_protocols_are_refused(url):
    with pytest.raises(URLPolicyError):
        check_url(url, allow_private_addresses=True)


@pytest.mark.parametrize("url", [
    "rtmp://127.0.0.1/live/x", "http://localhost:8080/x.flv", "http://10.1.2.3/x.flv", "http://192.168.0.10/x.flv",
    "http://169.254.169.254/latest/meta-data", "rtmp://[::1]/live/x", "srt://0.0.0.0:9000", "udp://127.0.0.1:5000",
    "http://100.64.0.1/x.flv",
])
def test_private_and_loopback_addresses_are_refused_by_default(url):
    with pytest.raises(URLPolicyError, match="non-public"):
        check_url(url, fetch_playlists=False)


def test_public_addresses_and_udp_multicast_pass():
    assert check_url("rtmp://8.8.8.8/live/x").host == "8.8.8.8"
    assert check_url("udp://239.1.2.3:5000").scheme == "udp"
    with pytest.raises(URLPolicyError, match="explicit address"):
        check_url("udp://:5000", allow_private_addresses=True)


def test_redact_drops_credentials_and_stream_keys():
    assert redact("rtmp://user:pw@example.com:1935/live/key?token=abc#x") == "rtmp://example.com:1935/live/key"


def test_playlist_uris_include_keys_maps_and_variants():
    text = ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXT-X-MAP:URI="init.mp4"\n'
            '#EXTINF:1.0,\nseg1.ts\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n')
    assert playlist_uris(text) == ["k.key", "init.mp4", "seg1.ts", "low.m3u8"]


def _playlist(folder, name, entries, header=""):
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0", header]
    for entry in entries:
        lines += ["#EXTINF:1.0,", entry]
    (folder / name).write_text("\n".join(l for l in lines if l) + "\n")


def test_hls_playlists_pointing_at_files_or_other_protocols_are_refused(tmp_path):
    _playlist(tmp_path, "good.m3u8", ["seg0.ts", "http://127.0.0.1:1/seg1.ts"])
    _playlist(tmp_path, "file.m3u8", ["seg0.ts", "file:///etc/passwd"])
    _playlist(tmp_path, "rtmp.m3u8", ["rtmp://127.0.0.1/live/x"])
    _playlist(tmp_path, "key.m3u8", ["seg0.ts"], header='#EXT-X-KEY:METHOD=AES-128,URI="file:///etc/key"')
    _playlist(tmp_path, "public.m3u8", ["http://10.0.0.8/seg.ts"])
    (tmp_path / "master.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nfile.m3u8\n")
    (tmp_path / "notm3u.m3u8").write_text("hello\n")
    with FolderServer(tmp_path) as server:
        assert check_url(server.url("good.m3u8"), allow_private_addresses=True).is_hls
        for name in ("file.m3u8", "rtmp.m3u8", "key.m3u8", "master.m3u8"):
            with pytest.raises(URLPolicyError, match="http or https"):
                check_url(server.url(name), allow_private_addresses=True)
        with pytest.raises(URLPolicyError, match="no #EXTM3U"):
            check_url(server.url("notm3u.m3u8"), allow_private_addresses=True)
        with pytest.raises(StreamError, match="cannot fetch"):
            check_url(server.url("missing.m3u8"), allow_private_addresses=True)
    with pytest.raises(URLPolicyError, match="non-public"):
        check_url(f"http://127.0.0.1:{server.port}/public.m3u8")


def test_ffmpeg_whitelist_refuses_file_segments_even_without_guards_check(tmp_path):
    """Defence in depth: a playlist that turns bad after the check still cannot read files."""
    segment = encode(tmp_path / "seg0.ts", reference_frames(3, 2.0))
    _playlist(tmp_path, "evil.m3u8", [f"file://{segment}"], header="#EXT-X-PLAYLIST-TYPE:VOD")
    (tmp_path / "evil.m3u8").write_text((tmp_path / "evil.m3u8").read_text() + "#EXT-X-ENDLIST\n")
    options = decode.LiveOptions(protocol_whitelist=protocol_whitelist("http"), reconnect=False, hls=True,
                                 open_timeout=5, stall_timeout=5)
    with FolderServer(tmp_path) as server:
        batches = []
        try:
            for batch in decode.live_batches(server.url("evil.m3u8"), options, threading.Event()):
                batches.append(batch)
        except (InputError, StreamError):
            pass
    assert batches == [], "FFmpeg must not read the local segment"
    # The same segment listed over http plays: the setup works, only the file: entry was refused.
    _playlist(tmp_path, "ok.m3u8", ["seg0.ts"], header="#EXT-X-PLAYLIST-TYPE:VOD")
    (tmp_path / "ok.m3u8").write_text((tmp_path / "ok.m3u8").read_text() + "#EXT-X-ENDLIST\n")
    with FolderServer(tmp_path) as server:
        frames = sum(len(b.times) for b in decode.live_batches(server.url("ok.m3u8"), options, threading.Event()))
    assert frames > 0


def test_playlist_watcher_refuses_a_playlist_that_turns_bad_later(tmp_path):
    """The playlist is fine when the stream starts, then lists a segment over another protocol."""
    _playlist(tmp_path, "live.m3u8", ["seg0.ts", "seg1.ts"])
    refused = []
    got_refusal = threading.Event()

    def on_refused(exc):
        refused.append(exc)
        got_refusal.set()

    with FolderServer(tmp_path) as server:
        watcher = PlaylistWatcher(server.url("live.m3u8"), allow_private_addresses=True, interval=0.1,
                                  timeout=2.0, on_refused=on_refused)
        state = watcher.check()
        assert state is not None and not state.ended and state.target_duration == 1.0 and state.uris == 2
        watcher.start()
        try:
            _playlist(tmp_path, "live.m3u8", ["seg1.ts", "rtmp://8.8.8.8/live/seg2"])
            assert got_refusal.wait(5), "the watcher must notice the new entry"
        finally:
            watcher.stop()
    assert len(refused) == 1 and watcher.error is refused[0]
    assert "rtmp" in str(refused[0]) and "http or https" in str(refused[0])


def test_playlist_watcher_reports_the_end_and_survives_fetch_failures(tmp_path):
    _playlist(tmp_path, "live.m3u8", ["seg0.ts"])
    with FolderServer(tmp_path) as server:
        watcher = PlaylistWatcher(server.url("live.m3u8"), allow_private_addresses=True, timeout=2.0)
        assert watcher.check() is not None and not watcher.ended
        (tmp_path / "live.m3u8").unlink()
        assert watcher.check() is None and watcher.error is None, "a missing playlist is not a refusal"
        _playlist(tmp_path, "live.m3u8", ["seg0.ts"], header="#EXT-X-TARGETDURATION:6")
        (tmp_path / "live.m3u8").write_text((tmp_path / "live.m3u8").read_text() + "#EXT-X-ENDLIST\n")
        assert watcher.check() is not None and watcher.ended
    assert watcher.checks == 3


def test_hls_read_timeout_leaves_room_for_segments():
    assert decode.LiveOptions(stall_timeout=2.0).read_timeout == 2.0
    assert decode.LiveOptions(stall_timeout=2.0, hls=True, hls_target_duration=6.0).read_timeout == 14.0
