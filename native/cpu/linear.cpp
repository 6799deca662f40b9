// Packing weights for, and running, linear layers (qkv/linear.h) on the CPU kernels'
// micro-kernel (linear_kernel.inc), in parallel over (row block, weight panel) tasks.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "linear_plan.h"
#include "plan.h"
#include "qkv/linear.h"
#include "thread_pool.h"

namespace qkv {

PackedLinear::PackedLinear(std::int64_t out_features, std::int64_t in_features)
    : n_(out_features), k_(in_features), panels_((out_features + kLinearPanel - 1) / kLinearPanel) {
  const std::size_t floats = static_cast<std::size_t>(panels_ * kLinearPanel * (k_ + 1));
  const std::size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
  if (data_ == nullptr) throw std::bad_alloc();
  bias_ = data_ + panels_ * kLinearPanel * k_;
}

PackedLinear::~PackedLinear() { std::free(data_); }

const float* PackedLinear::panel(std::int64_t p) const { return data_ + p * kLinearPanel * k_; }

Status pack_linear(const float* w, std::int64_t out_features, std::int64_t in_features, std::int64_t ldw,
                   const float* bias, std::unique_ptr<PackedLinear>* packed) {
  constexpr std::int64_t kMaxDim = std::int64_t{1} << 31;
  if (out_features < 1 || in_features < 1 || out_features >= kMaxDim || in_features >= kMaxDim) {
    return Status::range_error("linear: weight shape [" + std::to_string(out_features) + ", " + std::to_string(in_features) +
                               "]: both dims must be in [1, 2^31)");
  }
  if (ldw < in_features) return Status::range_error("linear: weight row stride must be >= in_features");
  if (w == nullptr) return Status::type_error("linear: weight data is missing");
  std::unique_ptr<PackedLinear> p(new PackedLinear(out_features, in_features));
  // panel[d][c] = W[p·128 + c][d]; columns past out_features stay zero.
  for (std::int64_t q = 0; q < p->panels_; ++q) {
    float* panel = p->data_ + q * kLinearPanel * in_features;
    std::memset(panel, 0, static_cast<std::size_t>(kLinearPanel * in_features) * sizeof(float));
    const std::int64_t cols = std::min(kLinearPanel, out_features - q * kLinearPanel);
    for (std::int64_t c = 0; c < cols; ++c) {
      const float* row = w + (q * kLinearPanel + c) * ldw;
      for (std::int64_t d = 0; d < in_features; ++d) panel[d * kLinearPanel + c] = row[d];
    }
  }
  p->has_bias_ = bias != nullptr;
  if (bias != nullptr) std::memcpy(p->bias_, bias, static_cast<std::size_t>(out_features) * sizeof(float));
  *packed = std::move(p);
  return Status::success();
}

Status linear_cpu(const PackedLinear& w, const float* x, std::int64_t rows, float* y, std::int64_t ldy, int threads) {
  if (rows < 0) return Status::range_error("linear: rows must be >= 0");
  if (ldy < w.out_features()) return Status::range_error("linear: output row stride must be >= out_features");
  if (rows == 0) return Status::success();
  if (x == nullptr || y == nullptr) return Status::type_error("linear: input or output data is missing");
  const cpu::LinearPlan plan{&w, x, rows, y, ldy};
  cpu::ThreadPool& pool = cpu::ThreadPool::instance();
  int n = threads > 0 ? threads : pool.default_threads();
  // Below ~1 MFLOP a thread hop costs more than it saves.
  if (2.0 * static_cast<double>(rows) * static_cast<double>(w.out_features()) * static_cast<double>(w.in_features()) < 1e6) n = 1;
  const cpu::KernelTable& kernels = cpu::active_kernels();
  constexpr std::size_t kTileFloats = cpu::kLinearRows * kLinearPanel;
  std::unique_ptr<float[]> tiles(new float[kTileFloats * static_cast<std::size_t>(n)]);
  pool.run(plan.tasks(), n, [&](std::int64_t task, int slot) {
    kernels.linear(plan, task, tiles.get() + kTileFloats * static_cast<std::size_t>(slot));
  });
  return Status::success();
}

}  // namespace qkv
