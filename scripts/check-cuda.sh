#!/usr/bin/env bash
# Compiles every CUDA kernel with nvcc for sm_80 and sm_90 (no GPU needed) and fails on any
# local-memory spill reported by ptxas; then runs the same kernel source on the CPU through
# the shim (qkv_cuda_shim_test) against the float64 reference.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvcc >/dev/null; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  for cu in native/cuda/*.cu; do
    for arch in 80 90; do
      log=$(nvcc -std=c++17 -arch=sm_$arch -Xptxas -v -Inative/include -c "$cu" -o "$out/kernel.o" 2>&1)
      echo "$log" | grep -E "registers|spill" | sed "s|^|$(basename "$cu") sm_$arch: |"
      if echo "$log" | grep -E "[1-9][0-9]* bytes spill (stores|loads)" >/dev/null; then
        echo "local-memory spills in $cu for sm_$arch" >&2
        exit 1
      fi
    done
  done
else
  echo "nvcc not found: skipping the CUDA compile check (the shim tests still run)"
fi
cmake -S . -B build-test -DQKV_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-test -j 2 --target qkv_cuda_shim_test
./build-test/qkv_cuda_shim_test
