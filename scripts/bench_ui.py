#!/usr/bin/env python
"""Page-load budget of the review console: the incident list of 1,000 incidents in a real browser.

Makes a store with one reference and ``--incidents`` incidents on it, starts ``guard serve`` on
127.0.0.1, signs in to ``/ui`` in headless Debian chromium (Playwright, no browser download) and
measures, ``--runs`` times, how long the list takes from navigation to the last row rendered
(``#/incidents?rows=N``: the page fetches the rows in pages of 500 and renders them). Prints a
Markdown table; the goal is under 1 s. Everything stays on loopback and is stopped at the end.

    python scripts/bench_ui.py                 # 1,000 incidents, 5 runs
    python scripts/bench_ui.py --incidents 200 --runs 3

Also home of the browser launcher the UI tests and ``scripts/screenshots.py`` share.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Debian's chromium (``apt-get install chromium``); Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
GOAL_SECONDS = 1.0


def open_browser(playwright, user_data_dir: Path, width: int = 1280, height: int = 800):
    """A headless chromium with an empty profile in ``user_data_dir`` (a persistent context)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": width, "height": height}, accept_downloads=True)


def sign_in(page, base: str, key: str) -> None:
    """Open the console and sign in with ``key``; returns once the incident list is shown."""
    page.goto(f"{base}/ui/")
    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#incidents", timeout=15000)


def create_key(home: Path, role: str, owner: str) -> str:
    """``guard keys create`` in a subprocess; returns the key it prints once."""
    out = subprocess.run([sys.executable, "-m", "guard", "--home", str(home), "keys", "create", "--role", role,
                          "--owner", owner], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().split()[-1]


def make_store(home: Path, incidents: int) -> None:
    """A store with one small reference and ``incidents`` closed incidents on it."""
    from guard.config import Settings
    from guard.models import Segment
    from guard.service import Guard
    from tests.server_helpers import clip

    video = clip(home.parent / "ref.mp4", 1, 6.0)
    with Guard(Settings(home=home), roles=("api",)) as guard:
        ref = guard.ingest(video, title="League final", owner="league", policy="flag", min_seconds=2.0)
        now = time.time()
        for n in range(incidents):
            start = float(n % 40)
            segment = Segment(ref.id, ref.title, start, start + 8.0, 1.0, 9.0, 1.0 - start, 1.0, 0.9,
                              0.8 + (n % 20) / 100, 40, 3.0)
            incident = guard.incidents.create(
                stream_id=f"tube-1a2b3c4d:live-{n}" if n % 3 else f"scan:{n}", account=f"account{n % 50}",
                platform="tube", reference=ref, segments=[segment], first_seen=now - n * 60, decided=now - n * 60)
            guard.incidents.close(incident.id, when=now - n * 60 + 30)


def measure(base: str, key: str, incidents: int, runs: int) -> list[float]:
    """Seconds from navigation to the whole list rendered, per run (a fresh tab each time)."""
    from playwright.sync_api import sync_playwright

    times = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = open_browser(playwright, Path(profile))
        try:
            page = browser.new_page()
            sign_in(page, base, key)
            for _ in range(runs):
                page.goto(f"{base}/ui/#/streams")  # away from the list, then back
                page.wait_for_selector("#view h1")
                started = time.perf_counter()
                page.goto(f"{base}/ui/#/incidents?rows={incidents}")
                page.wait_for_function("n => document.body.dataset.incidentsRendered === n", arg=str(incidents),
                                       timeout=30000)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")  # painted
                times.append(time.perf_counter() - started)
                page.evaluate("() => { delete document.body.dataset.incidentsRendered; }")
        finally:
            browser.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from tests.server_helpers import GuardServer

    with tempfile.TemporaryDirectory() as work:
        home = Path(work) / "store"
        made = time.perf_counter()
        make_store(home, args.incidents)
        print(f"store with {args.incidents} incidents made in {time.perf_counter() - made:.1f} s", file=sys.stderr)
        key = create_key(home, "admin", "ops")
        server = GuardServer(home, Path(work) / "server.log").start()
        try:
            times = measure(f"http://127.0.0.1:{server.port}", key, args.incidents, args.runs)
        finally:
            server.stop()
    print("| incidents | runs | median s | best s | worst s | goal |")
    print("|---:|---:|---:|---:|---:|---|")
    verdict = "met" if statistics.median(times) < GOAL_SECONDS else "MISSED"
    print(f"| {args.incidents} | {len(times)} | {statistics.median(times):.3f} | {min(times):.3f} | "
          f"{max(times):.3f} | < {GOAL_SECONDS:g} s: {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
