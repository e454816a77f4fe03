"""StreamRepository on a real SQLite catalog file."""

from __future__ import annotations

from dataclasses import replace

import pytest

from guard.errors import NotFoundError
from guard.storage.records import StreamRecord
from guard.storage.streams import StreamRepository
from guard.store import Catalog


@pytest.fixture
def streams(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield StreamRepository(catalog)
    catalog.close()


def _record(stream_id: str, platform: str = "tube", started: float = 100.0) -> StreamRecord:
    return StreamRecord(id=stream_id, url="https://cdn.example/live.m3u8", account="fan", platform=platform,
                        status="starting", started=started, updated=started)


def test_start_then_update_then_get(streams):
    streams.start(_record("s1"))
    assert streams.get("s1") == _record("s1")
    ended = replace(_record("s1"), status="ended", updated=130.0, ended=130.0, error="eof", frames=120, incidents=2)
    streams.update(ended)
    assert streams.get("s1") == ended
    with pytest.raises(NotFoundError, match="stream nope not found"):
        streams.get("nope")


def test_update_does_not_recreate_an_unknown_stream(streams):
    streams.update(_record("ghost"))
    with pytest.raises(NotFoundError):
        streams.get("ghost")


def test_starting_a_known_id_again_starts_afresh(streams):
    streams.start(_record("s1"))
    streams.update(replace(_record("s1"), status="failed", ended=110.0, error="gone", frames=40, incidents=1))
    again = replace(_record("s1", platform="other", started=200.0), account="fan2")
    streams.start(again)
    assert streams.get("s1") == again, "counters, end and error are reset"


def test_list_newest_first_by_platform_with_a_limit(streams):
    for i, platform in enumerate(("tube", "other", "tube", "tube")):
        streams.start(_record(f"s{i}", platform=platform, started=100.0 + i))
    assert [s.id for s in streams.list()] == ["s3", "s2", "s1", "s0"]
    assert [s.id for s in streams.list(platform="tube", limit=2)] == ["s3", "s2"]
    assert streams.list(platform="nobody") == []
