#!/usr/bin/env bash
# Sets up whatever is missing, builds, and runs the flagship experiment: GRPO on
# char-level arithmetic (examples/grpo_arithmetic.yaml; its curves land in
# <run>/plots.svg), then lists the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TROUPE_BUILD=${TROUPE_BUILD:-build}
"$TROUPE_BUILD/cli/troupe" run examples/grpo_arithmetic.yaml "$@"
"$TROUPE_BUILD/cli/troupe" runs list
