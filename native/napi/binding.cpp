// The addon: attention (sync), attentionAsync (Promise, runs on a libuv worker) and
// capabilities. No C++ exception crosses into JS: node-addon-api runs without them and
// allocation failures inside the core are caught here.
#include <napi.h>

#include <exception>
#include <new>
#include <utility>
#include <vector>

#include "decode.h"
#include "qkv/attention.h"

namespace qkv {
namespace napi {
namespace {

Status run_guarded(const AttentionArgs& args) {
  try {
    return attention_cpu(args);
  } catch (const std::bad_alloc&) {
    return Status{StatusCode::range_error, "out of memory for scratch buffers"};
  } catch (const std::exception& e) {
    return Status{StatusCode::range_error, e.what()};
  }
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DecodedCall call;
  Status status = decode_call(info, &call);
  if (status.ok()) status = run_guarded(call.args);
  if (!status.ok()) throw_status(env, status);
  return env.Undefined();
}

// Holds references to every typed array the arguments point into until the work ends.
class AttentionWorker : public Napi::AsyncWorker {
 public:
  AttentionWorker(Napi::Env env, DecodedCall&& call)
      : Napi::AsyncWorker(env, "qkv.attentionAsync"), deferred_(Napi::Promise::Deferred::New(env)),
        args_(call.args) {
    for (const Napi::Value& value : call.arrays) refs_.push_back(Napi::Persistent(value));
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { status_ = run_guarded(args_); }

  void OnOK() override {
    if (status_.ok()) deferred_.Resolve(Env().Undefined());
    else deferred_.Reject(status_error(Env(), status_).Value());
    refs_.clear();
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(error.Value());
    refs_.clear();
  }

 private:
  Napi::Promise::Deferred deferred_;
  AttentionArgs args_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
  Status status_;
};

Napi::Value AttentionAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DecodedCall call;
  Status status = decode_call(info, &call);
  // Check on the JS thread so that bad arguments reject without a thread hop.
  if (status.ok()) status = check(call.args);
  if (!status.ok()) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(status_error(env, status).Value());
    return deferred.Promise();
  }
  auto* worker = new AttentionWorker(env, std::move(call));  // deletes itself when done
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object caps = Napi::Object::New(env);
  const CpuInfo cpu = cpu_info();
  caps.Set("isa", cpu.isa);
  caps.Set("threads", cpu.threads);
  const char* isas[4];
  const int isa_count = cpu_supported_isas(isas, 4);
  Napi::Array supported = Napi::Array::New(env, static_cast<std::size_t>(isa_count));
  for (int i = 0; i < isa_count; ++i) supported.Set(static_cast<std::uint32_t>(i), isas[i]);
  caps.Set("isas", supported);
  Napi::Array dtypes = Napi::Array::New(env, 3);
  dtypes.Set(0u, "float32");
  dtypes.Set(1u, "float16");
  dtypes.Set(2u, "bfloat16");
  caps.Set("dtypes", dtypes);
  caps.Set("cuda", false);
  return caps;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionAsync", Napi::Function::New(env, AttentionAsync, "attentionAsync"));
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  return exports;
}

}  // namespace
}  // namespace napi
}  // namespace qkv

static Napi::Object InitQkv(Napi::Env env, Napi::Object exports) { return qkv::napi::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitQkv)
