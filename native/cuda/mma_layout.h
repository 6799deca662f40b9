// Where each lane's elements sit in an mma.sync m16n8k16 tile (f16/bf16 inputs, f32
// accumulators), per the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point
// type"): groupID = lane / 4, threadID_in_group = lane % 4. A is 16×16 row-major (a0..a7 in
// four .f16x2 registers), B is 16×8 column-major (b0..b3 in two), C/D are 16×8 (c0..c3).
// This is the kernels' belief about the layout; the shim models the hardware with its own
// copy (qkv_shim::PtxM16n8k16), so a wrong belief shows up on the CPU as wrong results.
#pragma once

#include "../core/mask_rules.h"  // QKV_HOST_DEVICE

namespace qkv {
namespace cuda {

struct MmaLayout {
  QKV_HOST_DEVICE static int a_row(int lane, int i) { return (lane >> 2) + ((i & 2) ? 8 : 0); }
  QKV_HOST_DEVICE static int a_col(int lane, int i) { return (lane & 3) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
  QKV_HOST_DEVICE static int b_row(int lane, int i) { return (lane & 3) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
  QKV_HOST_DEVICE static int b_col(int lane, int /*i*/) { return lane >> 2; }
  QKV_HOST_DEVICE static int c_row(int lane, int i) { return (lane >> 2) + (i >= 2 ? 8 : 0); }
  QKV_HOST_DEVICE static int c_col(int lane, int i) { return (lane & 3) * 2 + (i & 1); }
};

}  // namespace cuda
}  // namespace qkv
