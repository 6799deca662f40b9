// fp32 SIMT flash-attention forward kernels (prefill, and split-KV decode with its merge), the
// same source for nvcc and for the CPU shim
// (native/cuda/shim). One warp per query row: each lane holds D/32 elements of q and Dv/32
// of the output; dot products reduce across the warp with shuffles; K and V tiles of
// kSimtKeys keys are staged in shared memory by the whole block. Masks follow mask_rules.h
// (the CPU kernels' rules), so fully masked rows give zeros and lse = -inf, and NaN reaching
// a row makes it NaN, exactly as on the CPU.
#pragma once

#include "../core/mask_rules.h"
#include "kv_tile.cuh"
#include "qkv/attention.h"

namespace qkv {
namespace cuda {

constexpr int kSimtWarps = 4;      // query rows per block
constexpr int kSimtKeys = 32;      // keys per shared-memory tile
constexpr int kSimtMaxDim = 128;   // D and Dv limit of this kernel (4 elements per lane)
constexpr int kLaneElems = kSimtMaxDim / 32;

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

// Writes output row (b, h, row) = acc / l (this lane's elements) and its lse. l == 0: fully
// masked, so zeros and lse = -inf by contract; l NaN: a NaN reached the row, which stays NaN.
__device__ __forceinline__ void store_row(const AttentionArgs& a, long long b, long long h, long long row, int lane,
                                          const float acc[kLaneElems], float m, float l) {
  const bool masked = l == 0.0f;
  float* out = static_cast<float*>(a.out.data);
  for (int e = 0; e < kLaneElems; ++e) {
    const long long d = lane + 32 * e;
    if (d < a.v.shape[3]) {
      out[b * a.out.strides[0] + h * a.out.strides[1] + row * a.out.strides[2] + d * a.out.strides[3]] =
          masked ? 0.0f : acc[e] / l;
    }
  }
  if (a.lse.data && lane == 0) {
    static_cast<float*>(a.lse.data)[b * a.lse.strides[0] + h * a.lse.strides[1] + row * a.lse.strides[2]] =
        masked ? -INFINITY : m + __logf(l);
  }
}

// Partial results of one key chunk for one query row (split-KV decode): m, l and the
// unnormalised output, Dv floats, at partials + ((((b·Hq + h)·Sq + row)·chunks + chunk) · kPartialFloats).
constexpr int kPartialFloats = 2 + kSimtMaxDim;

// Attends rows row0 .. row0 + kSimtWarps - 1 (one per warp) of (b, h) to the keys in
// [key_lo, key_hi) ∩ each row's visible interval. Writes the final rows (partials ==
// nullptr) or, per row, the chunk's partial (m, l, unnormalised output). Every thread of the
// block must call it with the same arguments: it synchronises the block.
__device__ void attend_rows(const AttentionArgs& a, const MaskRules& rules, long long b, long long h, long long row0,
                            long long key_lo, long long key_hi, float* partials, long long chunks, long long chunk) {
  __shared__ float k_tile[kSimtKeys][kSimtMaxDim];
  __shared__ float v_tile[kSimtKeys][kSimtMaxDim];

  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const long long Sq = a.q.shape[2], D = a.q.shape[3];
  const long long hk = h / (a.q.shape[1] / a.k.shape[1]);
  const long long row = row0 + warp;
  const bool active = row < Sq;
  const float neg_inf = -INFINITY;

  const float* q = static_cast<const float*>(a.q.data);
  const long long key_limit = a.key_lengths ? a.key_lengths[b] : rules.kv_len;

  // The block's key range: the union of its rows' intervals within [key_lo, key_hi) (the
  // same for every thread, so the barriers below are uniform).
  long long lo_all = key_hi, hi_all = key_lo;
  for (int w = 0; w < kSimtWarps; ++w) {
    const long long r = row0 + w;
    if (r >= Sq) break;
    KeyInterval iv = rules.visible(r, key_limit);
    iv.lo = iv.lo > key_lo ? iv.lo : key_lo;
    iv.hi = iv.hi < key_hi ? iv.hi : key_hi;
    if (iv.hi > iv.lo) {
      lo_all = iv.lo < lo_all ? iv.lo : lo_all;
      hi_all = iv.hi > hi_all ? iv.hi : hi_all;
    }
  }
  const KeyInterval mine = active ? rules.visible(row, key_limit) : KeyInterval{0, 0};

  float qv[kLaneElems], acc[kLaneElems];
  for (int e = 0; e < kLaneElems; ++e) {
    const long long d = lane + 32 * e;
    qv[e] = active && d < D ? q[b * a.q.strides[0] + h * a.q.strides[1] + row * a.q.strides[2] + d * a.q.strides[3]] * a.scale : 0.0f;
    acc[e] = 0.0f;
  }
  float m = neg_inf, l = 0.0f;
  bool nan = false;

  for (long long k0 = lo_all; k0 < hi_all; k0 += kSimtKeys) {
    __syncthreads();  // the previous tile is no longer read
    stage_kv_tile<kSimtKeys, kSimtMaxDim, float>(a, b, hk, k0, hi_all, k_tile, v_tile, static_cast<int>(threadIdx.x), 32 * kSimtWarps);
    __syncthreads();
    if (!active) continue;
    const long long c_end = hi_all - k0 < kSimtKeys ? hi_all - k0 : kSimtKeys;
    for (long long c = 0; c < c_end; ++c) {
      const long long j = k0 + c;
      if (j < mine.lo || j >= mine.hi) continue;  // warp-uniform: the row is the warp's
      float partial = 0.0f;
      for (int e = 0; e < kLaneElems; ++e) partial += qv[e] * k_tile[c][lane + 32 * e];
      const float s = masked_score(a, rules, b, h, row, j, warp_sum(partial));
      if (s != s) nan = true;
      if (s == neg_inf) continue;
      const float m_new = s > m ? s : m;
      const float alpha = __expf(m - m_new);  // 0 on the first visible key (m = -inf)
      const float p = __expf(s - m_new);
      l = l * alpha + p;
      for (int e = 0; e < kLaneElems; ++e) acc[e] = acc[e] * alpha + p * v_tile[c][lane + 32 * e];
      m = m_new;
    }
  }
  if (!active) return;
  if (nan) l = NAN;
  if (partials != nullptr) {
    float* part = partials + (((b * a.q.shape[1] + h) * Sq + row) * chunks + chunk) * kPartialFloats;
    if (lane == 0) part[0] = m, part[1] = l;
    for (int e = 0; e < kLaneElems; ++e) part[2 + lane + 32 * e] = acc[e];
    return;
  }
  store_row(a, b, h, row, lane, acc, m, l);
}

// Prefill: grid (ceil(Sq / kSimtWarps), Hq, B); block 32 × kSimtWarps threads.
__global__ void __launch_bounds__(32 * kSimtWarps) attention_simt_f32(AttentionArgs a, MaskRules rules) {
  attend_rows(a, rules, blockIdx.z, blockIdx.y, static_cast<long long>(blockIdx.x) * kSimtWarps, 0, rules.kv_len,
              nullptr, 0, 0);
}

// Decode (flash-decoding), step 1: grid (chunks, Hq, B), block 32 × kSimtWarps; each block
// attends every query row to one chunk of `chunk_keys` keys and writes partials.
__global__ void __launch_bounds__(32 * kSimtWarps)
    attention_split_f32(AttentionArgs a, MaskRules rules, long long chunk_keys, float* partials) {
  const long long chunk = blockIdx.x, chunks = gridDim.x;
  const long long lo = chunk * chunk_keys;
  const long long hi = lo + chunk_keys < rules.kv_len ? lo + chunk_keys : rules.kv_len;
  for (long long row0 = 0; row0 < a.q.shape[2]; row0 += kSimtWarps) {
    attend_rows(a, rules, blockIdx.z, blockIdx.y, row0, lo, hi, partials, chunks, chunk);
  }
}

// Decode, step 2: grid (ceil(Sq / kSimtWarps), Hq, B), block 32 × kSimtWarps: one warp per
// row merges its chunks in order (weights exp(m_chunk - m)), so results do not depend on
// scheduling; fully masked rows give zeros and lse = -inf, NaN reaching a row gives NaN.
__global__ void __launch_bounds__(32 * kSimtWarps) attention_merge_f32(AttentionArgs a, long long chunks, const float* partials) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const long long b = blockIdx.z, h = blockIdx.y;
  const long long row = static_cast<long long>(blockIdx.x) * kSimtWarps + threadIdx.x / 32;
  const long long Sq = a.q.shape[2];
  if (row >= Sq) return;
  const float* first = partials + ((b * a.q.shape[1] + h) * Sq + row) * chunks * kPartialFloats;
  float m = -INFINITY;
  bool nan = false;
  for (long long c = 0; c < chunks; ++c) {
    const float mc = first[c * kPartialFloats];
    nan = nan || mc != mc || first[c * kPartialFloats + 1] != first[c * kPartialFloats + 1];
    m = mc > m ? mc : m;
  }
  float l = 0.0f, acc[kLaneElems] = {};
  if (m != -INFINITY) {
    for (long long c = 0; c < chunks; ++c) {
      const float* part = first + c * kPartialFloats;
      if (part[0] == -INFINITY) continue;
      const float w = __expf(part[0] - m);
      l += w * part[1];
      for (int e = 0; e < kLaneElems; ++e) acc[e] += w * part[2 + lane + 32 * e];
    }
  }
  if (nan) l = NAN;
  store_row(a, b, h, row, lane, acc, m, l);
}

}  // namespace cuda
}  // namespace qkv
