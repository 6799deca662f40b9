// Measures this machine's fp32 FMA peak (12 independent FMA chains per thread, widest
// vector the CPU has) and memory bandwidth (triad), on 1..N threads. Prints JSON.
// Built and run by bench/run.mjs: g++ -O3 -march=native -pthread machine-peak.cpp
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

#if defined(__AVX512F__)
using V = __m512;
constexpr int kLanes = 16;
inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V splat(float x) { return _mm512_set1_ps(x); }
inline float lane0(V v) { return _mm512_cvtss_f32(v); }
#else
using V = __m256;
constexpr int kLanes = 8;
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V splat(float x) { return _mm256_set1_ps(x); }
inline float lane0(V v) { return _mm256_cvtss_f32(v); }
#endif

// 12 chains cover FMA latency (4 cycles) × 2 ports with room to spare.
double fma_flops(long iterations) {
  V acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = splat(1.0f + 0.001f * static_cast<float>(i));
  const V a = splat(0.999999f), b = splat(1e-7f);
  for (long it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = fma(acc[i], a, b);
  }
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += lane0(acc[i]);
  if (sink == 12345.0f) std::printf(" ");
  return 2.0 * kLanes * 12 * static_cast<double>(iterations);
}

template <class F>
double parallel_seconds(int threads, F&& body) {
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  std::atomic<bool> go{false};
  Clock::time_point start;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      body(t);
    });
  }
  while (ready.load() < threads) {
  }
  start = Clock::now();
  go.store(true);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double peak_gflops(int threads) {
  const long iterations = 40'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double s = parallel_seconds(threads, [&](int) { fma_flops(iterations); });
    best = std::max(best, 2.0 * kLanes * 12 * static_cast<double>(iterations) * threads / s / 1e9);
  }
  return best;
}

double triad_gbps(int threads) {
  const std::size_t n = 1 << 25;  // 128 MiB per array, far beyond cache
  std::vector<float> a(n, 1.0f), b(n, 2.0f), c(n, 0.0f);
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    const double s = parallel_seconds(threads, [&](int t) {
      const std::size_t begin = n * t / threads, end = n * (t + 1) / threads;
      for (std::size_t i = begin; i < end; ++i) c[i] = a[i] + 0.5f * b[i];
    });
    best = std::max(best, 3.0 * n * sizeof(float) / s / 1e9);
  }
  if (c[7] == 42.0f) std::printf(" ");
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : 2;
  std::printf("{\"vectorBits\": %d, \"fmaGflops\": {", kLanes * 32);
  for (int t = 1; t <= max_threads; ++t) std::printf("%s\"%d\": %.1f", t > 1 ? ", " : "", t, peak_gflops(t));
  std::printf("}, \"triadGBps\": {");
  for (int t = 1; t <= max_threads; ++t) std::printf("%s\"%d\": %.1f", t > 1 ? ", " : "", t, triad_gbps(t));
  std::printf("}}\n");
  return 0;
}
