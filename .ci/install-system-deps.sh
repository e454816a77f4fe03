#!/usr/bin/env bash
# System packages the tests need (idempotent; apt packages only). Each is checked on its own, so a
# machine that already has some of them gets only the missing ones.
#  - ffmpeg: the CLI publishes RTMP/HTTP-FLV in listen mode and SRT in the live-monitoring tests,
#    and guard relays SRT through it (PyAV's bundled FFmpeg has no libsrt).
#  - chromium, chromium-driver: Debian's browser, driven by Playwright in the review console's
#    browser tests (tests/api/test_ui.py); Playwright never downloads a browser.
set -euo pipefail
declare -A command_of=([ffmpeg]=ffmpeg [chromium]=chromium [chromium-driver]=chromedriver)
missing=()
for package in ffmpeg chromium chromium-driver; do
    if ! command -v "${command_of[$package]}" >/dev/null 2>&1; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
