// qkv's projection GEMM (qkv::linear_cpu: weights packed once into panels, the attention
// kernel's Q·Kᵀ micro-kernel) against OpenBLAS (cblas_sgemm; cblas_sgemv for one row) on the
// same data and thread count:
// y[M, N] = x[M, K]·Wᵀ. Prints JSON: per shape the median times, GFLOP/s and the largest
// relative difference between the two results.
//   qkv_linear_bench <threads>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "qkv/linear.h"

extern "C" void openblas_set_num_threads(int);

namespace {

double median_ms(const std::function<void()>& fn) {
  fn();  // warm-up (and first-touch of the output)
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 7 || (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(400) && times.size() < 2000)) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  openblas_set_num_threads(threads);
  struct Shape {
    const char* label;
    int M, N, K;
  };
  const Shape shapes[] = {
      {"decode: fused QKV, E1024 (M1 N3072 K1024)", 1, 3072, 1024},
      {"decode: output projection (M1 N1024 K1024)", 1, 1024, 1024},
      {"prefill 128 tokens: fused QKV (M128 N3072 K1024)", 128, 3072, 1024},
      {"prefill 512 tokens: fused QKV (M512 N3072 K1024)", 512, 3072, 1024},
      {"prefill 512 tokens: MLP up (M512 N4096 K1024)", 512, 4096, 1024},
  };
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::printf("{\"threads\": %d, \"shapes\": [", threads);
  bool first = true;
  for (const Shape& s : shapes) {
    std::vector<float> x(static_cast<std::size_t>(s.M) * s.K), w(static_cast<std::size_t>(s.N) * s.K);
    std::vector<float> y_qkv(static_cast<std::size_t>(s.M) * s.N), y_blas(y_qkv.size());
    for (float& v : x) v = dist(gen);
    for (float& v : w) v = dist(gen);
    std::unique_ptr<qkv::PackedLinear> packed;
    if (!qkv::pack_linear(w.data(), s.N, s.K, s.K, nullptr, &packed).ok()) return 1;
    const double qkv_ms = median_ms([&] { qkv::linear_cpu(*packed, x.data(), s.M, y_qkv.data(), s.N, threads); });
    // One row is a matrix-vector product: OpenBLAS's sgemv is what a caller would use there.
    const double blas_ms = median_ms([&] {
      if (s.M == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s.N, s.K, 1.0f, w.data(), s.K, x.data(), 1, 0.0f, y_blas.data(), 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.M, s.N, s.K, 1.0f, x.data(), s.K, w.data(), s.K, 0.0f,
                    y_blas.data(), s.N);
      }
    });
    double worst = 0;
    for (std::size_t i = 0; i < y_qkv.size(); ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(y_qkv[i]) - y_blas[i]) / std::max(1.0, std::fabs(static_cast<double>(y_blas[i]))));
    }
    const double gflop = 2.0 * s.M * s.N * static_cast<double>(s.K) / 1e9;
    std::printf("%s{\"label\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"qkvMs\": %.5f, \"openblasMs\": %.5f, "
                "\"qkvGflops\": %.2f, \"openblasGflops\": %.2f, \"maxRelDiff\": %.3g}",
                first ? "" : ", ", s.label, s.M, s.N, s.K, qkv_ms, blas_ms, gflop / (qkv_ms / 1e3), gflop / (blas_ms / 1e3), worst);
    first = false;
  }
  std::printf("]}\n");
  return 0;
}
