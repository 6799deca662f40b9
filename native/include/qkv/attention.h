// The C++ core's public API: plain pointers, shapes and strides in, outputs written.
// Nothing here knows about JavaScript; the N-API binding and the C++ tests both use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qkv {

enum class DType : int { float32 = 0, float16 = 1, bfloat16 = 2 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// A strided 4-D view. For q/k/v/out the logical order is [B, H, S, D] whatever the memory
// layout: the caller permutes strides, so 'bshd' and split-head views are just strides.
// Strides and capacity count elements, not bytes. Every element the shape can reach must
// lie below `capacity` (checked, with overflow checks, before anything is read).
// Where a tensor's memory lives: host memory, or a CUDA device's (then `data` is a device
// pointer, readable only by backend 'cuda' on that device).
enum class Location : int { host = 0, cuda = 1 };

struct TensorDesc {
  void* data = nullptr;
  DType dtype = DType::float32;
  Location location = Location::host;
  std::int64_t shape[4] = {0, 0, 0, 0};
  std::int64_t strides[4] = {0, 0, 0, 0};
  std::int64_t capacity = 0;
};

enum class MaskKind : int { none = 0, boolean = 1, additive = 2 };

// A mask broadcast to [B, Hq, Sq, Skv]: broadcast dimensions have stride 0.
// boolean: uint8, nonzero = attend. additive: float32 added to the score; -inf = masked.
struct MaskDesc {
  MaskKind kind = MaskKind::none;
  const void* data = nullptr;
  std::int64_t strides[4] = {0, 0, 0, 0};
  std::int64_t capacity = 0;
};

// No window bound on that side.
constexpr std::int64_t kUnbounded = -1;

struct AttentionArgs {
  TensorDesc q;    // [B, Hq, Sq, D]
  TensorDesc k;    // [B, Hkv, Skv, D]
  TensorDesc v;    // [B, Hkv, Skv, Dv]
  TensorDesc out;  // [B, Hq, Sq, Dv], same dtype as q; written in full
  TensorDesc lse;  // optional (data == nullptr): float32 [B, Hq, Sq, 1]

  float scale = 1.0f;
  // Mask geometry, the same few numbers everywhere: query i's diagonal key is
  // diag(i) = i + diagonal_offset (0: upper-left; Skv - Sq: lower-right, a KV-cache step), and
  // key j is visible iff diag - window_left <= j <= diag + window_right. Causal attention is
  // window_right = 0. Window bounds and ALiBi distances use the diagonal.
  std::int64_t diagonal_offset = 0;
  std::int64_t window_left = kUnbounded;
  std::int64_t window_right = kUnbounded;
  MaskDesc mask;
  const std::int32_t* key_lengths = nullptr;  // optional [B]: keys >= key_lengths[b] masked
  std::int64_t key_lengths_count = 0;
  const float* alibi_slopes = nullptr;  // optional [Hq]: score -= slope * |diag - j|
  std::int64_t alibi_count = 0;
  float softcap = 0.0f;  // > 0: score = softcap * tanh(score / softcap), before bias/mask

  int threads = 0;  // CPU threads for this call; 0 = the default (QKV_THREADS or all cores)
};

enum class StatusCode : int { ok = 0, type_error = 1, range_error = 2 };

struct Status {
  StatusCode code = StatusCode::ok;
  std::string message;

  bool ok() const { return code == StatusCode::ok; }
  static Status success() { return {}; }
  static Status type_error(std::string msg) { return {StatusCode::type_error, std::move(msg)}; }
  static Status range_error(std::string msg) { return {StatusCode::range_error, std::move(msg)}; }
};

// Validates every field of `args` (shapes, strides against capacity, dtypes, mask, lengths,
// overlap of the outputs with the inputs). Safe on any input: it reads no tensor data
// except key_lengths and alibi_slopes, whose counts it checks first.
Status check(const AttentionArgs& args);

// check(), then the forward pass on the CPU. Fully masked query rows give zeros and
// lse = -inf. Never allocates memory proportional to Sq * Skv.
Status attention_cpu(const AttentionArgs& args);

// The CPU backend in use: the ISA its kernels were chosen for ("avx512bf16", "avx512", "avx2", "scalar";
// QKV_ISA can force a lower one) and the default thread count.
struct CpuInfo {
  const char* isa;
  int threads;
};
CpuInfo cpu_info();

// Every ISA kernel this CPU can run, best first ("avx512bf16", "avx512", "avx2", "scalar").
int cpu_supported_isas(const char** names, int capacity);
// Runs with the named ISA's kernels regardless of QKV_ISA (for tests). Unknown or
// unsupported names give a range error.
Status attention_cpu_with_isa(const AttentionArgs& args, const char* isa);

}  // namespace qkv
