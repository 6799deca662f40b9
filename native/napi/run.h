// Runs a call on its backend with every C++ exception turned into a Status.
#pragma once

#include <exception>
#include <new>

#include "qkv/attention.h"
#include "qkv/cuda.h"

namespace qkv {
namespace napi {

// The CPU backend, or CUDA device `device` (>= 0).
inline Status run_guarded(const AttentionArgs& args, int device) {
  try {
    return device < 0 ? attention_cpu(args) : attention_cuda(args, device);
  } catch (const std::bad_alloc&) {
    return Status{StatusCode::range_error, "out of memory for scratch buffers"};
  } catch (const std::exception& e) {
    return Status{StatusCode::range_error, e.what()};
  }
}

}  // namespace napi
}  // namespace qkv
