// The binding's linear-layer functions (linearPack, linearForward), see linear_binding.cpp.
#pragma once

#include <napi.h>

namespace qkv {
namespace napi {

void register_linear(Napi::Env env, Napi::Object exports);

}  // namespace napi
}  // namespace qkv
