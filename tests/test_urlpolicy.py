"""URL safety: schemes, addresses, HLS playlists, and FFmpeg's protocol whitelist underneath."""

from __future__ import annotations

import socket
import threading

import pytest

from guard import decode
from guard.errors import InputError, StreamError, URLPolicyError
from guard.urlpolicy import PlaylistWatcher, check_url, is_listener, playlist_uris, protocol_whitelist, redact
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
    "http://169.254.169.254/latest/meta-data", "rtmp://[::1]/live/x", "http://100.64.0.1/x.flv",
    # UDP from a remote unicast sender, and SRT callers (FFmpeg's default mode) or rendezvous, which send to it:
    "udp://10.1.2.3:5000", "udp://198.51.100.7:5000", "srt://0.0.0.0:9000", "srt://127.0.0.1:9000?mode=caller",
    "srt://127.0.0.1:9000?mode=rendezvous", "srt://10.0.0.8:9000?latency=200",
    # not listeners as FFmpeg reads the options: first "mode" wins, names and values are case-sensitive
    "srt://127.0.0.1:9000?mode=caller&mode=listener", "srt://127.0.0.1:9000?mode=Listener",
    "srt://127.0.0.1:9000?xmode=listener", "srt://127.0.0.1:9000?listen=1",
])
def test_private_and_loopback_addresses_are_refused_by_default(url):
    with pytest.raises(URLPolicyError, match="non-public"):
        check_url(url, fetch_playlists=False)


def test_refusal_names_the_flag_and_the_variable_that_allow_private_addresses():
    with pytest.raises(URLPolicyError) as refused:
        check_url("rtmp://192.168.0.10/live/x")
    assert "--allow-private-addresses" in str(refused.value)
    assert "GUARD_ALLOW_PRIVATE_ADDRESSES=1" in str(refused.value)


@pytest.mark.parametrize("url", [
    "udp://0.0.0.0:5000", "udp://@:5000", "udp://:5000", "udp://127.0.0.1:5000", "udp://127.0.0.2:5000",
    "udp://[::]:5000", "udp://[::1]:5000", "udp://localhost:5000", "udp://0.0.0.0:5000?fifo_size=1000",
    "srt://:9000?mode=listener", "srt://0.0.0.0:9000?mode=listener", "srt://127.0.0.1:9000?mode=listener",
    "srt://[::]:9000?latency=200&mode=listener&mode=caller",
])
def test_udp_and_srt_listeners_bind_locally_and_pass_by_default(url):
    """A listener binds a port of this machine and reaches no host: the address rule is not about it."""
    assert is_listener(url)
    checked = check_url(url)
    assert checked.listener and checked.whitelist == protocol_whitelist(url.split("://")[0])


def _local_interface_address() -> str:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no default route: no non-loopback local address to test with")
        return probe.getsockname()[0]


def test_udp_to_an_address_of_a_local_interface_is_a_listener():
    address = _local_interface_address()
    assert not address.startswith("127.")
    assert is_listener(f"udp://{address}:5000") and is_listener(f"srt://{address}:9000?mode=listener")
    assert check_url(f"udp://{address}:5000").listener
    assert not is_listener(f"srt://{address}:9000"), "an srt caller, even to this machine"


def test_public_addresses_and_udp_multicast_pass():
    assert check_url("rtmp://8.8.8.8/live/x").host == "8.8.8.8"
    multicast = check_url("udp://239.1.2.3:5000")
    assert multicast.scheme == "udp" and not multicast.listener, "a multicast join is not a local bind"
    assert not check_url("srt://8.8.8.8:9000").listener
    with pytest.raises(URLPolicyError, match="mode=listener"):
        check_url("srt://:9000", allow_private_addresses=True)
    with pytest.raises(URLPolicyError, match="no host"):
        check_url("rtmp:///live/x", allow_private_addresses=True)


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
    (folder / name).write_text("\n".join(line for line in lines if line) + "\n")


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
