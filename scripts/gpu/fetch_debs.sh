#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 packages that the GPU test machine lacks,
# into .deb/ for scripts/gpu/run.sh. Run on a Debian 12 machine with apt.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deb && cd .deb
apt-get download libcaf-dev libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17 \
  libzmq3-dev libzmq5 libsodium23 libpgm-5.3-0 libnorm1 cppzmq-dev \
  nlohmann-json3-dev libre2-dev libre2-9 libsqlite3-dev libsqlite3-0 libyaml-cpp-dev libyaml-cpp0.7 \
  libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian
du -sh .
