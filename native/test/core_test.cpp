// C++ tests of the core without Node: the CPU kernel against the float64 reference on
// random data for every mask mode and odd sizes, poisoned outputs, and check() rejections.
// Built with QKV_BUILD_TESTS=ON; the sanitizer build (QKV_SANITIZE=ON) runs it too.
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "qkv/attention.h"
#include "reference64.h"

namespace {

using qkv::AttentionArgs;

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

struct Buffers {
  std::vector<float> q, k, v, out, lse, additive;
  std::vector<std::uint8_t> boolean;
  std::vector<std::int32_t> lengths;
  std::vector<float> slopes;
};

void contiguous(qkv::TensorDesc& t, std::vector<float>& data, std::int64_t b, std::int64_t h, std::int64_t s, std::int64_t d) {
  t.data = data.data();
  t.shape[0] = b, t.shape[1] = h, t.shape[2] = s, t.shape[3] = d;
  t.strides[3] = 1, t.strides[2] = d, t.strides[1] = s * d, t.strides[0] = h * s * d;
  t.capacity = static_cast<std::int64_t>(data.size());
}

struct Case {
  std::int64_t B, Hq, Hkv, Sq, Skv, D, Dv;
  bool causal;
  bool lower_right;  // the diagonal at i + Skv - Sq (else at i)
  std::int64_t window_left, window_right;
  qkv::MaskKind mask;
  bool lengths, alibi;
  float softcap;
};

void run_case(const Case& c, std::mt19937& gen, const char* isa) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Buffers buf;
  const auto fill = [&](std::vector<float>& v, std::int64_t n) {
    v.resize(static_cast<std::size_t>(n));
    for (float& x : v) x = dist(gen);
  };
  fill(buf.q, c.B * c.Hq * c.Sq * c.D);
  fill(buf.k, c.B * c.Hkv * c.Skv * c.D);
  fill(buf.v, c.B * c.Hkv * c.Skv * c.Dv);
  buf.out.assign(static_cast<std::size_t>(c.B * c.Hq * c.Sq * c.Dv), std::numeric_limits<float>::quiet_NaN());
  buf.lse.assign(static_cast<std::size_t>(c.B * c.Hq * c.Sq), std::numeric_limits<float>::quiet_NaN());

  AttentionArgs a;
  contiguous(a.q, buf.q, c.B, c.Hq, c.Sq, c.D);
  contiguous(a.k, buf.k, c.B, c.Hkv, c.Skv, c.D);
  contiguous(a.v, buf.v, c.B, c.Hkv, c.Skv, c.Dv);
  contiguous(a.out, buf.out, c.B, c.Hq, c.Sq, c.Dv);
  contiguous(a.lse, buf.lse, c.B, c.Hq, c.Sq, 1);
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  qkv::test::set_geometry(a, c.causal, c.lower_right, c.window_left, c.window_right);
  a.softcap = c.softcap;
  if (c.mask == qkv::MaskKind::boolean) {  // [Sq, Skv] broadcast over batch and heads
    buf.boolean.resize(static_cast<std::size_t>(c.Sq * c.Skv));
    for (auto& m : buf.boolean) m = dist(gen) > -0.4f ? 1 : 0;
    a.mask = {qkv::MaskKind::boolean, buf.boolean.data(), {0, 0, c.Skv, 1}, static_cast<std::int64_t>(buf.boolean.size())};
  } else if (c.mask == qkv::MaskKind::additive) {  // [B, 1, 1, Skv] padding-style
    buf.additive.resize(static_cast<std::size_t>(c.B * c.Skv));
    for (auto& m : buf.additive) m = dist(gen) > 0.6f ? -std::numeric_limits<float>::infinity() : dist(gen);
    a.mask = {qkv::MaskKind::additive, buf.additive.data(), {c.Skv, 0, 0, 1}, static_cast<std::int64_t>(buf.additive.size())};
  }
  if (c.lengths) {
    for (std::int64_t b = 0; b < c.B; ++b) buf.lengths.push_back(static_cast<std::int32_t>(b == 0 ? 0 : (c.Skv * 2) / 3));
    a.key_lengths = buf.lengths.data();
    a.key_lengths_count = c.B;
  }
  if (c.alibi) {
    for (std::int64_t h = 0; h < c.Hq; ++h) buf.slopes.push_back(std::ldexp(1.0f, -static_cast<int>(h + 1)));
    a.alibi_slopes = buf.slopes.data();
    a.alibi_count = c.Hq;
  }

  const std::string name = std::string(isa) + " B" + std::to_string(c.B) + " Hq" + std::to_string(c.Hq) + " Hkv" + std::to_string(c.Hkv) +
                           " Sq" + std::to_string(c.Sq) + " Skv" + std::to_string(c.Skv) + " D" + std::to_string(c.D) +
                           " Dv" + std::to_string(c.Dv) + " causal" + std::to_string(c.causal) + " mask" +
                           std::to_string(static_cast<int>(c.mask));
  const qkv::Status status = qkv::attention_cpu_with_isa(a, isa);
  expect(status.ok(), name + ": " + status.message);
  if (!status.ok()) return;
  const qkv::test::Reference ref = qkv::test::reference64(a);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.out.size(); ++i) {
    const double d = buf.out[i] - ref.out[i];
    num += d * d;
    den += ref.out[i] * ref.out[i];
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  expect(rel <= 1e-6, name + ": relative L2 " + std::to_string(rel));
  for (std::size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      expect(std::isinf(buf.lse[i]) && buf.lse[i] < 0, name + ": fully masked row lse");
      for (std::int64_t d = 0; d < c.Dv; ++d) {
        expect(buf.out[i * static_cast<std::size_t>(c.Dv) + static_cast<std::size_t>(d)] == 0.0f, name + ": masked row zero");
      }
    } else {
      expect(std::fabs(buf.lse[i] - ref.lse[i]) <= 1e-5 * std::max(1.0, std::fabs(ref.lse[i])), name + ": lse");
    }
  }
}

// The decode path with K read through its row buffers (strided K) and D > Dv, on a fresh
// thread: its scratch arena is then sized exactly, so ASan sees any write past a buffer.
void decode_with_strided_keys_on_a_fresh_thread() {
  const std::int64_t Hq = 2, Skv = 300, D = 64, Dv = 7;
  std::vector<float> q(Hq * D, 0.25f), k(Hq * Skv * D * 2, 0.5f), v(Hq * Skv * Dv, 1.0f), out(Hq * Dv, -1.0f);
  AttentionArgs a;
  contiguous(a.q, q, 1, Hq, 1, D);
  contiguous(a.v, v, 1, Hq, Skv, Dv);
  contiguous(a.out, out, 1, Hq, 1, Dv);
  a.k.data = k.data();
  a.k.shape[0] = 1, a.k.shape[1] = Hq, a.k.shape[2] = Skv, a.k.shape[3] = D;
  a.k.strides[3] = 2, a.k.strides[2] = 2 * D, a.k.strides[1] = 2 * D * Skv, a.k.strides[0] = 2 * D * Skv * Hq;
  a.k.capacity = static_cast<std::int64_t>(k.size());
  a.scale = 0.125f;
  a.threads = 1;
  qkv::Status status;
  std::thread worker([&] { status = qkv::attention_cpu(a); });
  worker.join();
  expect(status.ok(), "decode with strided keys: " + status.message);
  for (float x : out) expect(x == 1.0f, "decode with strided keys: uniform V gives 1");
}

void check_rejections() {
  std::vector<float> data(64, 1.0f), out(64, 0.0f);
  AttentionArgs a;
  contiguous(a.q, data, 1, 2, 4, 8);
  contiguous(a.k, data, 1, 2, 4, 8);
  contiguous(a.v, data, 1, 2, 4, 8);
  contiguous(a.out, out, 1, 2, 4, 8);
  expect(qkv::check(a).ok(), "valid args pass check()");
  AttentionArgs bad = a;
  bad.k.capacity = 63;
  expect(qkv::check(bad).code == qkv::StatusCode::range_error, "k capacity");
  bad = a;
  bad.out.data = data.data();
  expect(qkv::check(bad).code == qkv::StatusCode::range_error, "out aliases q");
  bad = a;
  bad.q.strides[0] = std::numeric_limits<std::int64_t>::max();
  bad.q.shape[0] = 3;
  expect(!qkv::check(bad).ok(), "overflowing strides");
  bad = a;
  bad.scale = std::numeric_limits<float>::quiet_NaN();
  expect(!qkv::check(bad).ok(), "NaN scale");
  bad = a;
  bad.key_lengths_count = 1;
  expect(!qkv::check(bad).ok(), "key lengths count without data");
}

}  // namespace

int main() {
  std::mt19937 gen(1234);
  const char* isas[8];
  const int isa_count = qkv::cpu_supported_isas(isas, 8);
  const std::int64_t sizes[][2] = {{1, 1}, {1, 257}, {7, 7}, {7, 65}, {63, 63}, {65, 7}, {65, 129}, {257, 257}};
  int count = 0;
  for (const auto& s : sizes) {
    for (int mode = 0; mode < 6; ++mode) {
      Case c{1, 2, 1, s[0], s[1], 16, 16, false, false, qkv::kUnbounded, qkv::kUnbounded,
             qkv::MaskKind::none, false, false, 0.0f};
      if (mode == 1) c.causal = true;
      if (mode == 2) c.causal = true, c.lower_right = true, c.window_left = 5;
      if (mode == 3) c.mask = qkv::MaskKind::boolean, c.B = 2, c.lengths = true;
      if (mode == 4) c.mask = qkv::MaskKind::additive, c.B = 2, c.Dv = 7, c.alibi = true;
      if (mode == 5) c.softcap = 2.0f, c.window_right = 3, c.D = 65, c.Hq = 4, c.Hkv = 2;
      for (int i = 0; i < isa_count; ++i) {
        run_case(c, gen, isas[i]);
        ++count;
      }
    }
  }
  check_rejections();
  decode_with_strided_keys_on_a_fresh_thread();
  std::printf("ISAs tested:");
  for (int i = 0; i < isa_count; ++i) std::printf(" %s", isas[i]);
  std::printf("\n");
  std::printf("%d passed, %d failed\n", failures == 0 ? count + 1 : 0, failures);
  return failures == 0 ? 0 : 1;
}
