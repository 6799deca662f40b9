// Linear layers (y = x·Wᵀ + b) for the projections around attention. The weight matrix is
// packed once into the attention kernel's key-panel layout ([K][128] column panels, the
// layout its Q·Kᵀ micro-kernel reads), so every forward pass, the single-row decode step
// included, streams weights that are already in kernel order.
#pragma once

#include <cstdint>
#include <memory>

#include "qkv/attention.h"

namespace qkv {

class PackedLinear {
 public:
  PackedLinear(std::int64_t out_features, std::int64_t in_features);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  std::int64_t out_features() const { return n_; }
  std::int64_t in_features() const { return k_; }
  std::int64_t panels() const { return panels_; }
  const float* panel(std::int64_t p) const;  // [in_features][128]
  const float* bias() const { return has_bias_ ? bias_ : nullptr; }

 private:
  friend Status pack_linear(const float*, std::int64_t, std::int64_t, std::int64_t, const float*, std::unique_ptr<PackedLinear>*);
  std::int64_t n_, k_, panels_;
  float* data_ = nullptr;  // 64-byte aligned: panels, then bias
  float* bias_ = nullptr;
  bool has_bias_ = false;
};

constexpr std::int64_t kLinearPanel = 128;

// Packs W [out_features, in_features] (PyTorch's Linear layout; rows ldw elements apart) and
// an optional bias [out_features].
Status pack_linear(const float* w, std::int64_t out_features, std::int64_t in_features, std::int64_t ldw,
                   const float* bias, std::unique_ptr<PackedLinear>* packed);

// y[m][n] = Σ_k x[m][k]·W[n][k] + b[n] for m < rows; x rows are in_features floats apart,
// y rows ldy floats apart (ldy ≥ out_features). threads 0: the default.
Status linear_cpu(const PackedLinear& w, const float* x, std::int64_t rows, float* y, std::int64_t ldy, int threads);

}  // namespace qkv
