// attentionAsync(header, q, k, v, out, lse, mask, keyLengths, alibiSlopes) -> Promise<void>;
// see async_call.cpp for how memory and the environment's lifetime are handled.
#pragma once

#include <napi.h>

#include "arguments.h"

namespace qkv {
namespace napi {

Napi::Value AttentionAsync(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace qkv
