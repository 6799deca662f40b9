// FlashAttention-2-style forward pass for one (batch, head, query block) task: key blocks
// are streamed through an online softmax, so memory is O(block), never O(Sq * Skv).
// `Ops` supplies the inner loops (dot products, exp, P·V); each ISA translation unit
// instantiates this template with its own Ops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../core/mask_rules.h"
#include "qkv/attention.h"

namespace qkv {
namespace cpu {

constexpr std::int64_t kQueryBlock = 32;
constexpr std::int64_t kKeyBlock = 64;

// Per-worker buffers, sized once per call from D and Dv.
struct Scratch {
  std::vector<float> q, k, v, s, o, m, l;
  std::vector<KeyInterval> rows;

  void reserve(std::int64_t d, std::int64_t dv) {
    q.resize(kQueryBlock * d);
    k.resize(kKeyBlock * d);
    v.resize(kKeyBlock * dv);
    s.resize(kQueryBlock * kKeyBlock);
    o.resize(kQueryBlock * dv);
    m.resize(kQueryBlock);
    l.resize(kQueryBlock);
    rows.resize(kQueryBlock);
  }
};

inline std::int64_t query_blocks(const AttentionArgs& a) {
  return (a.q.shape[2] + kQueryBlock - 1) / kQueryBlock;
}

inline std::int64_t task_count(const AttentionArgs& a) {
  return a.q.shape[0] * a.q.shape[1] * query_blocks(a);
}

// Gathers `rows` strided rows of `width` elements into a dense [rows, width] block.
inline void gather_rows(const float* src, std::int64_t row_stride, std::int64_t col_stride,
                        std::int64_t rows, std::int64_t width, float* dst) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = src + r * row_stride;
    float* out = dst + r * width;
    if (col_stride == 1) {
      std::copy(row, row + width, out);
    } else {
      for (std::int64_t c = 0; c < width; ++c) out[c] = row[c * col_stride];
    }
  }
}

template <class Ops>
void forward_task(const AttentionArgs& a, const MaskRules& rules, std::int64_t task, Scratch& w) {
  const std::int64_t Hq = a.q.shape[1], Sq = a.q.shape[2], D = a.q.shape[3];
  const std::int64_t Hkv = a.k.shape[1], Dv = a.v.shape[3];
  const std::int64_t nqb = query_blocks(a);
  const std::int64_t qb = task % nqb;
  const std::int64_t h = (task / nqb) % Hq;
  const std::int64_t b = task / nqb / Hq;
  const std::int64_t hk = h / (Hq / Hkv);
  const std::int64_t q0 = qb * kQueryBlock;
  const std::int64_t rows = std::min(kQueryBlock, Sq - q0);
  const float neg_inf = -std::numeric_limits<float>::infinity();

  const std::int64_t key_limit = a.key_lengths ? a.key_lengths[b] : rules.kv_len;
  std::int64_t lo_all = rules.kv_len, hi_all = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const KeyInterval iv = rules.visible(q0 + r, key_limit);
    w.rows[r] = iv;
    if (iv.hi > iv.lo) {
      lo_all = std::min(lo_all, iv.lo);
      hi_all = std::max(hi_all, iv.hi);
    }
  }

  const float* qp = static_cast<const float*>(a.q.data) + b * a.q.strides[0] + h * a.q.strides[1] +
                    q0 * a.q.strides[2];
  const float* kp = static_cast<const float*>(a.k.data) + b * a.k.strides[0] + hk * a.k.strides[1];
  const float* vp = static_cast<const float*>(a.v.data) + b * a.v.strides[0] + hk * a.v.strides[1];
  gather_rows(qp, a.q.strides[2], a.q.strides[3], rows, D, w.q.data());
  std::fill(w.o.begin(), w.o.begin() + rows * Dv, 0.0f);
  std::fill(w.m.begin(), w.m.begin() + rows, neg_inf);
  std::fill(w.l.begin(), w.l.begin() + rows, 0.0f);

  const float slope = a.alibi_slopes ? a.alibi_slopes[h] : 0.0f;
  const bool has_mask = a.mask.kind != MaskKind::none;
  const std::int64_t* ms = a.mask.strides;
  const std::int64_t mask_base = b * ms[0] + h * ms[1];

  for (std::int64_t k0 = lo_all; k0 < hi_all; k0 += kKeyBlock) {
    const std::int64_t cols = std::min(kKeyBlock, hi_all - k0);
    gather_rows(kp + k0 * a.k.strides[2], a.k.strides[2], a.k.strides[3], cols, D, w.k.data());
    gather_rows(vp + k0 * a.v.strides[2], a.v.strides[2], a.v.strides[3], cols, Dv, w.v.data());
    Ops::scores(w.q.data(), w.k.data(), rows, cols, D, a.scale, w.s.data(), kKeyBlock);

    for (std::int64_t r = 0; r < rows; ++r) {
      float* s = w.s.data() + r * kKeyBlock;
      const KeyInterval iv = w.rows[r];
      const std::int64_t i = q0 + r;
      float row_max = neg_inf;
      for (std::int64_t c = 0; c < cols; ++c) {
        const std::int64_t j = k0 + c;
        float x = s[c];
        if (j < iv.lo || j >= iv.hi) {
          x = neg_inf;
        } else {
          if (a.softcap > 0.0f) x = a.softcap * std::tanh(x / a.softcap);
          if (slope != 0.0f) x -= slope * rules.distance(i, j);
          if (has_mask) {
            const std::int64_t at = mask_base + i * ms[2] + j * ms[3];
            if (a.mask.kind == MaskKind::boolean) {
              if (static_cast<const std::uint8_t*>(a.mask.data)[at] == 0) x = neg_inf;
            } else {
              x += static_cast<const float*>(a.mask.data)[at];
            }
          }
        }
        s[c] = x;
        // NaN scores are not maxima; they reach the output through exp() below.
        if (x > row_max) row_max = x;
      }
      const float m_old = w.m[r];
      const float m_new = std::max(m_old, row_max);
      if (m_new == neg_inf) continue;  // nothing visible yet in this row
      const float alpha = Ops::exp(m_old - m_new);  // exp(-inf) = 0 on the first visible block
      float sum = 0.0f;
      for (std::int64_t c = 0; c < cols; ++c) {
        const float p = Ops::exp(s[c] - m_new);
        s[c] = p;
        sum += p;
      }
      w.l[r] = w.l[r] * alpha + sum;
      w.m[r] = m_new;
      Ops::accumulate_pv(s, w.v.data(), cols, Dv, alpha, w.o.data() + r * Dv);
    }
  }

  float* op = static_cast<float*>(a.out.data) + b * a.out.strides[0] + h * a.out.strides[1] +
              q0 * a.out.strides[2];
  float* lp = a.lse.data ? static_cast<float*>(a.lse.data) + b * a.lse.strides[0] +
                               h * a.lse.strides[1] + q0 * a.lse.strides[2]
                         : nullptr;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float l = w.l[r];
    // Fully masked rows: zeros and lse = -inf, by contract.
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* dst = op + r * a.out.strides[2];
    const float* acc = w.o.data() + r * Dv;
    for (std::int64_t c = 0; c < Dv; ++c) dst[c * a.out.strides[3]] = l > 0.0f ? acc[c] * inv : 0.0f;
    if (lp) lp[r * a.lse.strides[2]] = l > 0.0f ? w.m[r] + std::log(l) : neg_inf;
  }
}

}  // namespace cpu
}  // namespace qkv
