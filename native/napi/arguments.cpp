#include "arguments.h"

#include <cmath>
#include <string>

#include "header.h"

namespace qkv {
namespace napi {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

// Header fields are plain numbers; names for messages are built only on failure.
struct Header {
  const double* values;

  Status integer(int at, const char* name, int index, double min, double max, std::int64_t* out) const {
    const double d = values[at];
    if (std::isfinite(d) && std::floor(d) == d && d >= min && d <= max) {
      *out = static_cast<std::int64_t>(d);
      return Status::success();
    }
    std::string full = name;
    if (index >= 0) full += "[" + std::to_string(index) + "]";
    return Status::range_error(full + " must be an integer in [" + std::to_string(static_cast<long long>(min)) + ", " +
                               std::to_string(static_cast<long long>(max)) + "], got " + std::to_string(d));
  }

  Status int4(int at, const char* name, std::int64_t* out) const {
    for (int i = 0; i < 4; ++i) {
      Status s = integer(at + i, name, i, 0, kMaxSafeInteger, &out[i]);
      if (!s.ok()) return s;
    }
    return Status::success();
  }
};

// A typed array of exactly `type` (a detached one has no data and length 0, so the bounds
// checks reject it); recorded as a source of the call.
Status typed_array(const Napi::Value& value, const char* name, napi_typedarray_type type, const char* type_name,
                   Field field, void** data, std::int64_t* length, CallArguments* call) {
  TypedArrayView view;
  if (!typed_array_view(value, &view) || view.type != type) return Status::type_error(std::string(name) + " must be a " + type_name);
  *data = view.data;
  *length = view.length;
  const bool output = field == Field::out || field == Field::lse;
  call->sources.push_back({value, view.data, view.length * view.element_bytes, view.shared, output, field});
  return Status::success();
}

// q, k or v as device memory (backend 'cuda' only): its buffer must live on the call's device.
Status device_tensor(const Napi::Value& data, const char* name, DType dtype, TensorDesc* desc, bool may_be_device,
                     CallArguments* call) {
  if (call->device < 0) {
    return Status::type_error(std::string(name) + " is CUDA device memory (a DeviceTensor): only backend 'cuda' can read it");
  }
  if (!may_be_device) return Status::type_error(std::string(name) + " must be host memory (a typed array), not a DeviceTensor");
  std::shared_ptr<CudaBuffer> buffer;
  Status s = device_buffer(data, name, &buffer);
  if (!s.ok()) return s;
  if (buffer->device() != call->device) {
    return Status::type_error(std::string(name) + " lives on CUDA device " + std::to_string(buffer->device()) +
                              ", but the call runs on device " + std::to_string(call->device));
  }
  desc->data = buffer->data();
  desc->capacity = buffer->bytes() / static_cast<std::int64_t>(dtype_size(dtype));
  desc->location = Location::cuda;
  call->buffers.push_back(std::move(buffer));
  return Status::success();
}

Status tensor(const Header& h, int at, const Napi::Value& data, const char* name, const char* shape_name,
              const char* strides_name, DType dtype, Field field, TensorDesc* desc, CallArguments* call,
              bool may_be_device = false) {
  desc->dtype = dtype;
  const bool f32 = dtype == DType::float32;
  if (is_device_handle(data)) {
    Status s = device_tensor(data, name, dtype, desc, may_be_device, call);
    if (s.ok()) s = h.int4(at, shape_name, desc->shape);
    if (s.ok()) s = h.int4(at + 4, strides_name, desc->strides);
    return s;
  }
  Status s = typed_array(data, name, f32 ? napi_float32_array : napi_uint16_array, f32 ? "Float32Array" : "Uint16Array",
                         field, &desc->data, &desc->capacity, call);
  if (s.ok()) s = h.int4(at, shape_name, desc->shape);
  if (s.ok()) s = h.int4(at + 4, strides_name, desc->strides);
  return s;
}

}  // namespace

Status read_arguments(const Napi::CallbackInfo& info, CallArguments* call) {
  if (info.Length() != 9) {
    return Status::type_error("expected (header, q, k, v, out, lse, mask, keyLengths, alibiSlopes), got " +
                              std::to_string(info.Length()) + " arguments");
  }
  const Napi::Value header_value = info[0];
  if (!header_value.IsTypedArray() || header_value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      header_value.As<Napi::TypedArray>().ElementLength() < kHeaderLength) {
    return Status::type_error("header must be a Float64Array of at least " + std::to_string(kHeaderLength) + " values");
  }
  Napi::Float64Array header_array = header_value.As<Napi::Float64Array>();
  if (header_array.Data() == nullptr) return Status::type_error("header is detached");
  const Header h{header_array.Data()};
  AttentionArgs& a = call->args;

  std::int64_t dtype = 0;
  Status s = h.integer(kDType, "header.dtype", -1, 0, 2, &dtype);
  if (!s.ok()) return s;
  const DType dt = static_cast<DType>(dtype);
  std::int64_t cuda_device = 0;
  s = h.integer(kCudaDevice, "header.cudaDevice", -1, 0, 1024, &cuda_device);
  if (!s.ok()) return s;
  call->device = static_cast<int>(cuda_device) - 1;
  s = tensor(h, kQShape, info[1], "q", "q.shape", "q.strides", dt, Field::q, &a.q, call, true);
  if (s.ok()) s = tensor(h, kKShape, info[2], "k", "k.shape", "k.strides", dt, Field::k, &a.k, call, true);
  if (s.ok()) s = tensor(h, kVShape, info[3], "v", "v.shape", "v.strides", dt, Field::v, &a.v, call, true);
  if (s.ok()) s = tensor(h, kOutShape, info[4], "out", "out.shape", "out.strides", dt, Field::out, &a.out, call);
  if (s.ok() && !info[5].IsNull() && !info[5].IsUndefined()) {
    s = tensor(h, kLseShape, info[5], "lse", "lse.shape", "lse.strides", DType::float32, Field::lse, &a.lse, call);
  }
  if (!s.ok()) return s;

  // Kernels run in float32; check() rejects a scale or softcap that overflows it, and a
  // positive softcap that rounds to 0 would silently switch it off.
  a.scale = static_cast<float>(h.values[kScale]);
  a.softcap = static_cast<float>(h.values[kSoftcap]);
  if (h.values[kSoftcap] > 0.0 && a.softcap == 0.0f) {
    return Status::range_error("options.softcap must be a float32 number in [1.401298464324817e-45, "
                               "3.4028234663852886e38], got " + std::to_string(h.values[kSoftcap]));
  }
  s = h.integer(kDiagonalOffset, "diagonal offset", -1, -kMaxSafeInteger, kMaxSafeInteger, &a.diagonal_offset);
  if (!s.ok()) return s;
  s = h.integer(kWindowLeft, "options.window.left", -1, -1, kMaxSafeInteger, &a.window_left);
  if (s.ok()) s = h.integer(kWindowRight, "options.window.right", -1, -1, kMaxSafeInteger, &a.window_right);
  std::int64_t threads = 0;
  if (s.ok()) s = h.integer(kThreads, "options.threads", -1, 0, 1024, &threads);
  if (!s.ok()) return s;
  a.threads = static_cast<int>(threads);

  std::int64_t mask_kind = 0;
  s = h.integer(kMaskKind, "options.mask kind", -1, 0, 2, &mask_kind);
  if (!s.ok()) return s;
  const Napi::Value mask = info[6];
  const bool has_mask = !mask.IsNull() && !mask.IsUndefined();
  if ((mask_kind != 0) != has_mask) return Status::type_error("options.mask: mask kind and mask data disagree");
  if (has_mask) {
    void* ptr = nullptr;
    a.mask.kind = mask_kind == 1 ? MaskKind::boolean : MaskKind::additive;
    s = mask_kind == 1
            ? typed_array(mask, "options.mask.data", napi_uint8_array, "Uint8Array", Field::mask, &ptr, &a.mask.capacity, call)
            : typed_array(mask, "options.mask.data", napi_float32_array, "Float32Array", Field::mask, &ptr, &a.mask.capacity, call);
    if (s.ok()) s = h.int4(kMaskStrides, "options.mask.strides", a.mask.strides);
    if (!s.ok()) return s;
    a.mask.data = ptr;
  }

  const Napi::Value lengths = info[7];
  if (!lengths.IsNull() && !lengths.IsUndefined()) {
    void* ptr = nullptr;
    s = typed_array(lengths, "options.keyLengths", napi_int32_array, "Int32Array", Field::key_lengths, &ptr, &a.key_lengths_count, call);
    if (!s.ok()) return s;
    a.key_lengths = static_cast<const std::int32_t*>(ptr);
  }
  const Napi::Value slopes = info[8];
  if (!slopes.IsNull() && !slopes.IsUndefined()) {
    void* ptr = nullptr;
    s = typed_array(slopes, "options.alibiSlopes", napi_float32_array, "Float32Array", Field::alibi_slopes, &ptr, &a.alibi_count, call);
    if (!s.ok()) return s;
    a.alibi_slopes = static_cast<const float*>(ptr);
  }
  return Status::success();
}

const void** field_pointer(AttentionArgs& args, Field field) {
  switch (field) {
    case Field::q: return const_cast<const void**>(&args.q.data);
    case Field::k: return const_cast<const void**>(&args.k.data);
    case Field::v: return const_cast<const void**>(&args.v.data);
    case Field::out: return const_cast<const void**>(&args.out.data);
    case Field::lse: return const_cast<const void**>(&args.lse.data);
    case Field::mask: return &args.mask.data;
    case Field::key_lengths: return reinterpret_cast<const void**>(&args.key_lengths);
    case Field::alibi_slopes: return reinterpret_cast<const void**>(&args.alibi_slopes);
  }
  return nullptr;
}

bool typed_array_view(const Napi::Value& value, TypedArrayView* view) {
  const napi_env env = value.Env();
  bool is_typed_array = false;
  std::size_t count = 0, offset = 0;
  void* pointer = nullptr;
  napi_value buffer = nullptr;
  bool plain = false;  // napi_is_arraybuffer is false for a SharedArrayBuffer
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, value, &view->type, &count, &pointer, &buffer, &offset) != napi_ok ||
      napi_is_arraybuffer(env, buffer, &plain) != napi_ok) {
    return false;
  }
  switch (view->type) {
    case napi_int16_array: case napi_uint16_array: view->element_bytes = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: view->element_bytes = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: view->element_bytes = 8; break;
    default: view->element_bytes = 1;
  }
  view->data = count == 0 ? nullptr : pointer;
  view->length = view->data == nullptr ? 0 : static_cast<std::int64_t>(count);
  view->shared = !plain;
  return true;
}

Status integer_argument(const Napi::Value& value, const std::string& name, double min, double max, std::int64_t* out) {
  if (!value.IsNumber()) return Status::type_error(name + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < min || d > max) {
    return Status::range_error(name + " must be an integer in [" + std::to_string(static_cast<long long>(min)) + ", " +
                               std::to_string(static_cast<long long>(max)) + "], got " + std::to_string(d));
  }
  *out = static_cast<std::int64_t>(d);
  return Status::success();
}

Napi::Error status_error(Napi::Env env, const Status& status) {
  const std::string message = "qkv: " + status.message;
  if (status.code == StatusCode::type_error) return Napi::TypeError::New(env, message);
  if (status.code == StatusCode::range_error) return Napi::RangeError::New(env, message);
  return Napi::Error::New(env, message);
}

void throw_status(Napi::Env env, const Status& status) {
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
  status_error(env, status).ThrowAsJavaScriptException();
}

}  // namespace napi
}  // namespace qkv
