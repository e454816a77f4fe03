"""The incident store: create, grow, close, filter, review, evidence — on a real SQLite catalog."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from guard.config import Settings, WebhookSettings
from guard.errors import FormatError, NotFoundError
from guard.incidents import IncidentStore, segment_dict, to_timestamp
from guard.models import Fingerprint, Segment
from guard.service import Guard
from tests.live_helpers import WebhookReceiver


@pytest.fixture
def guard(tmp_path):
    settings = Settings(home=tmp_path / "home", allow_private_addresses=True,
                        webhook=WebhookSettings(backoff_initial=0.1))
    with Guard(settings) as g:
        yield g


def _register(guard: Guard, owner: str, title: str):
    rng = np.random.default_rng(len(title))
    signal = guard.fingerprinter.signal
    fp = Fingerprint(signal.name, signal.version, signal.bits, 4.0, 10.0, np.arange(40) / 4.0,
                     rng.integers(0, 256, (40, signal.code_bytes), dtype=np.uint8))
    return guard.register(fp, title=title, owner=owner, source="test", min_seconds=2.0)


def _segment(ref_id: int, start: float, end: float, offset: float = 10.0, score: float = 0.8) -> Segment:
    return Segment(reference_id=ref_id, reference_title="t", query_start=start, query_end=end,
                   reference_start=start + offset, reference_end=end + offset, offset=offset, rate=1.0,
                   matched_fraction=0.9, score=score, matched_frames=int((end - start) * 4), mean_distance=20.0)


def test_create_grow_close_and_get(guard):
    ref = _register(guard, "league", "Final")
    store: IncidentStore = guard.incidents
    now = time.time()
    incident = store.create(stream_id="s1", account="fan", platform="tube", reference=ref,
                            segments=[_segment(ref.id, 3.0, 6.0)], first_seen=now - 3, decided=now)
    assert (incident.status, incident.live, incident.owner, incident.policy) == ("open", True, "league", "flag")
    assert incident.query_start == 3.0 and incident.reference_start == 13.0
    assert incident.detection_seconds == pytest.approx(3.0)
    grown = store.extend(incident.id, [segment_dict(_segment(ref.id, 3.0, 12.0, score=0.7)),
                                       segment_dict(_segment(ref.id, 20.0, 25.0, offset=-5.0))])
    assert grown.query_end == 25.0 and grown.reference_start == 13.0 and len(grown.segments) == 2
    assert grown.score == pytest.approx(0.8), "the score never drops below the best seen"
    closed = store.close(incident.id)
    assert not closed.live and closed.ended is not None
    out = closed.to_dict()
    assert out["decided"].endswith("+00:00") and out["decided_ts"] == pytest.approx(now)
    assert out["duration"] == 22.0
    with pytest.raises(NotFoundError):
        store.get(999)


def test_list_filters_by_tenant_reference_stream_status_and_time(guard):
    league = _register(guard, "league", "Final")
    studio = _register(guard, "studio", "Movie")
    store = guard.incidents
    t0 = time.time()
    rows = [("s1", "tube", league, t0 - 100), ("s2", "tube", studio, t0 - 50), ("s3", "vid", league, t0)]
    ids = [store.create(stream_id=s, account="fan", platform=p, reference=r, segments=[_segment(r.id, 0, 5)],
                        first_seen=d - 2, decided=d).id for s, p, r, d in rows]
    assert [i.id for i in store.list()] == ids[::-1], "newest decision first"
    assert [i.id for i in store.list(owner="league")] == [ids[2], ids[0]]
    assert [i.id for i in store.list(platform="tube")] == [ids[1], ids[0]]
    assert [i.id for i in store.list(reference_id=studio.id)] == [ids[1]]
    assert [i.id for i in store.list(stream_id="s3")] == [ids[2]]
    assert [i.id for i in store.list(since=t0 - 60)] == [ids[2], ids[1]]
    iso_until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 - 60))
    assert [i.id for i in store.list(until=iso_until)] == [ids[0]]
    assert [i.id for i in store.list(owner="league", platform="vid")] == [ids[2]]
    assert store.count(owner="league") == 2
    assert [i.id for i in store.list(limit=1, offset=1)] == [ids[1]]
    store.review(ids[0], "confirm")
    assert [i.id for i in store.list(status="confirmed")] == [ids[0]]
    with pytest.raises(FormatError):
        store.list(status="weird")
    with pytest.raises(FormatError):
        to_timestamp("yesterday")


def test_review_and_allowlisting_through_the_service(guard):
    ref = _register(guard, "league", "Final")
    with WebhookReceiver("k") as receiver:
        guard.actions.add_endpoint("league", receiver.url, "k")
        incident = guard.incidents.create(stream_id="s", account="LeagueTV", platform="tube", reference=ref,
                                          segments=[_segment(ref.id, 0, 5)], first_seen=time.time())
        dismissed = guard.review_incident(incident.id, "dismiss", allowlist_account=True, note="licensed")
        assert dismissed.status == "dismissed" and dismissed.review_note == "licensed" and dismissed.reviewed
        assert guard.reference(ref.id).allowlist == ["LeagueTV"]
        updates = receiver.wait_for("incident.updated", 1, timeout=10)
        assert updates[0]["incident"]["status"] == "dismissed"
        assert guard.review_incident(incident.id, "confirm").status == "confirmed"
        assert guard.reference(ref.id).allowlist == ["LeagueTV"], "allowlisting is not repeated"
    with pytest.raises(FormatError):
        guard.review_incident(incident.id, "delete")
    with pytest.raises(NotFoundError):
        guard.review_incident(12345, "confirm")


def test_evidence_thumbnails_are_jpeg_in_the_catalog(guard):
    ref = _register(guard, "league", "Final")
    incident = guard.incidents.create(stream_id="s", account="a", platform="p", reference=ref,
                                      segments=[_segment(ref.id, 0, 5)], first_seen=time.time())
    image = np.zeros((90, 160, 3), np.uint8)
    image[:, :80] = (255, 0, 0)
    query = guard.incidents.add_evidence(incident.id, "query", 1.5, image)
    guard.incidents.add_evidence(incident.id, "reference", 11.5, image[:, ::-1])
    with pytest.raises(FormatError):
        guard.incidents.add_evidence(incident.id, "other", 0, image)
    listed = guard.incidents.get(incident.id).evidence
    assert [(e["kind"], e["media_time"], e["width"], e["height"]) for e in listed] == [
        ("query", 1.5, 160, 90), ("reference", 11.5, 160, 90)]
    decoded = np.asarray(Image.open(io.BytesIO(guard.incidents.evidence_jpeg(query.id))))
    assert decoded.shape == (90, 160, 3) and decoded[45, 20, 0] > 200 and decoded[45, 140, 0] < 50
    assert len(guard.incidents.evidence_jpeg(query.id)) < 10_000
    guard.incidents.mark_delivered(incident.id, 100.0)
    guard.incidents.mark_delivered(incident.id, 200.0)
    assert guard.incidents.get(incident.id).action_delivered == 100.0, "first delivery is kept"
