"""JobRepository on a real SQLite catalog file."""

from __future__ import annotations

import pytest

from guard.errors import NotFoundError
from guard.storage.jobs import JobRepository
from guard.store import Catalog


@pytest.fixture
def jobs(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield JobRepository(catalog)
    catalog.close()


def _create(jobs: JobRepository, kind: str = "scan", owner: str = "tube", role: str = "platform", **params) -> int:
    return jobs.create(kind=kind, role=role, owner=owner, params=params, created="2024-01-01T00:00:00+00:00")


def test_create_and_get_round_trip_a_queued_job(jobs):
    job_id = _create(jobs, _path="/tmp/x.mp4", filename="x.mp4")
    job = jobs.get(job_id)
    assert (job.id, job.kind, job.role, job.owner, job.status, job.progress) == (job_id, "scan", "platform", "tube",
                                                                                 "queued", 0.0)
    assert job.params == {"_path": "/tmp/x.mp4", "filename": "x.mp4"}
    assert job.result is None and job.started is None and job.created == "2024-01-01T00:00:00+00:00"
    with pytest.raises(NotFoundError, match="job 999 not found"):
        jobs.get(999)


def test_only_one_claim_wins_and_progress_is_written_while_running(jobs):
    job_id = _create(jobs)
    jobs.set_progress(job_id, 0.5)
    assert jobs.get(job_id).progress == 0.0, "a queued job has no progress"
    assert jobs.claim(job_id, started="2024-01-01T00:00:01+00:00")
    assert not jobs.claim(job_id, started="2024-01-01T00:00:02+00:00")
    jobs.set_progress(job_id, 0.5)
    job = jobs.get(job_id)
    assert (job.status, job.progress, job.started) == ("running", 0.5, "2024-01-01T00:00:01+00:00")


def test_finish_records_result_or_error_and_freezes_progress(jobs):
    done, failed = _create(jobs), _create(jobs)
    for job_id in (done, failed):
        jobs.claim(job_id, started="s")
    jobs.finish(done, status="done", progress=1.0, result={"matches": [1, 2]}, error=None, finished="f")
    jobs.finish(failed, status="failed", progress=0.3, result=None, error="bad input", finished="f")
    jobs.set_progress(done, 0.2)
    assert (jobs.get(done).status, jobs.get(done).progress, jobs.get(done).result) == ("done", 1.0, {"matches": [1, 2]})
    assert (jobs.get(failed).status, jobs.get(failed).error, jobs.get(failed).finished) == ("failed", "bad input", "f")


def test_list_filters_pages_newest_first_and_counts(jobs):
    ids = [_create(jobs, kind="scan" if i % 2 else "ingest", owner="a" if i < 4 else "b") for i in range(6)]
    page, total = jobs.list(owner="a", limit=2)
    assert total == 4 and [j.id for j in page] == [ids[3], ids[2]]
    page, total = jobs.list(owner="a", kind="scan", limit=10, offset=1)
    assert total == 2 and [j.id for j in page] == [ids[1]]
    assert jobs.list(status="running") == ([], 0)
    assert jobs.list()[1] == 6


def test_with_status_unfinished_and_counts_by_status(jobs):
    queued, running, done = _create(jobs), _create(jobs, kind="ingest"), _create(jobs)
    jobs.claim(running, started="s")
    jobs.claim(done, started="s")
    jobs.finish(done, status="done", progress=1.0, result={}, error=None, finished="f")
    assert [j.id for j in jobs.with_status("queued")] == [queued]
    assert [j.id for j in jobs.with_status("running")] == [running]
    assert [j.id for j in jobs.unfinished()] == [queued, running]
    assert jobs.counts_by_status() == {("scan", "queued"): 1, ("ingest", "running"): 1, ("scan", "done"): 1}
