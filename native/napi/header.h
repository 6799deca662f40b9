// The binding's calling convention: attention(header, q, k, v, out, lse, mask, keyLengths,
// alibiSlopes). `header` is a Float64Array holding every number of the call at these
// indices, so one call makes a handful of N-API requests instead of dozens of property
// lookups. This file is the one table: the addon exports it as `layout` (binding.cpp) and
// lib/backends/native.ts writes headers from that, refusing an addon that lacks a field.
#pragma once

namespace qkv {
namespace napi {

enum HeaderField : int {
  kQShape = 0,       // 4 values, then 4 strides
  kKShape = 8,
  kVShape = 16,
  kOutShape = 24,
  kLseShape = 32,    // 4 + 4, read only when lse is passed
  kMaskStrides = 40, // 4 values, read only when mask is passed
  kScale = 44,
  kSoftcap = 45,
  kDiagonalOffset = 46,  // diag(i) = i + offset (AttentionArgs::diagonal_offset)
  kWindowLeft = 47,      // -1 unbounded
  kWindowRight = 48,     // -1 unbounded; 0 with causal
  kThreads = 49,         // 0 default
  kMaskKind = 50,        // 0 none, 1 boolean, 2 additive
  kDType = 51,           // 0 float32, 1 float16, 2 bfloat16 (q, k, v and out)
  kCudaDevice = 52,      // 0: the CPU backend; n >= 1: CUDA device n - 1 (q, k, v may then be device buffers)
  kHeaderLength = 53,
};

}  // namespace napi
}  // namespace qkv
