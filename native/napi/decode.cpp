#include "decode.h"

#include <cmath>
#include <string>

namespace qkv {
namespace napi {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

Status integer(const Napi::Value& value, const std::string& name, double min, double max, std::int64_t* out) {
  if (!value.IsNumber()) return Status::type_error(name + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) return Status::range_error(name + " must be an integer, got " + std::to_string(d));
  if (d < min || d > max) {
    return Status::range_error(name + " = " + std::to_string(static_cast<long long>(d)) + " is out of range");
  }
  *out = static_cast<std::int64_t>(d);
  return Status::success();
}

Status number(const Napi::Object& options, const char* key, float* out) {
  const Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return Status::success();
  if (!value.IsNumber()) return Status::type_error(std::string("options.") + key + " must be a number");
  *out = static_cast<float>(value.As<Napi::Number>().DoubleValue());
  return Status::success();
}

Status int4(const Napi::Value& value, const std::string& name, double min, std::int64_t* out) {
  if (!value.IsArray()) return Status::type_error(name + " must be an array of 4 integers");
  const Napi::Array array = value.As<Napi::Array>();
  if (array.Length() != 4) return Status::range_error(name + " must have 4 entries, got " + std::to_string(array.Length()));
  for (std::uint32_t i = 0; i < 4; ++i) {
    Status s = integer(array.Get(i), name + "[" + std::to_string(i) + "]", min, kMaxSafeInteger, &out[i]);
    if (!s.ok()) return s;
  }
  return Status::success();
}

napi_typedarray_type expected_array_type(DType dtype) {
  return dtype == DType::float32 ? napi_float32_array : napi_uint16_array;
}

Status typed_array(const Napi::Value& value, const std::string& name, napi_typedarray_type type,
                   const char* type_name, void** data, std::int64_t* length) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    return Status::type_error(name + " must be a " + type_name);
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  Napi::ArrayBuffer buffer = array.ArrayBuffer();
  // A detached buffer reports no data; treat it as empty so the bounds check rejects it.
  *data = buffer.Data() == nullptr ? nullptr : static_cast<char*>(buffer.Data()) + array.ByteOffset();
  *length = *data == nullptr ? 0 : static_cast<std::int64_t>(array.ElementLength());
  return Status::success();
}

Status dtype_of(const Napi::Value& value, const std::string& name, DType* dtype) {
  if (!value.IsString()) return Status::type_error(name + ".dtype must be a string");
  const std::string s = value.As<Napi::String>().Utf8Value();
  if (s == "float32") *dtype = DType::float32;
  else if (s == "float16") *dtype = DType::float16;
  else if (s == "bfloat16") *dtype = DType::bfloat16;
  else return Status::type_error(name + ".dtype must be 'float32', 'float16' or 'bfloat16', got '" + s + "'");
  return Status::success();
}

// {data, dtype, shape[4], strides[4]}
Status tensor(const Napi::Value& value, const std::string& name, TensorDesc* desc, DecodedCall* call) {
  if (!value.IsObject()) return Status::type_error(name + " must be an object {data, dtype, shape, strides}");
  const Napi::Object obj = value.As<Napi::Object>();
  Status s = dtype_of(obj.Get("dtype"), name, &desc->dtype);
  if (!s.ok()) return s;
  const Napi::Value data = obj.Get("data");
  const char* type_name = desc->dtype == DType::float32 ? "Float32Array" : "Uint16Array";
  s = typed_array(data, name + ".data", expected_array_type(desc->dtype), type_name, &desc->data, &desc->capacity);
  if (!s.ok()) return s;
  s = int4(obj.Get("shape"), name + ".shape", 0, desc->shape);
  if (!s.ok()) return s;
  s = int4(obj.Get("strides"), name + ".strides", 0, desc->strides);
  if (!s.ok()) return s;
  call->arrays.push_back(data);
  return Status::success();
}

Status mask(const Napi::Value& value, MaskDesc* desc, DecodedCall* call) {
  if (value.IsUndefined() || value.IsNull()) return Status::success();
  if (!value.IsObject()) return Status::type_error("options.mask must be an object {kind, data, strides}");
  const Napi::Object obj = value.As<Napi::Object>();
  const Napi::Value kind = obj.Get("kind");
  const std::string kind_str = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  const Napi::Value data = obj.Get("data");
  void* ptr = nullptr;
  Status s;
  if (kind_str == "boolean") {
    desc->kind = MaskKind::boolean;
    s = typed_array(data, "options.mask.data", napi_uint8_array, "Uint8Array", &ptr, &desc->capacity);
  } else if (kind_str == "additive") {
    desc->kind = MaskKind::additive;
    s = typed_array(data, "options.mask.data", napi_float32_array, "Float32Array", &ptr, &desc->capacity);
  } else {
    return Status::type_error("options.mask.kind must be 'boolean' or 'additive'");
  }
  if (!s.ok()) return s;
  desc->data = ptr;
  s = int4(obj.Get("strides"), "options.mask.strides", 0, desc->strides);
  if (!s.ok()) return s;
  call->arrays.push_back(data);
  return Status::success();
}

}  // namespace

Status decode_call(const Napi::CallbackInfo& info, DecodedCall* call) {
  if (info.Length() < 6) return Status::type_error("expected (q, k, v, out, lse, options)");
  AttentionArgs& a = call->args;
  Status s = tensor(info[0], "q", &a.q, call);
  if (s.ok()) s = tensor(info[1], "k", &a.k, call);
  if (s.ok()) s = tensor(info[2], "v", &a.v, call);
  if (s.ok()) s = tensor(info[3], "out", &a.out, call);
  if (s.ok() && !info[4].IsNull() && !info[4].IsUndefined()) s = tensor(info[4], "lse", &a.lse, call);
  if (!s.ok()) return s;
  if (!info[5].IsObject()) return Status::type_error("options must be an object");
  const Napi::Object o = info[5].As<Napi::Object>();

  s = number(o, "scale", &a.scale);
  if (s.ok()) s = number(o, "softcap", &a.softcap);
  if (!s.ok()) return s;
  const Napi::Value causal = o.Get("causal");
  if (!causal.IsUndefined()) {
    if (!causal.IsBoolean()) return Status::type_error("options.causal must be a boolean");
    a.causal = causal.As<Napi::Boolean>().Value();
  }
  const Napi::Value alignment = o.Get("alignment");
  if (!alignment.IsUndefined()) {
    const std::string al = alignment.IsString() ? alignment.As<Napi::String>().Utf8Value() : "";
    if (al == "upper-left") a.alignment = Alignment::upper_left;
    else if (al == "lower-right") a.alignment = Alignment::lower_right;
    else return Status::type_error("options.alignment must be 'upper-left' or 'lower-right'");
  }
  const char* window_keys[2] = {"windowLeft", "windowRight"};
  std::int64_t* window_fields[2] = {&a.window_left, &a.window_right};
  for (int i = 0; i < 2; ++i) {
    const Napi::Value w = o.Get(window_keys[i]);
    if (w.IsUndefined()) continue;
    s = integer(w, std::string("options.") + window_keys[i], -1, kMaxSafeInteger, window_fields[i]);
    if (!s.ok()) return s;
  }
  const Napi::Value threads = o.Get("threads");
  if (!threads.IsUndefined()) {
    std::int64_t n = 0;
    s = integer(threads, "options.threads", 0, 1024, &n);
    if (!s.ok()) return s;
    a.threads = static_cast<int>(n);
  }
  s = mask(o.Get("mask"), &a.mask, call);
  if (!s.ok()) return s;

  const Napi::Value lengths = o.Get("keyLengths");
  if (!lengths.IsUndefined() && !lengths.IsNull()) {
    void* ptr = nullptr;
    s = typed_array(lengths, "options.keyLengths", napi_int32_array, "Int32Array", &ptr, &a.key_lengths_count);
    if (!s.ok()) return s;
    a.key_lengths = static_cast<const std::int32_t*>(ptr);
    call->arrays.push_back(lengths);
  }
  const Napi::Value slopes = o.Get("alibiSlopes");
  if (!slopes.IsUndefined() && !slopes.IsNull()) {
    void* ptr = nullptr;
    s = typed_array(slopes, "options.alibiSlopes", napi_float32_array, "Float32Array", &ptr, &a.alibi_count);
    if (!s.ok()) return s;
    a.alibi_slopes = static_cast<const float*>(ptr);
    call->arrays.push_back(slopes);
  }
  return Status::success();
}

Napi::Error status_error(Napi::Env env, const Status& status) {
  const std::string message = "qkv: " + status.message;
  if (status.code == StatusCode::type_error) return Napi::TypeError::New(env, message);
  if (status.code == StatusCode::range_error) return Napi::RangeError::New(env, message);
  return Napi::Error::New(env, message);
}

void throw_status(Napi::Env env, const Status& status) { status_error(env, status).ThrowAsJavaScriptException(); }

}  // namespace napi
}  // namespace qkv
