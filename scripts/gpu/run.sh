#!/usr/bin/env bash
# The GPU check, run on a GPU test machine like DESIGN.md's "GPU recipe" (Ubuntu 24.04,
# CUDA 13.0, LibTorch inside its Python torch, no network):
#   1. unpacks the Debian packages it lacks from .deb/ into a prefix (not /),
#   2. builds troupe against that machine's LibTorch for Hopper (sm_90a),
#   3. runs the GPU tests and the GPU benchmarks,
#   4. writes a log and the figures into OUT.
#   scripts/gpu/run.sh OUT
# .deb/ is filled on a Debian 12 machine with scripts/gpu/fetch_debs.sh and travels with
# the tree (git ignores it).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/run.sh OUT}
mkdir -p "$out"
log="$out/gpu.log"
exec > >(tee "$log") 2>&1
start=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - start)); }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nvcc --version | tail -1
py=$(command -v python3)
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

step "unpacking $(ls .deb/*.deb | wc -l) Debian packages"
prefix=/tmp/troupe-deps
rm -rf "$prefix" && mkdir -p "$prefix"
for f in .deb/*.deb; do dpkg -x "$f" "$prefix"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
# The shared SQLite only: its static, non-PIC libsqlite3.a cannot go into our shared libs.
rm -f "$lib/libsqlite3.a"
export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$prefix/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$prefix"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "configure"
build=build-gpu
rm -f "$build/CMakeCache.txt"  # found libraries are cached; the prefix may have changed
TROUPE_VENV=$(dirname "$(dirname "$py")") cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix/usr" -DTROUPE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTORCH_CUDA_ARCH_LIST=9.0a \
  -DCMAKE_CXX_FLAGS="-include cstdint" || exit 1
# (-include cstdint: that machine's g++ 13 no longer pulls <cstdint> in through other
# standard headers, and CAF 0.17's and yaml-cpp 0.7's headers rely on it.)

step "build"
cmake --build "$build" -j "$(nproc)" || exit 1

step "troupe version"
"$build/cli/troupe" version

step "GPU tests (and the CPU parity tests, on this machine's LibTorch)"
# (cuda matches nccl_weight_transport_cuda.*: the NCCL weight transport, one rank.)
ctest --test-dir "$build" -R 'cuda|hf_parity|generation|checkpoint|trainer|losses' --output-on-failure \
  -j 4 | tee "$out/ctest.txt"
tests_rc=${PIPESTATUS[0]}

step "GPU benchmarks"
big=$build/bench-models/llama-110m
[ -f "$big/config.json" ] || "$py" bench/make_bench_model.py "$big"
{
  for dtype in float32 bfloat16; do
    for b in 1 16 64; do
      "$build/bench/generate_bench" --model "$big" --batch "$b" --new 64 --prompt 32 --device cuda --dtype "$dtype"
    done
  done
} | tee "$out/generate_bench.txt"
"$build/bench/fp8_bench" --benchmark_counters_tabular=true | tee "$out/fp8_bench.txt"
# A full resync of Qwen2-0.5B shapes (random weights) over NCCL, one rank sending to
# itself: bf16 raw and FP8, single- and double-buffered (about a minute).
for dtype in bfloat16 float32; do
  timeout 300 "$build/bench/weight_transport_bench" --device cuda --model qwen2-0.5b --dtype "$dtype" --rounds 5
done | tee "$out/weight_transport_bench.txt"

step "done (tests rc=$tests_rc)"
exit "$tests_rc"
