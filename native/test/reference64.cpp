#include "reference64.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace qkv {
namespace test {

namespace {
double at(const TensorDesc& t, std::int64_t b, std::int64_t h, std::int64_t s, std::int64_t d) {
  return static_cast<const float*>(t.data)[b * t.strides[0] + h * t.strides[1] + s * t.strides[2] + d * t.strides[3]];
}
}  // namespace

Reference reference64(const AttentionArgs& a) {
  const std::int64_t B = a.q.shape[0], Hq = a.q.shape[1], Sq = a.q.shape[2], D = a.q.shape[3];
  const std::int64_t Hkv = a.k.shape[1], Skv = a.k.shape[2], Dv = a.v.shape[3];
  const double inf = std::numeric_limits<double>::infinity();
  Reference r;
  r.out.assign(static_cast<std::size_t>(B * Hq * Sq * Dv), 0.0);
  r.lse.assign(static_cast<std::size_t>(B * Hq * Sq), -inf);
  std::vector<double> scores(static_cast<std::size_t>(Skv));
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t h = 0; h < Hq; ++h) {
      const std::int64_t hk = h * Hkv / Hq;
      for (std::int64_t i = 0; i < Sq; ++i) {
        const std::int64_t diag = i + a.diagonal_offset;
        double max = -inf;
        for (std::int64_t j = 0; j < Skv; ++j) {
          bool visible = true;
          if (a.key_lengths && j >= a.key_lengths[b]) visible = false;
          if (a.window_left >= 0 && j < diag - a.window_left) visible = false;
          if (a.window_right >= 0 && j > diag + a.window_right) visible = false;
          double s = 0;
          for (std::int64_t d = 0; d < D; ++d) s += at(a.q, b, h, i, d) * at(a.k, b, hk, j, d);
          s *= a.scale;
          if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);
          if (a.alibi_slopes) s -= a.alibi_slopes[h] * std::fabs(static_cast<double>(diag - j));
          if (a.mask.kind != MaskKind::none) {
            const std::int64_t m = b * a.mask.strides[0] + h * a.mask.strides[1] + i * a.mask.strides[2] + j * a.mask.strides[3];
            if (a.mask.kind == MaskKind::boolean) {
              if (static_cast<const std::uint8_t*>(a.mask.data)[m] == 0) visible = false;
            } else {
              s += static_cast<const float*>(a.mask.data)[m];
            }
          }
          scores[static_cast<std::size_t>(j)] = visible ? s : -inf;
          if (scores[static_cast<std::size_t>(j)] > max) max = scores[static_cast<std::size_t>(j)];
        }
        if (max == -inf) continue;
        double sum = 0;
        for (double& s : scores) sum += (s = std::exp(s - max));
        const std::size_t row = static_cast<std::size_t>((b * Hq + h) * Sq + i);
        r.lse[row] = max + std::log(sum);
        for (std::int64_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (std::int64_t j = 0; j < Skv; ++j) acc += scores[static_cast<std::size_t>(j)] * at(a.v, b, hk, j, d);
          r.out[row * static_cast<std::size_t>(Dv) + static_cast<std::size_t>(d)] = acc / sum;
        }
      }
    }
  }
  return r;
}

}  // namespace test
}  // namespace qkv
