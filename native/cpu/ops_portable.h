// Portable inner loops: plain C++ the compiler may auto-vectorise. The reference that the
// ISA-specific Ops are measured against, and the fallback on any CPU.
#pragma once

#include <cmath>
#include <cstdint>

namespace qkv {
namespace cpu {

struct PortableOps {
  // s[r * ld + c] = scale * dot(q[r], k[c]) over dense rows of length d.
  static void scores(const float* q, const float* k, std::int64_t rows, std::int64_t cols,
                     std::int64_t d, float scale, float* s, std::int64_t ld) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* qr = q + r * d;
      for (std::int64_t c = 0; c < cols; ++c) {
        const float* kc = k + c * d;
        float acc = 0.0f;
        for (std::int64_t x = 0; x < d; ++x) acc += qr[x] * kc[x];
        s[r * ld + c] = acc * scale;
      }
    }
  }

  static float exp(float x) { return std::exp(x); }

  // o = alpha * o + sum_c p[c] * v[c], v dense [cols, dv].
  static void accumulate_pv(const float* p, const float* v, std::int64_t cols, std::int64_t dv,
                            float alpha, float* o) {
    for (std::int64_t x = 0; x < dv; ++x) o[x] *= alpha;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float pc = p[c];
      const float* vc = v + c * dv;
      for (std::int64_t x = 0; x < dv; ++x) o[x] += pc * vc[x];
    }
  }
};

}  // namespace cpu
}  // namespace qkv
