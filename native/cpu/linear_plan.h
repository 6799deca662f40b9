// One linear_cpu call as the per-ISA kernels see it (kernel linear_task in
// flash_kernel.inc): tasks are (block of kLinearRows rows) × (one 128-column weight panel).
#pragma once

#include <cstdint>

#include "qkv/linear.h"

namespace qkv {
namespace cpu {

constexpr std::int64_t kLinearRows = 48;  // a multiple of every ISA's micro-kernel row count

struct LinearPlan {
  const PackedLinear* w;
  const float* x;
  std::int64_t rows;
  float* y;
  std::int64_t ldy;
  std::int64_t row_blocks() const { return (rows + kLinearRows - 1) / kLinearRows; }
  std::int64_t tasks() const { return row_blocks() * w->panels(); }
};

}  // namespace cpu
}  // namespace qkv
