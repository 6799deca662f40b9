#include "decode.h"

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

Status typed_array(const Napi::Value& value, const char* name, napi_typedarray_type type, const char* type_name,
                   void** data, std::int64_t* length) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    return Status::type_error(std::string(name) + " must be a " + type_name);
  }
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  Napi::ArrayBuffer buffer = array.ArrayBuffer();
  // A detached buffer reports no data; treat it as empty so the bounds check rejects it.
  *data = buffer.Data() == nullptr ? nullptr : static_cast<char*>(buffer.Data()) + array.ByteOffset();
  *length = *data == nullptr ? 0 : static_cast<std::int64_t>(array.ElementLength());
  return Status::success();
}

Status tensor(const Header& h, int at, const Napi::Value& data, const char* name, const char* shape_name,
              const char* strides_name, DType dtype, TensorDesc* desc, DecodedCall* call) {
  desc->dtype = dtype;
  const bool f32 = dtype == DType::float32;
  Status s = typed_array(data, name, f32 ? napi_float32_array : napi_uint16_array, f32 ? "Float32Array" : "Uint16Array",
                         &desc->data, &desc->capacity);
  if (s.ok()) s = h.int4(at, shape_name, desc->shape);
  if (s.ok()) s = h.int4(at + 4, strides_name, desc->strides);
  if (s.ok()) call->arrays.push_back(data);
  return s;
}

}  // namespace

Status decode_call(const Napi::CallbackInfo& info, DecodedCall* call) {
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
  s = tensor(h, kQShape, info[1], "q", "q.shape", "q.strides", dt, &a.q, call);
  if (s.ok()) s = tensor(h, kKShape, info[2], "k", "k.shape", "k.strides", dt, &a.k, call);
  if (s.ok()) s = tensor(h, kVShape, info[3], "v", "v.shape", "v.strides", dt, &a.v, call);
  if (s.ok()) s = tensor(h, kOutShape, info[4], "out", "out.shape", "out.strides", dt, &a.out, call);
  if (s.ok() && !info[5].IsNull() && !info[5].IsUndefined()) {
    s = tensor(h, kLseShape, info[5], "lse", "lse.shape", "lse.strides", DType::float32, &a.lse, call);
  }
  if (!s.ok()) return s;

  a.scale = static_cast<float>(h.values[kScale]);
  a.softcap = static_cast<float>(h.values[kSoftcap]);
  std::int64_t flag = 0;
  s = h.integer(kCausal, "options.causal", -1, 0, 1, &flag);
  if (!s.ok()) return s;
  a.causal = flag == 1;
  s = h.integer(kAlignment, "options.alignment", -1, 0, 1, &flag);
  if (!s.ok()) return s;
  a.alignment = flag == 1 ? Alignment::lower_right : Alignment::upper_left;
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
            ? typed_array(mask, "options.mask.data", napi_uint8_array, "Uint8Array", &ptr, &a.mask.capacity)
            : typed_array(mask, "options.mask.data", napi_float32_array, "Float32Array", &ptr, &a.mask.capacity);
    if (s.ok()) s = h.int4(kMaskStrides, "options.mask.strides", a.mask.strides);
    if (!s.ok()) return s;
    a.mask.data = ptr;
    call->arrays.push_back(mask);
  }

  const Napi::Value lengths = info[7];
  if (!lengths.IsNull() && !lengths.IsUndefined()) {
    void* ptr = nullptr;
    s = typed_array(lengths, "options.keyLengths", napi_int32_array, "Int32Array", &ptr, &a.key_lengths_count);
    if (!s.ok()) return s;
    a.key_lengths = static_cast<const std::int32_t*>(ptr);
    call->arrays.push_back(lengths);
  }
  const Napi::Value slopes = info[8];
  if (!slopes.IsNull() && !slopes.IsUndefined()) {
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
