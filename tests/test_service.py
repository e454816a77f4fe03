"""Guard's roles in one test process: two services over one store, as two `guard serve` would be."""

from __future__ import annotations

import shutil
import time

import pytest

from guard.config import Settings
from guard.errors import ConfigError, ConflictError
from guard.service import Guard

from tests.server_helpers import clip


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_streams_recorded_without_the_monitor_role_run_where_it_is(tmp_path):
    video = clip(tmp_path / "live.mp4", photo=5, seconds=20)
    settings = Settings(home=tmp_path / "home")
    with Guard(settings, roles=["api"]) as api, Guard(settings, roles=["monitor"]) as monitor:
        assert (api.roles, monitor.roles) == (("api",), ("monitor",))
        # Nobody claimed it yet: a stop ends it at once.
        waiting = api.monitor(str(video), stream_id="s-cancelled", account="fan", realtime=True)
        assert waiting.status == "starting" and waiting.url == "live.mp4" and api.streams.active_count == 0
        assert api.streams.stop("s-cancelled").status == "stopped"

        # Claimed, but its file is gone by then: the stream fails, with the reason.
        gone = shutil.copy(video, tmp_path / "gone.mp4")
        api.monitor(str(gone), stream_id="s-gone", account="fan", realtime=True)
        (tmp_path / "gone.mp4").unlink()
        assert monitor.streams.take_requests() == 0
        failed = api.streams.get("s-gone")
        assert failed.status == "failed" and "no such file" in failed.error and not failed.active

        api.monitor(str(video), stream_id="s-live", account="fan", realtime=True)
        with pytest.raises(ConflictError):
            api.monitor(str(video), stream_id="s-live", account="fan", realtime=True)
        assert monitor.streams.take_requests() == 1
        assert monitor.streams.take_requests() == 0, "a request is claimed once"
        assert monitor.streams.active_count == 1 and api.streams.active_count == 0
        assert _until(lambda: api.streams.get("s-live").status == "live", 20)

        monitor.start(poll_interval=0.1)  # from now on the monitor process obeys stop requests
        stopped = api.streams.stop("s-live", timeout=20)
        assert stopped.status == "stopped" and not stopped.active
        assert _until(lambda: monitor.streams.active_count == 0, 10)


def test_roles_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown role"):
        Guard(Settings(home=tmp_path), roles=["api", "web"])
