// float16 / bfloat16 flash-attention forward on tensor cores (mma.sync m16n8k16, f32 accumulation), the
// same source for nvcc and the CPU shim. One warp per 16 query rows of one (batch, head):
// Q fragments stay in registers; per tile of 16 keys, S = Q·Kᵀ is two m16n8k16 MMAs per 16
// of D; masks and the online softmax act on the accumulators in registers (a row's 16
// scores live in the 4 lanes of a group: max and sum reduce over xor 1 and 2); P is fed to
// P·V as A fragments directly (the accumulator layout of two adjacent 8-column tiles is the
// A layout), V from shared memory as B fragments. D, Dv ≤ 128; same semantics as the CPU.
#pragma once

#include <cstdint>

#include "../core/half.h"
#include "../core/mask_rules.h"
#include "kv_tile.cuh"
#include "mma.cuh"
#include "qkv/attention.h"

// Full unrolling keeps the fragment and accumulator arrays in registers under nvcc; the
// shim's compiler needs no hint.
#if defined(__CUDACC__)
#define QKV_UNROLL _Pragma("unroll")
#define QKV_NO_UNROLL _Pragma("unroll 1")
#else
#define QKV_UNROLL
#define QKV_NO_UNROLL
#endif

namespace qkv {
namespace cuda {

constexpr int kMmaRows = 16;    // query rows per warp (and per block)
constexpr int kMmaKeys = 16;    // keys per tile
constexpr int kMmaMaxDim = 128;

__device__ __forceinline__ std::uint32_t pack_f16(std::uint16_t lo, std::uint16_t hi) {
  return static_cast<std::uint32_t>(lo) | static_cast<std::uint32_t>(hi) << 16;
}

__device__ __forceinline__ float group_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float group_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// grid: (ceil(Sq / 16), Hq, B); block: 32 threads. Half is Float16 or BFloat16 (mma.cuh).
template <class Half>
__global__ void __launch_bounds__(32) attention_mma(AttentionArgs a, MaskRules rules) {
  __shared__ std::uint16_t k_tile[kMmaKeys][kMmaMaxDim];
  __shared__ std::uint16_t v_tile[kMmaKeys][kMmaMaxDim];
  const int lane = static_cast<int>(threadIdx.x % 32);
  const long long b = blockIdx.z, h = blockIdx.y, row0 = static_cast<long long>(blockIdx.x) * kMmaRows;
  const long long Sq = a.q.shape[2], D = a.q.shape[3], Dv = a.v.shape[3];
  const long long hk = h / (a.q.shape[1] / a.k.shape[1]);
  const int d_chunks = static_cast<int>((D + 15) / 16), v_tiles = static_cast<int>((Dv + 7) / 8);
  const std::uint16_t* q = static_cast<const std::uint16_t*>(a.q.data);
  const float neg_inf = -INFINITY;

  // This lane's two rows (the accumulator layout's g and g + 8) and their key intervals.
  const long long key_limit = a.key_lengths ? a.key_lengths[b] : rules.kv_len;
  long long rows[2];
  KeyInterval iv[2];
QKV_UNROLL
  for (int r = 0; r < 2; ++r) {
    rows[r] = row0 + MmaLayout::c_row(lane, 2 * r);
    iv[r] = rows[r] < Sq ? rules.visible(rows[r], key_limit) : KeyInterval{0, 0};
  }
  long long lo_all = rules.kv_len, hi_all = 0;  // the warp's union, the same in every lane
  for (long long r = row0; r < row0 + kMmaRows && r < Sq; ++r) {
    const KeyInterval x = rules.visible(r, key_limit);
    if (x.hi > x.lo) lo_all = x.lo < lo_all ? x.lo : lo_all, hi_all = x.hi > hi_all ? x.hi : hi_all;
  }

  // Q as A fragments, one set of 4 registers per 16 of D (zero beyond D and Sq).
  // Loops over qa and o run to compile-time bounds (skipping the tail), so the arrays stay
  // in registers instead of local memory.
  std::uint32_t qa[kMmaMaxDim / 16][4];
QKV_UNROLL
  for (int dc = 0; dc < kMmaMaxDim / 16; ++dc) {
QKV_UNROLL
    for (int r = 0; r < 4; ++r) {
      std::uint16_t e[2];
QKV_UNROLL
      for (int x = 0; x < 2; ++x) {
        const int i = 2 * r + x;
        const long long qr = row0 + MmaLayout::a_row(lane, i), d = dc * 16 + MmaLayout::a_col(lane, i);
        e[x] = dc < d_chunks && qr < Sq && d < D ? q[b * a.q.strides[0] + h * a.q.strides[1] + qr * a.q.strides[2] + d * a.q.strides[3]] : 0;
      }
      qa[dc][r] = pack_f16(e[0], e[1]);
    }
  }
  float o[kMmaMaxDim / 8][4] = {};
  float m[2] = {neg_inf, neg_inf}, l[2] = {0.0f, 0.0f};  // l: this lane's share of the row sums
  bool nan[2] = {false, false};

  for (long long k0 = lo_all - lo_all % kMmaKeys; k0 < hi_all; k0 += kMmaKeys) {
    __syncthreads();  // the previous tiles are no longer read
    const bool staged_nonfinite =
        stage_kv_tile<kMmaKeys, kMmaMaxDim, std::uint16_t>(a, b, hk, k0, hi_all, k_tile, v_tile, lane, 32, Half::kExponent);
    // The block is this one warp: true in every lane when the tile's V holds a NaN or Inf.
    const bool v_nonfinite = __any_sync(0xffffffffu, staged_nonfinite) != 0;
    __syncthreads();

    float s[2][4];  // two 8-key halves of the tile, accumulator layout
QKV_UNROLL
    for (int nt = 0; nt < 2; ++nt) {
      float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
QKV_UNROLL
      for (int dc = 0; dc < kMmaMaxDim / 16; ++dc) {
        if (dc >= d_chunks) continue;
        std::uint32_t kb[2];
QKV_UNROLL
        for (int r = 0; r < 2; ++r) {
          const int i0 = 2 * r, i1 = 2 * r + 1;
          kb[r] = pack_f16(k_tile[nt * 8 + MmaLayout::b_col(lane, i0)][dc * 16 + MmaLayout::b_row(lane, i0)],
                           k_tile[nt * 8 + MmaLayout::b_col(lane, i1)][dc * 16 + MmaLayout::b_row(lane, i1)]);
        }
        Half::mma(acc, qa[dc], kb, acc);
      }
QKV_UNROLL
      for (int i = 0; i < 4; ++i) s[nt][i] = acc[i];
    }

    // Scale, soft-cap, bias, masks; then the online softmax per row (r = 0: row g, 1: g + 8).
QKV_UNROLL
    for (int r = 0; r < 2; ++r) {
      float tile_max = neg_inf;
QKV_UNROLL
      for (int nt = 0; nt < 2; ++nt) {
QKV_UNROLL
        for (int x = 0; x < 2; ++x) {
          const int i = 2 * r + x;
          const long long j = k0 + nt * 8 + MmaLayout::c_col(lane, i);
          float sc = s[nt][i] * a.scale;
          if (j < iv[r].lo || j >= iv[r].hi) {
            sc = neg_inf;
          } else {
            sc = masked_score(a, rules, b, h, rows[r], j, sc);
            if (sc != sc) nan[r] = true;
          }
          s[nt][i] = sc;
          tile_max = sc > tile_max ? sc : tile_max;
        }
      }
      const float m_new = fmaxf(m[r], group_max(tile_max));
      const float alpha = m_new == neg_inf ? 1.0f : __expf(m[r] - m_new);
      float sum = 0.0f;
QKV_UNROLL
      for (int nt = 0; nt < 2; ++nt) {
QKV_UNROLL
        for (int x = 0; x < 2; ++x) {
          const int i = 2 * r + x;
          const float p = m_new == neg_inf ? 0.0f : __expf(s[nt][i] - m_new);
          s[nt][i] = p;
          sum += p;
        }
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
QKV_UNROLL
      for (int vt = 0; vt < kMmaMaxDim / 8; ++vt) {
        o[vt][2 * r] *= alpha;
        o[vt][2 * r + 1] *= alpha;
      }
    }

    if (v_nonfinite) {
      // The MMA would multiply a hidden key's V by p = 0, and 0 · Inf is NaN: instead each
      // lane adds, for its own output elements, the keys its row can see (p rounded as the
      // MMA path rounds it). Only tiles whose V holds a NaN or Inf come here.
QKV_UNROLL
      for (int r = 0; r < 2; ++r) {
QKV_NO_UNROLL
        for (int c = 0; c < kMmaKeys; ++c) {
          // Key c of row g sits in lane 4g + (c % 8) / 2, element (c / 8, 2r + c % 2); selected
          // without indexing by c, so that s stays in registers.
          const float mine = c < 8 ? ((c & 1) ? s[0][2 * r + 1] : s[0][2 * r]) : ((c & 1) ? s[1][2 * r + 1] : s[1][2 * r]);
          const float p = __shfl_sync(0xffffffffu, mine, (lane & ~3) | ((c % 8) >> 1));
          const long long j = k0 + c;
          if (j < iv[r].lo || j >= iv[r].hi || element_masked(a, b, h, rows[r], j)) continue;
          const float pr = Half::to_float(Half::from_float(p));
QKV_UNROLL
          for (int vt = 0; vt < kMmaMaxDim / 8; ++vt) {
            if (vt >= v_tiles) continue;
QKV_UNROLL
            for (int x = 0; x < 2; ++x) {
              o[vt][2 * r + x] += pr * Half::to_float(v_tile[c][vt * 8 + MmaLayout::c_col(lane, 2 * r + x)]);
            }
          }
        }
      }
      continue;
    }

    // O += P·V: P's accumulators are already A fragments (keys 0-7 then 8-15 of the tile).
    const std::uint32_t pa[4] = {pack_f16(Half::from_float(s[0][0]), Half::from_float(s[0][1])),
                                 pack_f16(Half::from_float(s[0][2]), Half::from_float(s[0][3])),
                                 pack_f16(Half::from_float(s[1][0]), Half::from_float(s[1][1])),
                                 pack_f16(Half::from_float(s[1][2]), Half::from_float(s[1][3]))};
QKV_UNROLL
    for (int vt = 0; vt < kMmaMaxDim / 8; ++vt) {
      if (vt >= v_tiles) continue;
      std::uint32_t vb[2];
QKV_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int i0 = 2 * r, i1 = 2 * r + 1;
        vb[r] = pack_f16(v_tile[MmaLayout::b_row(lane, i0)][vt * 8 + MmaLayout::b_col(lane, i0)],
                         v_tile[MmaLayout::b_row(lane, i1)][vt * 8 + MmaLayout::b_col(lane, i1)]);
      }
      Half::mma(o[vt], pa, vb, o[vt]);
    }
  }

QKV_UNROLL
  for (int r = 0; r < 2; ++r) {
    float total = group_sum(l[r]);
    const bool any_nan = group_max(nan[r] ? 1.0f : 0.0f) > 0.0f;
    if (rows[r] >= Sq) continue;
    if (any_nan) total = NAN;
    const bool masked = total == 0.0f;  // fully masked: zeros and lse = -inf, by contract
    std::uint16_t* out = static_cast<std::uint16_t*>(a.out.data);
QKV_UNROLL
    for (int vt = 0; vt < kMmaMaxDim / 8; ++vt) {
      if (vt >= v_tiles) continue;
QKV_UNROLL
      for (int x = 0; x < 2; ++x) {
        const long long d = vt * 8 + MmaLayout::c_col(lane, 2 * r + x);
        if (d < Dv) {
          out[b * a.out.strides[0] + h * a.out.strides[1] + rows[r] * a.out.strides[2] + d * a.out.strides[3]] =
              Half::from_float(masked ? 0.0f : o[vt][2 * r + x] / total);
        }
      }
    }
    if (a.lse.data && MmaLayout::c_col(lane, 0) == 0) {
      static_cast<float*>(a.lse.data)[b * a.lse.strides[0] + h * a.lse.strides[1] + rows[r] * a.lse.strides[2]] =
          masked ? neg_inf : m[r] + __logf(total);
    }
  }
}

}  // namespace cuda
}  // namespace qkv
