#!/usr/bin/env bash
# Sets up whatever is missing, builds, and runs the whole test suite (ctest). This is
# the README's second command and all that .ci/run does.
#
# No silent skips: a skipped test passes in ctest's count, so the list of skips is
# checked here. Without a GPU only the CUDA tests (suites named *cuda) may skip; with
# one, nothing may.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/setup.sh
TROUPE_BUILD=${TROUPE_BUILD:-build}
echo "[test] running ctest in $TROUPE_BUILD"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ctest --test-dir "$TROUPE_BUILD" --output-on-failure -j "$(nproc)" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# "   65 - suite.name  # GetParam() = ... (Skipped)" -> suite.name
skipped=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" | grep '(Skipped)$' |
          sed -E 's/^[[:space:]]*[0-9]+ - ([^ ]+).*/\1/' || true)
if nvidia-smi -L >/dev/null 2>&1; then allowed='^$'; gpu="a GPU"; else allowed='^[A-Za-z0-9_/]*cuda\.'; gpu="no GPU"; fi
unexpected=$(printf '%s\n' "$skipped" | grep -v '^$' | grep -Ev "$allowed" || true)
echo "[test] $(printf '%s\n' "$skipped" | grep -c . || true) tests skipped (this machine has $gpu)"
if [ -n "$unexpected" ]; then
  echo "[test] FAILED: these tests skipped, and only the CUDA tests may skip, and only without a GPU:" >&2
  printf '  %s\n' $unexpected >&2
  status=1
fi
# Nor tests that vanish: some exist only when setup found their tools (the fuzzers need
# clang, the external-environment tests cppzmq and the reference server's Python
# modules). setup.sh installs those, so here each group must be in the suite.
listed=$(ctest --test-dir "$TROUPE_BUILD" -N)
for group in 'fuzz\.' 'external_env_test\.' 'env_protocol\.' 'chaos\.'; do
  if ! grep -Eq "Test +#[0-9]+: $group" <<<"$listed"; then
    echo "[test] FAILED: no tests matching '$group' in the suite (did setup install clang, cppzmq, python3-zmq?)" >&2
    status=1
  fi
done
echo "[test] setup, build and tests took $((SECONDS - start)) s"
exit "$status"
