# ccache makes a fresh clone's rebuild cheap; the cache itself lives outside the clone
# (CCACHE_DIR, set by scripts/setup.sh to ~/.cache/troupe/ccache) so CI clones share it.
find_program(TROUPE_CCACHE ccache)
if(TROUPE_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${TROUPE_CCACHE})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${TROUPE_CCACHE})
  message(STATUS "troupe: ccache at ${TROUPE_CCACHE}")
endif()
