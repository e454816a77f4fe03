"""The soak (``scripts/soak.py``) in its CI mode: one ``guard serve`` monitors 8 live UDP streams
(4 carrying a flagged copy, so webhooks flow) under API read load for 2 minutes, and every verdict
of the script holds. The 30-minute soak runs through the script itself (``--minutes 30``)."""

import shutil

import pytest

from tests.server_helpers import load_script

soak = load_script("soak")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the streams are published by the ffmpeg CLI")
def test_two_minutes_of_eight_streams_hold_every_soak_verdict(tmp_path):
    lines: list[str] = []
    result = soak.run_soak(120, streams=8, interval=3, workdir=tmp_path, out=lines.append)
    report = "\n".join(lines)

    assert len(result.samples) >= 30, report
    assert result.ok, report
    assert result.errors == {"http": 0, "monitor": 0, "webhook": 0, "server log": 0, "false incidents": 0}, report
    assert result.verdict["descriptors bounded"][0], report
    # sockets, pipes and files (all but the catalog's per-thread SQLite connections) stay put
    assert max(s.other_fds for s in result.samples[1:]) - result.samples[1].other_fds <= soak.FD_SPIKE, report
    assert result.verdict["detection"][0], report
    assert result.samples[-1].deliveries >= 8, report  # incident.flagged to both endpoints, per copy stream
    assert result.samples[-1].reads > 100, report  # the read load ran all along
