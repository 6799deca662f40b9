// The CUDA kernels' own source, run on the CPU through native/cuda/shim, against the float64
// reference: every mask mode, odd sizes, GQA, strided inputs. Plus self-tests showing the
// shim catches what a GPU would punish: a missing __syncthreads(), a shuffle from an exited
// lane, a barrier that not every thread reaches.
#include "../cuda/shim/cuda_shim.h"
// (the shim comes first: it defines the CUDA qualifiers the kernel source uses)
#include "../cuda/attention_simt.cuh"
#include "../cuda/mma.cuh"
#include "../cuda/attention_mma.cuh"

#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "reference64.h"

namespace {

int failures = 0, passes = 0;

void expect(bool ok, const std::string& what) {
  if (ok) {
    ++passes;
  } else {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

// A block-wide sum through shared memory: correct only with its barriers.
__global__ void block_sum(const float* in, float* out, bool with_barriers) {
  __shared__ float partial[128];
  const unsigned t = threadIdx.x;
  partial[t] = in[t];
  if (with_barriers) __syncthreads();
  for (unsigned stride = 64; stride > 0; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    if (with_barriers) __syncthreads();
  }
  if (t == 0) *out = partial[0];
}

__global__ void shuffle_from_exited_lane(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void warp_reduce(float* out) {
  float x = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  out[threadIdx.x] = x;
}

void shim_self_tests() {
  std::vector<float> in(128), out(32, 0.0f);
  for (int i = 0; i < 128; ++i) in[i] = static_cast<float>(i + 1);
  float sum = 0.0f;
  std::string err = qkv_shim::launch(dim3(1), dim3(128), block_sum, in.data(), &sum, true);
  expect(err.empty() && sum == 8256.0f, "block sum with barriers = 8256");
  // Shared memory still holds the first launch's values (as on a GPU, nothing clears it):
  // without barriers, threads read them before their neighbours overwrite them.
  for (float& x : in) x *= 2.0f;
  err = qkv_shim::launch(dim3(1), dim3(128), block_sum, in.data(), &sum, false);
  expect(err.empty() && sum != 16512.0f, "block sum without __syncthreads() is wrong on the shim");
  err = qkv_shim::launch(dim3(1), dim3(128), block_sum, in.data(), &sum, true);
  expect(err.empty() && sum == 16512.0f, "and right again with them");
  err = qkv_shim::launch(dim3(1), dim3(32), warp_reduce, out.data());
  bool all = err.empty();
  for (float x : out) all = all && x == 496.0f;
  expect(all, "warp xor-shuffle reduction = 496 in every lane");
  err = qkv_shim::launch(dim3(1), dim3(32), shuffle_from_exited_lane, out.data());
  expect(!err.empty(), "a shuffle from an exited lane is reported");
  err = qkv_shim::launch(dim3(1), dim3(32), divergent_barrier, out.data());
  expect(!err.empty(), "a divergent __syncthreads() is reported");
}

// One tensor-core tile through the kernels' fragment loads and the shim's hardware model:
// D = A·B + C against a float64 product of the same (f16-rounded) numbers.
void mma_tile_test(std::mt19937& gen) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<std::uint16_t> A(16 * 16), Bt(8 * 16);
  std::vector<float> C(16 * 8), D(16 * 8, std::numeric_limits<float>::quiet_NaN());
  for (auto& x : A) x = qkv::float_to_f16(dist(gen));
  for (auto& x : Bt) x = qkv::float_to_f16(dist(gen));
  for (auto& x : C) x = dist(gen);
  const std::string err = qkv_shim::launch(dim3(1), dim3(32), qkv::cuda::mma_tile_f16, static_cast<const std::uint16_t*>(A.data()),
                                           static_cast<const std::uint16_t*>(Bt.data()), static_cast<const float*>(C.data()), D.data());
  expect(err.empty(), "mma tile: " + err);
  double worst = 0;
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      double e = C[static_cast<std::size_t>(r * 8 + n)];
      for (int k = 0; k < 16; ++k) {
        e += static_cast<double>(qkv::f16_to_float(A[static_cast<std::size_t>(r * 16 + k)])) *
             qkv::f16_to_float(Bt[static_cast<std::size_t>(n * 16 + k)]);
      }
      worst = std::max(worst, std::fabs(D[static_cast<std::size_t>(r * 8 + n)] - e));
    }
  expect(worst <= 1e-5, "mma m16n8k16 tile matches the float64 product (max error " + std::to_string(worst) + ")");
}

struct Case {
  std::int64_t B, Hq, Hkv, Sq, Skv, D, Dv;
  bool causal;
  bool lower_right;  // the diagonal at i + Skv - Sq (else at i)
  std::int64_t window_left;
  qkv::MaskKind mask;
  bool lengths, alibi, strided;
  float softcap;
  std::int64_t split_chunk = 0;  // > 0: the split-KV decode kernels with chunks of this many keys
};

void fill_view(qkv::TensorDesc& t, std::vector<float>& data, std::int64_t b, std::int64_t h, std::int64_t s,
               std::int64_t d, bool strided) {
  const std::int64_t sd = strided ? 2 : 1;
  t.shape[0] = b, t.shape[1] = h, t.shape[2] = s, t.shape[3] = d;
  t.strides[3] = sd, t.strides[2] = d * sd + (strided ? 3 : 0), t.strides[1] = s * t.strides[2], t.strides[0] = h * t.strides[1];
  data.resize(static_cast<std::size_t>(b * t.strides[0] + 1));
  t.data = data.data();
  t.capacity = static_cast<std::int64_t>(data.size());
}

// The buffers behind a case's mask options; they must outlive the launch.
struct Options {
  std::vector<float> additive, slopes;
  std::vector<std::uint8_t> boolean;
  std::vector<std::int32_t> lengths;
};

// Scale, causal, window, softcap, masks, key lengths and ALiBi slopes of case c into args.
void set_options(const Case& c, qkv::AttentionArgs& args, Options& o, std::mt19937& gen) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  args.scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  qkv::test::set_geometry(args, c.causal, c.lower_right, c.window_left, qkv::kUnbounded);
  args.softcap = c.softcap;
  if (c.mask == qkv::MaskKind::boolean) {
    o.boolean.resize(static_cast<std::size_t>(c.Sq * c.Skv));
    for (auto& m : o.boolean) m = dist(gen) > -0.4f ? 1 : 0;
    args.mask = {qkv::MaskKind::boolean, o.boolean.data(), {0, 0, c.Skv, 1}, static_cast<std::int64_t>(o.boolean.size())};
  } else if (c.mask == qkv::MaskKind::additive) {
    o.additive.resize(static_cast<std::size_t>(c.B * c.Skv));
    for (auto& m : o.additive) m = dist(gen) > 0.6f ? -std::numeric_limits<float>::infinity() : dist(gen);
    args.mask = {qkv::MaskKind::additive, o.additive.data(), {c.Skv, 0, 0, 1}, static_cast<std::int64_t>(o.additive.size())};
  }
  if (c.lengths) {
    for (std::int64_t b = 0; b < c.B; ++b) o.lengths.push_back(static_cast<std::int32_t>(b == 0 ? 0 : (c.Skv * 2) / 3));
    args.key_lengths = o.lengths.data();
    args.key_lengths_count = c.B;
  }
  if (c.alibi) {
    for (std::int64_t h = 0; h < c.Hq; ++h) o.slopes.push_back(std::ldexp(1.0f, -static_cast<int>(h + 1)));
    args.alibi_slopes = o.slopes.data();
    args.alibi_count = c.Hq;
  }
}

void run_case(const Case& c, std::mt19937& gen) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q, k, v, out, lse;
  Options options;
  qkv::AttentionArgs a;
  fill_view(a.q, q, c.B, c.Hq, c.Sq, c.D, c.strided);
  fill_view(a.k, k, c.B, c.Hkv, c.Skv, c.D, c.strided);
  fill_view(a.v, v, c.B, c.Hkv, c.Skv, c.Dv, c.strided);
  fill_view(a.out, out, c.B, c.Hq, c.Sq, c.Dv, false);
  fill_view(a.lse, lse, c.B, c.Hq, c.Sq, 1, false);
  for (auto* buf : {&q, &k, &v}) for (float& x : *buf) x = dist(gen);
  std::fill(out.begin(), out.end(), std::numeric_limits<float>::quiet_NaN());
  set_options(c, a, options, gen);
  const std::string name = "Sq" + std::to_string(c.Sq) + " Skv" + std::to_string(c.Skv) + " D" + std::to_string(c.D) +
                           " Dv" + std::to_string(c.Dv) + " causal" + std::to_string(c.causal) + " mask" +
                           std::to_string(static_cast<int>(c.mask)) + (c.strided ? " strided" : "") +
                           (c.split_chunk > 0 ? " split" + std::to_string(c.split_chunk) : "");
  const qkv::Status status = qkv::check(a);
  expect(status.ok(), name + ": check " + status.message);
  if (!status.ok()) return;
  const dim3 grid(static_cast<unsigned>((c.Sq + qkv::cuda::kSimtWarps - 1) / qkv::cuda::kSimtWarps),
                  static_cast<unsigned>(c.Hq), static_cast<unsigned>(c.B));
  const dim3 block(32 * qkv::cuda::kSimtWarps);
  std::string err;
  if (c.split_chunk > 0) {
    const std::int64_t chunks = (c.Skv + c.split_chunk - 1) / c.split_chunk;
    std::vector<float> partials(static_cast<std::size_t>(c.B * c.Hq * c.Sq * chunks * qkv::cuda::kPartialFloats),
                                std::numeric_limits<float>::quiet_NaN());
    err = qkv_shim::launch(dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(c.Hq), static_cast<unsigned>(c.B)),
                           block, qkv::cuda::attention_split_f32, a, qkv::mask_rules_of(a), c.split_chunk, partials.data());
    if (err.empty()) {
      err = qkv_shim::launch(grid, block, qkv::cuda::attention_merge_f32, a, chunks,
                             static_cast<const float*>(partials.data()));
    }
  } else {
    err = qkv_shim::launch(grid, block, qkv::cuda::attention_simt_f32, a, qkv::mask_rules_of(a));
  }
  expect(err.empty(), name + ": " + err);
  const qkv::test::Reference ref = qkv::test::reference64(a);
  double num = 0, den = 0;
  bool zeros_ok = true;
  for (std::int64_t r = 0; r < c.B * c.Hq * c.Sq; ++r) {
    for (std::int64_t d = 0; d < c.Dv; ++d) {
      const double x = out[static_cast<std::size_t>(r * c.Dv + d)], e = ref.out[static_cast<std::size_t>(r * c.Dv + d)];
      num += (x - e) * (x - e);
      den += e * e;
    }
    if (std::isinf(ref.lse[static_cast<std::size_t>(r)])) {
      zeros_ok = zeros_ok && std::isinf(lse[static_cast<std::size_t>(r)]) && out[static_cast<std::size_t>(r * c.Dv)] == 0.0f;
    } else {
      zeros_ok = zeros_ok && std::fabs(lse[static_cast<std::size_t>(r)] - ref.lse[static_cast<std::size_t>(r)]) <=
                                 1e-5 * std::max(1.0, std::fabs(ref.lse[static_cast<std::size_t>(r)]));
    }
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  expect(rel <= 1e-6, name + ": relative L2 " + std::to_string(rel));
  expect(zeros_ok, name + ": lse and fully masked rows");
}

}  // namespace

// The tensor-core kernels: inputs rounded to f16/bf16 (the reference reads a float32 mirror
// of exactly those values); the contract is relative L2 ≤ 2e-3 (fp16) / 1e-2 (bf16).
void run_mma_case(const Case& c, std::mt19937& gen, qkv::DType dtype) {
  const bool bf16 = dtype == qkv::DType::bfloat16;
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q, k, v, out, lse;
  Options options;
  qkv::AttentionArgs ref;  // float32 mirror, for the reference
  fill_view(ref.q, q, c.B, c.Hq, c.Sq, c.D, c.strided);
  fill_view(ref.k, k, c.B, c.Hkv, c.Skv, c.D, c.strided);
  fill_view(ref.v, v, c.B, c.Hkv, c.Skv, c.Dv, c.strided);
  fill_view(ref.out, out, c.B, c.Hq, c.Sq, c.Dv, false);
  fill_view(ref.lse, lse, c.B, c.Hq, c.Sq, 1, false);
  const auto half_copy = [bf16](std::vector<float>& f) {
    std::vector<std::uint16_t> h(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) {
      h[i] = bf16 ? qkv::float_to_bf16(f[i]) : qkv::float_to_f16(f[i]);
      f[i] = bf16 ? qkv::bf16_to_float(h[i]) : qkv::f16_to_float(h[i]);
    }
    return h;
  };
  for (auto* buf : {&q, &k, &v}) for (float& x : *buf) x = dist(gen);
  std::vector<std::uint16_t> qh = half_copy(q), kh = half_copy(k), vh = half_copy(v), oh(out.size(), 0x7e00);
  set_options(c, ref, options, gen);
  qkv::AttentionArgs a = ref;  // the kernel's view: the same shapes over f16 bits
  a.q.data = qh.data(), a.k.data = kh.data(), a.v.data = vh.data(), a.out.data = oh.data();
  a.q.dtype = a.k.dtype = a.v.dtype = a.out.dtype = dtype;
  const std::string name = std::string(bf16 ? "mma bf16" : "mma f16") + " Sq" + std::to_string(c.Sq) + " Skv" + std::to_string(c.Skv) + " D" + std::to_string(c.D) +
                           " Dv" + std::to_string(c.Dv) + " causal" + std::to_string(c.causal) + " mask" +
                           std::to_string(static_cast<int>(c.mask)) + (c.strided ? " strided" : "");
  const qkv::Status status = qkv::check(a);
  expect(status.ok(), name + ": check " + status.message);
  if (!status.ok()) return;
  const dim3 grid(static_cast<unsigned>((c.Sq + qkv::cuda::kMmaRows - 1) / qkv::cuda::kMmaRows), static_cast<unsigned>(c.Hq),
                  static_cast<unsigned>(c.B));
  const std::string err = bf16 ? qkv_shim::launch(grid, dim3(32), qkv::cuda::attention_mma<qkv::cuda::BFloat16>, a, qkv::mask_rules_of(a))
                               : qkv_shim::launch(grid, dim3(32), qkv::cuda::attention_mma<qkv::cuda::Float16>, a, qkv::mask_rules_of(a));
  expect(err.empty(), name + ": " + err);
  const qkv::test::Reference expected = qkv::test::reference64(ref);
  double num = 0, den = 0;
  bool rows_ok = true;
  for (std::int64_t r = 0; r < c.B * c.Hq * c.Sq; ++r) {
    for (std::int64_t d = 0; d < c.Dv; ++d) {
      const std::uint16_t bits = oh[static_cast<std::size_t>(r * c.Dv + d)];
      const double x = bf16 ? qkv::bf16_to_float(bits) : qkv::f16_to_float(bits);
      const double e = expected.out[static_cast<std::size_t>(r * c.Dv + d)];
      num += (x - e) * (x - e);
      den += e * e;
    }
    const double le = expected.lse[static_cast<std::size_t>(r)];
    const float lx = lse[static_cast<std::size_t>(r)];
    rows_ok = rows_ok && (std::isinf(le) ? (std::isinf(lx) && lx < 0 && oh[static_cast<std::size_t>(r * c.Dv)] == 0)
                                         : std::fabs(lx - le) <= 1e-4 * std::max(1.0, std::fabs(le)));
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  expect(rel <= (bf16 ? 1e-2 : 2e-3), name + ": relative L2 " + std::to_string(rel));
  expect(rows_ok, name + ": lse and fully masked rows");
}

int main() {
  shim_self_tests();
  std::mt19937 gen(77);
  mma_tile_test(gen);
  const std::int64_t sizes[][2] = {{1, 1}, {1, 65}, {7, 7}, {7, 65}, {33, 33}, {65, 7}, {9, 129}};
  for (const auto& s : sizes) {
    for (int mode = 0; mode < 6; ++mode) {
      Case c{1, 2, 1, s[0], s[1], 16, 16, false, false, qkv::kUnbounded,
             qkv::MaskKind::none, false, false, false, 0.0f};
      if (mode == 1) c.causal = true, c.strided = true;
      if (mode == 2) c.causal = true, c.lower_right = true, c.window_left = 5;
      if (mode == 3) c.mask = qkv::MaskKind::boolean, c.B = 2, c.lengths = true;
      if (mode == 4) c.mask = qkv::MaskKind::additive, c.B = 2, c.Dv = 7, c.alibi = true;
      if (mode == 5) c.softcap = 2.0f, c.D = 65, c.Dv = 128, c.Hq = 4, c.Hkv = 2;
      run_case(c, gen);
    }
  }
  // Decode: few queries, keys split into chunks (some fully masked by the window or lengths).
  for (int mode = 0; mode < 6; ++mode) {
    Case c{1, 4, 2, 1 + mode % 3, 300, 32, 32, true, true, qkv::kUnbounded,
           qkv::MaskKind::none, false, false, false, 0.0f, 64};
    if (mode == 1) c.window_left = 70;
    if (mode == 2) c.mask = qkv::MaskKind::additive, c.B = 2, c.lengths = true, c.split_chunk = 37;
    if (mode == 3) c.mask = qkv::MaskKind::boolean, c.alibi = true, c.Dv = 7, c.strided = true;
    if (mode == 4) c.Sq = 6, c.D = 128, c.Dv = 128, c.softcap = 3.0f, c.split_chunk = 100;
    if (mode == 5) c.causal = false, c.Skv = 1, c.split_chunk = 1;
    run_case(c, gen);
  }
  // Tensor cores, float16.
  const std::int64_t mma_sizes[][2] = {{1, 1}, {7, 65}, {16, 16}, {33, 40}, {65, 129}};
  for (const auto& s : mma_sizes) {
    for (int mode = 0; mode < 6; ++mode) {
      Case c{1, 2, 1, s[0], s[1], 64, 64, false, false, qkv::kUnbounded,
             qkv::MaskKind::none, false, false, false, 0.0f};
      if (mode == 1) c.causal = true, c.strided = true, c.D = 72, c.Dv = 40;
      if (mode == 2) c.causal = true, c.lower_right = true, c.window_left = 9, c.D = 16, c.Dv = 16;
      if (mode == 3) c.mask = qkv::MaskKind::boolean, c.B = 2, c.lengths = true;
      if (mode == 4) c.mask = qkv::MaskKind::additive, c.B = 2, c.Dv = 7, c.alibi = true;
      if (mode == 5) c.softcap = 2.0f, c.D = 128, c.Dv = 128, c.Hq = 4, c.Hkv = 2;
      run_mma_case(c, gen, qkv::DType::float16);
      run_mma_case(c, gen, qkv::DType::bfloat16);
    }
  }
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
