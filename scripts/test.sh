#!/usr/bin/env bash
# Sets up whatever is missing, builds, and runs the whole test suite (ctest). This is
# the README's second command and all that .ci/run does.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/setup.sh
TROUPE_BUILD=${TROUPE_BUILD:-build}
echo "[test] running ctest in $TROUPE_BUILD"
ctest --test-dir "$TROUPE_BUILD" --output-on-failure -j "$(nproc)"
echo "[test] setup, build and tests took $((SECONDS - start)) s"
