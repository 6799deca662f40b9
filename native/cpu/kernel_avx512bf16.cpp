// The AVX-512 kernel with AVX-512 BF16: bfloat16 inputs take vdpbf16ps for Q·Kᵀ (two products
// per lane per instruction); every other dtype runs as in kernel_avx512.cpp.
#define QKV_ISA_NS avx512bf16
#include "kernel_isa.inc"

#if !(defined(__AVX512F__) && defined(__AVX512BF16__))
#error "kernel_avx512bf16.cpp must be compiled with the avx512 and avx512bf16 flags"
#endif

namespace qkv {
namespace cpu {

KernelTable kernels_avx512bf16() {
  static_assert(avx512bf16::Vec::W == 16, "vector width of the avx512bf16 build");
  static_assert(avx512bf16::kBf16Dot, "the bf16 dot product is compiled in");
  return {"avx512bf16", &avx512bf16::pack_task, &avx512bf16::query_task, &avx512bf16::decode_task,
          &avx512bf16::decode_merge, &avx512bf16::linear_task};
}

}  // namespace cpu
}  // namespace qkv
