#!/usr/bin/env bash
# Builds the whole project with AddressSanitizer and UndefinedBehaviorSanitizer in a
# build directory of its own and runs every ctest entry there; any report fails its
# test. A clean build takes about 35 minutes on 2 cores, the run about 7 (ccache is
# left alone: sanitized objects would only push the normal ones out of it).
#   scripts/sanitize.sh [BUILD_DIR]        (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-asan}
export TROUPE_VENV=${TROUPE_VENV:-$HOME/.cache/troupe/venv}
san="-fsanitize=address,undefined"
if [ ! -f "$out/CMakeCache.txt" ]; then
  # vptr checks are off: LibTorch and CAF are not instrumented, so they would misreport.
  cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Release -DTROUPE_DISABLE_CUDA=ON -DTROUPE_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS="$san -fno-omit-frame-pointer -fno-sanitize=vptr" \
    -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san"
fi
CCACHE_DISABLE=1 cmake --build "$out" -j "$(nproc)"
# Leaks are not checked (LibTorch and CAF keep process-lifetime allocations), nor are
# container annotations or allocator pairing, which uninstrumented LibTorch code trips.
export ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:alloc_dealloc_mismatch=0:new_delete_type_mismatch=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/sanitizers/ubsan.supp
ctest --test-dir "$out" --output-on-failure -j "$(nproc)" --timeout 1800
