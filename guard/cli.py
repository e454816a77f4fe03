"""The ``guard`` command line: a thin shell over :class:`guard.service.Guard`.

Exit codes (every command):

\b
  0  success; for ``scan``: no copy found
  1  ``scan`` only: at least one copy found
  2  bad input: unreadable media, unknown id, invalid file or option
  3  the store (catalog or index) cannot be used
  4  an unexpected internal error (a bug: please report it)
  5  ``monitor`` only: the stream was cut (a ``cut`` policy matched; takedown sent)
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sys
from pathlib import Path

import click
from tqdm import tqdm

from guard import __version__
from guard.config import PROCESS_ROLES, Settings, parse_roles
from guard.errors import GuardError
from guard.keys import ROLES
from guard.models import MATCH_POLICIES, POLICIES, ScanResult, check_name
from guard.service import Guard, media_files

EXIT_FOUND = 1
EXIT_INTERNAL = 4
EXIT_CUT = 5
#: GIL switch interval (s) of a ``guard serve`` process (Python's default is 5 ms; see serve).
SWITCH_INTERVAL = 0.001

log = logging.getLogger("guard")

#: What a terminal must not get raw: C0/C1 controls (escape sequences, CR, LF), line and
#: paragraph separators, bidi overrides and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


#: ``user:password@`` after a scheme (``http:/`` too: a URL taken for a path loses a slash).
_CREDENTIALS = re.compile(r"(?<=:/)(/?)[^/@\s]*@")


def _safe(value: object) -> str:
    """``value`` as text with the characters of :data:`_UNSAFE` escaped (``\\x1b``, ``\\u202e``),
    so that stored names cannot break a table or drive the terminal, and URL credentials
    replaced by ``***@`` (a mistyped URL is echoed back in its error)."""
    text = _CREDENTIALS.sub(r"\1***@", str(value))
    return _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def _name_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Titles and owners follow the API's rule (:func:`guard.models.check_name`)."""
    if value is None:
        return None
    try:
        return check_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class _Context:
    def __init__(self, home: Path | None, verbose: int):
        self.home = home
        self.verbose = verbose
        self._settings: Settings | None = None
        self._guard: Guard | None = None

    @property
    def settings(self) -> Settings:
        """``GUARD_*`` settings with ``--home``, read on first use (so ``--help`` needs none);
        a bad value raises :class:`~guard.errors.ConfigError` (exit 2, one line)."""
        if self._settings is None:
            self._settings = Settings.from_env(home=self.home)
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def guard(self) -> Guard:
        if self._guard is None:
            self._guard = Guard(self.settings)
        return self._guard


def _progress_bar(total: float, desc: str, unit: str = "s"):
    return tqdm(total=round(total, 1) or None, desc=desc, unit=unit, leave=False,
                disable=not sys.stderr.isatty(), file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}{unit} [{elapsed}<{remaining}]")


def _media_progress(path: Path, desc: str):
    """A progress bar over a file's media seconds and the callback that advances it."""
    from guard.decode import probe

    try:
        total = probe(path).duration
    except GuardError:
        total = 0.0
    bar = _progress_bar(total, desc)

    def advance(seconds: float) -> None:
        bar.update(max(0.0, min(seconds, bar.total or seconds) - bar.n))

    return bar, advance


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="GUARD_HOME",
              help="Store folder (catalog + index). Default: ./fingerprints, or $GUARD_HOME.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="guard")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int) -> None:
    """guard: find unauthorized rebroadcasts of registered reference videos.

    \b
    Examples:
      guard ingest final.mp4 --title "Finals game 7" --owner nba --policy cut
      guard scan uploads/ --json
      guard refs list
      guard export 3 -o game7.gfp.json.gz   # hash-only, safe to share
      guard import game7.gfp.json.gz --owner nba
      guard demo
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = _Context(home, verbose)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(readable=False, path_type=Path))
@click.option("--live", "live_url", metavar="URL", default=None,
              help="Ingest a live feed (rtmp, srt, udp, HLS or HTTP-FLV URL) as it airs, until it ends or Ctrl-C.")
@click.option("--retain", "retain_hours", type=click.FloatRange(min=0.001), default=None, metavar="HOURS",
              help="With --live: keep only the last HOURS of it (a 24/7 channel).")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=None,
              help="With --live: end the reference after this many seconds have aired.")
@click.option("--title", callback=_name_option, help="Title (default: the file name). Only with a single PATH.")
@click.option("--owner", default="default", show_default=True, callback=_name_option,
              help="Rights holder that owns the reference.")
@click.option("--policy", type=click.Choice(POLICIES), default="flag", show_default=True,
              help="flag: record for review; cut: take the stream down.")
@click.option("--min-seconds", type=click.FloatRange(min=0.5), default=None,
              help="Shortest copy that counts, in seconds (default from settings: 5).")
@click.option("--allow", "allowlist", multiple=True, help="Licensed account that may carry it (repeatable).")
@click.option("--match", "match", type=click.Choice(MATCH_POLICIES), default="any", show_default=True,
              help="What may raise an incident: copies of its picture (video), of its sound (audio), or either.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def ingest(obj: _Context, paths, live_url, retain_hours, max_seconds, title, owner, policy, min_seconds, allowlist,
           match, as_json) -> None:
    """Register reference videos, or a live feed as it airs (--live).

    \b
    Examples:
      guard ingest game7.mp4 --title "Finals game 7" --owner nba --policy cut --min-seconds 8
      guard ingest --live srt://feeds.example:9000 --title "Finals game 7 (live)" --owner nba --policy cut
    """
    if live_url is not None:
        if paths:
            raise click.UsageError("give either PATHS or --live URL")
        _ingest_live(obj, live_url, title=title or "live feed", owner=owner, policy=policy, min_seconds=min_seconds,
                     match=match, retain_hours=retain_hours, max_seconds=max_seconds, as_json=as_json)
        return
    if not paths:
        raise click.UsageError("give the PATHS to ingest, or --live URL")
    if retain_hours is not None or max_seconds is not None:
        raise click.UsageError("--retain and --max-seconds go with --live")
    if title and len(paths) > 1:
        raise click.UsageError("--title needs a single PATH")
    refs = []
    for path in paths:
        bar, advance = _media_progress(path, f"ingest {path.name}")
        with bar:
            ref = obj.guard.ingest(path, title=title, owner=owner, policy=policy,
                                   min_seconds=min_seconds, allowlist=list(allowlist), progress=advance, match=match)
        refs.append(ref)
        if not as_json:
            click.echo(f"registered {ref.id}  {_safe(ref.title)}  ({ref.duration:.1f} s, {ref.frames} frames, policy {ref.policy})")
            for warning in ref.warnings:
                click.echo(f"  warning: {warning}")
            for o in ref.overlaps:
                click.echo(f"  overlap: {o['start']:.1f}–{o['end']:.1f} s is the footage of reference {o['reference_id']} "
                           f"{_safe(o['reference_title'])} of {_safe(o['owner'])} ({o['reference_start']:.1f}–"
                           f"{o['reference_end']:.1f} s there): copies of it will be ownership conflicts")
    if as_json:
        click.echo(json.dumps([{**r.to_dict(), "warnings": r.warnings, "overlaps": r.overlaps} for r in refs],
                              indent=2))


def _ingest_live(obj: _Context, url: str, *, as_json: bool, **options) -> None:
    """Ingest a live reference until its feed ends, Ctrl-C or --max-seconds; say how it went."""
    guard = obj.guard
    ingest = guard.start_live_reference(url, **options)
    ref = ingest.reference
    if not as_json:
        click.echo(f"live reference {ref.id}  {_safe(ref.title)}: ingesting {_safe(ref.source)} (Ctrl-C ends it)")
    try:
        ingest.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ingest.stop()
        ingest.wait(30.0)
    ref, status = ingest.reference, ingest.status
    if as_json:
        click.echo(json.dumps({**ref.to_dict(), "appends": status.appends, "error": status.error}, indent=2))
        return
    click.echo(f"{ref.live_status} {ref.id}  {_safe(ref.title)}  ({status.aired_seconds:.1f} s aired, "
               f"{status.frames} frames, {len(status.gaps)} gaps)" + (f": {_safe(status.error)}" if status.error else ""))
    if ref.live_status == "failed":
        raise SystemExit(2)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with every file's matches.")
@click.pass_obj
def scan(obj: _Context, paths, as_json) -> None:
    """Scan files or folders (recursively) for copies of registered references.

    Exit code 0: nothing found; 1: a copy was found; 2: a file could not be scanned
    (reported, the other files are still scanned).

    \b
    Examples:
      guard scan upload.mp4
      guard scan /srv/uploads --json > report.json
    """
    files = list(media_files(paths))
    results, errors = [], []
    outer = tqdm(files, desc="scan", unit="file", disable=len(files) < 2 or not sys.stderr.isatty(),
                 file=sys.stderr, leave=False)
    for path in outer:
        bar, advance = _media_progress(path, f"scan {path.name}")
        try:
            with bar:
                result = obj.guard.scan(path, progress=advance)
        except GuardError as exc:
            errors.append({"path": str(path), "error": str(exc)})
            if not as_json:
                click.echo(f"error: {_safe(exc)}", err=True)
            continue
        results.append(result)
        if not as_json:
            _print_scan(result)
    if as_json:
        click.echo(json.dumps({"results": [r.to_dict() for r in results], "errors": errors}, indent=2))
    if errors:
        sys.exit(2)
    if any(r.segments for r in results):
        sys.exit(EXIT_FOUND)


def _print_scan(result: ScanResult) -> None:
    if not result.segments:
        click.echo(f"{_safe(result.path)}: no copy found ({result.duration:.1f} s scanned)")
        return
    click.echo(f"{_safe(result.path)}: {len(result.segments)} cop{'y' if len(result.segments) == 1 else 'ies'} found")
    header = f"  {'query span':>17}  {'ref':>4}  {'title':<24} {'reference span':>17}  {'rate':>5}  {'match':>5}  {'score':>5}"
    click.echo(header)
    for s in result.segments:
        click.echo(
            f"  {_span(s.query_start, s.query_end):>17}  {s.reference_id:>4}  {_safe(s.reference_title)[:24]:<24} "
            f"{_span(s.reference_start, s.reference_end):>17}  {s.rate:>5.2f}  {s.matched_fraction:>5.0%}  {s.score:>5.2f}"
        )


def _span(a: float, b: float) -> str:
    return f"{_clock(a)}–{_clock(b)}"


def _clock(seconds: float) -> str:
    """``m:ss.s``; rounded to tenths before the split, so 119.98 s reads 2:00.0, not 1:60.0."""
    minutes, tenths = divmod(round(max(seconds, 0.0) * 10), 600)
    return f"{minutes:d}:{tenths / 10:04.1f}"


@cli.group()
def refs() -> None:
    """List, show and remove references."""


@refs.command("list")
@click.option("--owner", help="Only this rights holder's references.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def refs_list(obj: _Context, owner, as_json) -> None:
    """List references."""
    items = obj.guard.references(owner)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in items], indent=2))
        return
    if not items:
        click.echo("no references")
    for r in items:
        click.echo(f"{r.id:>5}  {_safe(r.title)[:40]:<40}  {_safe(r.owner):<16} {r.duration:>8.1f} s  {r.policy:<4}  min {r.min_seconds:g} s")


@refs.command("show")
@click.argument("ref_id", type=int)
@click.pass_obj
def refs_show(obj: _Context, ref_id: int) -> None:
    """Show one reference as JSON."""
    click.echo(json.dumps(obj.guard.reference(ref_id).to_dict(), indent=2))


@refs.command("rm")
@click.argument("ref_ids", type=int, nargs=-1, required=True)
@click.pass_obj
def refs_rm(obj: _Context, ref_ids) -> None:
    """Remove references (their fingerprints leave the index at once)."""
    for ref_id in ref_ids:
        ref = obj.guard.remove_reference(ref_id)
        click.echo(f"removed {ref.id}  {_safe(ref.title)}")


@cli.command("export")
@click.argument("ref_id", type=int)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (gzip-compressed when it ends in .gz).")
@click.pass_obj
def export_cmd(obj: _Context, ref_id: int, output: Path) -> None:
    """Write a reference's fingerprint (hashes only, no video) to a file.

    \b
    Example (a rights holder, on their own machine):
      guard --home ./private ingest game7.mp4 && guard --home ./private export 1 -o game7.gfp.gz
    """
    obj.guard.export(ref_id, output)
    click.echo(f"wrote {_safe(output)}")


@cli.command("import")
@click.argument("path", type=click.Path(readable=False, path_type=Path))
@click.option("--owner", default="default", show_default=True, callback=_name_option)
@click.option("--title", callback=_name_option, help="Override the title stored in the file.")
@click.option("--policy", type=click.Choice(POLICIES), default="flag", show_default=True)
@click.option("--min-seconds", type=click.FloatRange(min=0.5), default=None)
@click.option("--match", "match", type=click.Choice(MATCH_POLICIES), default=None,
              help="Match policy: video, audio or any (default: the file's, else any).")
@click.pass_obj
def import_cmd(obj: _Context, path: Path, owner, title, policy, min_seconds, match) -> None:
    """Register a hash-only reference from a file made by ``guard export``.

    Only a regular file is read, up to 256 MiB (decompressed too); anything else is refused
    with exit code 2.
    """
    ref = obj.guard.import_fingerprint(path, owner=owner, policy=policy, min_seconds=min_seconds, title=title,
                                       match=match)
    click.echo(f"registered {ref.id}  {_safe(ref.title)}  ({ref.frames} frames, policy {ref.policy})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the scan result as JSON.")
@click.option("--live", is_flag=True,
              help="Fingerprint a live feed as it airs and catch a delayed restream of it (UDP on loopback).")
@click.pass_obj
def demo(obj: _Context, as_json: bool, live: bool) -> None:
    """Make a reference broadcast and a pirated copy, register one, scan the other.

    The files go to <store>/demo/; the reference is registered once and reused. With --live,
    a generated game feed and, 8 s later, a pirate restream of it are published on loopback;
    guard ingests the feed live, monitors the restream and prints the incident with its delay
    (in under a minute; its own store is <store>/demo/live/store, made afresh each run).
    """
    from guard.demo import run_demo, run_live_demo

    echo = None if as_json else click.echo
    report = run_live_demo(obj.settings, echo=echo) if live else run_demo(obj.guard, echo=echo)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if not report["found"]:
        sys.exit(EXIT_FOUND + 1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--roles", default=",".join(PROCESS_ROLES), show_default=True, envvar="GUARD_ROLES",
              help="What this process does, comma-separated: api (HTTP), jobs (ingests and scans), "
                   "monitor (live streams), dispatch (webhooks). $GUARD_ROLES.")
@click.pass_obj
def serve(obj: _Context, host: str, port: int, roles: str) -> None:
    """Run the HTTP API (OpenAPI at /openapi.json, docs at /docs) and the background work.

    Processes with different --roles can share one store: work of a role a process lacks
    waits in the catalog for one that has it. Without api, nothing listens; SIGINT or
    SIGTERM stops the process (running jobs are marked interrupted, streams stopped).

    \b
    Examples:
      guard keys create --role admin --owner ops
      guard serve --host 0.0.0.0 --port 8080
      guard serve --roles api --port 8080 &      # HTTP only: jobs and streams wait in the store
      guard serve --roles jobs,monitor,dispatch  # the workers, no HTTP
    """
    chosen = parse_roles(roles)
    settings = obj.settings
    if "api" not in chosen:
        _serve_without_api(Guard(settings, roles=chosen))
        return
    import uvicorn

    from guard.api import create_app

    # The event loop shares the GIL with job and monitor threads that hash frames: a thread
    # waiting for it otherwise waits up to 5 ms per hand-over (scripts/bench_api.py: with an
    # ingest running, 1 ms takes the ingest from 0.87 s to 0.64 s and read p50s from 4-8 to 2-4 ms).
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = create_app(settings, roles=chosen)
    # What is built by now lives as long as the process: moved out of the cyclic collector's
    # reach, full collections no longer walk it (they paused every request for 60-85 ms).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port,
                log_level="info" if obj.verbose else "warning")


def _serve_without_api(guard: Guard) -> None:
    """Run a Guard's background roles until SIGINT or SIGTERM, then close it."""
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        guard.start()
        click.echo(f"guard: running {', '.join(guard.roles)} over {_safe(guard.home)} (no HTTP); "
                   "Ctrl-C stops", err=True)
        while not stop.wait(1.0):
            pass
    finally:
        guard.close()


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="admin: everything; rights_holder: its references, incidents, webhooks; "
                   "platform: its scans and streams.")
@click.option("--owner", required=True, help="The tenant the key acts for (rights holder or platform name).")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def keys_create(obj: _Context, role: str, owner: str, label: str, as_json: bool) -> None:
    """Make an API key. The key is printed once and only its hash is stored: keep it safe.

    \b
    Example:
      guard keys create --role rights_holder --owner nba --label "nba ingest bot"
    """
    key, token = obj.guard.keys.create(role, owner, label)
    if as_json:
        click.echo(json.dumps({**key.to_dict(), "key": token}, indent=2))
        return
    click.echo(token)
    click.echo(f"key {key.id} ({key.role} for {_safe(key.owner)}): shown once, store it now", err=True)


@keys.command("list")
@click.option("--owner", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def keys_list(obj: _Context, owner, as_json: bool) -> None:
    """List keys (their prefixes, never the keys themselves)."""
    items = obj.guard.keys.list(owner)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in items], indent=2))
        return
    if not items:
        click.echo("no keys")
    for k in items:
        state = f"revoked {k.revoked}" if k.revoked else "active"
        click.echo(f"{k.id:>5}  {_safe(k.prefix)}…  {k.role:<13} {_safe(k.owner):<20} {state:<30} {_safe(k.label)}")


@keys.command("revoke")
@click.argument("key_ids", type=int, nargs=-1, required=True)
@click.pass_obj
def keys_revoke(obj: _Context, key_ids) -> None:
    """Revoke keys at once (requests with them answer 401 from then on)."""
    for key_id in key_ids:
        key = obj.guard.keys.revoke(key_id)
        click.echo(f"revoked {key.id}  {_safe(key.prefix)}…  {key.role} for {_safe(key.owner)}")


@cli.command()
@click.argument("url")
@click.option("--stream-id", help="Id to record the stream under (default: generated).")
@click.option("--account", required=True, help="Account that streams it (checked against allowlists).")
@click.option("--platform", default="default", show_default=True, help="Platform the stream comes from.")
@click.option("--realtime", is_flag=True, help="URL is a local file, played at its own pace (rehearsal).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event (JSON lines).")
@click.option("--webhook-url", help="Send every event to this endpoint (default: settings / $GUARD_WEBHOOK_URL).")
@click.option("--webhook-secret", help="Secret that signs the webhook (needed with --webhook-url).")
@click.option("--max-seconds", type=click.FloatRange(min=0.1), default=None,
              help="Stop monitoring after this many seconds.")
@click.option("--allow-private-addresses", is_flag=True,
              help="Allow URLs on loopback/private networks (labs, tests).")
@click.pass_obj
def monitor(obj: _Context, url, stream_id, account, platform, realtime, as_json, webhook_url, webhook_secret,
            max_seconds, allow_private_addresses) -> None:
    """Monitor a live stream and act on copies as they happen.

    URL: rtmp://, rtmps://, http(s):// (HLS .m3u8 or HTTP-FLV), srt://, udp:// — or, with
    --realtime, a local file played at real-time pace. Prints one line per event. Exit code
    0: the stream ended with no copy; 1: a copy was flagged; 5: the stream was cut (a reference
    with policy cut matched and the stream.cut takedown was sent); 2: the stream could not be
    monitored.

    \b
    Examples:
      guard monitor rtmp://ingest.example.com/live/abc --account fan123 --json
      guard monitor https://cdn.example.com/live/x.m3u8 --account fan123 \\
          --webhook-url https://platform.example.com/hooks/guard --webhook-secret s3cret
      guard monitor rehearsal.mp4 --realtime --account test
    """
    import threading

    if bool(webhook_url) != bool(webhook_secret):
        raise click.UsageError("--webhook-url and --webhook-secret go together")
    if allow_private_addresses:
        obj.settings = obj.settings.replace(allow_private_addresses=True)
    guard = obj.guard
    if webhook_url:
        guard.actions.ensure_endpoint("*", webhook_url, webhook_secret)
    lock = threading.Lock()

    def show(event) -> None:
        with lock:
            click.echo(json.dumps(event.to_dict()) if as_json else _event_line(event))

    info = guard.monitor(url, stream_id=stream_id, account=account, platform=platform, realtime=realtime,
                         on_event=show)
    try:
        final = guard.streams.wait(info.id, max_seconds)
    except KeyboardInterrupt:
        final = guard.streams.stop(info.id)
    if final.active:
        final = guard.streams.stop(info.id)
    if not guard.actions.flush(timeout=guard.settings.webhook.timeout * 2):
        click.echo(f"warning: {guard.actions.pending()} webhook deliveries still pending "
                   "(kept in the outbox; sent when guard runs again)", err=True)
    if final.status == "cut":
        sys.exit(EXIT_CUT)
    if final.incidents:
        sys.exit(EXIT_FOUND)
    if final.status == "failed":
        sys.exit(2)


def _event_line(event) -> str:
    from guard.incidents import iso

    clock = (iso(event.time) or "")[11:23]
    text = f"{clock}  {_safe(event.stream_id)}  {event.type:<20}"
    incident = event.incident
    if incident is not None:
        text += (f" ref {incident.reference_id} {incident.reference_title!r}  score {incident.score:.2f}"
                 f"  stream {_span(incident.query_start, incident.query_end)}"
                 f"  ref {_span(incident.reference_start, incident.reference_end)}  incident {incident.id}")
    elif event.detail:
        text += f" {_safe(event.detail)}"
    return text


def main() -> None:
    """Console entry point: maps guard's errors to exit codes."""
    try:
        cli.main(standalone_mode=False)
    except GuardError as exc:
        click.echo(f"error: {_safe(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 — the last line of defence, keeps exit code 1 for "found"
        log.exception("internal error")
        sys.exit(EXIT_INTERNAL)
