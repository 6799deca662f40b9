// nvcc translation unit for the tensor-core attention kernel (compile and spill check).
#include "attention_mma.cuh"

// Both instantiations, so nvcc compiles (and ptxas reports on) each.
template __global__ void qkv::cuda::attention_mma<qkv::cuda::Float16>(qkv::AttentionArgs, qkv::MaskRules);
template __global__ void qkv::cuda::attention_mma<qkv::cuda::BFloat16>(qkv::AttentionArgs, qkv::MaskRules);
