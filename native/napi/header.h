// The binding's calling convention: attention(header, q, k, v, out, lse, mask, keyLengths,
// alibiSlopes). `header` is a Float64Array holding every number of the call at these
// indices, so one call makes a handful of N-API requests instead of dozens of property
// lookups. This file is the one table: the addon exports it as `layout` (binding.cpp) and
// lib/backends/native.ts writes headers from that, refusing an addon that lacks a field.
#pragma once

namespace qkv {
namespace napi {

// Each field: its enum name, the name JavaScript knows it by, and its index. One list, from
// which both the enum below and the exported `layout` (binding.cpp) are made.
//   q/k/v/out/lse shapes: 4 values, then 4 strides (lse read only when lse is passed);
//   maskStrides: 4 values, read only when a mask is passed; diagonalOffset: diag(i) = i + it;
//   windowLeft/Right: -1 unbounded (right 0 with causal); threads: 0 the default;
//   maskKind: 0 none, 1 boolean, 2 additive; dtype: 0 float32, 1 float16, 2 bfloat16;
//   cudaDevice: 0 the CPU backend, n >= 1 CUDA device n - 1 (q, k, v may then be device buffers).
#define QKV_HEADER_FIELDS(X)                                                                     \
  X(kQShape, "qShape", 0) X(kKShape, "kShape", 8) X(kVShape, "vShape", 16) X(kOutShape, "outShape", 24) \
  X(kLseShape, "lseShape", 32) X(kMaskStrides, "maskStrides", 40) X(kScale, "scale", 44)               \
  X(kSoftcap, "softcap", 45) X(kDiagonalOffset, "diagonalOffset", 46) X(kWindowLeft, "windowLeft", 47) \
  X(kWindowRight, "windowRight", 48) X(kThreads, "threads", 49) X(kMaskKind, "maskKind", 50)           \
  X(kDType, "dtype", 51) X(kCudaDevice, "cudaDevice", 52) X(kHeaderLength, "length", 53)

enum HeaderField : int {
#define QKV_HEADER_ENUM(name, js, index) name = index,
  QKV_HEADER_FIELDS(QKV_HEADER_ENUM)
#undef QKV_HEADER_ENUM
};

}  // namespace napi
}  // namespace qkv
