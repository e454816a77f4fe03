"""Background jobs: persisted states, progress, results and errors, and recovery after a crash."""

from __future__ import annotations

import json
import os
import threading

import pytest

from guard_synth import broadcast as synth
from guard.config import Settings
from guard_synth.encode import write_video
from guard.errors import InputError, NotFoundError
from guard.jobs import JobQueue
from guard.service import Guard
from guard.store import Catalog


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def test_job_runs_reports_progress_and_stores_its_result(catalog):
    release = threading.Event()
    seen = []

    def work(job, progress):
        progress(0.5)
        seen.append(queue.get(job.id).progress)
        release.wait(10)
        return {"answer": job.params["x"] * 2}

    queue = JobQueue(catalog, {"double": work}, workers=1)
    job = queue.submit("double", owner="nba", role="rights_holder", params={"x": 21, "_secret": "/tmp/p"})
    assert job.status in ("queued", "running")
    assert "_secret" not in job.to_dict()["params"]
    release.set()
    done = queue.wait(job.id, 10)
    assert (done.status, done.progress, done.result, done.error) == ("done", 1.0, {"answer": 42}, None)
    assert seen == [0.5] and done.started and done.finished
    queue.shutdown()


def test_failures_are_recorded_not_raised(catalog):
    def bad_input(job, progress):
        raise InputError("x.mp4: cannot be opened as media")

    def bug(job, progress):
        raise ZeroDivisionError("oops")

    queue = JobQueue(catalog, {"bad": bad_input, "bug": bug}, workers=2)
    a = queue.wait(queue.submit("bad", owner="o", role="platform", params={}).id, 10)
    b = queue.wait(queue.submit("bug", owner="o", role="platform", params={}).id, 10)
    assert (a.status, a.error) == ("failed", "x.mp4: cannot be opened as media")
    assert (b.status, b.error) == ("failed", "internal error (ZeroDivisionError)")
    with pytest.raises(InputError):
        queue.submit("nope", owner="o", role="platform", params={})
    with pytest.raises(NotFoundError):
        queue.get(12345)
    queue.shutdown()


def test_files_of_a_job_are_deleted_when_it_ends(catalog, tmp_path):
    upload = tmp_path / "upload.part"
    upload.write_bytes(b"data")
    queue = JobQueue(catalog, {"noop": lambda job, progress: {}}, workers=1)
    queue.wait(queue.submit("noop", owner="o", role="platform", params={"_files": [str(upload)]}).id, 10)
    assert not upload.exists()
    queue.shutdown()


def test_list_filters_pages_and_counts(catalog):
    queue = JobQueue(catalog, {"a": lambda j, p: {}, "b": lambda j, p: {}}, workers=1)
    ids = [queue.submit("a" if i % 2 else "b", owner="x" if i < 4 else "y", role="platform", params={}).id
           for i in range(6)]
    for job_id in ids:
        queue.wait(job_id, 10)
    jobs, total = queue.list(owner="x", limit=2)
    assert total == 4 and [j.id for j in jobs] == [ids[3], ids[2]]
    assert queue.list(kind="a")[1] == 3 and queue.list(status="done")[1] == 6
    assert queue.counts() == {("a", "done"): 3, ("b", "done"): 3}
    queue.shutdown()


def test_a_restart_fails_running_jobs_and_requeues_queued_ones(tmp_path):
    path = tmp_path / "catalog.sqlite"
    started, block = threading.Event(), threading.Event()

    def slow(job, progress):
        started.set()
        block.wait(10)
        return {}

    first_catalog = Catalog(path)
    first = JobQueue(first_catalog, {"slow": slow}, workers=1)
    running = first.submit("slow", owner="o", role="platform", params={})
    assert started.wait(10)
    queued = first.submit("slow", owner="o", role="platform", params={})
    # The process "dies": a second service opens the same catalog while the first is stuck.
    second_catalog = Catalog(path)
    second = JobQueue(second_catalog, {"slow": lambda job, progress: {"ran": "again"}}, workers=1)
    assert second.recover() == 1
    interrupted = second.get(running.id)
    assert interrupted.status == "failed" and "interrupted" in interrupted.error
    assert second.wait(queued.id, 10).result == {"ran": "again"}
    block.set()
    first.shutdown()
    second.shutdown()
    first_catalog.close()
    second_catalog.close()


def test_files_in_use_are_those_of_queued_and_running_jobs_even_right_after_a_recovery(tmp_path):
    path = tmp_path / "catalog.sqlite"
    files = {name: tmp_path / f"upload-{name}.part" for name in ("crashed", "queued", "done")}
    for file in files.values():
        file.write_bytes(b"data")
    first_catalog = Catalog(path)
    first = JobQueue(first_catalog, {"work": lambda job, progress: {}}, workers=1)
    done = first.wait(first.submit("work", owner="o", role="platform", params={"_files": [str(files["done"])]}).id, 10)
    assert done.status == "done" and not files["done"].exists()
    first.shutdown()  # nothing runs the next jobs: the process "died" with them recorded
    with first_catalog.transaction() as db:
        for name, status in (("crashed", "running"), ("queued", "queued")):
            db.execute("INSERT INTO jobs (kind, role, owner, status, params, created) VALUES ('work', 'platform',"
                       " 'o', ?, ?, '')", (status, json.dumps({"_files": [str(files[name])]})))
    assert first.files_in_use() == {str(files["crashed"]), str(files["queued"])}

    started, release = threading.Event(), threading.Event()

    def blocked(job, progress):
        started.set()
        release.wait(10)
        return {}

    second_catalog = Catalog(path)
    second = JobQueue(second_catalog, {"work": blocked}, workers=1)
    try:
        assert second.recover() == 1 and started.wait(10)
        # The requeued job is running now: its upload is still in use, the crashed job's is gone.
        assert second.files_in_use() == {str(files["queued"])}
        assert files["queued"].exists() and not files["crashed"].exists()
    finally:
        release.set()
        second.shutdown()
        second_catalog.close()
        first_catalog.close()


def test_service_ingest_and_scan_jobs(tmp_path):
    ref = write_video(tmp_path / "ref.mp4", synth.broadcast(3, (320, 180), 10, 10), 10)
    guard = Guard(Settings(home=tmp_path / "store", job_workers=1))
    try:
        ingest = guard.jobs.submit("ingest", owner="nba", role="rights_holder",
                                   params={"_path": str(ref), "filename": "ref.mp4", "owner": "nba",
                                           "policy": "cut", "min_seconds": 4.0})
        done = guard.jobs.wait(ingest.id, 60)
        assert done.status == "done", done.error
        reference = done.result["reference"]
        assert (reference["title"], reference["owner"], reference["policy"]) == ("ref", "nba", "cut")
        assert reference["source"] == "upload:ref.mp4"
        scan = guard.jobs.wait(guard.jobs.submit("scan", owner="yt", role="platform",
                                                 params={"_path": str(ref), "filename": "copy.mp4"}).id, 60)
        assert scan.status == "done" and scan.result["path"] == "copy.mp4"
        assert [m["reference_id"] for m in scan.result["matches"]] == [reference["id"]]
    finally:
        guard.close()


def test_shutdown_interrupts_a_running_job_at_its_next_progress_report(catalog):
    started = threading.Event()

    def long_work(job, progress):
        started.set()
        for step in range(1000):
            progress(step / 1000)
            threading.Event().wait(0.01)
        return {"finished": True}

    queue = JobQueue(catalog, {"long": long_work}, workers=1)
    job = queue.submit("long", owner="o", role="platform", params={})
    assert started.wait(10)
    queue.shutdown(wait=True)  # returns long before the 10 s of work
    stopped = queue.get(job.id)
    assert stopped.status == "failed" and "interrupted" in stopped.error



@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread niceness on this system")
def test_job_threads_run_at_a_lower_priority(catalog):
    base = os.getpriority(os.PRIO_PROCESS, 0)
    queue = JobQueue(catalog, {"nice": lambda job, progress: {"nice": os.getpriority(os.PRIO_PROCESS, 0)}},
                     workers=1, nice=5)
    job = queue.wait(queue.submit("nice", owner="o", role="platform", params={}).id, 10)
    assert job.result == {"nice": min(base + 5, 19)}
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the calling thread keeps its priority
    queue.shutdown()
