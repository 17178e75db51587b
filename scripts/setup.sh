#!/usr/bin/env bash
# Sets up whatever is missing to build troupe on Debian 12, then builds it. Idempotent:
# on a machine that already has everything, it only runs an incremental build.
#
#   scripts/setup.sh            # packages, virtualenv with torch, configure, build
#
# What it keeps outside the clone, so that a second clone on the same machine reuses it
# (override with the variables):
#   TROUPE_CACHE  ~/.cache/troupe            the root of what follows
#   TROUPE_VENV   $TROUPE_CACHE/venv         Python virtualenv holding torch==2.11.0,
#                                            whose LibTorch CMake builds against
#   CCACHE_DIR    $TROUPE_CACHE/ccache       compiler cache
#   TROUPE_BUILD  build                      the build folder, inside the clone
set -euo pipefail
cd "$(dirname "$0")/.."

TROUPE_CACHE=${TROUPE_CACHE:-$HOME/.cache/troupe}
export TROUPE_VENV=${TROUPE_VENV:-$TROUPE_CACHE/venv}
export CCACHE_DIR=${CCACHE_DIR:-$TROUPE_CACHE/ccache}
# The precompiled torch header only hits the cache with these (ccache's PCH docs).
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Paths below the clone are hashed relative to it, so a fresh clone elsewhere hits the
# cache that an earlier clone filled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
TROUPE_BUILD=${TROUPE_BUILD:-build}
# The GPU test machine's LibTorch version (DESIGN.md "GPU recipe"); CPU and GPU builds
# use the same one.
TORCH_VERSION=2.11.0

say() { printf '[setup] %s\n' "$*"; }

# --- Debian packages ------------------------------------------------------------------
packages=(build-essential cmake pkg-config ccache python3-venv
          libcaf-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libboost-dev
          libyaml-cpp-dev nlohmann-json3-dev libre2-dev libsqlite3-dev libssl-dev
          libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev
          python3-zmq python3-msgpack)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all present"
fi

# --- virtualenv with the pinned torch --------------------------------------------------
torch_ok() {
  "$TROUPE_VENV/bin/python" - "$TORCH_VERSION" 2>/dev/null <<'PY'
import sys, torch
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
PY
}
if [ -x "$TROUPE_VENV/bin/python" ] && torch_ok; then
  say "torch $TORCH_VERSION: present in $TROUPE_VENV"
else
  say "creating $TROUPE_VENV with torch==$TORCH_VERSION (a CUDA build with its CUDA libraries: several GB, a few minutes)"
  mkdir -p "$(dirname "$TROUPE_VENV")"
  [ -x "$TROUPE_VENV/bin/python" ] || python3 -m venv "$TROUPE_VENV"
  "$TROUPE_VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION"
  torch_ok || { echo "[setup] torch $TORCH_VERSION did not import from $TROUPE_VENV" >&2; exit 1; }
fi

# --- configure and build ------------------------------------------------------------
mkdir -p "$CCACHE_DIR"
if [ ! -f "$TROUPE_BUILD/CMakeCache.txt" ]; then
  say "configuring $TROUPE_BUILD"
  cmake -S . -B "$TROUPE_BUILD" -DCMAKE_BUILD_TYPE=Release
fi
say "building (ccache in $CCACHE_DIR)"
cmake --build "$TROUPE_BUILD" -j "$(nproc)"
ccache --show-stats 2>/dev/null | grep -E "Hits|Misses|hit rate" | sed 's/^/[setup] ccache /' || true
