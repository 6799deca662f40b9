// The avx2 build of the CPU kernel (compile flags set per file in CMakeLists.txt and binding.gyp).
#define QKV_ISA_NS avx2
#include "kernel_isa.inc"

#if !(defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__))
#error "kernel_avx2.cpp must be compiled with exactly the avx2 flags"
#endif

namespace qkv {
namespace cpu {

KernelTable kernels_avx2() {
  static_assert(avx2::Vec::W == 8, "vector width of the avx2 build");
  return {"avx2", &avx2::pack_task, &avx2::query_task, &avx2::decode_task, &avx2::decode_merge, &avx2::linear_task};
}

}  // namespace cpu
}  // namespace qkv
