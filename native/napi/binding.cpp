// The addon: attention (sync), attentionAsync (Promise, runs on a libuv worker) and
// capabilities. No C++ exception crosses into JS: node-addon-api runs without them and
// allocation failures inside the core are caught here.
#include <napi.h>

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "cuda_binding.h"
#include "decode.h"
#include "linear_binding.h"
#include "qkv/attention.h"
#include "qkv/cuda.h"

namespace qkv {
namespace napi {
namespace {

// The CPU backend, or CUDA device `device` (>= 0).
Status run_guarded(const AttentionArgs& args, int device, CudaResidency resident) {
  try {
    return device < 0 ? attention_cpu(args) : attention_cuda(args, device, resident);
  } catch (const std::bad_alloc&) {
    return Status{StatusCode::range_error, "out of memory for scratch buffers"};
  } catch (const std::exception& e) {
    return Status{StatusCode::range_error, e.what()};
  }
}

// Synchronous: JS cannot detach anything while this runs, so the arrays are used in place.
Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DecodedCall call;
  Status status = decode_call(info, &call);
  if (status.ok()) status = run_guarded(call.args, call.device, call.resident);
  if (!status.ok()) throw_status(env, status);
  return env.Undefined();
}

// Runs one call on a libuv worker thread. JS may detach (transfer) or shrink an ordinary
// ArrayBuffer while the call runs, and its memory may then be freed; so memory from ordinary
// ArrayBuffers is copied into memory this worker owns before the call returns to JS, and
// outputs are copied back when it settles. SharedArrayBuffer memory can never be detached or
// shrunk, so it is used in place: zero-copy asynchronous calls take SharedArrayBuffers.
class AttentionWorker : public Napi::AsyncWorker {
 public:
  // May throw std::bad_alloc (the caller rejects the promise then).
  AttentionWorker(Napi::Env env, DecodedCall&& call)
      : Napi::AsyncWorker(env, "qkv.attentionAsync"), deferred_(Napi::Promise::Deferred::New(env)),
        args_(call.args), device_(call.device), resident_(call.resident), buffers_(std::move(call.buffers)) {
    for (const Source& src : call.sources) {
      refs_.push_back(Napi::Persistent(src.array));
      if (src.shared || src.data == nullptr || src.bytes == 0 || already_copied(src.data)) continue;
      std::unique_ptr<char[]> copy(new char[static_cast<std::size_t>(src.bytes)]);
      std::memcpy(copy.get(), src.data, static_cast<std::size_t>(src.bytes));
      repoint(src.data, copy.get());
      if (src.output) outputs_.push_back({refs_.size() - 1, copy.get(), src.data, src.bytes});
      copies_.push_back({src.data, std::move(copy)});
    }
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { status_ = run_guarded(args_, device_, resident_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      settle(status_error(env, status_).Value(), false);
      return;
    }
    for (const Output& o : outputs_) {
      TypedArrayView now;
      if (!typed_array_view(refs_[o.ref].Value(), &now) || now.data != o.original || now.length * now.element_bytes != o.bytes) {
        settle(Napi::TypeError::New(env, "qkv: an output buffer was detached or resized while attentionAsync ran; "
                                         "the result was discarded").Value(), false);
        return;
      }
    }
    for (const Output& o : outputs_) std::memcpy(o.original, o.copy, static_cast<std::size_t>(o.bytes));
    settle(env.Undefined(), true);
  }

  void OnError(const Napi::Error& error) override { settle(error.Value(), false); }

 private:
  struct Output {
    std::size_t ref;
    const char* copy;
    void* original;
    std::int64_t bytes;
  };
  struct Copy {
    const void* original;
    std::unique_ptr<char[]> memory;
  };

  bool already_copied(const void* data) const {
    for (const Copy& c : copies_) {
      if (c.original == data) return true;
    }
    return false;
  }

  // Every argument pointer into the original array now points into the copy (the fields
  // point at their typed array's first element).
  void repoint(const void* original, char* copy) {
    void** fields[] = {&args_.q.data, &args_.k.data, &args_.v.data, &args_.out.data, &args_.lse.data};
    for (void** f : fields) {
      if (*f == original) *f = copy;
    }
    if (args_.mask.data == original) args_.mask.data = copy;
    if (args_.key_lengths == original) args_.key_lengths = reinterpret_cast<const std::int32_t*>(copy);
    if (args_.alibi_slopes == original) args_.alibi_slopes = reinterpret_cast<const float*>(copy);
  }

  void settle(Napi::Value value, bool ok) {
    if (ok) deferred_.Resolve(value);
    else deferred_.Reject(value);
    refs_.clear();
  }

  Napi::Promise::Deferred deferred_;
  AttentionArgs args_;
  int device_;
  CudaResidency resident_;
  std::vector<std::shared_ptr<CudaBuffer>> buffers_;  // device memory stays alive until the call ends
  std::vector<Napi::Reference<Napi::Value>> refs_;
  std::vector<Copy> copies_;
  std::vector<Output> outputs_;
  Status status_;
};

Napi::Value AttentionAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DecodedCall call;
  Status status = decode_call(info, &call);
  // Check on the JS thread so that bad arguments reject without a thread hop.
  if (status.ok()) status = check(call.args);
  if (status.ok()) {
    AttentionWorker* worker = nullptr;
    try {
      worker = new AttentionWorker(env, std::move(call));  // deletes itself when done
    } catch (const std::bad_alloc&) {
      status = Status::range_error("out of memory for the copies an asynchronous call needs");
    }
    if (worker != nullptr) {
      Napi::Promise promise = worker->promise();
      worker->Queue();
      return promise;
    }
  }
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(status_error(env, status).Value());
  return deferred.Promise();
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
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
