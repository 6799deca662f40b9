// Execution contexts on their own stacks, switched cooperatively: the shim's CUDA threads.
// On x86-64 a switch saves the callee-saved registers and the SSE/x87 control words and
// swaps stack pointers (a few nanoseconds); swapcontext would also save the signal mask with
// a system call on every switch, and a warp shuffle switches every lane twice. Elsewhere,
// ucontext.
#pragma once

#include <cstddef>
#include <cstdint>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace qkv_shim {

#if defined(__x86_64__)

struct FiberContext {
  void* sp = nullptr;
};

// qkv_shim_fiber_switch(&from_sp, to_sp): pushes the System V callee-saved state on the
// current stack, stores the stack pointer in *from_sp, and resumes the context saved at to_sp.
// Weak and hidden: defined identically wherever this header is included.
extern "C" void qkv_shim_fiber_switch(void** from_sp, void* to_sp);
asm(R"(
  .text
  .weak qkv_shim_fiber_switch
  .hidden qkv_shim_fiber_switch
  .type qkv_shim_fiber_switch, @function
qkv_shim_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size qkv_shim_fiber_switch, .-qkv_shim_fiber_switch
)");

// A context that, when first switched to, calls entry() on `stack` (entry must never return).
inline void fiber_prepare(FiberContext& c, char* stack, std::size_t bytes, void (*entry)()) {
  std::uintptr_t top = (reinterpret_cast<std::uintptr_t>(stack) + bytes) & ~std::uintptr_t{15};
  // The frame qkv_shim_fiber_switch pops: control words, six registers, then the return
  // address (entry), above it a fake return address of entry's own; entry then starts with
  // rsp ≡ 8 (mod 16), as after a call.
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 72);
  frame[0] = 0x037F00001F80ULL;  // mxcsr = 0x1F80 (defaults, all exceptions masked), x87 cw = 0x037F
  for (int i = 1; i <= 6; ++i) frame[i] = 0;
  frame[7] = reinterpret_cast<std::uint64_t>(entry);
  frame[8] = 0;
  c.sp = frame;
}

inline void fiber_switch(FiberContext& from, FiberContext& to) { qkv_shim_fiber_switch(&from.sp, to.sp); }

#else

struct FiberContext {
  ucontext_t context;
};

inline void fiber_prepare(FiberContext& c, char* stack, std::size_t bytes, void (*entry)()) {
  getcontext(&c.context);
  c.context.uc_stack.ss_sp = stack;
  c.context.uc_stack.ss_size = bytes;
  c.context.uc_link = nullptr;
  makecontext(&c.context, entry, 0);
}

inline void fiber_switch(FiberContext& from, FiberContext& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace qkv_shim
