// The interval rules of the mask options (causal, sliding window, key lengths), shared by
// every kernel. They make each query row's visible keys one interval [lo, hi), so kernels
// can skip whole key blocks; the element masks (boolean/additive) then act inside it.
#pragma once

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
  bool causal;
  std::int64_t diagonal_offset;  // diag(i) = i + diagonal_offset
  std::int64_t window_left;      // < 0: unbounded
  std::int64_t window_right;     // < 0: unbounded
  std::int64_t kv_len;

  QKV_HOST_DEVICE KeyInterval visible(std::int64_t query, std::int64_t key_limit) const {
    const std::int64_t diag = query + diagonal_offset;
    std::int64_t lo = 0;
    std::int64_t hi = key_limit < kv_len ? key_limit : kv_len;
    if (causal && diag + 1 < hi) hi = diag + 1;
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

inline MaskRules mask_rules_of(const AttentionArgs& args) {
  const std::int64_t sq = args.q.shape[2];
  const std::int64_t skv = args.k.shape[2];
  return MaskRules{args.causal, args.alignment == Alignment::lower_right ? skv - sq : 0,
                   args.window_left, args.window_right, skv};
}

}  // namespace qkv
