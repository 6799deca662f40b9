// The interval rules of the mask geometry (a diagonal and a window around it; causal is a
// right edge of 0) and of key lengths, shared by every kernel. They make each query row's
// visible keys one interval [lo, hi), so kernels can skip whole key blocks; the element masks
// (boolean/additive) then act inside it.
#pragma once

#include <cmath>
#include <cstdint>

#include "qkv/attention.h"

#if defined(__CUDACC__) || defined(QKV_CUDA_SHIM)
#define QKV_HOST_DEVICE __host__ __device__
#else
#define QKV_HOST_DEVICE
#endif

namespace qkv {

struct KeyInterval {
  std::int64_t lo;
  std::int64_t hi;  // exclusive; hi <= lo means no visible key
};

struct MaskRules {
  std::int64_t diagonal_offset;  // diag(i) = i + diagonal_offset
  std::int64_t window_left;      // < 0: unbounded
  std::int64_t window_right;     // < 0: unbounded
  std::int64_t kv_len;

  QKV_HOST_DEVICE KeyInterval visible(std::int64_t query, std::int64_t key_limit) const {
    const std::int64_t diag = query + diagonal_offset;
    std::int64_t lo = 0;
    std::int64_t hi = key_limit < kv_len ? key_limit : kv_len;
    if (window_right >= 0 && diag + window_right + 1 < hi) hi = diag + window_right + 1;
    if (window_left >= 0 && diag - window_left > lo) lo = diag - window_left;
    if (hi < lo) hi = lo;
    return {lo, hi};
  }

  // ALiBi distance |diag(i) - j|, as a float for the bias.
  QKV_HOST_DEVICE float distance(std::int64_t query, std::int64_t key) const {
    const std::int64_t d = query + diagonal_offset - key;
    return static_cast<float>(d < 0 ? -d : d);
  }
};

// Whether the element mask hides key j from query i: boolean 0, or -inf in an additive mask.
QKV_HOST_DEVICE inline bool element_masked(const AttentionArgs& a, std::int64_t b, std::int64_t h, std::int64_t i,
                                           std::int64_t j) {
  if (a.mask.kind == MaskKind::none) return false;
  const std::int64_t at = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2] + j * a.mask.strides[3];
  if (a.mask.kind == MaskKind::boolean) return static_cast<const std::uint8_t*>(a.mask.data)[at] == 0;
  return static_cast<const float*>(a.mask.data)[at] == -INFINITY;
}

// Soft-capping, ALiBi and the element masks applied to the scaled score s of query i and
// key j (a key inside the row's interval), in the order every kernel applies them. A key the
// mask hides gives -inf whatever s is (a NaN or Inf in K at a hidden key must not leak).
QKV_HOST_DEVICE inline float masked_score(const AttentionArgs& a, const MaskRules& rules, std::int64_t b,
                                          std::int64_t h, std::int64_t i, std::int64_t j, float s) {
  if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
  const float slope = a.alibi_slopes ? a.alibi_slopes[h] : 0.0f;
  if (slope != 0.0f) s -= slope * rules.distance(i, j);
  if (a.mask.kind != MaskKind::none) {
    const std::int64_t at = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2] + j * a.mask.strides[3];
    if (a.mask.kind == MaskKind::boolean) {
      if (static_cast<const std::uint8_t*>(a.mask.data)[at] == 0) s = -INFINITY;
    } else {
      const float add = static_cast<const float*>(a.mask.data)[at];
      s = add == -INFINITY ? -INFINITY : s + add;
    }
  }
  return s;
}

inline MaskRules mask_rules_of(const AttentionArgs& args) {
  return MaskRules{args.diagonal_offset, args.window_left, args.window_right, args.k.shape[2]};
}

}  // namespace qkv
