"""The soak (``scripts/soak.py``) shortened to fit the suite: one ``guard serve`` monitors 4 live
UDP streams (2 carrying a flagged copy, so webhooks flow) under API read load for 60 s. The
2-minute CI mode and the 30-minute soak run through the script itself."""

import shutil

import pytest

from tests.server_helpers import load_script

soak = load_script("soak")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the streams are published by the ffmpeg CLI")
def test_a_minute_of_four_streams_has_no_errors_and_bounded_descriptors(tmp_path):
    lines: list[str] = []
    result = soak.run_soak(60, streams=4, interval=3, workdir=tmp_path, out=lines.append)
    report = "\n".join(lines)

    assert len(result.samples) >= 15, report
    assert result.errors == {"http": 0, "monitor": 0, "webhook": 0, "server log": 0, "false incidents": 0}, report
    assert result.verdict["descriptors bounded"][0], report
    # sockets, pipes and files (all but the catalog's per-thread SQLite connections) stay put
    assert max(s.other_fds for s in result.samples[1:]) - result.samples[1].other_fds <= soak.FD_SPIKE, report
    assert result.verdict["detection"][0], report
    assert result.samples[-1].deliveries >= 4, report  # incident.flagged to both endpoints, per copy stream
    assert result.samples[-1].reads > 100, report  # the read load ran all along
