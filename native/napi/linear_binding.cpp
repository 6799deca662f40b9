// The binding's linear layers: linearPack(weight, outFeatures, inFeatures, bias) packs a
// weight matrix once into a type-tagged External; linearForward(handle, x, rows, y, threads)
// computes y = x·Wᵀ + b. Every length is re-checked here: the binding is public.
#include <napi.h>

#include <string>

#include "arguments.h"
#include "linear_binding.h"
#include "qkv/linear.h"

namespace qkv {
namespace napi {
namespace {

constexpr napi_type_tag kPackedLinearTag = {0x716b765f6c696e65ULL, 0x61725f7061636b31ULL};

// A Float32Array's data and length (views of SharedArrayBuffers too).
Status floats(const Napi::Value& v, const char* name, float** data, std::int64_t* length) {
  TypedArrayView view;
  if (!typed_array_view(v, &view) || view.type != napi_float32_array) {
    return Status::type_error(std::string("linear: ") + name + " must be a Float32Array");
  }
  *data = static_cast<float*>(view.data);
  *length = view.length;
  return Status::success();
}

Status too_short(const char* name, std::int64_t have, std::int64_t need, const std::string& shape) {
  return Status::range_error(std::string("linear: ") + name + " holds " + std::to_string(have) + " floats, " + shape + " needs " +
                             std::to_string(need));
}

Napi::Value LinearPack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* w = nullptr;
  float* bias = nullptr;
  std::int64_t w_len = 0, bias_len = 0, n = 0, k = 0;
  Status s = floats(info[0], "weight", &w, &w_len);
  if (s.ok()) s = integer_argument(info[1], "linear: outFeatures", 1, 2147483647.0, &n);
  if (s.ok()) s = integer_argument(info[2], "linear: inFeatures", 1, 2147483647.0, &k);
  if (s.ok() && w_len < n * k) s = too_short("weight", w_len, n * k, "[" + std::to_string(n) + ", " + std::to_string(k) + "]");
  if (s.ok() && !info[3].IsNull() && !info[3].IsUndefined()) {
    s = floats(info[3], "bias", &bias, &bias_len);
    if (s.ok() && bias_len < n) s = too_short("bias", bias_len, n, "[" + std::to_string(n) + "]");
  }
  std::unique_ptr<PackedLinear> packed;
  if (s.ok()) {
    try {
      s = pack_linear(w, n, k, k, bias, &packed);
    } catch (const std::bad_alloc&) {
      s = Status::range_error("linear: out of memory packing the weights");
    }
  }
  if (!s.ok()) {
    throw_status(env, s);
    return env.Undefined();
  }
  auto external = Napi::External<PackedLinear>::New(env, packed.release(), [](Napi::Env, PackedLinear* p) { delete p; });
  external.TypeTag(&kPackedLinearTag);
  return external;
}

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal() || !info[0].As<Napi::External<PackedLinear>>().CheckTypeTag(&kPackedLinearTag)) {
    throw_status(env, Status::type_error("linear: handle must come from linearPack"));
    return env.Undefined();
  }
  const PackedLinear& w = *info[0].As<Napi::External<PackedLinear>>().Data();
  float* x = nullptr;
  float* y = nullptr;
  std::int64_t x_len = 0, y_len = 0, rows = 0, threads = 0;
  Status s = floats(info[1], "x", &x, &x_len);
  if (s.ok()) s = integer_argument(info[2], "linear: rows", 0, 2147483647.0, &rows);
  if (s.ok()) s = floats(info[3], "y", &y, &y_len);
  if (s.ok()) s = integer_argument(info[4], "linear: threads", 0, 1024, &threads);
  const std::int64_t n = w.out_features(), k = w.in_features();
  if (s.ok() && x_len < rows * k) s = too_short("x", x_len, rows * k, "[" + std::to_string(rows) + ", " + std::to_string(k) + "]");
  if (s.ok() && y_len < rows * n) s = too_short("y", y_len, rows * n, "[" + std::to_string(rows) + ", " + std::to_string(n) + "]");
  if (s.ok() && rows > 0 && x < y + rows * n && y < x + rows * k) s = Status::range_error("linear: y overlaps x");
  if (s.ok()) {
    try {
      s = linear_cpu(w, x, rows, y, n, static_cast<int>(threads));
    } catch (const std::bad_alloc&) {
      s = Status::range_error("linear: out of memory");
    }
  }
  if (!s.ok()) throw_status(env, s);
  return env.Undefined();
}

}  // namespace

void register_linear(Napi::Env env, Napi::Object exports) {
  exports.Set("linearPack", Napi::Function::New(env, LinearPack, "linearPack"));
  exports.Set("linearForward", Napi::Function::New(env, LinearForward, "linearForward"));
}

}  // namespace napi
}  // namespace qkv
