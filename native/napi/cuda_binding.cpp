// The CUDA part of the binding: cudaInfo, and device-memory handles (cudaAllocate,
// cudaWrite, cudaRead, cudaFree) that lib/device-tensor.ts wraps as DeviceTensor. A handle
// is a type-tagged External owning a shared_ptr to the buffer: calls in flight hold the
// buffer too, so freeing or collecting a handle never pulls memory from under a kernel.
#include <napi.h>

#include <string>

#include "cuda_binding.h"
#include "arguments.h"

namespace qkv {
namespace napi {
namespace {

// Distinguishes our handles from any other External (napi_type_tag, N-API 8).
constexpr napi_type_tag kDeviceBufferTag = {0x716b765f63756461ULL, 0x5f62756666657231ULL};

struct Handle {
  std::shared_ptr<CudaBuffer> buffer;  // empty once freed
};

Napi::Value fail(Napi::Env env, const Status& s) {
  throw_status(env, s);
  return env.Undefined();
}

Napi::Value CudaInfoFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaInfo ci = cuda_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("built", ci.built);
  o.Set("emulated", ci.emulated);
  o.Set("runtime", ci.runtime);
  o.Set("reason", ci.reason);
  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxHeadDim", static_cast<double>(ci.max_head_dim));
  limits.Set("maxGrid", static_cast<double>(ci.max_grid));
  o.Set("limits", limits);
  Napi::Array devices = Napi::Array::New(env, ci.devices.size());
  for (std::size_t i = 0; i < ci.devices.size(); ++i) {
    const CudaDevice& d = ci.devices[i];
    Napi::Object dev = Napi::Object::New(env);
    dev.Set("ordinal", d.ordinal);
    dev.Set("name", d.name);
    dev.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    dev.Set("totalMemory", static_cast<double>(d.total_memory));
    dev.Set("multiprocessors", d.multiprocessors);
    devices.Set(static_cast<std::uint32_t>(i), dev);
  }
  o.Set("devices", devices);
  return o;
}

// cudaAllocate(device, bytes) -> handle
Napi::Value CudaAllocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::int64_t device = 0, bytes = 0;
  Status s = integer_argument(info[0], "device", 0, 1023, &device);
  if (s.ok()) s = integer_argument(info[1], "bytes", 0, 9007199254740991.0, &bytes);
  std::shared_ptr<CudaBuffer> buffer;
  if (s.ok()) s = cuda_allocate(static_cast<int>(device), bytes, &buffer);
  if (!s.ok()) return fail(env, s);
  Handle* handle = new Handle{std::move(buffer)};
  Napi::External<Handle> external =
      Napi::External<Handle>::New(env, handle, [](Napi::Env, Handle* h) { delete h; });
  external.TypeTag(&kDeviceBufferTag);
  return external;
}

// cudaWrite(handle, byteOffset, typedArray) / cudaRead(handle, byteOffset, typedArray)
Napi::Value Copy(const Napi::CallbackInfo& info, bool to_device) {
  Napi::Env env = info.Env();
  std::shared_ptr<CudaBuffer> buffer;
  std::int64_t offset = 0;
  TypedArrayView host;
  Status s = device_buffer(info[0], "handle", &buffer);
  if (s.ok()) s = integer_argument(info[1], "byteOffset", 0, 9007199254740991.0, &offset);
  if (s.ok() && !typed_array_view(info[2], &host)) s = Status::type_error(std::string(to_device ? "source" : "target") + " must be a typed array");
  if (s.ok()) {
    const std::int64_t bytes = host.length * host.element_bytes;
    s = to_device ? cuda_write(*buffer, offset, host.data, bytes) : cuda_read(*buffer, offset, host.data, bytes);
  }
  if (!s.ok()) return fail(env, s);
  return env.Undefined();
}

Napi::Value CudaWrite(const Napi::CallbackInfo& info) { return Copy(info, true); }
Napi::Value CudaRead(const Napi::CallbackInfo& info) { return Copy(info, false); }

// cudaFree(handle): the memory goes once no call in flight reads it; the handle is dead.
Napi::Value CudaFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_device_handle(info[0])) return fail(env, Status::type_error("handle must be a device buffer handle"));
  info[0].As<Napi::External<Handle>>().Data()->buffer.reset();
  return env.Undefined();
}

}  // namespace

bool is_device_handle(const Napi::Value& value) {
  return value.IsExternal() && value.As<Napi::External<Handle>>().CheckTypeTag(&kDeviceBufferTag);
}

Status device_buffer(const Napi::Value& value, const char* name, std::shared_ptr<CudaBuffer>* buffer) {
  if (!is_device_handle(value)) return Status::type_error(std::string(name) + " must be a device buffer handle");
  *buffer = value.As<Napi::External<Handle>>().Data()->buffer;
  if (!*buffer) return Status::type_error(std::string(name) + ": the DeviceTensor was freed");
  return Status::success();
}

void register_cuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfoFn, "cudaInfo"));
  exports.Set("cudaAllocate", Napi::Function::New(env, CudaAllocate, "cudaAllocate"));
  exports.Set("cudaWrite", Napi::Function::New(env, CudaWrite, "cudaWrite"));
  exports.Set("cudaRead", Napi::Function::New(env, CudaRead, "cudaRead"));
  exports.Set("cudaFree", Napi::Function::New(env, CudaFree, "cudaFree"));
}

}  // namespace napi
}  // namespace qkv
