// The scalar build of the CPU kernel (compile flags set per file in CMakeLists.txt and binding.gyp).
#define QKV_ISA_NS scalar
#include "kernel_isa.inc"

#if defined(__AVX2__)
#error "kernel_scalar.cpp must be compiled with exactly the scalar flags"
#endif

namespace qkv {
namespace cpu {

KernelTable kernels_scalar() {
  static_assert(scalar::Vec::W == 1, "vector width of the scalar build");
  return {"scalar", &scalar::pack_task, &scalar::query_task, &scalar::decode_task, &scalar::decode_merge, &scalar::linear_task};
}

}  // namespace cpu
}  // namespace qkv
