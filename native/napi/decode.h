// JS values -> qkv::AttentionArgs. Every value is checked here for type (a typed array of
// the right kind, integer shapes, ...); qkv::check() then checks their consistency.
#pragma once

#include <napi.h>

#include <vector>

#include "qkv/attention.h"

namespace qkv {
namespace napi {

// What the binding must keep alive while an asynchronous call runs.
struct DecodedCall {
  AttentionArgs args;
  std::vector<Napi::Value> arrays;  // the typed arrays args points into
};

// Decodes (header, q, k, v, out, lse, mask, keyLengths, alibiSlopes) (header.h) into `call`. On failure returns a status naming the
// argument; nothing has been thrown.
Status decode_call(const Napi::CallbackInfo& info, DecodedCall* call);

// Throws `status` as a JS TypeError or RangeError.
void throw_status(Napi::Env env, const Status& status);
Napi::Error status_error(Napi::Env env, const Status& status);

}  // namespace napi
}  // namespace qkv
