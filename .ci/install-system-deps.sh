#!/usr/bin/env bash
# System packages the tests need (idempotent; apt packages only).
#  - ffmpeg: the CLI publishes RTMP/HTTP-FLV in listen mode and SRT in the live-monitoring tests,
#    and guard relays SRT through it (PyAV's bundled FFmpeg has no libsrt).
set -euo pipefail
if command -v ffmpeg >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends ffmpeg
