#!/usr/bin/env python
"""Screenshots of the review console's main views for the README, at desktop and phone width.

Builds a scene on loopback: ``guard serve`` over a fresh store with two references, a scanned
upload and a live UDP stream (published by Debian's ffmpeg) that copy one of them, and a few
older incidents; then signs in with headless Debian chromium and saves PNGs to ``docs/``:
``ui-{incidents,incident,streams,references}-{desktop,phone}.png`` (1280 px and 360 px wide).

    python scripts/screenshots.py              # writes docs/ui-*.png
    python scripts/screenshots.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ui  # noqa: E402 (scripts/ is not a package)

#: (name, width, height) of the two viewports.
VIEWPORTS = (("desktop", 1280, 800), ("phone", 360, 760))
LIVE_TIMEOUT = 90.0


def build_scene(work: Path):
    """A running server with references, a scanned copy, a live copy and older incidents;
    returns ``(server, keys, incident id to show, publisher)``."""
    from guard_synth import broadcast as synth
    from tests.live_helpers import (
        FFmpegPublisher, encode, free_port, reference_frames, stream_frames, udp_port_bound, wait_until,
    )
    from tests.server_helpers import Api, GuardServer

    home = work / "store"
    bench_ui.make_store(home, 12)  # older incidents on a "League final" reference of the league
    reference = encode(work / "final.mp4", reference_frames(7, 20))
    live = encode(work / "live.ts", stream_frames(copy_seed=7, copy_from=6.0, lead=3.0, copy=12.0, tail=20.0,
                                                  transform=synth.logo))
    upload = encode(work / "upload.mp4", stream_frames(copy_seed=7, copy_from=2.0, lead=2.0, copy=8.0, tail=1.0,
                                                       other_seed=555))
    keys = {"league": bench_ui.create_key(home, "rights_holder", "league"),
            "tube": bench_ui.create_key(home, "platform", "tube")}
    server = GuardServer(home, work / "server.log", {"GUARD_ALLOW_PRIVATE_ADDRESSES": "true"}).start()
    league, tube = Api(server.port, keys["league"]), Api(server.port, keys["tube"])

    def finished(path: str, api: Api) -> dict:
        job: dict = {}
        wait_until(lambda: job.update(api.json("GET", path)[1]) or job["status"] in ("done", "failed"), 120, 0.2)
        return job

    _, job = league.upload("/v1/references", reference, {"title": "Cup final 2026", "policy": "cut",
                                                        "min_seconds": "3", "allowlist": "official-tv"})
    finished(f"/v1/jobs/{job['id']}", league)
    _, job = tube.upload("/v1/scans", upload, {"account": "fan-uploader"})
    scan = finished(f"/v1/scans/{job['id']}", tube)
    port = free_port("udp")
    tube.json("POST", "/v1/streams", {"url": f"udp://127.0.0.1:{port}", "account": "pirate-tv",
                                      "stream_id": "match-night"})
    wait_until(lambda: udp_port_bound(port), 15)
    publisher = FFmpegPublisher(live, f"udp://127.0.0.1:{port}?pkt_size=1316").start()
    wait_until(lambda: any(not i["stream_id"].startswith("scan:") and i["reference_title"] == "Cup final 2026"
                           for i in tube.json("GET", "/v1/incidents?live=true")[1]["items"]), LIVE_TIMEOUT, 0.5)
    shown = (scan.get("result") or {}).get("incidents") or [1]
    return server, keys, shown[0], publisher


def shoot(base: str, keys: dict[str, str], incident_id: int, out: Path) -> list[Path]:
    """Sign in per viewport and save one PNG per view; returns the files written."""
    from playwright.sync_api import sync_playwright

    written = []
    views = (("incidents", "league", "#/incidents", "#incidents tbody tr"),
             ("incident", "league", f"#/incidents/{incident_id}", "#alignment-plot"),
             ("references", "league", "#/references", "#references tbody tr"),
             ("streams", "tube", "#/streams", "#streams tbody tr"))
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        for label, width, height in VIEWPORTS:
            browser = bench_ui.open_browser(playwright, Path(profile) / label, width, height)
            try:
                for view, tenant, hash_, ready in views:
                    page = browser.new_page()
                    bench_ui.sign_in(page, base, keys[tenant])
                    page.goto(f"{base}/ui/{hash_}")
                    page.wait_for_selector(ready)
                    time.sleep(1.0)  # thumbnails arrive as blobs after the view renders
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    path = out / f"ui-{view}-{label}.png"
                    page.screenshot(path=str(path))
                    written.append(path)
                    page.close()
            finally:
                browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        server, keys, incident_id, publisher = build_scene(Path(work))
        try:
            files = shoot(f"http://127.0.0.1:{server.port}", keys, incident_id, args.out)
        finally:
            publisher.stop()
            server.stop()
    for path in files:
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
