// What one attention call needs on the CPU, worked out once by the dispatcher and read by
// every ISA's kernel: sizes, block counts, mask rules, and the packed K/V buffers.
#pragma once

#include <cstdint>

#include "../core/mask_rules.h"
#include "qkv/attention.h"

namespace qkv {
namespace cpu {

// Keys per block (a multiple of every ISA's Q·Kᵀ column tile) and queries per block.
constexpr std::int64_t kKeyBlock = 128;
constexpr std::int64_t kQueryBlock = 64;
// The value dim is padded to this (a multiple of every ISA's vector width).
constexpr std::int64_t kValuePad = 16;
// Decode (flash-decoding): when one kv head serves at most kDecodeRows query rows
// (group · Sq), keys are split into chunks of kDecodeChunk across threads, read in place
// without packing, and the partial results merged by log-sum-exp in chunk order.
constexpr std::int64_t kDecodeRows = 16;
constexpr std::int64_t kDecodeChunk = 256;

struct Plan {
  const AttentionArgs* args;
  MaskRules rules;
  std::int64_t B, Hq, Hkv, Sq, Skv, D, Dv, group;
  std::int64_t dv_pad;
  std::int64_t key_blocks, query_blocks;
  bool decode;
  std::int64_t decode_rows, decode_chunks;  // rows per kv head; key chunks per kv head
  // Decode partials per (b, kv head, chunk): [decode_rows][dv_pad] O, then m and l rows.
  float* partials;
  // K packed per (b, kv head, key block) as [D][kKeyBlock] fp32 (transposed, zero padded);
  // V packed per (b, kv head) as [key_blocks * kKeyBlock][dv_pad] fp32 (zero padded).
  float* k_packed;
  float* v_packed;
  // V read in place (fp32, unit stride along Dv, Dv a whole number of vectors): no V packing.
  bool v_direct;
  // Per (b, kv head, key block): 1 when that block of V holds a NaN or Inf. P·V multiplies a
  // hidden key's V row by p = 0, and 0 · Inf is NaN, so such blocks skip hidden keys instead.
  std::uint8_t* v_nonfinite;

  // First V row of (b, kv head) for the P·V micro-kernel, and its row stride.
  const float* v_rows(std::int64_t b, std::int64_t hk) const {
    if (v_direct) return static_cast<const float*>(args->v.data) + b * args->v.strides[0] + hk * args->v.strides[1];
    return v_packed + (b * Hkv + hk) * v_head_floats();
  }
  std::int64_t v_row_stride() const { return v_direct ? args->v.strides[2] : dv_pad; }

  std::int64_t k_head_floats() const { return key_blocks * kKeyBlock * D; }
  std::int64_t v_head_floats() const { return key_blocks * kKeyBlock * dv_pad; }
  std::int64_t pack_tasks() const { return B * Hkv * key_blocks; }
  std::int64_t query_tasks() const { return B * Hq * query_blocks; }
  // Workspace floats one thread needs for query tasks: q, s, o tiles and m, l rows.
  std::int64_t workspace_floats() const {
    const std::int64_t prefill_floats = kQueryBlock * (D + kKeyBlock + dv_pad + 2);
    const std::int64_t decode_floats = kDecodeRows * (D + kDecodeChunk) + 2 * D + dv_pad;
    return prefill_floats > decode_floats ? prefill_floats : decode_floats;
  }
  std::int64_t decode_tasks() const { return B * Hkv * decode_chunks; }
  std::int64_t partial_floats() const { return decode_rows * (dv_pad + 2); }
};

Plan make_plan(const AttentionArgs& args);

// One ISA's kernels. `workspace` holds plan.workspace_floats() floats for the calling thread.
struct LinearPlan;

struct KernelTable {
  const char* isa;
  void (*pack)(const Plan& plan, std::int64_t task);
  void (*query)(const Plan& plan, std::int64_t task, float* workspace);
  void (*decode)(const Plan& plan, std::int64_t task, float* workspace);
  void (*merge)(const Plan& plan, std::int64_t head);  // decode partials → output rows
  void (*linear)(const LinearPlan& plan, std::int64_t task, float* tile);  // tile: kLinearRows × 128 floats
};

// The kernels in use (chosen once per process; QKV_ISA may force a lower ISA).
const KernelTable& active_kernels();

}  // namespace cpu
}  // namespace qkv
