// The addon: attention (sync), attentionAsync (async_call.cpp) and capabilities. No C++
// exception crosses into JS: node-addon-api runs without them and allocation failures
// inside the core are caught (run.h).
#include <napi.h>

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "async_call.h"
#include "cuda_binding.h"
#include "arguments.h"
#include "header.h"
#include "linear_binding.h"
#include "run.h"
#include "qkv/attention.h"
#include "qkv/cuda.h"

namespace qkv {
namespace napi {
namespace {

// Synchronous: JS cannot detach anything while this runs, so the arrays are used in place.
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CallArguments call;
  Status status = read_arguments(info, &call);
  if (status.ok()) status = run_guarded(call.args, call.device);
  if (!status.ok()) throw_status(env, status);
  return env.Undefined();
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object caps = Napi::Object::New(env);
  const CpuInfo cpu = cpu_info();
  caps.Set("isa", cpu.isa);
  caps.Set("threads", cpu.threads);
  const char* isas[8];
  const int isa_count = cpu_supported_isas(isas, 8);
  Napi::Array supported = Napi::Array::New(env, static_cast<std::size_t>(isa_count));
  for (int i = 0; i < isa_count; ++i) supported.Set(static_cast<std::uint32_t>(i), isas[i]);
  caps.Set("isas", supported);
  Napi::Array dtypes = Napi::Array::New(env, 3);
  dtypes.Set(0u, "float32");
  dtypes.Set(1u, "float16");
  dtypes.Set(2u, "bfloat16");
  caps.Set("dtypes", dtypes);
  caps.Set("cuda", cuda_info().built);
  return caps;
}

// The calling convention (header.h), exported: the TypeScript side writes headers from it,
// so the indices and codes exist in one place; an addon lacking a field is refused.
Napi::Object Layout(Napi::Env env) {
  Napi::Object header = Napi::Object::New(env);
#define QKV_HEADER_EXPORT(name, js, index) header.Set(js, static_cast<int>(name));
  QKV_HEADER_FIELDS(QKV_HEADER_EXPORT)
#undef QKV_HEADER_EXPORT
  Napi::Object dtypes = Napi::Object::New(env);
  for (DType d : {DType::float32, DType::float16, DType::bfloat16}) dtypes.Set(dtype_name(d), static_cast<int>(d));
  Napi::Object masks = Napi::Object::New(env);
  masks.Set("boolean", static_cast<int>(MaskKind::boolean));
  masks.Set("additive", static_cast<int>(MaskKind::additive));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("header", header);
  layout.Set("dtype", dtypes);
  layout.Set("maskKind", masks);
  return layout;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("layout", Layout(env));
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionAsync", Napi::Function::New(env, AttentionAsync, "attentionAsync"));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  register_cuda(env, exports);
  register_linear(env, exports);
  return exports;
}

}  // namespace
}  // namespace napi
}  // namespace qkv

static Napi::Object InitQkv(Napi::Env env, Napi::Object exports) { return qkv::napi::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitQkv)
