// The binding's arguments: JS values -> qkv::AttentionArgs. Every value is checked here for type (a typed array of
// the right kind, integer shapes, ...); qkv::check() then checks their consistency.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "qkv/attention.h"
#include "qkv/cuda.h"

namespace qkv {
namespace napi {

// The AttentionArgs pointer a Source backs.
enum class Field : int { q, k, v, out, lse, mask, key_lengths, alibi_slopes };

// Where `field` points in `args` (each field points at its typed array's first element).
const void** field_pointer(AttentionArgs& args, Field field);

// One typed array a call reads or writes, and where AttentionArgs points into it.
struct Source {
  Napi::Value array;      // the typed array
  void* data;             // its first element (nullptr when detached or empty)
  std::int64_t bytes;     // its byte length
  bool shared;            // backed by a SharedArrayBuffer: can never be detached or shrunk
  bool output;            // written by the call (out, lse)
  Field field;            // the argument it backs
};

// What the binding must keep alive while an asynchronous call runs.
struct CallArguments {
  AttentionArgs args;
  std::vector<Source> sources;
  int device = -1;  // -1: CPU backend; else the CUDA device
  std::vector<std::shared_ptr<CudaBuffer>> buffers;  // device memory the call reads
};

// The device memory behind a handle made by cudaAllocate (cuda_binding.cpp); a TypeError
// naming `name` when `value` is no such handle or was freed.
Status device_buffer(const Napi::Value& value, const char* name, std::shared_ptr<CudaBuffer>* buffer);
bool is_device_handle(const Napi::Value& value);

// A typed array's memory as napi_get_typedarray_info reports it, for views of ArrayBuffers
// and SharedArrayBuffers alike. A detached (or empty) one has data nullptr and length 0.
struct TypedArrayView {
  napi_typedarray_type type;
  void* data;
  std::int64_t length;         // elements
  std::int64_t element_bytes;
  bool shared;                 // backed by a SharedArrayBuffer: can never be detached or shrunk
};
// False when `value` is not a typed array.
bool typed_array_view(const Napi::Value& value, TypedArrayView* view);

// A plain-number argument that must be an integer in [min, max]; errors name `name`.
Status integer_argument(const Napi::Value& value, const std::string& name, double min, double max, std::int64_t* out);

// Reads the binding's arguments (header, q, k, v, out, lse, mask, keyLengths, alibiSlopes)
// (header.h) into `call`. On failure returns a status naming the argument; nothing is thrown.
Status read_arguments(const Napi::CallbackInfo& info, CallArguments* call);

// Throws `status` as a JS TypeError or RangeError (replacing any exception already pending,
// since throwing over one aborts the process).
void throw_status(Napi::Env env, const Status& status);
Napi::Error status_error(Napi::Env env, const Status& status);

}  // namespace napi
}  // namespace qkv
