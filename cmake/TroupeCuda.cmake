# CUDA and NCCL are optional and auto-detected. With a toolkit (even on a machine without
# a GPU) the CUDA sources compile, so CI checks them; without one they are left out.
include(CheckLanguage)
check_language(CUDA)
set(TROUPE_HAVE_CUDA OFF)
set(TROUPE_HAVE_NCCL OFF)
if(CMAKE_CUDA_COMPILER AND NOT TROUPE_DISABLE_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(TROUPE_HAVE_CUDA ON)
  set(TROUPE_CUDA_VERSION "${CUDAToolkit_VERSION}")
  # NCCL is not part of FindCUDAToolkit: look beside the toolkit, then in the system.
  find_path(TROUPE_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(TROUPE_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(TROUPE_NCCL_INCLUDE_DIR AND TROUPE_NCCL_LIBRARY)
    set(TROUPE_HAVE_NCCL ON)
    file(STRINGS "${TROUPE_NCCL_INCLUDE_DIR}/nccl.h" _nccl_v REGEX "#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE ".*NCCL_MAJOR ([0-9]+).*NCCL_MINOR ([0-9]+).*NCCL_PATCH ([0-9]+).*"
      "\\1.\\2.\\3" TROUPE_NCCL_VERSION "${_nccl_v}")
  endif()
endif()
message(STATUS "troupe: CUDA ${TROUPE_HAVE_CUDA} ${TROUPE_CUDA_VERSION}, NCCL ${TROUPE_HAVE_NCCL} ${TROUPE_NCCL_VERSION}")
