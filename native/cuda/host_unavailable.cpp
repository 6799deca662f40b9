// The CUDA backend of a build without it (QKV_CUDA=OFF, no toolkit found, or node-gyp):
// reports why and refuses every call with that reason.
#include "qkv/cuda.h"

#ifndef QKV_CUDA_UNAVAILABLE_REASON
#define QKV_CUDA_UNAVAILABLE_REASON "qkv was built without CUDA"
#endif

namespace qkv {
namespace {

Status unavailable() { return Status::range_error(std::string("backend 'cuda' is unavailable: ") + QKV_CUDA_UNAVAILABLE_REASON); }

}  // namespace

CudaBuffer::~CudaBuffer() = default;

CudaInfo cuda_info() {
  CudaInfo info;
  info.reason = QKV_CUDA_UNAVAILABLE_REASON;
  return info;
}

Status cuda_allocate(int, std::int64_t, std::shared_ptr<CudaBuffer>*) { return unavailable(); }
Status cuda_write(const CudaBuffer&, std::int64_t, const void*, std::int64_t) { return unavailable(); }
Status cuda_read(const CudaBuffer&, std::int64_t, void*, std::int64_t) { return unavailable(); }
Status attention_cuda(const AttentionArgs&, int) { return unavailable(); }

}  // namespace qkv
