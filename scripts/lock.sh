#!/usr/bin/env bash
# Regenerate the lock files from the ranges in pyproject.toml (run after changing a range):
#   requirements/test.lock  — runtime + test extras, exact versions with hashes (what CI installs)
#   requirements/guard.lock — runtime + the demo extra, the same versions as test.lock (the README's first command)
# Needs `uv` (https://docs.astral.sh/uv); a throwaway copy is installed when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(command -v uv || true)
if [ -z "$UV" ]; then
    tool_env=$(mktemp -d)
    trap 'rm -rf "$tool_env"' EXIT
    python -m venv "$tool_env" && "$tool_env/bin/pip" install -q uv
    UV="$tool_env/bin/uv"
fi
common=(--generate-hashes --python-platform linux --python-version 3.11 --quiet --custom-compile-command "bash scripts/lock.sh")
"$UV" pip compile pyproject.toml --extra test "${common[@]}" -o requirements/test.lock "$@"
"$UV" pip compile pyproject.toml --extra demo -c requirements/test.lock "${common[@]}" -o requirements/guard.lock "$@"
echo "requirements/test.lock and requirements/guard.lock written" >&2
