#!/usr/bin/env bash
# Sets up whatever is missing, builds, and runs the flagship experiment (for now the
# smoke experiment, until the GRPO flagship lands), then lists the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TROUPE_BUILD=${TROUPE_BUILD:-build}
"$TROUPE_BUILD/cli/troupe" run examples/smoke.yaml "$@"
"$TROUPE_BUILD/cli/troupe" runs list
