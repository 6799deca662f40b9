// The avx512 build of the CPU kernel (compile flags set per file in CMakeLists.txt and binding.gyp).
#define QKV_ISA_NS avx512
#include "kernel_isa.inc"

#if !(defined(__AVX512F__))
#error "kernel_avx512.cpp must be compiled with exactly the avx512 flags"
#endif

namespace qkv {
namespace cpu {

KernelTable kernels_avx512() {
  static_assert(avx512::Vec::W == 16, "vector width of the avx512 build");
  return {"avx512", &avx512::pack_task, &avx512::query_task, &avx512::decode_task, &avx512::decode_merge, &avx512::linear_task};
}

}  // namespace cpu
}  // namespace qkv
