// The CUDA backend's host code (native/cuda/host.cu) and kernels compiled by the C++
// compiler over the runtime shim: QKV_CUDA=SHIM builds an addon whose backend 'cuda' runs
// on the CPU, so the host path is tested end to end from JavaScript without a GPU.
#include "cuda_runtime_shim.h"
// (first: it defines the CUDA qualifiers and the runtime API host.cu uses)
#include "../host.cu"
