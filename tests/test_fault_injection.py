"""The fault-injection suite (``scripts/fault_inject.py``) in CI: 10 SIGKILLs of ``guard ingest``
and 10 of ``guard serve`` at seeded random moments, each followed by the script's checks of the
reopened store (catalog and index agree, acknowledged references whole and matchable, queued
uploads kept, every webhook event delivered once). The full run is the script's (50 per mode)."""

import shutil

import pytest

from tests.server_helpers import load_script

fault_inject = load_script("fault_inject")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI like the other live tests")
def test_every_kill_leaves_a_whole_store_and_loses_nothing_acknowledged(tmp_path):
    lines: list[str] = []
    trials = fault_inject.run(10, seed=16, workdir=tmp_path, out=lines.append)
    report = "\n".join(lines) + fault_inject.summary(trials)

    assert [t.mode for t in trials] == ["ingest"] * 10 + ["serve"] * 10, report
    failed = [t for t in trials if not t.ok]
    assert not failed, report
    for mode in ("ingest", "serve"):
        mine = [t for t in trials if t.mode == mode]
        assert all(set(t.checks) >= {"store", "whole", "acked", "match"} for t in mine)
        assert sum(t.killed for t in mine) >= 5, report  # the kills hit running processes
    serve = [t for t in trials if t.mode == "serve"]
    assert all(set(t.checks) == set(fault_inject.CHECKS) for t in serve)
    assert sum(t.acked for t in trials) > 0, report  # acknowledged references were there to lose
