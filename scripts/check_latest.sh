#!/usr/bin/env bash
# Knowing when the world moved: install the newest releases that pyproject.toml's ranges allow
# into a throwaway virtual environment, run the fast tests, and say which upgrades break what.
#
#   bash scripts/check_latest.sh            # fast tests (-m "not slow")
#   bash scripts/check_latest.sh tests/api  # or any pytest arguments
#
# Not part of CI. Run it before regenerating the lock files (scripts/lock.sh), and once a month.
# Output: a table of every package whose newest allowed version differs from requirements/test.lock,
# the tests that fail with the newest set, and, for each failure, which single upgrade (on top of
# the locked set) reproduces it. Bound what breaks in pyproject.toml with the reason beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pytest_args=("$@")
[ ${#pytest_args[@]} -eq 0 ] && pytest_args=(-m "not slow")

locked_versions() { # name==version lines of a lock file, names normalised
    grep -E '^[A-Za-z0-9_.-]+==' "$1" | sed -E 's/ .*//; s/\\$//' | tr 'A-Z_' 'a-z-' | sort
}

make_env() { # make_env DIR: a venv with the locked set and guard (no deps)
    python -m venv "$1"
    "$1/bin/pip" install -q --require-hashes -r requirements/test.lock
    "$1/bin/pip" install -q --no-deps -e .
}

failing_tests() { # failing_tests VENV OUT: node ids of failing tests into OUT
    "$1/bin/python" -m pytest -W error -q -p no:cacheprovider -rf "${@:3}" >"$2.log" 2>&1 || true
    { grep -E '^(FAILED|ERROR) ' "$2.log" || true; } | sed -E 's/^(FAILED|ERROR) //; s/ - .*//' | sort -u >"$2"
}

echo "== newest allowed versions"
python -m venv "$work/latest"
"$work/latest/bin/pip" install -q --upgrade --upgrade-strategy eager -e ".[test]"
"$work/latest/bin/pip" freeze --exclude-editable | tr 'A-Z_' 'a-z-' | sort >"$work/latest.txt"
locked_versions requirements/test.lock >"$work/locked.txt"
join -t= -j1 -o 1.1,1.2,2.2 <(sed 's/==/=/' "$work/locked.txt") <(sed 's/==/=/' "$work/latest.txt") \
    | awk -F= '$2 != $3 {printf "  %-28s %-14s -> %s\n", $1, $2, $3; print $1"=="$3 > "'"$work/upgrades.txt"'"}'
touch "$work/upgrades.txt"
[ -s "$work/upgrades.txt" ] || echo "  (the lock file already has the newest versions)"

echo "== fast tests with the newest versions: pytest ${pytest_args[*]}"
failing_tests "$work/latest" "$work/latest-failures" "${pytest_args[@]}"
if [ ! -s "$work/latest-failures" ]; then
    tail -n 1 "$work/latest-failures.log"
    echo "== nothing breaks: regenerate the lock with scripts/lock.sh"
    exit 0
fi
sed 's/^/  FAILED /' "$work/latest-failures"

echo "== which upgrade breaks what (each upgrade alone on top of the lock, failing tests only)"
mapfile -t failed <"$work/latest-failures"
make_env "$work/base"
failing_tests "$work/base" "$work/base-failures" "${failed[@]}"
if [ -s "$work/base-failures" ]; then
    echo "  fail with the locked versions too (not an upgrade):"
    sed 's/^/    /' "$work/base-failures"
fi
while read -r upgrade; do
    rm -rf "$work/one" && cp -a "$work/base" "$work/one"
    # venvs hard-code their path in scripts; run pip through the interpreter instead
    if ! "$work/one/bin/python" -m pip install -q "$upgrade" >"$work/one-install.log" 2>&1; then
        echo "  $upgrade: does not install beside the locked set"
        continue
    fi
    failing_tests "$work/one" "$work/one-failures" "${failed[@]}"
    if [ -s "$work/one-failures" ]; then
        echo "  $upgrade breaks:"
        sed 's/^/    /' "$work/one-failures"
    fi
done <"$work/upgrades.txt"
exit 1
