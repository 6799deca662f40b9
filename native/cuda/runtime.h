// The CUDA runtime for host code: the real one under nvcc, the CPU emulation
// (shim/cuda_runtime_shim.h) when the shim build includes host.cu from a C++ file.
#pragma once

#if defined(QKV_CUDA_SHIM)
#include "shim/cuda_runtime_shim.h"
#else
#include <cuda_runtime.h>

#define QKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<grid, block, 0, stream>>>(__VA_ARGS__)
// Only the shim can tell device pointers from host ones (one address space there).
#define QKV_EXPECT_DEVICE(pointer, bytes) true
#endif
