// d = a·b + c for one m16n8k16 tile per warp: f16 inputs in .f16x2 registers (low half = the
// lower-numbered element), f32 accumulators, lane layout in mma_layout.h. On the GPU the
// tensor-core instruction; on the shim a warp-collective emulation of it.
#pragma once

#include <cstdint>

#include "../core/half.h"
#include "mma_layout.h"

namespace qkv {
namespace cuda {

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                                                 const float c[4]) {
#if defined(QKV_CUDA_SHIM)
  qkv_shim::mma_m16n8k16<f16_to_float>(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// The same for bfloat16 inputs.
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                                                  const float c[4]) {
#if defined(QKV_CUDA_SHIM)
  qkv_shim::mma_m16n8k16<bf16_to_float>(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// The 16-bit input types of the tensor-core kernels: conversion and matching mma.
struct Float16 {
  static constexpr std::uint16_t kExponent = 0x7c00;  // all set: Inf or NaN
  __device__ static std::uint16_t from_float(float x) { return float_to_f16(x); }
  __device__ static float to_float(std::uint16_t x) { return f16_to_float(x); }
  __device__ static void mma(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4]) {
    mma_m16n8k16_f16(d, a, b, c);
  }
};
struct BFloat16 {
  static constexpr std::uint16_t kExponent = 0x7f80;
  __device__ static std::uint16_t from_float(float x) { return float_to_bf16(x); }
  __device__ static float to_float(std::uint16_t x) { return bf16_to_float(x); }
  __device__ static void mma(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4]) {
    mma_m16n8k16_bf16(d, a, b, c);
  }
};

// One warp: D[16][8] = A[16][16] · B[16][8] + C, with A row-major and B given as Bᵀ [8][16]
// (n-major, i.e. "col"), all f16 bits except C and D. Loads each lane's fragments through
// MmaLayout: the tile test of the fragment layout on both the GPU and the shim.
__global__ void mma_tile_f16(const std::uint16_t* A, const std::uint16_t* Bt, const float* C, float* D) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  std::uint32_t a[4], b[2];
  for (int r = 0; r < 4; ++r) {
    const int lo = 2 * r, hi = 2 * r + 1;
    a[r] = static_cast<std::uint32_t>(A[MmaLayout::a_row(lane, lo) * 16 + MmaLayout::a_col(lane, lo)]) |
           static_cast<std::uint32_t>(A[MmaLayout::a_row(lane, hi) * 16 + MmaLayout::a_col(lane, hi)]) << 16;
  }
  for (int r = 0; r < 2; ++r) {
    const int lo = 2 * r, hi = 2 * r + 1;
    b[r] = static_cast<std::uint32_t>(Bt[MmaLayout::b_col(lane, lo) * 16 + MmaLayout::b_row(lane, lo)]) |
           static_cast<std::uint32_t>(Bt[MmaLayout::b_col(lane, hi) * 16 + MmaLayout::b_row(lane, hi)]) << 16;
  }
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[MmaLayout::c_row(lane, i) * 8 + MmaLayout::c_col(lane, i)];
  mma_m16n8k16_f16(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[MmaLayout::c_row(lane, i) * 8 + MmaLayout::c_col(lane, i)] = d[i];
}

}  // namespace cuda
}  // namespace qkv
