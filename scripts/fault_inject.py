"""Fault injection: SIGKILL ``guard ingest`` and ``guard serve`` at random moments, then check
that the store they leave behind is whole. Prints a table of trials and a summary; exits 1 if
any trial failed.

    python scripts/fault_inject.py [--trials 50] [--seed 7] [--modes ingest,serve] [--workdir DIR]

Modes (``--trials`` trials each; media: small generated clips, 320×180 at 10 fps):

ingest
    ``guard ingest`` of four 6 s clips into a store that already holds two references, killed
    at a random moment. A reference is *acknowledged* when the CLI printed its id. After the
    checks the trial's references are removed again, so every trial starts from the same store.
serve
    One ``guard serve`` (1 job worker, so uploads queue) with two webhook endpoints (the rights
    holder's and the platform's) pointing at a loopback receiver. Each trial uploads two
    reference videos and two scans of a pirated copy of a ``flag`` reference (each scan makes
    an incident, hence an ``incident.flagged`` event per endpoint), every upload paced over
    0.1–0.4 s so kills land inside uploads too, and polls the jobs; the server is killed at a
    random moment and started again on the same store. A reference is acknowledged when the
    API answered 202 and its job was seen ``done`` before the kill. The restarted server serves
    the next trial.

Kill moments come from ``--seed``. A kill is anchored on an event of the run itself, which
this script sees as it happens: the spawn or a reference the CLI printed (ingest); the start or
an upload the API accepted (serve); it lands a random delay after the anchor, up to 1.25× how
long the stretch after that anchor lasted in recent runs (an unkilled calibration run first,
then every trial's observations; the seed fixes the anchor and the fraction of its stretch,
the stretch is measured). Anchors on the run, rather than clock times, keep kills
where they are meant on a shared machine whose speed varies by 2×, and the stretches after
them hold the decoding, commits, index writes, job runs and webhook deliveries. The webhook
receiver answers 0.1 s after it records a delivery, widening the window in which a delivery
has arrived but guard has not recorded it. The *phase* column says what the process was doing
when it died, read from its open files (ingest) or from the requests in flight and the frozen
catalog (serve).

Checks (a trial passes when every one holds; ``-`` = not applicable to the mode):

store    catalog and index agree after the reopen: the same reference ids; each reference's
         frames are all in the FAISS index under its own ids (radius-0 search of its codes);
         total vectors = catalog frames; ``index.json`` records the catalog generation and
         that count, and ``index.faiss`` on disk holds it. In serve mode the files the
         restarted server wrote are checked before this script opens the store itself.
whole    nothing is half-present: every reference has its fingerprint with ``frames`` codes
         and times, and no fingerprint lacks its reference.
acked    every acknowledged reference is in the catalog (serve: also those whose job finished
         after the restart).
match    every reference the trial left in the store is found by scanning its own file; in
         serve mode every finished scan found the pirated reference (the restarted server's
         index works).
uploads  (serve) jobs queued at the kill still had their upload files and finish ``done`` after
         the restart; jobs running at the kill end ``failed`` (interrupted) or ``done``; no job
         stays unfinished; once all are final the upload folder is empty (partial uploads of
         killed requests are cleaned up, finished jobs' files deleted).
hooks    (serve) after the restart every stored event reaches each of its endpoints with a
         valid signature (:func:`guard.actions.verify_signature`) and its outbox row says
         delivered, exactly once per ``Guard-Event-Id``: the only repeat allowed is one extra
         delivery of an event whose first delivery reached the receiver from the killed server
         (before the restart) while its outbox row was still pending (guard's documented
         at-least-once window, which receivers deduplicate by event id). Every finished scan's incidents have their events. Counted
         over all events since the start, so a repeat in a later trial is caught too.

Live references (a reference registered from a live stream while it plays) do not exist yet.
When they land they join as a third mode here: ``guard serve`` killed during a live-reference
ingest, with the same store, acked, match and hooks checks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guard_synth import broadcast as synth  # noqa: E402
from guard.actions import ActionCenter  # noqa: E402
from guard.config import Settings, WebhookSettings  # noqa: E402
from guard.errors import StoreError  # noqa: E402
from guard.index import FaissBinaryIndex  # noqa: E402
from guard.jobs import FINAL, JobQueue  # noqa: E402
from guard.match import vector_ids  # noqa: E402
from guard.service import Guard  # noqa: E402
from guard.store import Catalog  # noqa: E402
from tests.server_helpers import GUARD, Api, CountingReceiver, GuardServer, clip  # noqa: E402

CHECKS = ("store", "whole", "acked", "match", "uploads", "hooks")
MODES = ("ingest", "serve")
CLIP_SECONDS = 6.0
MIN_SECONDS = 2.0
#: Seconds the webhook receiver takes to answer (serve mode).
RECEIVER_DELAY = 0.1
#: Serve-mode anchors: the uploads of a trial, in order, once the API accepted them.
UPLOAD_ANCHORS = ("ingest 1 accepted", "scan 1 accepted", "ingest 2 accepted", "scan 2 accepted")

Out = Callable[[str], None]


@dataclass
class Trial:
    """One kill and what the checks found (``checks[name]`` lists problems; absent = n/a)."""

    mode: str
    number: int
    aim: str
    kill_at: float
    killed: bool = True
    phase: str = ""
    acked: int = 0
    #: Webhook deliveries this trial repeated once, as allowed after a kill (serve).
    repeated: int = 0
    checks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(not problems for problems in self.checks.values())

    def problems(self) -> list[str]:
        return [f"{name}: {p}" for name, problems in self.checks.items() for p in problems]


class KillPlan:
    """Where to kill a run: an anchor (an event of the run this script sees as it happens) and a
    delay after it, drawn up to 1.25× the median of how long the stretch after that anchor
    lasted in the last few runs."""

    KEEP = 5

    def __init__(self, anchors: list[str]):
        self.anchors = list(anchors)
        self.spans: dict[str, list[float]] = {a: [] for a in anchors}

    def observe(self, seen: dict[str, float], end: float | None) -> None:
        """Learn from a run's anchor times (seconds from its start) and its end, if it got there."""
        for anchor, following in zip(self.anchors, [*self.anchors[1:], None]):
            stop = end if following is None else seen.get(following)
            if anchor in seen and stop is not None:
                self.spans[anchor] = (self.spans[anchor] + [max(stop - seen[anchor], 0.0)])[-self.KEEP:]

    def plan(self, rng: random.Random) -> tuple[str, float]:
        """The seed picks the anchor and the fraction of its stretch; the stretch is measured."""
        anchor = rng.choice([a for a in self.anchors if self.spans[a]])
        spans = sorted(self.spans[anchor])
        return anchor, rng.uniform(0.0, 1.25) * spans[len(spans) // 2]

    def describe(self) -> str:
        return ", ".join(f"{a} {sorted(v)[len(v) // 2]:.2f} s" for a, v in self.spans.items() if v)


class Anchors:
    """Anchor times of one run, set by the threads that watch it, waited for by the killer."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.seen: dict[str, float] = {}
        self.finished = False
        self._cond = threading.Condition()

    def mark(self, name: str) -> None:
        with self._cond:
            self.seen.setdefault(name, time.monotonic() - self.start)
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def wait(self, name: str, timeout: float) -> bool:
        """Until ``name`` is seen (True) or the run finished / ``timeout`` passed (False)."""
        with self._cond:
            self._cond.wait_for(lambda: name in self.seen or self.finished, timeout)
            return name in self.seen

    def now(self) -> float:
        return time.monotonic() - self.start


# -- the checks --------------------------------------------------------------------------------


def check_files(home: Path, catalog: Catalog, bits: int) -> list[str]:
    """The index files on disk against the catalog: generation and vector counts."""
    problems = []
    generation = catalog.generation()
    total = sum(r.frames for r in catalog.references())
    try:
        meta = json.loads((home / "index.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"index.json unreadable ({exc})"]
    if meta.get("generation") != generation:
        problems.append(f"index.json is of generation {meta.get('generation')}, the catalog {generation}")
    if meta.get("vectors") != total:
        problems.append(f"index.json counts {meta.get('vectors')} vectors, the catalog {total} frames")
    try:
        on_disk = len(FaissBinaryIndex.load(home / "index.faiss", bits))
    except StoreError as exc:
        problems.append(str(exc))
    else:
        if on_disk != total:
            problems.append(f"index.faiss holds {on_disk} vectors, the catalog {total} frames")
    return problems


def check_store(guard: Guard, added: dict[int, Path], acked: set[int]) -> dict[str, list[str]]:
    """Catalog vs. index (store), half-present references (whole), acknowledged ones (acked),
    and every reference in ``added`` found by scanning its file (match)."""
    refs = {r.id: r for r in guard.references()}
    signal = guard.fingerprinter.signal.name
    fps = {rid: fp for rid, fp in guard.catalog.fingerprints() if fp.signal == signal}
    store: list[str] = []
    whole: list[str] = []
    for rid, ref in refs.items():
        fp = fps.get(rid)
        if fp is None:
            whole.append(f"reference {rid} has no {signal} fingerprint")
        elif ref.frames <= 0 or len(fp) != ref.frames or len(fp.times) != len(fp.codes):
            whole.append(f"reference {rid}: {ref.frames} frames recorded, {len(fp.times)} times, {len(fp.codes)} codes")
    whole += [f"fingerprint {rid} has no reference" for rid in sorted(fps.keys() - refs.keys())]
    index = guard.index
    if set(index.refs) != set(refs):
        store.append(f"index and catalog differ in references {sorted(set(index.refs) ^ set(refs))}")
    total = sum(len(fp) for fp in fps.values())
    if len(index) != total:
        store.append(f"index holds {len(index)} vectors, the catalog {total} frames")
    for rid, fp in fps.items():
        frames = index.refs.get(rid)
        if frames is not None and len(frames.times) != len(fp):
            store.append(f"reference {rid}: {len(frames.times)} frames in memory, {len(fp)} in the catalog")
        # each frame, searched at distance 0, must find itself under its own id
        hits = index.search(fp.codes, 0, max(len(index), 1))
        wanted = vector_ids(rid, len(fp)).tolist()
        missing = sum(1 for i, vid in enumerate(wanted) if vid not in set(hits.for_query(i)[0].tolist()))
        if missing:
            store.append(f"reference {rid}: {missing} of {len(fp)} frames missing from the index")
    store += check_files(guard.home, guard.catalog, guard.fingerprinter.signal.bits)
    missing_acked = [f"acknowledged reference {rid} is missing" for rid in sorted(acked - refs.keys())]
    match = []
    for rid, path in sorted(added.items()):
        if rid in refs:
            found = sorted({s.reference_id for s in guard.scan(path).segments})
            if rid not in found:
                match.append(f"reference {rid} not found by scanning {path.name} (found {found})")
    return {"store": store, "whole": whole, "acked": missing_acked, "match": match}


def _index_generation(home: Path) -> int | None:
    try:
        return json.loads((home / "index.json").read_text()).get("generation")
    except (OSError, ValueError):
        return None


# -- ingest ------------------------------------------------------------------------------------


class IngestTrials:
    """``guard ingest`` of four clips, killed; the store is checked and the trial's references removed."""

    FILES = 4

    def __init__(self, folder: Path, rng: random.Random, out: Out):
        self.folder, self.rng, self.out = folder, rng, out
        self.home = folder / "store"
        media = folder / "media"
        media.mkdir(parents=True, exist_ok=True)
        self.background = [clip(media / f"bg{i}.mp4", 1 + i, CLIP_SECONDS) for i in range(2)]
        self.files = [clip(media / f"clip{i}.mp4", 3 + i, CLIP_SECONDS) for i in range(self.FILES)]
        with Guard(Settings(home=self.home)) as guard:
            for path in self.background:
                guard.ingest(path, title=path.stem, owner="league", min_seconds=MIN_SECONDS)
            self.base = {r.id for r in guard.references()}
        self.plan = KillPlan(["spawn", *(f"ack {i + 1}" for i in range(self.FILES))])
        self._calibrate()

    def _run(self, plan: tuple[str, float] | None):
        """Run the ingest, killed ``delay`` s after ``anchor`` when ``plan`` is given.

        Returns the printed reference ids, what the process had open at the kill, the kill time
        (None if it exited first) and its exit time (None if killed), in s from the spawn.
        """
        command = [*GUARD, "--home", str(self.home), "-v", "ingest", "--min-seconds", str(MIN_SECONDS),
                   *map(str, self.files)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.folder / "ingest.log", "ab") as log:
            anchors = Anchors()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env)
        anchors.mark("spawn")
        acked: list[int] = []

        def read() -> None:
            for raw in process.stdout:
                m = re.match(r"registered (\d+)\s", raw.decode(errors="replace"))
                if m:
                    acked.append(int(m.group(1)))
                    anchors.mark(f"ack {len(acked)}")
            anchors.finish()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        opened: dict = {}
        killed_at = ended = None
        try:
            if plan is None or not anchors.wait(plan[0], 120):
                process.wait(120)
            else:
                process.wait(plan[1])
            ended = anchors.now()
        except subprocess.TimeoutExpired:
            opened = _open_files(process.pid)
            killed_at = anchors.now()
            process.kill()  # SIGKILL, this child's PID only
            process.wait(10)
        reader.join(10)
        process.stdout.close()
        self.plan.observe(anchors.seen, ended)
        return acked, opened, killed_at, ended

    def _calibrate(self) -> None:
        acked, _, _, ended = self._run(None)
        self._cleanup()
        self.out(f"ingest calibration: {len(acked)} references in {ended:.2f} s; stretches after "
                 f"{self.plan.describe()}")

    def _cleanup(self) -> None:
        with Guard(Settings(home=self.home)) as guard:
            for ref in guard.references():
                if ref.id not in self.base:
                    guard.remove_reference(ref.id)

    def trial(self, number: int) -> Trial:
        anchor, delay = self.plan.plan(self.rng)
        printed, opened, killed_at, ended = self._run((anchor, delay))
        trial = Trial("ingest", number, f"{anchor} +{delay:.3f}", killed_at if killed_at is not None else ended,
                      killed=killed_at is not None)
        acked = set(printed)
        trial.acked = len(acked)
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            committed = [r for r in catalog.references() if r.id not in self.base]
            stale = _index_generation(self.home) != catalog.generation()
        finally:
            catalog.close()
        trial.phase = self._phase(trial.killed, opened, len(committed), stale, len(acked))
        by_name = {p.stem: p for p in self.files}
        with Guard(Settings(home=self.home)) as guard:  # the reopen
            added = {r.id: by_name[r.title] for r in guard.references() if r.id not in self.base}
            trial.checks = check_store(guard, added, acked)
            for rid in added:
                guard.remove_reference(rid)
            if {r.id for r in guard.references()} != self.base:
                trial.checks["store"].append("the trial's references could not be removed")
        return trial

    def _phase(self, killed: bool, opened: dict, committed: int, stale: bool, acked: int) -> str:
        n = self.FILES
        if not killed:
            return "exited"
        media = [i for i, p in enumerate(self.files) if str(p) in opened.get("files", ())]
        if stale:
            return f"index write {committed}/{n}"
        if media:
            return f"fingerprint {media[0] + 1}/{n}"
        if not opened.get("catalog"):
            return "startup" if committed == 0 else "closing"
        if committed > acked:
            return f"before print {committed}/{n}"
        return "closing" if committed == n else f"between {committed}/{n}"


def _open_files(pid: int) -> dict:
    """What a process has open: paths of its descriptors, and whether the catalog is among them."""
    files = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                files.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    return {"files": files, "catalog": any(f.endswith("catalog.sqlite") for f in files)}


# -- serve -------------------------------------------------------------------------------------


@dataclass
class _Work:
    """What one trial's client saw: accepted jobs, jobs seen final, an upload in flight."""

    accepted: dict[int, str] = field(default_factory=dict)  # job id -> kind
    final_before_kill: dict[int, dict] = field(default_factory=dict)  # job id -> job
    uploading: str | None = None
    anchors: Anchors = field(default_factory=Anchors)
    error: str | None = None


class ServeTrials:
    """``guard serve`` under uploads, scans and webhooks, killed and restarted each trial."""

    POOL = 4

    def __init__(self, folder: Path, rng: random.Random, out: Out):
        self.folder, self.rng, self.out = folder, rng, out
        self.home = folder / "store"
        media = folder / "media"
        media.mkdir(parents=True, exist_ok=True)
        self.reference = clip(media / "final.mp4", 7, 10.0)
        self.pirate = clip(media / "pirate.mp4", 7, 6.0, start=2.0, seed=107, transform=synth.logo)
        self.pool = [clip(media / f"upload{i}.mp4", 8 + i, CLIP_SECONDS) for i in range(self.POOL)]
        secrets_by_path = {"/hook/league": "league-secret", "/hook/tube": "tube-secret"}
        # Answering after RECEIVER_DELAY widens the window between a delivery and guard's record of it.
        self.receiver = CountingReceiver(secrets_by_path, delay=RECEIVER_DELAY).up()
        settings = Settings(home=self.home, allow_private_addresses=True)
        with Guard(settings) as guard:
            self.tokens = {owner: guard.keys.create(role, owner)[1]
                           for role, owner in (("admin", "ops"), ("rights_holder", "league"), ("platform", "tube"))}
            self.pirated_id = guard.ingest(self.reference, title="final", owner="league", policy="flag",
                                           min_seconds=MIN_SECONDS).id
            self.endpoint_paths = {}
            for owner in ("league", "tube"):
                path = f"/hook/{owner}"
                endpoint = guard.actions.add_endpoint(owner, self.receiver.url(path), secrets_by_path[path])
                self.endpoint_paths[endpoint.id] = path
            self.bits = guard.fingerprinter.signal.bits
            self.base = {r.id for r in guard.references()}
        self.allowed_repeats: set[tuple[str, str]] = set()
        self.repeated = 0
        self.trials_run = 0
        self.pace = random.Random(rng.random())
        self.plan = KillPlan(["start", *UPLOAD_ANCHORS])
        self.server = GuardServer(self.home, folder / "server.log",
                                  {"GUARD_ALLOW_PRIVATE_ADDRESSES": "1", "GUARD_JOB_WORKERS": "1"})
        try:
            self.server.start()
            self._calibrate()
            self.old_jobs = self._job_ids()
        except BaseException:
            self.close()
            raise

    def api(self, owner: str, timeout: float = 30.0) -> Api:
        return Api(self.server.port, self.tokens[owner], timeout)

    def close(self) -> None:
        self.server.stop()
        self.receiver.down()

    # -- the client's work -----------------------------------------------------------------

    def _uploads(self) -> list[tuple[str, Path]]:
        a, b = (self.pool[(2 * self.trials_run + i) % self.POOL] for i in range(2))
        self.trials_run += 1
        return [("ingest", a), ("scan", self.pirate), ("ingest", b), ("scan", self.pirate)]

    def _work(self, work: _Work, stop: threading.Event) -> None:
        """Upload one after the other while another thread polls the accepted jobs until they are
        final; ends at the first connection error (the kill)."""
        uploads = self._uploads()
        uploaded = threading.Event()
        poller = threading.Thread(target=self._poll, args=(work, stop, uploaded), daemon=True)
        poller.start()
        work.anchors.mark("start")
        try:
            for (kind, path), anchor in zip(uploads, UPLOAD_ANCHORS):
                if stop.is_set():
                    return
                work.uploading = f"{kind} upload"
                owner, route = ("league", "/v1/references") if kind == "ingest" else ("tube", "/v1/scans")
                fields = {"title": path.stem, "policy": "flag", "min_seconds": str(MIN_SECONDS)} \
                    if kind == "ingest" else {"account": "uploader"}
                status, body = self.api(owner).upload(route, path, fields, seconds=self.pace.uniform(0.1, 0.4))
                work.uploading = None
                if status != 202:
                    work.error = f"upload answered {status}: {body}"
                    return
                work.accepted[body["id"]] = kind
                work.anchors.mark(anchor)
        except (OSError, ValueError) as exc:  # the server died under the request
            work.error = f"{type(exc).__name__}: {exc}"
        finally:
            uploaded.set()
            poller.join(130)
            work.anchors.finish()

    def _poll(self, work: _Work, stop: threading.Event, uploaded: threading.Event) -> None:
        admin = self.api("ops")
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline and not stop.is_set():
                waiting = [job_id for job_id in list(work.accepted) if job_id not in work.final_before_kill]
                if not waiting and uploaded.is_set():
                    work.anchors.mark("all final")
                    return
                for job_id in waiting:
                    status, job = admin.json("GET", f"/v1/jobs/{job_id}")
                    if status == 200 and job["status"] in FINAL:
                        work.final_before_kill[job_id] = job
                time.sleep(0.02)
        except (OSError, ValueError):  # the server died under the request
            return

    def _calibrate(self) -> None:
        work = _Work()
        self._work(work, threading.Event())
        if work.error or len(work.final_before_kill) != len(work.accepted):
            raise RuntimeError(f"serve calibration failed: {work.error or 'jobs did not finish'}\n{self.server.tail()}")
        self.plan.observe(work.anchors.seen, work.anchors.seen.get("all final"))
        self._wait_outbox(time.monotonic() + 30)
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            added = [r.id for r in catalog.references() if r.id not in self.base]
        finally:
            catalog.close()
        self._delete(added)
        self.out(f"serve calibration: jobs final after {work.anchors.seen['all final']:.2f} s; stretches after "
                 f"{self.plan.describe()}")

    def _job_ids(self) -> set[int]:
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            return {j.id for j in JobQueue(catalog).list(limit=1_000_000)[0]}
        finally:
            catalog.close()

    def _delete(self, ref_ids) -> list[str]:
        problems = []
        for rid in ref_ids:
            status, body = self.api("league").json("DELETE", f"/v1/references/{rid}")
            if status != 204:
                problems.append(f"DELETE reference {rid} answered {status}: {body}")
        return problems

    def _wait_outbox(self, deadline: float) -> int:
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            outbox = ActionCenter(catalog, WebhookSettings())
            while outbox.pending() and time.monotonic() < deadline:
                time.sleep(0.05)
            return outbox.pending()
        finally:
            catalog.close()

    # -- one trial ---------------------------------------------------------------------------

    def trial(self, number: int) -> Trial:
        anchor, delay = self.plan.plan(self.rng)
        self.pace.seed(self.rng.random())  # upload pacing: one draw per trial keeps the plan seeded
        work, stop = _Work(), threading.Event()
        worker = threading.Thread(target=self._work, args=(work, stop), daemon=True)
        worker.start()
        work.anchors.wait(anchor, 120)
        time.sleep(delay)  # the kill timer
        in_flight = work.uploading
        killed_wall = time.time()
        trial = Trial("serve", number, f"{anchor} +{delay:.3f}", work.anchors.now())
        self.server.kill()
        stop.set()
        worker.join(30)
        self.plan.observe(work.anchors.seen, work.anchors.seen.get("all final"))
        acked_jobs = dict(work.final_before_kill)
        frozen = self._frozen()
        trial.phase = self._phase(in_flight, frozen)
        # Up to the restart, whatever the receiver got came from the killed server: a request it
        # sent just before the SIGKILL may be recorded a few ms after killed_wall.
        self._grant_repeats(frozen["outbox"], time.time())
        self.server.start()
        trial.checks = self._check(frozen, acked_jobs, trial, killed_wall)
        return trial

    def _frozen(self) -> dict:
        """The store as the killed server left it (before anything reopens it to recover)."""
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            jobs, _ = JobQueue(catalog).list(limit=1_000_000)
            outbox = ActionCenter(catalog, WebhookSettings()).outbox(limit=1_000_000)
            stale = _index_generation(self.home) != catalog.generation()
        finally:
            catalog.close()
        return {"jobs": {j.id: j for j in jobs}, "outbox": outbox, "stale": stale,
                "uploads": sorted(p.name for p in (self.home / "uploads").glob("*"))}

    def _phase(self, in_flight: str | None, frozen: dict) -> str:
        parts = [in_flight] if in_flight else []
        jobs = frozen["jobs"].values()
        parts += [f"{j.kind} running" for j in jobs if j.status == "running"]
        queued = sum(1 for j in jobs if j.status == "queued")
        if queued:
            parts.append(f"{queued} queued")
        pending = sum(1 for row in frozen["outbox"] if row.status == "pending")
        if pending:
            parts.append(f"{pending} hook pending")
        if frozen["stale"]:
            parts.append("index write")
        return ", ".join(parts) or "idle"

    def _grant_repeats(self, outbox, before_restart: float) -> None:
        """An event the receiver had from the killed server (before the restart) while its row
        was pending may come once more."""
        seen = self.receiver.snapshot()
        for row in outbox:
            key = (self.endpoint_paths.get(row.endpoint_id, "?"), row.event_id)
            if row.status == "pending" and any(t <= before_restart for t in seen.get(key, ())):
                self.allowed_repeats.add(key)

    def _check(self, frozen: dict, acked_jobs: dict[int, dict], trial: Trial,
               killed_wall: float) -> dict[str, list[str]]:
        uploads: list[str] = []
        catalog = Catalog(self.home / "catalog.sqlite")
        try:
            queue = JobQueue(catalog)
            deadline = time.monotonic() + 120
            while True:
                jobs = {j.id: j for j in queue.list(limit=1_000_000)[0]}
                open_jobs = [j for j in jobs.values() if j.status not in FINAL]
                if not open_jobs or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            uploads += [f"job {j.id} ({j.kind}) still {j.status} after the restart" for j in open_jobs]
            for job_id, before in frozen["jobs"].items():
                after = jobs[job_id]
                if before.status == "queued":
                    missing = [Path(n).name for n in before.params.get("_files", [])
                               if Path(n).name not in frozen["uploads"]]
                    if missing:
                        uploads.append(f"job {job_id} was queued at the kill without its upload {missing}")
                    if after.status != "done":
                        uploads.append(f"job {job_id} ({after.kind}) was queued at the kill and ended "
                                       f"{after.status}: {after.error}")
                elif before.status == "running" and after.status != "done" and "interrupt" not in (after.error or ""):
                    uploads.append(f"job {job_id} ({after.kind}) was running at the kill and ended "
                                   f"{after.status}: {after.error}")
            stray = sorted(p.name for p in (self.home / "uploads").glob("*"))
            if stray:
                uploads.append(f"upload folder not empty once every job ended: {stray}")
            trial.acked = sum(1 for j in acked_jobs.values() if j["kind"] == "ingest" and j["status"] == "done")
            new_jobs = [j for j in jobs.values() if j.id not in self.old_jobs and j.status == "done" and j.result]
            self.old_jobs = set(jobs)
            acked = {j.result["reference"]["id"] for j in new_jobs if j.kind == "ingest"}
            scans_missed = [f"scan job {j.id} did not find the pirated reference ({j.result.get('matches')})"
                            for j in new_jobs if j.kind == "scan"
                            and self.pirated_id not in {m["reference_id"] for m in j.result.get("matches", [])}]
            server_files = check_files(self.home, catalog, self.bits)
            # A delivery in flight at the kill holds a lease of timeout + 10 s (15 s) on its row.
            hooks_deadline = time.monotonic() + max(3.0, killed_wall + 18.0 - time.time())
            outbox_center = ActionCenter(catalog, WebhookSettings())
            while outbox_center.pending() and time.monotonic() < hooks_deadline:
                time.sleep(0.05)
            hooks = self._check_hooks(outbox_center, jobs, trial)
        finally:
            catalog.close()
        by_name = {p.stem: p for p in self.pool}
        with Guard(Settings(home=self.home, allow_private_addresses=True)) as guard:
            added = {r.id: by_name[r.title] for r in guard.references() if r.id not in self.base}
            checks = check_store(guard, added, acked)
        checks["store"] = [f"server's files: {p}" for p in server_files] + checks["store"]
        checks["match"] += scans_missed
        checks["uploads"] = uploads
        checks["hooks"] = hooks
        checks["store"] += self._delete(added)
        return checks

    def _check_hooks(self, outbox_center: ActionCenter, jobs: dict, trial: Trial) -> list[str]:
        problems = []
        rows = outbox_center.outbox(limit=1_000_000)
        expected = {}
        for row in rows:
            key = (self.endpoint_paths.get(row.endpoint_id, "?"), row.event_id)
            expected[key] = row
            if row.status != "delivered":
                problems.append(f"{row.event_type} {row.event_id} to {key[0]} is {row.status} "
                                f"after {row.attempts} attempt(s) ({row.last_error or 'never sent'})")
        seen = self.receiver.snapshot()
        for key, row in expected.items():
            count = len(seen.get(key, ()))
            allowed = 2 if key in self.allowed_repeats else 1
            if count == 0 and row.status == "delivered":
                problems.append(f"{row.event_id} marked delivered to {key[0]} but never received")
            elif count > allowed:
                problems.append(f"{row.event_id} delivered {count} times to {key[0]}")
        problems += [f"received {key[1]} at {key[0]}, which guard never stored" for key in seen.keys() - expected.keys()]
        repeated = sum(1 for times in seen.values() if len(times) > 1)
        trial.repeated, self.repeated = repeated - self.repeated, repeated
        problems += [f"receiver refused a delivery: {r}" for r in self.receiver.rejected]
        stored = {e.incident_id for e in outbox_center.events(limit=1_000_000) if e.incident_id is not None}
        for job in jobs.values():
            if job.kind == "scan" and job.status == "done" and job.result:
                for incident_id in job.result.get("incidents", []):
                    if incident_id not in stored:
                        problems.append(f"scan {job.id}: incident {incident_id} has no event")
        return problems


# -- running -----------------------------------------------------------------------------------


def run(trials: int, seed: int, modes=MODES, workdir: Path | None = None, out: Out = print) -> list[Trial]:
    """Run ``trials`` kills per mode; print each row as it comes; return the trials."""
    rng = random.Random(seed)
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="guard-fault-")) if own else Path(workdir)
    results: list[Trial] = []
    out(f"fault injection: {trials} trials per mode ({', '.join(modes)}), seed {seed}, store under {folder}")
    out(header())
    try:
        for mode in modes:
            runner = (IngestTrials if mode == "ingest" else ServeTrials)(folder / mode, rng, out)
            try:
                for number in range(1, trials + 1):
                    trial = runner.trial(number)
                    results.append(trial)
                    out(row(trial))
            finally:
                if isinstance(runner, ServeTrials):
                    runner.close()
    finally:
        if own and all(t.ok for t in results):
            shutil.rmtree(folder, ignore_errors=True)
    return results


def header() -> str:
    cells = ["trial", "mode", "aim", "kill at", "phase", "acked", *CHECKS, "result"]
    return _line(cells) + "\n" + _line(["---"] * len(cells))


def row(trial: Trial) -> str:
    marks = ["-" if name not in trial.checks else ("ok" if not trial.checks[name] else "FAIL") for name in CHECKS]
    kill = f"{trial.kill_at:.3f} s" if trial.killed else f"({trial.kill_at:.3f} s)"
    return _line([str(trial.number), trial.mode, trial.aim, kill, trial.phase, str(trial.acked), *marks,
                  "pass" if trial.ok else "FAIL"])


def _line(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def summary(results: list[Trial]) -> str:
    lines = ["", "Summary"]
    for mode in MODES:
        mine = [t for t in results if t.mode == mode]
        if not mine:
            continue
        failed = [t for t in mine if not t.ok]
        phases = Counter(re.sub(r"\s*\d+/\d+|\d+ ", "", t.phase) for t in mine)
        lines.append(f"  {mode}: {len(mine)} trials, {len(mine) - len(failed)} passed, {len(failed)} failed; "
                     f"{sum(t.acked for t in mine)} references acknowledged before a kill; phases: "
                     + ", ".join(f"{p} {n}" for p, n in phases.most_common()))
        if mode == "serve":
            lines.append(f"    {sum(t.repeated for t in mine)} webhook deliveries repeated once after a kill caught "
                         "them between the receiver's answer and guard's record (allowed; deduplicated by event id)")
        per_check = Counter(name for t in failed for name, problems in t.checks.items() if problems)
        if per_check:
            lines.append("    failing checks: " + ", ".join(f"{n} in {c} trial(s)" for n, c in per_check.most_common()))
    failures = [t for t in results if not t.ok]
    if failures:
        lines.append("")
        lines.append("Failures")
        for t in failures:
            lines.append(f"  {t.mode} #{t.number} ({t.phase}):")
            lines += [f"    - {p}" for p in t.problems()]
    return "\n".join(lines)


def _print(line: str) -> None:
    print(line, flush=True)  # rows appear as they come, also when the output goes to a file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50, help="kills per mode (default 50)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the kill plan (default 7)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: ingest,serve")
    parser.add_argument("--workdir", type=Path, help="keep the stores and logs here (default: a temp folder, "
                                                     "removed when every trial passed)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown or args.trials < 1:
        parser.error(f"unknown modes {sorted(unknown)}" if unknown else "--trials must be at least 1")
    started = time.monotonic()
    results = run(args.trials, args.seed, modes, args.workdir, out=_print)
    print(summary(results))
    print(f"\n{len(results)} trials in {time.monotonic() - started:.0f} s: "
          f"{sum(not t.ok for t in results)} failed")
    sys.exit(0 if all(t.ok for t in results) else 1)


if __name__ == "__main__":
    main()
