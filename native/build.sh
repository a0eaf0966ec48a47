#!/usr/bin/env bash
# Configures and builds native/ with CMake + nvcc. Called by Maven (javacpp plugin, phase
# generate-resources); runs on its own too:  bash native/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${OPT_BUILD_DIR:-target/native-build}"
ARCHS="${OPT_CUDA_ARCHS:-80;86;89;90}"
JOBS="${OPT_JOBS:-$(nproc)}"
CUDA_HOME="${OPT_CUDA_HOME:-${CUDA_HOME:-/usr/local/cuda}}"

NVCC="${CUDACXX:-}"
if [ -z "$NVCC" ]; then
  if command -v nvcc >/dev/null 2>&1; then NVCC="$(command -v nvcc)"; else NVCC="$CUDA_HOME/bin/nvcc"; fi
fi
if [ ! -x "$NVCC" ]; then
  echo "native/build.sh: nvcc not found (looked on PATH and in $CUDA_HOME/bin)." >&2
  echo "Install the CUDA 13 toolkit, set CUDA_HOME / -Dcuda.home, or build Java only with -DskipNative." >&2
  exit 1
fi

cmake -S native -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" "-DCMAKE_CUDA_COMPILER=$NVCC" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
