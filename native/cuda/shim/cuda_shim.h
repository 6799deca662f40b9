// Runs CUDA kernel source on the CPU, so kernels are tested where no GPU exists (design.md
// section 5). Include this instead of the CUDA runtime, then the kernel source, in a C++ file.
//
// Execution model: one block at a time; every CUDA thread of the block is a fiber (fiber.h)
// on the calling OS thread. `__shared__` variables are function-local statics, shared by the
// fibers of the running block. `__syncthreads()` yields to a scheduler that releases the
// block only when every live thread has arrived; a barrier some threads can never reach
// (divergence) is reported, not hung on. Warp shuffles go through a per-warp exchange with a
// warp barrier before and after, so a lane reading a value another lane never wrote fails.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "fiber.h"

#define QKV_CUDA_SHIM 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

namespace qkv_shim {

constexpr int kWarpSize = 32;
constexpr std::size_t kStackBytes = 128 * 1024;

enum class Wait { none, block, warp };

struct Fiber {
  FiberContext context;
  char* stack = nullptr;
  unsigned linear = 0;
  bool done = false;
  Wait wait = Wait::none;
  std::uint64_t exchanges = 0;  // shuffles done: picks the slot set
};

struct Launch {
  dim3 grid, block, block_index;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  FiberContext scheduler;
  std::function<void()> body;
  std::vector<std::uint32_t> exchange;      // two sets of one shuffle slot per thread
  std::vector<std::uint64_t> exchange_tag;  // which exchange wrote each slot
  std::vector<float> mma;                   // per-warp A/B tiles of mma emulation, two sets
  std::string error;
};

inline Launch*& active() {
  static thread_local Launch* launch = nullptr;
  return launch;
}

inline Launch& launch_state() {
  Launch* l = active();
  if (l == nullptr) throw std::logic_error("CUDA device code called outside qkv_shim::launch");
  return *l;
}

inline uint3 thread_index() {
  Launch& l = launch_state();
  const unsigned t = l.current->linear;
  return {t % l.block.x, (t / l.block.x) % l.block.y, t / (l.block.x * l.block.y)};
}

inline void yield(Wait why) {
  Launch& l = launch_state();
  l.current->wait = why;
  fiber_switch(l.current->context, l.scheduler);
}

inline void fiber_entry() {
  Launch& l = launch_state();
  l.body();
  l.current->done = true;
  l.current->wait = Wait::none;
  fiber_switch(l.current->context, l.scheduler);  // never resumed
}

// Runs every fiber of the block until all finish, releasing barriers when complete.
inline void run_block(Launch& l) {
  const unsigned threads = l.block.x * l.block.y * l.block.z;
  const unsigned warps = (threads + kWarpSize - 1) / kWarpSize;
  for (;;) {
    bool progressed = false;
    for (Fiber& f : l.fibers) {
      if (f.done || f.wait != Wait::none) continue;
      l.current = &f;
      fiber_switch(l.scheduler, f.context);
      progressed = true;
    }
    // Release every warp whose live lanes all wait at a warp exchange.
    for (unsigned w = 0; w < warps; ++w) {
      bool all = true, any = false;
      for (unsigned t = w * kWarpSize; t < threads && t < (w + 1) * kWarpSize; ++t) {
        const Fiber& f = l.fibers[t];
        if (f.done) continue;
        any = any || f.wait == Wait::warp;
        all = all && f.wait == Wait::warp;
      }
      if (any && all) {
        for (unsigned t = w * kWarpSize; t < threads && t < (w + 1) * kWarpSize; ++t) l.fibers[t].wait = Wait::none;
        progressed = true;
      }
    }
    bool all_done = true, all_at_barrier = true, any_at_barrier = false;
    for (const Fiber& f : l.fibers) {
      if (f.done) continue;
      all_done = false;
      any_at_barrier = any_at_barrier || f.wait == Wait::block;
      all_at_barrier = all_at_barrier && f.wait == Wait::block;
    }
    if (all_done) return;
    if (any_at_barrier && all_at_barrier) {
      bool someone_exited = false;
      for (const Fiber& f : l.fibers) someone_exited = someone_exited || f.done;
      if (someone_exited) {
        l.error = "__syncthreads() reached after some threads of the block exited (divergent barrier)";
        return;
      }
      for (Fiber& f : l.fibers) f.wait = Wait::none;
      progressed = true;
    }
    if (!progressed) {
      l.error = "deadlock: threads wait at barriers that cannot be released";
      return;
    }
  }
}

// Fresh fibers for the next block. Kept out of launch(): getcontext (the ucontext
// fallback) returns twice, which must not touch the caller's loop variables.
__attribute__((noinline)) inline void start_fibers(Launch& l) {
  for (unsigned t = 0; t < l.fibers.size(); ++t) {
    Fiber& f = l.fibers[t];
    f.linear = t;
    f.done = false;
    f.wait = Wait::none;
    f.exchanges = 0;
    fiber_prepare(f.context, f.stack, kStackBytes, fiber_entry);
  }
}

// Fiber stacks, kept per OS thread across launches (allocating 128 of them per launch
// cost more than many small kernels).
inline char* fiber_stack(std::size_t index) {
  static thread_local std::vector<std::unique_ptr<char[]>> stacks;
  while (stacks.size() <= index) stacks.emplace_back(new char[kStackBytes]);
  return stacks[index].get();
}

// Launches `kernel(args...)` on a grid of blocks, block by block. Returns an error message,
// empty on success.
template <class Kernel, class... Args>
std::string launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  Launch l;
  l.grid = grid;
  l.block = block;
  const unsigned threads = block.x * block.y * block.z;
  l.fibers.resize(threads);
  for (std::size_t t = 0; t < l.fibers.size(); ++t) l.fibers[t].stack = fiber_stack(t);
  l.exchange.assign(2 * static_cast<std::size_t>(threads), 0);
  l.body = [&] { kernel(args...); };
  Launch* previous = active();
  active() = &l;
  for (unsigned z = 0; z < grid.z && l.error.empty(); ++z)
    for (unsigned y = 0; y < grid.y && l.error.empty(); ++y)
      for (unsigned x = 0; x < grid.x && l.error.empty(); ++x) {
        l.block_index = {x, y, z};
        l.exchange_tag.assign(2 * static_cast<std::size_t>(threads), ~std::uint64_t{0});
        start_fibers(l);
        run_block(l);
      }
  active() = previous;
  return l.error;
}

// Exchanges 32-bit values within a warp: every lane writes its own slot, the warp waits,
// every lane reads the slot it asked for. Two slot sets alternate, so a lane running ahead
// into the next exchange cannot overwrite values others have yet to read (it cannot pass
// the next barrier before they have).
inline std::uint32_t exchange(std::uint32_t value, int source_lane_of_this_lane) {
  Launch& l = launch_state();
  const unsigned t = l.current->linear;
  const unsigned warp_base = t / kWarpSize * kWarpSize;
  const std::uint64_t ordinal = l.current->exchanges++;
  const std::size_t set = (ordinal & 1u) * l.fibers.size();
  l.exchange[set + t] = value;
  l.exchange_tag[set + t] = ordinal;
  yield(Wait::warp);
  const unsigned source = warp_base + static_cast<unsigned>(source_lane_of_this_lane);
  if (source >= l.fibers.size() || l.exchange_tag[set + source] != ordinal) {
    // The source lane never took part in this exchange (it exited, or diverged).
    // Exceptions cannot unwind across fibers: record the error, the launch reports it.
    if (l.error.empty()) l.error = "warp shuffle from a lane that does not exist or did not take part";
    return 0;
  }
  return l.exchange[set + source];
}

template <class T>
inline T shuffle(T value, int source_lane) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits = exchange(bits, source_lane);
  std::memcpy(&value, &bits, 4);
  return value;
}

inline int lane_id() { return static_cast<int>(launch_state().current->linear % kWarpSize); }

}  // namespace qkv_shim

#define threadIdx (qkv_shim::thread_index())
#define blockIdx (qkv_shim::launch_state().block_index)
#define blockDim (qkv_shim::launch_state().block)
#define gridDim (qkv_shim::launch_state().grid)
#define warpSize (qkv_shim::kWarpSize)

inline void __syncthreads() { qkv_shim::yield(qkv_shim::Wait::block); }

template <class T>
inline T __shfl_xor_sync(unsigned /*mask*/, T value, int lane_mask, int width = qkv_shim::kWarpSize) {
  const int lane = qkv_shim::lane_id();
  const int source = (lane & ~(width - 1)) | ((lane ^ lane_mask) & (width - 1));
  return qkv_shim::shuffle(value, source);
}

template <class T>
inline T __shfl_sync(unsigned /*mask*/, T value, int source_lane, int width = qkv_shim::kWarpSize) {
  const int lane = qkv_shim::lane_id();
  return qkv_shim::shuffle(value, (lane & ~(width - 1)) | (source_lane & (width - 1)));
}

// A warp vote: nonzero when any lane's predicate is (every lane must take part, as on sm_70+).
inline int __any_sync(unsigned mask, int predicate) {
  int any = predicate != 0;
  for (int offset = qkv_shim::kWarpSize / 2; offset > 0; offset >>= 1) any |= __shfl_xor_sync(mask, any, offset);
  return any;
}

namespace qkv_shim {

// The hardware's fragment layout for mma.sync m16n8k16 with f16/bf16 inputs and f32
// accumulators, from the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point
// type"; groupID = lane / 4, threadID_in_group = lane % 4). Deliberately not shared with the
// kernels (native/cuda/mma_layout.h): the shim models the hardware, the kernels hold their
// own belief about it, and the tile tests check the two agree.
struct PtxM16n8k16 {
  static int a_row(int lane, int i) { return (i < 2 || (i >= 4 && i < 6)) ? lane / 4 : lane / 4 + 8; }
  static int a_col(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i < 4 ? 0 : 8); }
  static int b_row(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i < 2 ? 0 : 8); }
  static int b_col(int lane, int) { return lane / 4; }
  static int c_row(int lane, int i) { return i < 2 ? lane / 4 : lane / 4 + 8; }
  static int c_col(int lane, int i) { return (lane % 4) * 2 + (i & 1); }
};

// mma.sync m16n8k16 (f16 × f16 + f32) as the warp executes it: every lane deposits the A
// and B elements its registers hold at the positions the hardware layout gives, the warp
// waits, and every lane computes the D elements it owns. A kernel whose fragment loads
// disagree with the hardware therefore gets wrong numbers here as on a GPU; an incomplete
// warp is reported.
template <float (*ToFloat)(std::uint16_t)>
inline void mma_m16n8k16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4]) {
  Launch& l = launch_state();
  const unsigned t = l.current->linear;
  const int lane = static_cast<int>(t % kWarpSize);
  const unsigned warp = t / kWarpSize;
  const std::uint64_t ordinal = l.current->exchanges++;
  const std::size_t tile = 16 * 16 + 16 * 8;
  const std::size_t warps = (l.fibers.size() + kWarpSize - 1) / kWarpSize;
  if (l.mma.size() < 2 * warps * tile) l.mma.assign(2 * warps * tile, 0.0f);
  float* area = l.mma.data() + ((ordinal & 1u) * warps + warp) * tile;
  float* A = area;
  float* B = area + 16 * 16;
  using Layout = PtxM16n8k16;
  for (int i = 0; i < 8; ++i) {
    const std::uint16_t bits = static_cast<std::uint16_t>(a[i / 2] >> (16 * (i & 1)));
    A[Layout::a_row(lane, i) * 16 + Layout::a_col(lane, i)] = ToFloat(bits);
  }
  for (int i = 0; i < 4; ++i) {
    const std::uint16_t bits = static_cast<std::uint16_t>(b[i / 2] >> (16 * (i & 1)));
    B[Layout::b_row(lane, i) * 8 + Layout::b_col(lane, i)] = ToFloat(bits);
  }
  l.exchange_tag[(ordinal & 1u) * l.fibers.size() + t] = ordinal;
  yield(Wait::warp);
  for (unsigned other = warp * kWarpSize; other < (warp + 1) * kWarpSize; ++other) {
    if (other >= l.fibers.size() || l.exchange_tag[(ordinal & 1u) * l.fibers.size() + other] != ordinal) {
      if (l.error.empty()) l.error = "mma.sync executed by an incomplete warp";
      return;
    }
  }
  for (int i = 0; i < 4; ++i) {
    const int row = Layout::c_row(lane, i), col = Layout::c_col(lane, i);
    float acc = 0.0f;
    for (int k = 0; k < 16; ++k) acc += A[row * 16 + k] * B[k * 8 + col];
    d[i] = acc + c[i];
  }
}

}  // namespace qkv_shim

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
