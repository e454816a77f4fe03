"""Act: incidents opened, grown and closed for live streams, scans and reviews alike — on a real
SQLite catalog through the repositories, with the real outbox and a webhook receiver on loopback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guard.act import Act, LiveCase, LiveStream
from guard.actions import ActionCenter
from guard.config import LiveSettings, WebhookSettings
from guard.errors import NotFoundError
from guard.incidents import IncidentStore
from guard.keyframes import keyframe
from guard.models import Fingerprint, Reference, Segment
from guard.monitor import SlidingWindow
from guard.signals import get_signal
from guard.storage import Database, ReferenceRepository
from tests.live_helpers import WebhookReceiver, wait_until

SECRET = "act-secret"
FAST = WebhookSettings(backoff_initial=0.1, backoff_max=0.4, timeout=2.0)
LIVE = LiveSettings(update_interval=5.0, incident_idle_seconds=10.0)


class Parts:
    """A catalog with its repositories, the outbox, and the Act wired over them."""

    def __init__(self, folder):
        self.database = Database(folder / "catalog.sqlite")
        self.references = ReferenceRepository(self.database)
        self.incidents = IncidentStore(self.database)
        self.outbox = ActionCenter(self.database, FAST, allow_private_addresses=True)
        self.stopped: list[str] = []
        self.act = Act(self.incidents, self.outbox, self.references, live=LIVE, stop_stream=self.stop_stream)

    def stop_stream(self, stream_id: str) -> dict:
        if not stream_id.startswith("live-"):
            raise NotFoundError(f"stream {stream_id} not found")
        self.stopped.append(stream_id)
        return {"id": stream_id, "status": "stopped"}

    def reference(self, title: str, *, policy: str = "flag", allowlist=(), keyframes: bool = True,
                  owner: str = "league") -> Reference:
        signal = get_signal("mhash16")
        rng = np.random.default_rng(len(title))
        track = Fingerprint(signal.name, signal.version, signal.bits, 4.0, 30.0, np.arange(120) / 4.0,
                            rng.integers(0, 256, (120, signal.code_bytes), dtype=np.uint8))
        pictures = [keyframe(t, _picture(int(t))) for t in np.arange(0.0, 30.0, 2.0)] if keyframes else []
        return self.references.add(owner=owner, title=title, policy=policy, min_seconds=2.0, source="test",
                                   tracks=[track], allowlist=list(allowlist), keyframes=pictures)

    def decisions(self, incident_id: int) -> list[str]:
        return [e.type for e in reversed(self.outbox.events(incident_id=incident_id))]

    def close(self):
        self.outbox.stop()
        self.database.close()


@pytest.fixture
def parts(tmp_path):
    made = Parts(tmp_path)
    yield made
    made.close()


class Stream:
    """A monitored stream's side of a live case: its window of frames, its listeners' notices."""

    def __init__(self, stream_id: str, account: str):
        self.id, self.account, self.status, self.incidents = stream_id, account, "live", 0
        self.window = SlidingWindow(60.0)
        times = np.arange(0.0, 40.0, 0.5)
        self.window.add(times, 5000.0 + times)
        self.window.add_thumbs(times, [_picture(int(t)) for t in times])
        self.notices: list[tuple[str, str, int | None, str | None]] = []

    def lend(self) -> LiveStream:
        return LiveStream(id=self.id, account=self.account, platform="tube", describe=self.describe,
                          arrival_at=self.window.arrival_at, frame_at=self.window.thumb_at, notify=self.notify,
                          opened=self.opened)

    def describe(self) -> dict:
        return {"id": self.id, "status": self.status, "incidents": self.incidents}

    def notify(self, event_type, detail, incident, event_id) -> None:
        self.notices.append((event_type, detail, None if incident is None else incident.id, event_id))

    def opened(self, cut: bool) -> None:
        self.incidents += 1
        if cut:
            self.status = "cut"

    def types(self) -> list[str]:
        return [notice[0] for notice in self.notices]


def _picture(seed: int) -> np.ndarray:
    image = np.zeros((90, 160, 3), np.uint8)
    image[:, : 10 * (seed % 16)] = (200, 40, 40)
    return image


def _segment(ref: Reference, start: float, end: float, offset: float = 10.2, score: float = 0.8) -> Segment:
    return Segment(reference_id=ref.id, reference_title=ref.title, query_start=start, query_end=end,
                   reference_start=start + offset, reference_end=end + offset, offset=offset, rate=1.0,
                   matched_fraction=0.9, score=score, matched_frames=int((end - start) * 4), mean_distance=20.0)


def test_a_live_case_opens_grows_updates_and_closes_an_incident(parts):
    ref = parts.reference("Final")
    stream = Stream("live-1", "pirate")
    case: LiveCase = parts.act.live_case(stream.lend())
    with WebhookReceiver(SECRET) as receiver:
        parts.outbox.add_endpoint("league", receiver.url, SECRET)
        t0 = 1_000.0
        assert case.decide([_segment(ref, 3.0, 6.0)], t0) is False
        [incident] = parts.incidents.list(stream_id="live-1")
        assert (incident.account, incident.platform, incident.owner) == ("pirate", "tube", "league") and incident.live
        assert incident.first_seen == pytest.approx(5003.0), "the first copied frame's arrival"
        assert case.open_incidents == [incident.id] and stream.incidents == 1 and stream.status == "live"
        evidence = parts.incidents.get(incident.id).evidence
        assert [(e["kind"], e["media_time"]) for e in evidence] == [("query", 3.0), ("reference", 14.0)]

        case.decide([_segment(ref, 3.0, 9.0)], t0 + 1)  # seen again: not written yet (WRITE_INTERVAL)
        assert parts.incidents.get(incident.id).query_end == 6.0
        case.decide([_segment(ref, 3.0, 12.0), _segment(ref, 20.0, 24.0, offset=-5.0)], t0 + 3)
        grown = parts.incidents.get(incident.id)
        assert (grown.query_end, len(grown.segments)) == (24.0, 2) and grown.live
        assert parts.decisions(incident.id) == ["incident.flagged"], "no update before update_interval"
        case.decide([_segment(ref, 3.0, 14.0, score=0.9)], t0 + 6)
        assert parts.decisions(incident.id) == ["incident.flagged", "incident.updated"]
        queried = [e["media_time"] for e in parts.incidents.get(incident.id).evidence if e["kind"] == "query"]
        assert queried == [3.0, 7.0, 11.0, 20.0], "evidence pairs added as the copy grows, one every 4 s"

        case.close_idle(t0 + 15)
        assert parts.incidents.get(incident.id).live, "idle for 9 s only"
        case.close_idle(t0 + 16)
        closed = parts.incidents.get(incident.id)
        assert not closed.live and closed.ended == t0 + 16 and case.open_incidents == []
        assert closed.score == pytest.approx(0.9) and closed.query_start == 3.0 and closed.query_end == 24.0
        assert parts.decisions(incident.id) == ["incident.flagged", "incident.updated", "incident.updated"]
        assert stream.types() == ["incident.flagged", "incident.updated", "incident.updated"]
        assert stream.notices[-1][1] == "copy no longer seen"

        assert wait_until(lambda: parts.incidents.get(incident.id).action_delivered is not None, 10)
        assert len(receiver.wait_for("incident.updated", 2, timeout=10)) == 2
        flagged = receiver.of_type("incident.flagged")
        assert [e["incident"]["id"] for e in flagged] == [incident.id]
        assert flagged[0]["stream"] == {"id": "live-1", "status": "live", "incidents": 1}
        assert receiver.bad_signatures == 0

    assert case.decide([_segment(ref, 30.0, 34.0)], t0 + 20) is False
    assert len(parts.incidents.list(stream_id="live-1")) == 2, "a copy after the close is a new incident"
    case.close_all(t0 + 21, "stream ended")
    assert not any(i.live for i in parts.incidents.list(stream_id="live-1"))
    assert stream.notices[-1][:2] == ("incident.updated", "stream ended")


def test_cut_policy_cuts_the_stream_once(parts):
    ref = parts.reference("Final", policy="cut")
    stream = Stream("live-2", "pirate")
    case = parts.act.live_case(stream.lend())
    assert case.decide([_segment(ref, 3.0, 6.0)], 1_000.0) is True
    assert case.decide([_segment(ref, 3.0, 9.0)], 1_001.0) is True, "a cut stream stays cut"
    [incident] = parts.incidents.list(stream_id="live-2")
    [cut] = parts.outbox.events(incident_id=incident.id)
    body = json.loads(cut.body)
    assert cut.type == "stream.cut" and body["stream"] == {"id": "live-2", "status": "cut", "incidents": 1}
    assert case.open_incidents == [] and stream.types() == ["stream.cut"]


def test_an_allowlisted_account_makes_no_incident(parts):
    ref = parts.reference("Final", policy="cut", allowlist=["LeagueTV"])
    stream = Stream("live-3", " leaguetv ")
    case = parts.act.live_case(stream.lend())
    for now in (1_000.0, 1_001.0):
        assert case.decide([_segment(ref, 3.0, 6.0 + now - 1_000.0)], now) is False
    assert parts.incidents.list() == [] and parts.outbox.events() == []
    assert stream.types() == ["stream.allowlisted"], "said once"
    assert parts.act.record_scan(stream={"id": "scan:1"}, account="LEAGUETV", platform="tube",
                                 segments=[_segment(ref, 3.0, 6.0)]) == []


def test_scan_results_make_one_closed_incident_per_reference(parts):
    final = parts.reference("Final")
    movie = parts.reference("Movie", policy="cut", keyframes=False)  # a hash-only import
    gone = parts.reference("Gone")
    parts.references.remove(gone.id)
    asked = []

    def frame_at(t: float):
        asked.append(t)
        return t + 0.5, _picture(int(t))

    segments = [_segment(final, 20.0, 25.0), _segment(movie, 2.0, 8.0, offset=1.0), _segment(final, 4.0, 9.0),
                _segment(gone, 1.0, 5.0)]
    stream = {"id": "scan:7", "kind": "scan", "job_id": 7, "account": "pirate", "path": "copy.mp4"}
    made = parts.act.record_scan(stream=stream, account="pirate", platform="tube", segments=segments,
                                 frame_at=frame_at)
    assert [i.reference_id for i in made] == [final.id, movie.id]
    assert all(i.stream_id == "scan:7" and not i.live and i.ended for i in made)
    assert [len(i.segments) for i in made] == [2, 1] and made[0].query_start == 4.0
    assert asked == [4.0, 8.0, 20.0, 24.0, 2.0, 6.0], "evidence along each copied stretch, every 4 s"
    assert [(e["kind"], e["media_time"]) for e in made[0].evidence][:4] == [
        ("query", 4.5), ("reference", 14.0), ("query", 8.5), ("reference", 18.0)]
    assert [e["kind"] for e in made[1].evidence] == ["query", "query"], "no keyframes: no reference picture"
    assert [parts.decisions(i.id) for i in made] == [["incident.flagged"], ["stream.cut"]]
    [cut] = parts.outbox.events(incident_id=made[1].id)
    assert json.loads(cut.body)["stream"] == stream and parts.stopped == []


def test_review_confirm_on_cut_takes_down_once_and_dismiss_allowlists(parts):
    ref = parts.reference("Final")
    stream = Stream("live-4", "Pirate")
    case = parts.act.live_case(stream.lend())
    case.decide([_segment(ref, 3.0, 6.0)], 1_000.0)
    [incident] = parts.incidents.list(stream_id="live-4")
    parts.references.update(ref.id, policy="cut")
    for _ in range(2):
        assert parts.act.review(incident.id, "confirm", note="clear copy").status == "confirmed"
    assert parts.stopped == ["live-4"], "the stream is stopped once"
    assert parts.decisions(incident.id) == ["incident.flagged", "incident.updated", "stream.cut", "incident.updated"]
    takedown = json.loads(parts.outbox.events(incident_id=incident.id)[1].body)
    assert takedown["type"] == "stream.cut" and takedown["stream"] == {"id": "live-4", "status": "stopped"}

    [scanned] = parts.act.record_scan(stream={"id": "scan:9"}, account="Licensed-TV", platform="tube",
                                      segments=[_segment(ref, 1.0, 5.0)])
    parts.act.review(scanned.id, "confirm")
    assert parts.decisions(scanned.id) == ["stream.cut", "incident.updated"], "already taken down by its scan"
    dismissed = parts.act.review(scanned.id, "dismiss", allowlist_account=True, note="licensed")
    assert (dismissed.status, dismissed.review_note) == ("dismissed", "licensed")
    parts.act.review(scanned.id, "dismiss", allowlist_account=True)
    assert parts.references.get(ref.id).allowlist == ["Licensed-TV"], "allowlisted once"
    assert parts.act.record_scan(stream={"id": "scan:10"}, account="licensed-tv", platform="tube",
                                 segments=[_segment(ref, 1.0, 5.0)]) == []
    with pytest.raises(NotFoundError):
        parts.act.review(12345, "confirm")


# -- ownership conflicts (issue 15) --------------------------------------------------------------


def _owners_of(parts, incident_id: int) -> list[str]:
    return sorted(e.owner for e in parts.outbox.events(incident_id=incident_id))


def test_a_scan_copy_two_owners_claim_is_one_conflict_incident_that_is_never_cut_by_itself(parts):
    feed = parts.reference("Game 7 feed", policy="cut", owner="league")
    version = parts.reference("Game 7 on TV", policy="cut", owner="broadcaster")
    other = parts.reference("Another game", owner="league")
    segments = [_segment(feed, 2.0, 30.0, score=0.9), _segment(version, 2.5, 29.0, score=0.6),
                _segment(other, 40.0, 50.0)]
    made = parts.act.record_scan(stream={"id": "scan:1"}, account="pirate", platform="tube", segments=segments)
    conflict, alone = sorted(made, key=lambda i: i.reference_id)
    assert (conflict.reference_id, conflict.conflict, conflict.owners) == (feed.id, True, ["league", "broadcaster"])
    assert [c["reference_id"] for c in conflict.claims] == [version.id]
    assert (alone.reference_id, alone.conflict) == (other.id, False)
    assert parts.decisions(conflict.id) == ["incident.flagged", "incident.flagged"], "flagged, not cut: owners disagree"
    assert _owners_of(parts, conflict.id) == ["broadcaster", "league"], "every owner is told"
    assert [i.id for i in parts.incidents.list(owner="broadcaster")] == [conflict.id]
    assert {i.id for i in parts.incidents.list(owner="league")} == {conflict.id, alone.id}
    assert [i.id for i in parts.incidents.list(reference_id=version.id)] == [conflict.id]
    # Each owner decides for its own reference: the broadcaster's confirmation applies its cut policy.
    parts.act.review(conflict.id, "confirm", reviewer="broadcaster")
    assert "stream.cut" in parts.decisions(conflict.id)
    parts.act.review(conflict.id, "dismiss", allowlist_account=True, reviewer="league")
    assert parts.references.get(feed.id).allowlist == ["pirate"] and parts.references.get(version.id).allowlist == []


def test_references_of_one_owner_never_make_a_conflict(parts):
    first = parts.reference("Feed", owner="league")
    second = parts.reference("Replay", owner="league")
    made = parts.act.record_scan(stream={"id": "scan:2"}, account="pirate", platform="tube",
                                 segments=[_segment(first, 2.0, 30.0), _segment(second, 2.0, 30.0, score=0.5)])
    assert sorted(i.reference_id for i in made) == [first.id, second.id]
    assert not any(i.conflict for i in made)


def test_a_live_conflict_is_one_incident_claimed_as_the_other_owner_appears(parts):
    feed = parts.reference("Feed", policy="cut", owner="league")
    version = parts.reference("Version", owner="broadcaster")
    stream = Stream("live-9", "pirate")
    case = parts.act.live_case(stream.lend())
    assert case.decide([_segment(feed, 3.0, 9.0, score=0.9)], 1_000.0) is True, "no rival yet: the cut policy applies"

    stream = Stream("live-10", "pirate")
    case = parts.act.live_case(stream.lend())
    assert case.decide([_segment(version, 3.0, 9.0, score=0.6)], 2_000.0) is False
    [incident] = parts.incidents.list(stream_id="live-10")
    assert (incident.reference_id, incident.conflict) == (version.id, False)
    assert case.decide([_segment(feed, 3.0, 12.0, score=0.9), _segment(version, 3.0, 12.0, score=0.6)],
                       2_001.0) is False, "the league joins the open incident: a conflict is not cut"
    [incident] = parts.incidents.list(stream_id="live-10")
    assert incident.conflict and incident.owners == ["broadcaster", "league"]
    assert "stream.allowlisted" not in stream.types() and stream.status == "live"
    assert _owners_of(parts, incident.id).count("league") >= 1, "the new claimant hears of it"
    case.decide([_segment(feed, 3.0, 14.0, score=0.9)], 2_003.0)
    assert len(parts.incidents.list(stream_id="live-10")) == 1, "the claimant's segments open nothing more"
