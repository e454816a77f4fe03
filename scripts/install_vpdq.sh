#!/usr/bin/env bash
# Install Meta's vPDQ matcher (the `vpdq` PyPI package) for scripts/eval.py's comparison column.
#
# Only the full accuracy benchmark uses it; guard itself never needs it. Idempotent: does
# nothing when `import vpdq` already works. The package compiles against FFmpeg's development
# headers, found through pkg-config, so those come from Debian first.
set -euo pipefail

PYTHON="${PYTHON:-python}"

if "$PYTHON" -c "import vpdq" 2>/dev/null; then
    echo "vpdq already importable: nothing to do"
    exit 0
fi

PACKAGES=(libavdevice-dev libavfilter-dev libavformat-dev libavcodec-dev
          libswresample-dev libswscale-dev libavutil-dev pkg-config)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        build-essential "${missing[@]}"
fi

"$PYTHON" -m pip install --quiet vpdq
"$PYTHON" -c "import vpdq; print('vpdq installed:', vpdq.__file__)"
