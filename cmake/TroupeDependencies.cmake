# Debian packages (scripts/setup.sh installs them). Packages with a CMake config are found
# directly; CAF (no config) through cmake/FindCAF.cmake; ZeroMQ, RE2 and SQLite through
# pkg-config, which is how their Debian packages describe themselves.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(CAF 0.17.6 REQUIRED)
# libssl: caf_openssl's TLS, and `troupe cluster certs` writes certificates with it.
find_package(OpenSSL REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
# ZeroMQ and msgpack carry the external-environment protocol, which is not built yet:
# found when present (scripts/setup.sh installs them), not required, so that the GPU
# machine's build (scripts/gpu/run.sh) needs neither them nor msgpack's Boost.
find_package(msgpack CONFIG QUIET)  # target msgpackc-cxx; needs Boost headers
find_package(cppzmq QUIET)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
if(TROUPE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(TROUPE_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
