# LibTorch comes from the pinned PyPI torch wheel in the project virtualenv
# (scripts/setup.sh; TROUPE_VENV, default ~/.cache/troupe/venv). We ask that Python for
# torch.utils.cmake_prefix_path rather than using a system libtorch: Debian's is 1.13 on a
# reference BLAS, 16x slower (DESIGN.md "Facts found").
if(NOT Torch_DIR)
  if(DEFINED ENV{TROUPE_VENV})
    set(_troupe_venv "$ENV{TROUPE_VENV}")
  else()
    set(_troupe_venv "$ENV{HOME}/.cache/troupe/venv")
  endif()
  find_program(TROUPE_TORCH_PYTHON python3 PATHS "${_troupe_venv}/bin" NO_DEFAULT_PATH)
  if(NOT TROUPE_TORCH_PYTHON)
    message(FATAL_ERROR "troupe: no virtualenv at ${_troupe_venv}; run scripts/setup.sh "
                        "(or set TROUPE_VENV / -DTorch_DIR=...)")
  endif()
  execute_process(
    COMMAND "${TROUPE_TORCH_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET RESULT_VARIABLE _torch_rc)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "troupe: ${TROUPE_TORCH_PYTHON} cannot import torch; run scripts/setup.sh")
  endif()
  set(Torch_DIR "${_torch_prefix}/Torch")
  # The wheel's own build tag ("2.11.0+cu130") and CUDA version, for `troupe version`.
  execute_process(
    COMMAND "${TROUPE_TORCH_PYTHON}" -c "import torch; print(torch.__version__, torch.version.cuda or 'none')"
    OUTPUT_VARIABLE _torch_tags OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  separate_arguments(_torch_tags)
  list(GET _torch_tags 0 TROUPE_TORCH_BUILD)
  list(GET _torch_tags 1 TROUPE_TORCH_CUDA)
endif()
if(NOT TROUPE_TORCH_BUILD)
  set(TROUPE_TORCH_BUILD "unknown")
  set(TROUPE_TORCH_CUDA "unknown")
endif()

# The wheel is a CUDA build. Its CMake config wants the CUDA toolkit to describe the CUDA
# libraries; the architectures must be explicit because `native` fails without a GPU.
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90a)
endif()
if(NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "9.0a")
endif()
find_package(Torch REQUIRED)
# TORCH_CXX_FLAGS carries the C++ ABI flag; it must match every object linked with torch.
string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=([01])" _abi "${TORCH_CXX_FLAGS}")
message(STATUS "troupe: LibTorch ${Torch_VERSION} at ${Torch_DIR} (${_abi})")

# Torch headers are slow (about 37 s per file on 2 cores): they go into one precompiled
# header that every torch-using source of a target shares. Targets that use torch call
# troupe_use_torch(target).
function(troupe_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_include_directories(${target} SYSTEM PUBLIC ${TORCH_INCLUDE_DIRS})
  target_precompile_headers(${target} PRIVATE ${PROJECT_SOURCE_DIR}/policies/torch_pch.hpp)
endfunction()
