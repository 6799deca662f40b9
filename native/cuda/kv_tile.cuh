// Staging a tile of keys and values into shared memory, shared by the CUDA kernels (same
// source for nvcc and the CPU shim).
#pragma once

#include <cstdint>

#include "qkv/attention.h"

namespace qkv {
namespace cuda {

// k_tile[c][d] = K[b, hk, k0 + c, d] and v_tile likewise, for c < Keys; zero for keys at or
// past `hi` and for d past the head dims. Threads first, first + stride, … of the block each
// copy their share; the caller synchronises around it. With `v_exponent` (the exponent bits
// of a 16-bit format: 0x7c00 float16, 0x7f80 bfloat16), returns whether this thread staged a
// V value that is NaN or Inf (all exponent bits set); otherwise false.
template <int Keys, int Dim, class T>
__device__ __forceinline__ bool stage_kv_tile(const AttentionArgs& a, long long b, long long hk, long long k0, long long hi,
                                              T (*k_tile)[Dim], T (*v_tile)[Dim], int first, int stride,
                                              std::uint16_t v_exponent = 0) {
  const T* k = static_cast<const T*>(a.k.data);
  const T* v = static_cast<const T*>(a.v.data);
  const long long D = a.k.shape[3], Dv = a.v.shape[3];
  bool nonfinite = false;
  for (int i = first; i < Keys * Dim; i += stride) {
    const int c = i / Dim, d = i % Dim;
    const long long j = k0 + c;
    const bool in = j < hi;
    k_tile[c][d] = in && d < D ? k[b * a.k.strides[0] + hk * a.k.strides[1] + j * a.k.strides[2] + d * a.k.strides[3]] : T(0);
    const T value = in && d < Dv ? v[b * a.v.strides[0] + hk * a.v.strides[1] + j * a.v.strides[2] + d * a.v.strides[3]] : T(0);
    v_tile[c][d] = value;
    if (v_exponent != 0) nonfinite = nonfinite || (static_cast<unsigned>(value) & v_exponent) == v_exponent;
  }
  return nonfinite;
}

}  // namespace cuda
}  // namespace qkv
