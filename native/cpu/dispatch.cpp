// CPU backend entry: checks the arguments, picks the ISA's kernels once per process (CPUID
// and OS support via the compiler's cpu-feature builtins; QKV_ISA may force a lower one),
// packs K and V, and runs the query tasks on the thread pool.
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "plan.h"
#include "qkv/attention.h"
#include "thread_pool.h"

namespace qkv {
namespace cpu {

KernelTable kernels_avx512bf16();
KernelTable kernels_avx512();
KernelTable kernels_avx2();
KernelTable kernels_scalar();

namespace {

bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

bool cpu_has_avx512bf16() { return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16"); }

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

// Supported kernels, best first.
int supported(KernelTable* out) {
  int n = 0;
  if (cpu_has_avx512bf16()) out[n++] = kernels_avx512bf16();
  if (cpu_has_avx512()) out[n++] = kernels_avx512();
  if (cpu_has_avx2()) out[n++] = kernels_avx2();
  out[n++] = kernels_scalar();
  return n;
}

const KernelTable* find(const char* isa) {
  static KernelTable tables[4];
  static const int count = supported(tables);
  for (int i = 0; i < count; ++i) {
    if (std::strcmp(tables[i].isa, isa) == 0) return &tables[i];
  }
  return nullptr;
}

const KernelTable& chosen() {
  static const KernelTable table = [] {
    KernelTable tables[4];
    const int count = supported(tables);
    const char* forced = std::getenv("QKV_ISA");
    if (forced != nullptr) {
      // Only a supported ISA can be forced; anything else keeps the best one.
      for (int i = 0; i < count; ++i) {
        if (std::strcmp(tables[i].isa, forced) == 0) return tables[i];
      }
    }
    return tables[0];
  }();
  return table;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float, FreeDeleter>;

Buffer allocate_floats(std::int64_t count) {
  const std::size_t bytes = (static_cast<std::size_t>(count) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  return Buffer(static_cast<float*>(p));
}

// Scratch memory reused across the calls of one calling thread (the JS thread, each libuv
// worker): fresh large allocations come back as new pages, and faulting them in costs
// more than packing. Buffers above kKeepBytes are freed after the call.
class Arena {
 public:
  float* get(std::int64_t floats) {
    if (floats > capacity_) {
      buffer_ = allocate_floats(floats);
      capacity_ = floats;
    }
    return buffer_.get();
  }
  void trim() {
    if (capacity_ * static_cast<std::int64_t>(sizeof(float)) > kKeepBytes) {
      buffer_.reset();
      capacity_ = 0;
    }
  }

 private:
  static constexpr std::int64_t kKeepBytes = std::int64_t{256} << 20;
  Buffer buffer_;
  std::int64_t capacity_ = 0;
};

Arena& thread_arena() {
  thread_local Arena arena;
  return arena;
}

Status run_with(const AttentionArgs& args, const KernelTable& kernels) {
  Status status = check(args);
  if (!status.ok()) return status;
  for (const TensorDesc* t : {&args.q, &args.k, &args.v, &args.out, &args.lse}) {
    if (t->location != Location::host) return Status::type_error("backend 'cpu' reads host memory only, not CUDA device memory");
  }
  Plan plan = make_plan(args);
  if (plan.query_tasks() == 0) return status;

  ThreadPool& pool = ThreadPool::instance();
  int threads = args.threads > 0 ? args.threads : pool.default_threads();
  // Below ~1 MFLOP a thread hop costs more than it saves.
  const double flops = 4.0 * static_cast<double>(plan.B * plan.Hq * plan.Sq) * static_cast<double>(plan.Skv) *
                       static_cast<double>(plan.D + plan.Dv) / 2.0;
  if (flops < 1e6) threads = 1;

  Arena& arena = thread_arena();
  if (plan.decode) {
    const std::int64_t per_slot = plan.workspace_floats();
    const std::int64_t partial_floats = plan.decode_tasks() * plan.partial_floats();
    float* memory = arena.get(partial_floats + per_slot * threads);
    plan.partials = memory;
    float* workspace = memory + partial_floats;
    pool.run(plan.decode_tasks(), threads,
             [&](std::int64_t task, int slot) { kernels.decode(plan, task, workspace + slot * per_slot); });
    pool.run(plan.B * plan.Hkv, threads, [&](std::int64_t head, int) { kernels.merge(plan, head); });
    arena.trim();
    return status;
  }

  const std::int64_t k_floats = plan.B * plan.Hkv * plan.k_head_floats();
  const std::int64_t v_floats = plan.v_direct ? 0 : plan.B * plan.Hkv * plan.v_head_floats();
  const std::int64_t per_slot = plan.workspace_floats();
  const std::int64_t flag_floats = (plan.pack_tasks() + 3) / 4;
  float* memory = arena.get(k_floats + v_floats + flag_floats + per_slot * threads);
  plan.k_packed = memory;
  plan.v_packed = memory + k_floats;
  plan.v_nonfinite = reinterpret_cast<std::uint8_t*>(memory + k_floats + v_floats);
  float* workspace = memory + k_floats + v_floats + flag_floats;
  pool.run(plan.pack_tasks(), threads, [&](std::int64_t task, int) { kernels.pack(plan, task); });
  pool.run(plan.query_tasks(), threads,
           [&](std::int64_t task, int slot) { kernels.query(plan, task, workspace + slot * per_slot); });
  arena.trim();
  return status;
}

}  // namespace

Plan make_plan(const AttentionArgs& a) {
  Plan p{};
  p.args = &a;
  p.rules = mask_rules_of(a);
  p.B = a.q.shape[0];
  p.Hq = a.q.shape[1];
  p.Sq = a.q.shape[2];
  p.D = a.q.shape[3];
  p.Hkv = a.k.shape[1];
  p.Skv = a.k.shape[2];
  p.Dv = a.v.shape[3];
  p.group = p.Hq / p.Hkv;
  p.dv_pad = (p.Dv + kValuePad - 1) / kValuePad * kValuePad;
  p.key_blocks = (p.Skv + kKeyBlock - 1) / kKeyBlock;
  p.query_blocks = (p.Sq + kQueryBlock - 1) / kQueryBlock;
  p.decode_rows = p.group * p.Sq;
  p.decode = p.decode_rows <= kDecodeRows && p.Skv > 0;
  p.decode_chunks = (p.Skv + kDecodeChunk - 1) / kDecodeChunk;
  p.v_direct = a.v.dtype == DType::float32 && a.v.strides[3] == 1 && p.Dv == p.dv_pad;
  return p;
}

const KernelTable& active_kernels() { return chosen(); }

}  // namespace cpu

Status attention_cpu(const AttentionArgs& args) { return cpu::run_with(args, cpu::chosen()); }

Status attention_cpu_with_isa(const AttentionArgs& args, const char* isa) {
  const cpu::KernelTable* table = cpu::find(isa);
  if (table == nullptr) return Status::range_error(std::string("isa '") + isa + "' is not supported on this CPU");
  return cpu::run_with(args, *table);
}

CpuInfo cpu_info() { return {cpu::chosen().isa, cpu::ThreadPool::instance().default_threads()}; }

int cpu_supported_isas(const char** names, int capacity) {
  cpu::KernelTable tables[4];
  const int count = cpu::supported(tables);
  for (int i = 0; i < count && i < capacity; ++i) names[i] = tables[i].isa;
  return count;
}

}  // namespace qkv
