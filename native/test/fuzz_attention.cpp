// libFuzzer target: arbitrary bytes → an arbitrary (bounded) AttentionArgs → attention_cpu,
// and (one input in eight) an arbitrary linear layer → pack_linear + linear_cpu, checked
// against a double-precision product (a mismatch traps).
// Shapes, strides (0 and oversized included), capacities (short ones included), dtypes,
// every mask mode, key lengths, slopes, window, scale and softcap bits all come from the
// input. check() must reject whatever the kernels cannot run safely; ASan/UBSan catch any
// out-of-bounds access or UB in what it accepts. Built by CMake with QKV_FUZZ=ON (clang).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "qkv/attention.h"
#include "qkv/linear.h"

namespace {

class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::int64_t small(int max) { return static_cast<std::int64_t>(u8() % (max + 1)); }
  std::int64_t i64() {
    std::uint64_t x = 0;
    for (int i = 0; i < 8; ++i) x = x << 8 | u8();
    return static_cast<std::int64_t>(x);
  }
  float f32() {
    std::uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits = bits << 8 | u8();
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

struct Buffer {
  std::vector<std::uint8_t> bytes;
};

// Mostly valid but unusual views: strides are contiguous, broadcast (0), padded or
// arbitrary; the buffer holds exactly what they reach plus a little, and now and then
// a few elements too few (which check() must reject).
void describe(Bytes& in, qkv::TensorDesc& t, const std::int64_t shape[4], qkv::DType dtype, Buffer& buf) {
  t.dtype = dtype;
  std::int64_t step = 1, reach = 0;
  bool empty = false;
  for (int i = 3; i >= 0; --i) {
    t.shape[i] = shape[i];
    const std::uint8_t mode = in.u8() % 16;
    t.strides[i] = mode == 0 ? 0 : mode == 1 ? step + in.small(3) : mode == 2 ? in.small(40) : step;
    step *= shape[i] == 0 ? 1 : shape[i];
    reach += t.strides[i] * (shape[i] > 0 ? shape[i] - 1 : 0);
    empty = empty || shape[i] == 0;
  }
  std::int64_t elements = (empty ? 0 : reach + 1) + in.small(3);
  if (in.u8() % 16 == 0) elements -= 1 + in.small(2);
  if (elements < 0) elements = 0;
  const std::size_t size = static_cast<std::size_t>(elements) * qkv::dtype_size(dtype);
  buf.bytes.assign(size, 0);
  for (std::size_t i = 0; i < size; ++i) buf.bytes[i] = static_cast<std::uint8_t>(in.u8() ^ (i * 31));
  t.data = buf.bytes.empty() ? nullptr : buf.bytes.data();
  t.capacity = elements;
}

}  // namespace

// Weights, bias and rows from the input (small values, so float32 sums stay exact enough),
// y sized exactly: ASan catches any write past it.
void fuzz_linear(Bytes& in) {
  const std::int64_t n = 1 + in.small(300), k = 1 + in.small(200), rows = in.small(60);
  const auto value = [&in] { return static_cast<float>(static_cast<int>(in.u8()) - 128) / 64.0f; };
  std::vector<float> w(static_cast<std::size_t>(n * k)), bias(static_cast<std::size_t>(n)), x(static_cast<std::size_t>(rows * k));
  for (float& v : w) v = value();
  for (float& v : bias) v = value();
  for (float& v : x) v = value();
  const bool with_bias = in.u8() % 2 == 0;
  std::unique_ptr<qkv::PackedLinear> packed;
  if (!qkv::pack_linear(w.data(), n, k, k, with_bias ? bias.data() : nullptr, &packed).ok()) __builtin_trap();
  std::vector<float> y(static_cast<std::size_t>(rows * n));
  if (!qkv::linear_cpu(*packed, x.data(), rows, y.data(), n, static_cast<int>(1 + in.small(2))).ok()) __builtin_trap();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < n; ++c) {
      double e = with_bias ? bias[static_cast<std::size_t>(c)] : 0.0;
      for (std::int64_t d = 0; d < k; ++d) e += static_cast<double>(x[static_cast<std::size_t>(r * k + d)]) * w[static_cast<std::size_t>(c * k + d)];
      if (std::fabs(y[static_cast<std::size_t>(r * n + c)] - e) > 1e-3 * (1.0 + std::fabs(e))) __builtin_trap();
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes in(data, size);
  if (size > 0 && data[0] % 8 == 7) {
    fuzz_linear(in);
    return 0;
  }
  const std::int64_t B = in.small(2), Hkv = 1 + in.small(2), group = 1 + in.small(2), Sq = in.small(70), Skv = in.small(300);
  const std::int64_t D = 1 + in.small(40) - (in.u8() % 32 == 0 ? 1 : 0), Dv = 1 + in.small(40);
  const std::int64_t Hq = Hkv * group + (in.u8() % 32 == 0 ? 1 : 0);  // rarely not a multiple
  const qkv::DType dtype = static_cast<qkv::DType>(in.u8() % 3);

  qkv::AttentionArgs a;
  Buffer q, k, v, out, lse, mask;
  const std::int64_t qs[4] = {B, Hq, Sq, D}, ks[4] = {B, Hkv, Skv, D}, vs[4] = {B, Hkv, Skv, Dv};
  const std::int64_t os[4] = {B, Hq, Sq, Dv + (in.u8() % 16 == 0 ? 1 : 0)}, ls[4] = {B, Hq, Sq, 1};
  describe(in, a.q, qs, dtype, q);
  describe(in, a.k, ks, in.u8() % 16 == 0 ? qkv::DType::float32 : dtype, k);
  describe(in, a.v, vs, dtype, v);
  describe(in, a.out, os, dtype, out);
  if (in.u8() % 2) describe(in, a.lse, ls, qkv::DType::float32, lse);

  a.scale = in.u8() % 8 == 0 ? in.f32() : 0.125f;
  a.softcap = in.u8() % 8 == 0 ? in.f32() : 0.0f;
  // Any diagonal: upper-left, lower-right, or arbitrary (a per-sequence offset, far ones too).
  const std::uint8_t diagonal = in.u8() % 4;
  a.diagonal_offset = diagonal == 0 ? 0 : diagonal == 1 ? Skv - Sq : diagonal == 2 ? in.small(200) - 100 : in.i64();
  a.window_left = in.u8() % 4 == 0 ? in.small(80) - 2 : qkv::kUnbounded;
  a.window_right = in.u8() % 3 == 0 ? in.small(80) - 2 : qkv::kUnbounded;
  a.threads = static_cast<int>(in.small(3));

  const std::uint8_t mask_mode = in.u8() % 3;
  if (mask_mode != 0) {
    qkv::TensorDesc m;
    const std::int64_t full[4] = {B, Hq, Sq, Skv};
    describe(in, m, full, qkv::DType::float32, mask);
    a.mask.kind = mask_mode == 1 ? qkv::MaskKind::boolean : qkv::MaskKind::additive;
    a.mask.data = m.data;
    for (int i = 0; i < 4; ++i) a.mask.strides[i] = in.u8() % 4 == 0 ? 0 : m.strides[i];
    // boolean masks are bytes: the same buffer holds 4x the elements
    a.mask.capacity = mask_mode == 1 ? m.capacity * 4 : m.capacity;
  }
  std::vector<std::int32_t> lengths;
  if (in.u8() % 3 == 0) {
    const std::int64_t count = in.u8() % 8 == 0 ? B + 1 : B;
    for (std::int64_t b = 0; b < count; ++b) lengths.push_back(static_cast<std::int32_t>(in.small(255)) - 2);
    a.key_lengths = lengths.empty() ? nullptr : lengths.data();
    a.key_lengths_count = count;
  }
  std::vector<float> slopes;
  if (in.u8() % 3 == 0) {
    for (std::int64_t h = 0; h < Hq; ++h) slopes.push_back(in.u8() % 16 == 0 ? in.f32() : 0.25f);
    a.alibi_slopes = slopes.empty() ? nullptr : slopes.data();
    a.alibi_count = Hq;
  }
  (void)qkv::attention_cpu(a);
  return 0;
}
