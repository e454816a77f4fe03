"""Which URLs guard agrees to open for live monitoring.

A monitored URL comes from a tenant, so it is untrusted input handed to FFmpeg, which can
read local files (``file:``, ``concat:``, ``subfile:``, ``pipe:``, ``data:``) and reach any
address the server can. Two layers keep it to network streams:

1. :func:`check_url` — guard's own check: the scheme must be one of :data:`ALLOWED_SCHEMES`,
   the host must resolve only to public addresses (unless ``allow_private_addresses``; a UDP or
   SRT listener that binds a local port reaches no host and is exempt, see :func:`is_listener`),
   and an HLS playlist is fetched and every URI in it (variants, segments, keys, init maps) must be
   ``http``/``https`` on a public host as well.
2. :func:`protocol_whitelist` — FFmpeg's ``protocol_whitelist`` for the scheme, so that even
   a playlist that changes after the check cannot make FFmpeg open a file or another protocol.
3. :class:`PlaylistWatcher` — while an HLS stream is monitored, its playlist is fetched again
   every few seconds and checked like at the start; a playlist that turns bad (a segment on a
   private address, another scheme) stops the stream with a clear error. FFmpeg reloads the
   playlist on its own, so a bad entry can be fetched once before the watcher sees it (at
   most one check interval; never a local file, the whitelist forbids it).

Local files are only opened by the explicit real-time rehearsal mode (``realtime=True``),
which does not go through this module.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from guard.errors import GuardError, StreamError, URLPolicyError

log = logging.getLogger(__name__)

#: Schemes a monitored URL may use.
ALLOWED_SCHEMES = ("rtmp", "rtmps", "http", "https", "srt", "udp")

#: FFmpeg protocols each scheme may use, nested ones included (HLS segments, TLS under RTMPS).
_WHITELISTS = {
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,tls,tcp",
    "http": "http,https,tcp,tls,crypto",
    "https": "http,https,tcp,tls,crypto",
    "srt": "srt,udp",
    "udp": "udp",
}

#: Largest HLS playlist guard reads when checking it.
MAX_PLAYLIST_BYTES = 1 << 20
#: How deep a master playlist may point to other playlists.
MAX_PLAYLIST_DEPTH = 2


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed :func:`check_url`: its scheme, host, port and whether it is HLS."""

    url: str
    scheme: str
    host: str
    port: int | None
    is_hls: bool
    listener: bool = False  # binds a local port (see is_listener); the address rule does not apply

    @property
    def whitelist(self) -> str:
        """The FFmpeg ``protocol_whitelist`` to open it with."""
        return protocol_whitelist(self.scheme)


def protocol_whitelist(scheme: str) -> str:
    """FFmpeg's ``protocol_whitelist`` value for a URL scheme guard allows."""
    try:
        return _WHITELISTS[scheme.lower()]
    except KeyError:
        raise URLPolicyError(_scheme_message(scheme)) from None


def redact(url: str) -> str:
    """The URL without credentials, query string or fragment (stream keys often live there)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if _safe_port(parts) else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_url(
    url: str,
    *,
    allow_private_addresses: bool = False,
    fetch_playlists: bool = True,
    timeout: float = 5.0,
) -> CheckedURL:
    """Refuse a URL guard must not open; return what was checked.

    Raises :class:`~guard.errors.URLPolicyError` with the reason. ``fetch_playlists`` lets
    the check download an HLS playlist (``.m3u8`` path) to inspect every URI it lists.
    """
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    listener = is_listener(url)
    if not host and not listener:
        hint = " (srt://:PORT listens only with mode=listener)" if scheme == "srt" else ""
        raise URLPolicyError(f"{redact(url)}: no host{hint}")
    if not listener:  # a local bind reaches no other host: the private-address rule is not about it
        check_host(host, allow_private_addresses=allow_private_addresses, multicast_ok=scheme == "udp")
    port = parts.port
    is_hls = scheme in ("http", "https") and parts.path.lower().endswith((".m3u8", ".m3u"))
    if is_hls and fetch_playlists:
        check_playlist(url, allow_private_addresses=allow_private_addresses, timeout=timeout)
    return CheckedURL(url=url, scheme=scheme, host=host, port=port, is_hls=is_hls, listener=listener)


def is_listener(url: str) -> bool:
    """Whether FFmpeg, reading ``url``, binds a port of this machine instead of reaching a host.

    UDP unicast to an address of this machine is a bind: ``udp://0.0.0.0:5000``,
    ``udp://@:5000`` (no host), ``udp://127.0.0.1:5000``, ``udp://[::]:5000`` or the address of
    a local interface; multicast is a join (allowed by :func:`check_host`), any other unicast
    address names a remote sender. SRT binds only with ``mode=listener`` (FFmpeg's default is
    caller, and rendezvous sends to the host), on no host, a wildcard or a local address.
    """
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme == "srt":
        if _ffmpeg_url_option(url, "mode") != "listener":
            return False
    elif scheme != "udp":
        return False
    host = parts.hostname or ""
    if not host:
        return True
    try:
        return all(_is_local_address(address) for address in _resolve(host))
    except URLPolicyError:  # unresolvable: check_host reports it
        return False


def _ffmpeg_url_option(url: str, name: str) -> str | None:
    """A URL option as FFmpeg's protocols read it (``av_find_info_tag``): the first ``name=``
    after the first ``?``, split on ``&`` only, ``+`` as a space, no percent-decoding."""
    if "?" not in url:
        return None
    for item in url.split("?", 1)[1].split("&"):
        key, _, value = item.partition("=")
        if key == name:
            return value.replace("+", " ")
    return None


def _is_local_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A wildcard, loopback or local-interface address (one this machine can bind)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_loopback:
        return True
    if address.is_multicast:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))  # EADDRNOTAVAIL unless an interface has this address
    except OSError:
        return False
    return True


def check_host(host: str, *, allow_private_addresses: bool = False, multicast_ok: bool = False) -> None:
    """Refuse a host that is, or resolves to, a loopback/private/link-local/reserved address."""
    if allow_private_addresses:
        return
    for address in _resolve(host):
        if multicast_ok and address.is_multicast:
            continue
        if not address.is_global or address.is_multicast:
            raise URLPolicyError(
                f"{host}: resolves to the non-public address {address}; refused (to monitor streams on "
                "private networks, pass --allow-private-addresses to guard monitor or set "
                "GUARD_ALLOW_PRIVATE_ADDRESSES=1)"
            )


def check_addresses(host: str, addresses, *, allow_private_addresses: bool = False) -> list:
    """Refuse ``host`` unless every address it resolved to passes :func:`check_host`'s rule.

    For callers that resolve once and connect to exactly the addresses checked (webhook
    deliveries pin them), so that a DNS answer changing between the check and the connection
    (rebinding) cannot send the connection to an address nobody checked. Returns the
    addresses as :mod:`ipaddress` objects; :class:`~guard.errors.URLPolicyError` names the
    first refused one.
    """
    checked = [ipaddress.ip_address(str(a).split("%", 1)[0]) for a in addresses]
    checked = [a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a for a in checked]
    if not checked:
        raise URLPolicyError(f"{host}: resolves to no address")
    for address in checked:
        if not allow_private_addresses and (not address.is_global or address.is_multicast):
            raise URLPolicyError(
                f"{host}: resolves to the non-public address {address}; refused "
                "(set allow_private_addresses to reach private networks)"
            )
    return checked


def check_playlist(url: str, *, allow_private_addresses: bool = False, timeout: float = 5.0, depth: int = 0) -> list[str]:
    """Fetch an HLS playlist and refuse it if any URI in it leaves ``http``/``https`` public hosts.

    Returns the absolute URIs it lists. Master playlists are followed ``MAX_PLAYLIST_DEPTH`` deep.
    """
    return _check_playlist_text(url, _fetch(url, timeout), allow_private_addresses=allow_private_addresses,
                                timeout=timeout, depth=depth)


def _check_playlist_text(url: str, text: str, *, allow_private_addresses: bool, timeout: float,
                         depth: int = 0) -> list[str]:
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise URLPolicyError(f"{redact(url)}: not an HLS playlist (no #EXTM3U header)")
    uris = [urllib.parse.urljoin(url, u) for u in playlist_uris(text)]
    for uri in uris:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme.lower() not in ("http", "https"):
            raise URLPolicyError(
                f"{redact(url)}: playlist entry {redact(uri) or uri[:80]!r} uses {parts.scheme or 'no'}: "
                "HLS segments, keys and variants must be http or https"
            )
        check_host(parts.hostname or "", allow_private_addresses=allow_private_addresses)
    is_master = "#EXT-X-STREAM-INF" in text
    if is_master and depth < MAX_PLAYLIST_DEPTH:
        for uri in uris:
            if urllib.parse.urlsplit(uri).path.lower().endswith((".m3u8", ".m3u")):
                check_playlist(uri, allow_private_addresses=allow_private_addresses,
                               timeout=timeout, depth=depth + 1)
    return uris


def playlist_uris(text: str) -> list[str]:
    """Every URI an HLS playlist references: segment/variant lines and ``URI="..."`` attributes."""
    uris: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            marker = 'URI="'
            start = line.find(marker)
            while start >= 0:
                end = line.find('"', start + len(marker))
                if end < 0:
                    break
                uris.append(line[start + len(marker) : end])
                start = line.find(marker, end + 1)
            continue
        uris.append(line)
    return uris


def _split(url: str) -> urllib.parse.SplitResult:
    if not isinstance(url, str) or not url:
        raise URLPolicyError("empty URL")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise URLPolicyError("URL contains whitespace or control characters")
    if "://" not in url:
        scheme = url.split(":", 1)[0] if ":" in url else ""
        raise URLPolicyError(_scheme_message(scheme or "none (a local path?)"))
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise URLPolicyError(_scheme_message(parts.scheme))
    if not _safe_port(parts) and parts.netloc.rsplit("@", 1)[-1].rsplit("]", 1)[-1].count(":"):
        host = parts.netloc.rsplit("@", 1)[-1]  # never echo credentials back
        raise URLPolicyError(f"{parts.scheme}://{host[:80]}: invalid port")
    return parts


def _safe_port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _scheme_message(scheme: str) -> str:
    return (
        f"scheme {scheme!r} refused: a monitored URL must use one of {', '.join(ALLOWED_SCHEMES)} "
        "(local files only through the real-time rehearsal mode)"
    )


def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise URLPolicyError(f"{host}: cannot be resolved ({exc})") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        addresses.append(address)
    if not addresses:
        raise URLPolicyError(f"{host}: resolves to no address")
    return addresses


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise URLPolicyError(f"{redact(req.full_url)}: playlist redirects to {redact(newurl)}; refused")


def _fetch(url: str, timeout: float) -> str:
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "guard"}), timeout=timeout) as resp:
            data = resp.read(MAX_PLAYLIST_BYTES + 1)
    except URLPolicyError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTP error answer holds its connection open until closed
        raise StreamError(f"{redact(url)}: cannot fetch the playlist ({exc})") from None
    if len(data) > MAX_PLAYLIST_BYTES:
        raise URLPolicyError(f"{redact(url)}: playlist larger than {MAX_PLAYLIST_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class PlaylistState:
    """What one check of a live HLS playlist found (media playlists of a master merged)."""

    ended: bool  # #EXT-X-ENDLIST: the live stream is over
    target_duration: float  # #EXT-X-TARGETDURATION (s), the longest segment; 0 when absent
    uris: int


_TARGET = re.compile(r"^#EXT-X-TARGETDURATION:\s*([0-9.]+)", re.MULTILINE)


def playlist_state(url: str, *, allow_private_addresses: bool = False, timeout: float = 5.0) -> PlaylistState:
    """Fetch and check an HLS playlist (as :func:`check_playlist`); report whether it ended.

    For a master playlist, the first media playlist it lists decides ``ended`` and
    ``target_duration`` (every variant is checked for safety).
    """
    text = _fetch(url, timeout)
    uris = _check_playlist_text(url, text, allow_private_addresses=allow_private_addresses, timeout=timeout)
    if "#EXT-X-STREAM-INF" in text:
        media = [u for u in uris if urllib.parse.urlsplit(u).path.lower().endswith((".m3u8", ".m3u"))]
        if media:
            text = _fetch(media[0], timeout)
    found = _TARGET.search(text)
    return PlaylistState(ended="#EXT-X-ENDLIST" in text, target_duration=float(found.group(1)) if found else 0.0,
                         uris=len(uris))


class PlaylistWatcher:
    """Re-checks a monitored HLS playlist every ``interval`` seconds in its own thread.

    FFmpeg keeps reloading a live playlist after guard checked it at open, so a playlist that
    later lists a segment on a private address (or any non-http URI) would be fetched. The
    watcher fetches the playlist the same way, and on a refused entry records the
    :class:`~guard.errors.URLPolicyError` in :attr:`error` and calls ``on_refused(error)``
    (the monitor stops the stream). It also tells whether the playlist has ended
    (:attr:`ended`), which a clean end of FFmpeg's HLS demuxer does not: FFmpeg also ends
    "cleanly" when a read is interrupted while it waits for the next segment.
    Fetch failures (the server is down) are not refused entries: they are logged and retried.
    """

    def __init__(self, url: str, *, allow_private_addresses: bool = False, interval: float = 2.0,
                 timeout: float = 5.0, on_refused=None):
        self.url = url
        self.allow_private_addresses = allow_private_addresses
        self.interval = interval
        self.timeout = timeout
        self.on_refused = on_refused
        self.error: URLPolicyError | None = None
        self.failure: GuardError | None = None  # why the last check could not fetch the playlist
        self.state: PlaylistState | None = None
        self.checks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ended(self) -> bool:
        """Whether the last successful check saw ``#EXT-X-ENDLIST``."""
        return self.state is not None and self.state.ended

    def check(self) -> PlaylistState | None:
        """Fetch and check the playlist once; None if it could not be fetched or was refused."""
        try:
            self.state = playlist_state(self.url, allow_private_addresses=self.allow_private_addresses,
                                        timeout=self.timeout)
            self.failure = None
            return self.state
        except URLPolicyError as exc:
            if self.error is None:
                self.error = exc
                log.warning("playlist %s refused after open: %s", redact(self.url), exc)
                if self.on_refused is not None:
                    self.on_refused(exc)
            return None
        except GuardError as exc:
            self.failure = exc
            log.info("playlist %s: re-check failed (%s)", redact(self.url), exc)
            return None
        finally:
            self.checks += 1

    def start(self) -> "PlaylistWatcher":
        """Start checking in a daemon thread (until :meth:`stop` or a refused entry)."""
        self._thread = threading.Thread(target=self._run, name="guard-playlist-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
            if self.error is not None:
                return

    def stop(self) -> None:
        """Stop the thread and wait for it (bounded by the fetch timeout)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout + 1.0)
