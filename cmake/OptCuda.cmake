# CUDA settings shared by every target in native/.
#
# Architectures: CUDA 13 dropped Volta (sm_70 is a fatal configure error), an unset value means nvcc's
# default (75), and "native" fails on a machine without a GPU, so the list is always explicit.
# Ampere (80, 86), Ada (89) and Hopper (90) get SASS; 90 also carries PTX for newer cards to JIT.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES 80 86 89 90 CACHE STRING "CUDA architectures" FORCE)
endif()

# Link the shared cudart (libcudart.so.13): the same single runtime the bytedeco JNI libraries use,
# so one process never holds two CUDA runtimes.
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CXX_STANDARD 17)

# Warnings: host side through nvcc's -Xcompiler, device side as nvcc reports them.
function(opt_cuda_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra --Werror=all-warnings>
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
endfunction()
