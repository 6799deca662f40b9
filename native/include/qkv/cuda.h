// The CUDA backend's host API. It compiles without the CUDA toolkit: a build without CUDA
// links native/cuda/host_unavailable.cpp, which reports why and refuses every call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qkv/attention.h"

namespace qkv {

struct CudaDevice {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  std::int64_t total_memory = 0;
  int multiprocessors = 0;
};

struct CudaInfo {
  bool built = false;     // this binary has a CUDA backend
  bool emulated = false;  // the CPU shim stands in for the GPU (a test build, QKV_CUDA=SHIM)
  std::string runtime;    // e.g. "CUDA runtime 13.0"
  std::vector<CudaDevice> devices;
  std::string reason;     // why no device can be used, when `devices` is empty
  // What the kernels accept (0 when not built): head dims up to max_head_dim; batch and query
  // heads up to max_grid each (grid limits).
  std::int64_t max_head_dim = 0;
  std::int64_t max_grid = 0;
};

// Queried on every call (cheap: the runtime caches it); never fails, reports instead.
CudaInfo cuda_info();

// Device memory. Freed when the last owner lets go: a call in flight holds it too, so
// freeing a JS handle while an asynchronous call reads it is safe.
class CudaBuffer {
 public:
  CudaBuffer(void* data, int device, std::int64_t bytes) : data_(data), device_(device), bytes_(bytes) {}
  ~CudaBuffer();
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

  void* data() const { return data_; }
  int device() const { return device_; }
  std::int64_t bytes() const { return bytes_; }

 private:
  void* data_;
  int device_;
  std::int64_t bytes_;
};

Status cuda_allocate(int device, std::int64_t bytes, std::shared_ptr<CudaBuffer>* buffer);
// Copies between host memory and bytes [offset, offset + bytes) of `buffer` (bounds checked).
Status cuda_write(const CudaBuffer& buffer, std::int64_t offset, const void* host, std::int64_t bytes);
Status cuda_read(const CudaBuffer& buffer, std::int64_t offset, void* host, std::int64_t bytes);

// check(), then the forward pass on CUDA device `device`: q, k and v may live on that device
// (Location::cuda: their data and capacity describe a CudaBuffer there); host inputs are
// staged through pinned memory on a stream of that device; the output and lse (host memory)
// are copied back into their views (any strides). Same semantics as attention_cpu; D, Dv ≤ 128.
Status attention_cuda(const AttentionArgs& args, int device);

}  // namespace qkv
