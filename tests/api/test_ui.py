"""The review console in a real browser: Debian's chromium driven by Playwright against a real
``guard serve`` on loopback, a live UDP stream published by FFmpeg, a scanned upload and a
signed-webhook receiver. No browser download: chromium comes from apt (.ci/install-system-deps.sh).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from guard_synth import broadcast as synth

from ..live_helpers import (
    FFmpegPublisher, WebhookReceiver, encode, free_port, reference_frames, stream_frames, udp_port_bound, wait_until,
)
from ..server_helpers import Api, GuardServer, load_script

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path("/usr/bin/chromium").exists() and shutil.which("ffmpeg")),
                       reason="needs Debian's chromium and ffmpeg (.ci/install-system-deps.sh)"),
]

sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
bench_ui = load_script("bench_ui")

SECRET = "ui-test-webhook-secret-0123456789"
REF_SEED = 7
CUP_SEED = 8
#: Short timeouts, so that a broken page fails in seconds, not minutes (milliseconds).
STEP_MS = 20_000
LIVE_MS = 60_000


@pytest.fixture(scope="module")
def ui_media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ui-media")
    return {
        "reference": encode(folder / "reference.mp4", reference_frames(REF_SEED, 20)),
        "live": encode(folder / "live.ts", stream_frames(copy_seed=REF_SEED, copy_from=6.0, lead=3.0, copy=10.0,
                                                         tail=2.0, transform=synth.logo)),
        "upload": encode(folder / "upload.mp4", stream_frames(copy_seed=REF_SEED, copy_from=2.0, lead=2.0,
                                                              copy=8.0, tail=1.0, other_seed=555)),
        "idle": encode(folder / "idle.ts", stream_frames(copy_seed=None, lead=4.0, copy=0, tail=0, other_seed=77)),
        # another game, registered by the league and, with its own logo, by a broadcaster
        "cup": encode(folder / "cup.mp4", reference_frames(CUP_SEED, 16)),
        "cup-tv": encode(folder / "cup-tv.mp4", (synth.logo(f, "bl", 0.1, seed=3)
                                                 for f in reference_frames(CUP_SEED, 16))),
        "cup-copy": encode(folder / "cup-copy.mp4", stream_frames(copy_seed=CUP_SEED, copy_from=2.0, lead=2.0,
                                                                   copy=10.0, tail=1.0, other_seed=556,
                                                                   transform=synth.logo)),
    }


class Console:
    """A running ``guard serve`` with keys per tenant, one reference and a webhook receiver."""

    def __init__(self, server: GuardServer, keys: dict[str, str], receiver: WebhookReceiver, reference_id: int):
        self.server, self.keys, self.receiver, self.reference_id = server, keys, receiver, reference_id
        self.base = f"http://127.0.0.1:{server.port}"

    def api(self, tenant: str) -> Api:
        return Api(self.server.port, self.keys[tenant])

    def call(self, tenant: str, method: str, path: str, payload=None):
        status, body = self.api(tenant).json(method, path, payload)
        assert status < 300, (method, path, status, body)
        return body

    def wait_job(self, tenant: str, path: str, timeout: float = 60.0) -> dict:
        job: dict = {}
        assert wait_until(lambda: job.update(self.call(tenant, "GET", path)) or job["status"] in ("done", "failed"),
                          timeout, 0.2), job
        assert job["status"] == "done", job
        return job


@pytest.fixture(scope="module")
def console(tmp_path_factory, ui_media):
    work = tmp_path_factory.mktemp("ui-server")
    home = work / "store"
    env = {"GUARD_ALLOW_PRIVATE_ADDRESSES": "true", "GUARD_JOB_WORKERS": "1",
           "GUARD_LIVE": json.dumps({"stall_timeout": 2.0, "give_up_after": 3.0, "reconnect_initial": 0.2,
                                     "reconnect_max": 1.0, "open_timeout": 5.0}),
           "GUARD_WEBHOOK": json.dumps({"backoff_initial": 0.2, "backoff_max": 1.0, "timeout": 2.0})}
    keys = {tenant: bench_ui.create_key(home, role, owner) for tenant, role, owner in (
        ("nba", "rights_holder", "nba"), ("fifa", "rights_holder", "fifa"), ("yt", "platform", "yt"))}
    with WebhookReceiver(SECRET) as receiver:
        server = GuardServer(home, work / "server.log", env).start()
        try:
            status, job = Api(server.port, keys["nba"]).upload(
                "/v1/references", ui_media["reference"], {"title": "League final", "policy": "flag",
                                                          "min_seconds": "3"})
            assert status == 202, job
            made = Console(server, keys, receiver, 0)
            made.reference_id = made.wait_job("nba", f"/v1/jobs/{job['id']}")["result"]["reference"]["id"]
            made.call("nba", "POST", "/v1/webhooks", {"url": receiver.url, "secret": SECRET})
            yield made
        finally:
            server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")  # empty: a fresh user-data-dir
    with sync_playwright() as playwright:
        context = bench_ui.open_browser(playwright, profile, 1280, 900)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page()  # a new tab: its own, empty sessionStorage
    tab.set_default_timeout(STEP_MS)
    outside = []
    tab.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "blob:", "data:"))
           else outside.append(request.url))
    yield tab
    tab.close()
    assert outside == [], f"the page made requests beyond guard: {outside}"


def _start_stream(console: Console, source: Path, own_id: str, account: str) -> tuple[str, FFmpegPublisher]:
    port = free_port("udp")
    url = f"udp://127.0.0.1:{port}"
    stream = console.call("yt", "POST", "/v1/streams", {"url": url, "account": account, "stream_id": own_id})
    assert wait_until(lambda: udp_port_bound(port), 15), "guard never listened on the UDP port"
    return stream["id"], FFmpegPublisher(source, f"{url}?pkt_size=1316").start()


def _scan(console: Console, upload: Path, account: str) -> dict:
    status, job = console.api("yt").upload("/v1/scans", upload, {"account": account})
    assert status == 202, job
    return console.wait_job("yt", f"/v1/scans/{job['id']}")


def test_rights_holder_reviews_live_and_scanned_copies_and_others_see_neither(console, ui_media, page):
    bench_ui.sign_in(page, console.base, console.keys["nba"])
    assert page.locator("#who").inner_text() == "nba · rights holder"
    assert page.locator("a[data-section=streams]").is_hidden()
    assert page.evaluate("() => sessionStorage.length") == 1 and page.evaluate("() => localStorage.length") == 0
    page.wait_for_selector("#incidents td.empty")

    # A live copy: the row appears in the open list, without any reload.
    stream_id, publisher = _start_stream(console, ui_media["live"], "match-1", "pirate-tv")
    try:
        row = page.wait_for_selector("#incidents tbody tr[data-id]", timeout=LIVE_MS)
        live_id = int(row.get_attribute("data-id"))
        assert "stream match-1" in row.inner_text() and "League final" in row.inner_text()

        # Policy from flag to cut through the references page, then confirm: the takedown goes out.
        page.click("a[data-section=references]")
        page.click(f"button[data-edit='{console.reference_id}']")
        page.fill("#e-policy", "cut")
        page.click("#ask-ok")
        page.wait_for_selector(f"#references tr[data-id='{console.reference_id}'] >> text=cut")
        assert console.call("nba", "GET", f"/v1/references/{console.reference_id}")["policy"] == "cut"

        page.click("a[data-section=incidents]")
        page.click(f"#incidents tr[data-id='{live_id}'] a")
        page.wait_for_selector("#alignment-plot")
        assert page.locator("#alignment-plot line.segment").count() >= 1
        assert page.locator("#alignment-plot circle.match").count() >= 1
        assert page.locator("#alignment-plot circle.frame-match").count() >= 5, "the matched frames"
        assert page.locator("#alignment-plot rect.bounds").count() == 1
        assert page.locator("#modality").inner_text() == "video"
        page.wait_for_function("() => [...document.querySelectorAll('#pairs img')].some(i => i.naturalWidth > 0)")
        first_pair = page.locator("#pairs figure.pair").first
        assert first_pair.locator("img").count() == 2, "the copy's frame beside the reference frame"
        page.click("#confirm")
        page.click("#ask-ok")
        page.wait_for_selector("#incident-status.confirmed")
        [cut] = console.receiver.wait_for("stream.cut", 1, timeout=20)
        assert cut["incident"]["id"] == live_id  # signature checked by the receiver
        page.wait_for_selector("#deliveries li[data-type='stream.cut'] >> text=delivered")
        assert console.call("yt", "GET", f"/v1/streams/{stream_id}")["status"] in ("cut", "stopped", "ended")
    finally:
        publisher.stop()

    # A scanned upload: dismissed with the account allowlisted, the account no longer triggers.
    account = "fan-uploader"
    [scan_incident] = _scan(console, ui_media["upload"], account)["result"]["incidents"]
    page.click("a[href='#/incidents']")
    page.click(f"#incidents tr[data-id='{scan_incident}'] a")
    page.click("#dismiss")
    page.check("#ask-allowlist")
    page.click("#ask-ok")
    page.wait_for_selector("#incident-status.dismissed")
    assert account in console.call("nba", "GET", f"/v1/references/{console.reference_id}")["allowlist"]
    rescan = _scan(console, ui_media["upload"], account)
    assert rescan["result"]["incidents"] == [] and rescan["result"]["matches"], "matched, yet no incident"

    # Sign out clears the key; another rights holder sees neither incident.
    page.click("#sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.evaluate("() => sessionStorage.length") == 0
    bench_ui.sign_in(page, console.base, console.keys["fifa"])
    page.wait_for_selector("#incidents td.empty")
    assert page.locator("#incidents tr[data-id]").count() == 0
    page.goto(f"{console.base}/ui/#/incidents/{live_id}")
    page.wait_for_selector("#view .error >> text=not found")


def test_platform_sees_its_streams_and_stops_one(console, ui_media, page):
    stream_id, publisher = _start_stream(console, ui_media["idle"], "lobby-cam", "good-channel")
    try:
        bench_ui.sign_in(page, console.base, console.keys["yt"])
        assert page.locator("a[data-section=references]").is_hidden()
        page.click("a[data-section=streams]")
        row = page.wait_for_selector(f"#streams tr[data-id='{stream_id}']")
        assert "good-channel" in row.inner_text()
        page.wait_for_function("id => { const img = document.querySelector(`img[data-stream='${id}']`);"
                               " return img && !img.hidden && img.naturalWidth > 0; }", arg=stream_id, timeout=20_000)
        page.click(f"button[data-stop='{stream_id}']")
        page.click("#ask-ok")
        page.wait_for_selector(f"#streams tr[data-id='{stream_id}'] >> text=stopped")
        assert console.call("yt", "GET", f"/v1/streams/{stream_id}")["status"] == "stopped"
        assert page.locator(f"button[data-stop='{stream_id}']").count() == 0
    finally:
        publisher.stop()
    # a platform may look at the page's references section only to be told it may not
    page.goto(f"{console.base}/ui/#/references")
    page.wait_for_selector("#view h1 >> text=Not available")


def test_two_owners_of_one_footage_both_see_one_conflict_incident(console, ui_media, page):
    """The league and a broadcaster register the same game; the broadcaster's page says the
    upload overlaps the league's reference; a copy makes one incident, a conflict, that each of
    them sees in the list and opens with every claimant named."""
    status, job = console.api("nba").upload("/v1/references", ui_media["cup"], {"title": "Cup final"})
    assert status == 202, job
    console.wait_job("nba", f"/v1/jobs/{job['id']}")

    bench_ui.sign_in(page, console.base, console.keys["fifa"])
    page.click("a[data-section=references]")
    page.set_input_files("#upload input[type=file]", str(ui_media["cup-tv"]))
    page.fill("#upload input[name=title]", "Cup final (TV)")
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#u-progress-label >> text=Overlap", timeout=LIVE_MS)
    assert "Cup final" in page.locator("#u-progress-label").inner_text()

    [incident_id] = _scan(console, ui_media["cup-copy"], "cup-pirate")["result"]["incidents"]
    for tenant in ("fifa", "nba"):
        if tenant == "nba":
            page.click("#sign-out")
            bench_ui.sign_in(page, console.base, console.keys["nba"])
        page.click("a[href='#/incidents']")
        row = page.wait_for_selector(f"#incidents tr[data-id='{incident_id}']", timeout=LIVE_MS)
        assert "conflict" in row.inner_text()
        page.click(f"#incidents tr[data-id='{incident_id}'] a")
        note = page.wait_for_selector("section.conflict-note")
        assert "Cup final (TV)" in note.inner_text() and "nba" in note.inner_text() and "fifa" in note.inner_text()
