// The binding's CUDA functions (cudaInfo and device-memory handles), see cuda_binding.cpp.
#pragma once

#include <napi.h>

namespace qkv {
namespace napi {

void register_cuda(Napi::Env env, Napi::Object exports);

}  // namespace napi
}  // namespace qkv
