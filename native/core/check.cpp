// Argument checking shared by every backend. The binding decodes JS values into
// AttentionArgs; this is the one place that decides whether they are safe to run.
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "qkv/attention.h"

namespace qkv {
namespace {

constexpr std::int64_t kMaxDim = std::int64_t{1} << 31;  // per dimension, exclusive

std::string shape_str(const std::int64_t* shape, int rank) {
  std::ostringstream s;
  s << '[';
  for (int i = 0; i < rank; ++i) s << (i ? ", " : "") << shape[i];
  s << ']';
  return s.str();
}

// Highest element offset a strided view reaches, or -1 if it reaches none (a zero extent).
// Returns false on overflow.
bool max_offset(const std::int64_t* shape, const std::int64_t* strides, std::int64_t* result) {
  std::int64_t total = 0;
  for (int i = 0; i < 4; ++i) {
    if (shape[i] == 0) {
      *result = -1;
      return true;
    }
  }
  for (int i = 0; i < 4; ++i) {
    std::int64_t term = 0;
    if (__builtin_mul_overflow(strides[i], shape[i] - 1, &term)) return false;
    if (__builtin_add_overflow(total, term, &total)) return false;
  }
  *result = total;
  return true;
}

Status check_view(const char* name, const std::int64_t* shape, const std::int64_t* strides,
                  std::int64_t capacity, const void* data, std::int64_t* reach) {
  for (int i = 0; i < 4; ++i) {
    if (strides[i] < 0) {
      return Status::range_error(std::string(name) + ": strides must be >= 0, got " +
                                 shape_str(strides, 4));
    }
  }
  if (capacity < 0) return Status::range_error(std::string(name) + ": negative capacity");
  if (!max_offset(shape, strides, reach)) {
    return Status::range_error(std::string(name) + ": shape " + shape_str(shape, 4) +
                               " with strides " + shape_str(strides, 4) +
                               " overflows 64-bit offsets");
  }
  if (*reach >= capacity) {
    return Status::range_error(std::string(name) + ": shape " + shape_str(shape, 4) +
                               " with strides " + shape_str(strides, 4) + " reaches element " +
                               std::to_string(*reach) + " but the data holds " +
                               std::to_string(capacity) + " elements");
  }
  if (*reach >= 0 && data == nullptr) return Status::type_error(std::string(name) + ": data is null");
  return Status::success();
}

// Distinct output elements must map to distinct addresses, or parallel writes race.
bool strides_are_injective(const std::int64_t* shape, const std::int64_t* strides) {
  for (int i = 0; i < 4; ++i) {
    if (shape[i] == 0) return true;  // no element at all
  }
  int order[4] = {0, 1, 2, 3};
  for (int i = 1; i < 4; ++i) {
    for (int j = i; j > 0 && strides[order[j]] < strides[order[j - 1]]; --j) {
      const int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  }
  std::int64_t span = 0;  // highest offset reached by the dimensions seen so far
  for (int i = 0; i < 4; ++i) {
    const int d = order[i];
    if (shape[d] <= 1) continue;
    if (strides[d] <= span) return false;
    span += strides[d] * (shape[d] - 1);
  }
  return true;
}

struct ByteRange {
  const char* begin = nullptr;
  const char* end = nullptr;  // exclusive; begin == end: empty
};

ByteRange byte_range(const void* data, std::int64_t reach, std::size_t elem) {
  if (reach < 0 || data == nullptr) return {};
  const char* p = static_cast<const char*>(data);
  return {p, p + (reach + 1) * static_cast<std::int64_t>(elem)};
}

bool overlaps(ByteRange a, ByteRange b) {
  return a.begin != a.end && b.begin != b.end && a.begin < b.end && b.begin < a.end;
}

}  // namespace

std::size_t dtype_size(DType dtype) { return dtype == DType::float32 ? 4 : 2; }

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
  }
  return "unknown";
}

Status check(const AttentionArgs& a) {
  const TensorDesc* tensors[] = {&a.q, &a.k, &a.v, &a.out};
  const char* names[] = {"q", "k", "v", "out"};
  for (int t = 0; t < 4; ++t) {
    const TensorDesc& d = *tensors[t];
    if (d.dtype != DType::float32 && d.dtype != DType::float16 && d.dtype != DType::bfloat16) {
      return Status::type_error(std::string(names[t]) + ": unknown dtype");
    }
    for (int i = 0; i < 4; ++i) {
      if (d.shape[i] < 0 || d.shape[i] >= kMaxDim) {
        return Status::range_error(std::string(names[t]) + ": every dimension must be in [0, 2^31), got shape " +
                                   shape_str(d.shape, 4));
      }
    }
  }
  if (a.k.dtype != a.q.dtype || a.v.dtype != a.q.dtype || a.out.dtype != a.q.dtype) {
    return Status::type_error(std::string("q, k, v and out must share one dtype, got ") +
                              dtype_name(a.q.dtype) + ", " + dtype_name(a.k.dtype) + ", " +
                              dtype_name(a.v.dtype) + ", " + dtype_name(a.out.dtype));
  }

  const std::int64_t B = a.q.shape[0], Hq = a.q.shape[1], Sq = a.q.shape[2], D = a.q.shape[3];
  const std::int64_t Hkv = a.k.shape[1], Skv = a.k.shape[2], Dv = a.v.shape[3];
  const std::string shapes = "q " + shape_str(a.q.shape, 4) + ", k " + shape_str(a.k.shape, 4) +
                             ", v " + shape_str(a.v.shape, 4);
  if (Hq < 1 || Hkv < 1 || D < 1 || Dv < 1) {
    return Status::range_error("heads and head dims must be >= 1: " + shapes);
  }
  if (a.k.shape[0] != B || a.v.shape[0] != B) return Status::range_error("batch sizes differ: " + shapes);
  if (a.k.shape[3] != D) return Status::range_error("q and k head dims differ: " + shapes);
  if (a.v.shape[1] != Hkv || a.v.shape[2] != Skv) {
    return Status::range_error("k and v must have the same heads and sequence length: " + shapes);
  }
  if (Hq % Hkv != 0) {
    return Status::range_error("query heads must be a multiple of key/value heads (GQA/MQA): " + shapes);
  }
  const std::int64_t expected_out[4] = {B, Hq, Sq, Dv};
  for (int i = 0; i < 4; ++i) {
    if (a.out.shape[i] != expected_out[i]) {
      return Status::range_error("out: shape " + shape_str(a.out.shape, 4) + " must be " +
                                 shape_str(expected_out, 4) + " for " + shapes);
    }
  }

  std::int64_t reach[5] = {-1, -1, -1, -1, -1};
  for (int t = 0; t < 4; ++t) {
    const TensorDesc& d = *tensors[t];
    Status s = check_view(names[t], d.shape, d.strides, d.capacity, d.data, &reach[t]);
    if (!s.ok()) return s;
  }
  if (!strides_are_injective(a.out.shape, a.out.strides)) {
    return Status::range_error("out: strides " + shape_str(a.out.strides, 4) + " for shape " +
                               shape_str(a.out.shape, 4) + " write some elements twice");
  }
  ByteRange outputs[2] = {byte_range(a.out.data, reach[3], dtype_size(a.out.dtype)), {}};

  if (a.lse.data != nullptr) {
    if (a.lse.dtype != DType::float32) return Status::type_error("lse: dtype must be float32");
    const std::int64_t expected_lse[4] = {B, Hq, Sq, 1};
    for (int i = 0; i < 4; ++i) {
      if (a.lse.shape[i] != expected_lse[i]) {
        return Status::range_error("lse: shape " + shape_str(a.lse.shape, 4) + " must be " +
                                   shape_str(expected_lse, 4));
      }
    }
    Status s = check_view("lse", a.lse.shape, a.lse.strides, a.lse.capacity, a.lse.data, &reach[4]);
    if (!s.ok()) return s;
    if (!strides_are_injective(a.lse.shape, a.lse.strides)) {
      return Status::range_error("lse: strides write some elements twice");
    }
    outputs[1] = byte_range(a.lse.data, reach[4], 4);
  }

  if (!std::isfinite(a.scale)) return Status::range_error("scale must be finite, got " + std::to_string(a.scale));
  if (!(a.softcap >= 0.0f) || !std::isfinite(a.softcap)) {
    return Status::range_error("softcap must be a finite number >= 0 (0 = off), got " + std::to_string(a.softcap));
  }
  // diag(i) ± window must not overflow: |offset| and the window edges stay far below 2^63.
  constexpr std::int64_t kMaxOffset = std::int64_t{1} << 53;
  if (a.diagonal_offset < -kMaxOffset || a.diagonal_offset > kMaxOffset) {
    return Status::range_error("diagonal offset must be in [-2^53, 2^53], got " + std::to_string(a.diagonal_offset));
  }
  if (a.window_left > kMaxOffset || a.window_right > kMaxOffset) {
    return Status::range_error("window: left and right must be <= 2^53");
  }
  if (a.window_left < kUnbounded || a.window_right < kUnbounded) {
    return Status::range_error("window: left and right must be >= 0 (or unbounded)");
  }

  const std::int64_t full[4] = {B, Hq, Sq, Skv};
  std::int64_t mask_reach = -1;
  switch (a.mask.kind) {
    case MaskKind::none: break;
    case MaskKind::boolean:
    case MaskKind::additive: {
      Status s = check_view("mask", full, a.mask.strides, a.mask.capacity, a.mask.data, &mask_reach);
      if (!s.ok()) return s;
      break;
    }
    default: return Status::type_error("mask: unknown kind");
  }

  if (a.key_lengths != nullptr || a.key_lengths_count != 0) {
    if (a.key_lengths == nullptr || a.key_lengths_count != B) {
      return Status::range_error("keyLengths: must hold one length per batch (" + std::to_string(B) +
                                 "), got " + std::to_string(a.key_lengths_count));
    }
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int32_t length = a.key_lengths[b];  // read once: shared memory may change under us
      if (length < 0 || length > Skv) {
        return Status::range_error("keyLengths[" + std::to_string(b) + "] = " + std::to_string(length) +
                                   " is outside [0, " + std::to_string(Skv) + "]");
      }
    }
  }
  if (a.alibi_slopes != nullptr || a.alibi_count != 0) {
    if (a.alibi_slopes == nullptr || a.alibi_count != Hq) {
      return Status::range_error("alibiSlopes: must hold one slope per query head (" + std::to_string(Hq) +
                                 "), got " + std::to_string(a.alibi_count));
    }
    for (std::int64_t h = 0; h < Hq; ++h) {
      if (!std::isfinite(a.alibi_slopes[h])) {
        return Status::range_error("alibiSlopes[" + std::to_string(h) + "] is not finite");
      }
    }
  }

  // Outputs must not alias inputs: a kernel may read an input after writing the output.
  // keyLengths and alibiSlopes too: kernels read them while outputs are being written.
  const ByteRange inputs[6] = {byte_range(a.q.data, reach[0], dtype_size(a.q.dtype)),
                               byte_range(a.k.data, reach[1], dtype_size(a.k.dtype)),
                               byte_range(a.v.data, reach[2], dtype_size(a.v.dtype)),
                               byte_range(a.mask.data, mask_reach, a.mask.kind == MaskKind::boolean ? 1 : 4),
                               byte_range(a.key_lengths, a.key_lengths ? a.key_lengths_count - 1 : -1, 4),
                               byte_range(a.alibi_slopes, a.alibi_slopes ? a.alibi_count - 1 : -1, 4)};
  const char* input_names[6] = {"q", "k", "v", "mask", "keyLengths", "alibiSlopes"};
  const char* output_names[2] = {"out", "lse"};
  for (int o = 0; o < 2; ++o) {
    for (int i = 0; i < 6; ++i) {
      if (overlaps(outputs[o], inputs[i])) {
        return Status::range_error(std::string(output_names[o]) + " overlaps the memory of " + input_names[i]);
      }
    }
  }
  if (overlaps(outputs[0], outputs[1])) return Status::range_error("out and lse overlap");
  return Status::success();
}

}  // namespace qkv
