"""IncidentRepository (incidents and evidence) on a real SQLite catalog file."""

from __future__ import annotations

import pytest

from guard.errors import NotFoundError
from guard.storage.incidents import IncidentRepository
from guard.storage.records import IncidentFilters
from guard.store import Catalog


@pytest.fixture
def incidents(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield IncidentRepository(catalog)
    catalog.close()


def _segment(start: float, end: float, score: float = 0.8) -> dict:
    return {"query_start": start, "query_end": end, "reference_start": start + 10, "reference_end": end + 10,
            "offset": 10.0, "rate": 1.0, "matched_fraction": 0.9, "score": score, "matched_frames": 12,
            "mean_distance": 20.0}


def _create(incidents: IncidentRepository, *, stream_id: str = "s1", owner: str = "league", platform: str = "tube",
            reference_id: int = 1, decided: float = 1000.0) -> int:
    segment = _segment(3.0, 6.0)
    return incidents.create(stream_id=stream_id, account="fan", platform=platform, reference_id=reference_id,
                            reference_title="Final", owner=owner, policy="flag", score=0.8,
                            span=(3.0, 6.0, 13.0, 16.0), segments=[segment], first_seen=decided - 3,
                            decided=decided)


def test_create_and_get(incidents):
    incident = incidents.get(_create(incidents))
    assert (incident.status, incident.live, incident.owner, incident.platform, incident.policy) == (
        "open", True, "league", "tube", "flag")
    assert (incident.query_start, incident.query_end, incident.reference_start, incident.reference_end) == (
        3.0, 6.0, 13.0, 16.0)
    assert incident.segments == [_segment(3.0, 6.0)] and incident.updated == incident.decided == 1000.0
    assert incident.action_delivered is None and incident.evidence == []
    with pytest.raises(NotFoundError, match="incident 999 not found"):
        incidents.get(999)


def test_set_segments_grows_the_span_and_never_lowers_the_score(incidents):
    incident_id = _create(incidents)
    incidents.set_segments(incident_id, [_segment(3.0, 20.0, score=0.5)], span=(3.0, 20.0, 13.0, 30.0), score=0.5,
                           updated=1010.0)
    grown = incidents.get(incident_id)
    assert (grown.query_end, grown.score, grown.updated) == (20.0, 0.8, 1010.0)
    incidents.set_segments(incident_id, [_segment(3.0, 25.0, score=0.9)], span=(3.0, 25.0, 13.0, 35.0), score=0.9,
                           updated=1020.0)
    assert incidents.get(incident_id).score == 0.9


def test_close_and_mark_delivered_keep_the_first_time(incidents):
    incident_id = _create(incidents)
    incidents.close(incident_id, when=1050.0)
    incidents.close(incident_id, when=1060.0)
    incidents.mark_delivered(incident_id, when=1001.0)
    incidents.mark_delivered(incident_id, when=1002.0)
    incident = incidents.get(incident_id)
    assert (incident.live, incident.ended, incident.updated, incident.action_delivered) == (
        False, 1050.0, 1060.0, 1001.0)


def test_set_status_records_the_review(incidents):
    incident_id = _create(incidents)
    incidents.set_status(incident_id, "dismissed", note="licensed", reviewed=1100.0)
    incident = incidents.get(incident_id)
    assert (incident.status, incident.review_note, incident.reviewed, incident.updated) == (
        "dismissed", "licensed", 1100.0, 1100.0)


def test_list_and_count_filter_newest_decision_first(incidents):
    a = _create(incidents, owner="league", platform="tube", decided=1000.0)
    b = _create(incidents, owner="league", platform="other", decided=2000.0, stream_id="s2")
    c = _create(incidents, owner="studio", platform="tube", decided=3000.0, reference_id=2)
    incidents.close(b, when=2100.0)
    incidents.set_status(c, "confirmed", note=None, reviewed=3100.0)
    assert [i.id for i in incidents.list()] == [c, b, a]
    cases = {
        IncidentFilters(owner="league"): [b, a],
        IncidentFilters(platform="tube"): [c, a],
        IncidentFilters(live=False): [b],
        IncidentFilters(live=True): [c, a],
        IncidentFilters(status="confirmed"): [c],
        IncidentFilters(reference_id=2): [c],
        IncidentFilters(stream_id="s2"): [b],
        IncidentFilters(since=2000.0): [c, b],
        IncidentFilters(until=2000.0): [a],
        IncidentFilters(owner="league", since=1500.0, until=2500.0): [b],
    }
    for filters, expected in cases.items():
        assert [i.id for i in incidents.list(filters)] == expected, filters
        assert incidents.count(filters) == len(expected), filters
    assert [i.id for i in incidents.list(limit=1, offset=1)] == [b]
    assert incidents.count() == 3
    assert incidents.counts_by_status() == {"open": 2, "confirmed": 1}


def test_evidence_is_stored_listed_and_read_back(incidents):
    incident_id = _create(incidents)
    query = incidents.add_evidence(incident_id, kind="query", media_time=3.5, width=64, height=36,
                                   jpeg=b"\xff\xd8query", created=1001.0)
    reference = incidents.add_evidence(incident_id, kind="reference", media_time=13.5, width=64, height=36,
                                       jpeg=b"\xff\xd8ref", created=1002.0)
    assert (query.incident_id, query.kind, query.media_time, query.width, query.height, query.created) == (
        incident_id, "query", 3.5, 64, 36, 1001.0)
    assert incidents.evidence(incident_id) == [query, reference]
    assert incidents.evidence(_create(incidents)) == []
    assert incidents.evidence_jpeg(reference.id) == b"\xff\xd8ref"
    with pytest.raises(NotFoundError, match="evidence 999 not found"):
        incidents.evidence_jpeg(999)
