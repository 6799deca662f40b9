// The CUDA backend's host side: device discovery, per-call staging of host inputs through
// pinned memory on a pooled stream, kernel choice and launch, and copying the results back
// into strided host views. The same source builds with nvcc (QKV_CUDA=AUTO/ON) and with g++
// over the runtime shim (QKV_CUDA=SHIM, native/cuda/shim/host_shim.cpp), so every line of it
// runs in CI although no GPU does.
#include "runtime.h"
// (the runtime, or its shim, comes first: it defines the CUDA qualifiers the kernels use)
#include "attention_mma.cuh"
#include "attention_simt.cuh"
#include "mma.cuh"
#include "qkv/cuda.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <new>
#include <vector>

namespace qkv {
namespace {

std::string cuda_error(const char* what, cudaError_t e) {
  return std::string(what) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

Status device_error(const char* what, cudaError_t e) { return Status::range_error("backend 'cuda': " + cuda_error(what, e)); }

// Errors after which a device's context is corrupt: every later call on it would fail too.
bool sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress: case cudaErrorLaunchFailure: case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable: case cudaErrorAssert: case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction: case cudaErrorMisalignedAddress: case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
      return true;
    default:
      return false;
  }
}

// Devices this process can no longer use, with the error that broke each.
class BrokenDevices {
 public:
  void mark(int device, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    reasons_.emplace(device, reason);  // the first error is the cause
  }
  std::string reason(int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = reasons_.find(device);
    return it == reasons_.end() ? std::string() : it->second;
  }

 private:
  std::mutex mutex_;
  std::map<int, std::string> reasons_;
};

BrokenDevices& broken_devices() {
  static BrokenDevices* b = new BrokenDevices;  // never destroyed, like the pool
  return *b;
}

// device_error(), and a sticky error marks the device unusable for the rest of the process.
Status device_failure(int device, const char* what, cudaError_t e) {
  if (sticky(e)) broken_devices().mark(device, cuda_error(what, e));
  return device_error(what, e);
}

// A device's properties, queried once (the query is slow; they never change).
cudaError_t cached_properties(int device, cudaDeviceProp* prop) {
  static std::mutex mutex;
  static std::map<int, cudaDeviceProp>* cache = new std::map<int, cudaDeviceProp>;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache->find(device);
  if (it == cache->end()) {
    cudaDeviceProp fresh;
    const cudaError_t e = cudaGetDeviceProperties(&fresh, device);
    if (e != cudaSuccess) return e;
    it = cache->emplace(device, fresh).first;
  }
  *prop = it->second;
  return cudaSuccess;
}

// qkv's kernels use mma.sync m16n8k16 with bf16, which needs compute capability 8.0.
constexpr int kMinMajor = 8;

// Why `device` cannot run qkv's kernels, or "" when it can.
std::string unusable_reason(int device, const cudaDeviceProp& prop) {
  if (prop.major < kMinMajor) {
    return "device " + std::to_string(device) + " (" + prop.name + ") has compute capability " + std::to_string(prop.major) +
           "." + std::to_string(prop.minor) + "; qkv's CUDA kernels need 8.0 or newer";
  }
  const std::string broken = broken_devices().reason(device);
  if (!broken.empty()) {
    return "device " + std::to_string(device) + " is unusable after an unrecoverable error (" + broken +
           "); its context cannot be recovered in this process";
  }
  return "";
}

// Resources one call needs, pooled and reused: a stream, pinned staging memory and a device
// workspace, both grown on demand (allocating either costs far more than a small call).
struct Context {
  int device = 0;
  int multiprocessors = 1;
  cudaStream_t stream = nullptr;
  char* pinned = nullptr;
  std::size_t pinned_bytes = 0;
  char* workspace = nullptr;
  std::size_t workspace_bytes = 0;

  ~Context() {
    if (pinned) cudaFreeHost(pinned);
    if (workspace) cudaFree(workspace);
    if (stream) cudaStreamDestroy(stream);
  }

  Status reserve(std::size_t host_bytes, std::size_t device_bytes) {
    if (host_bytes > pinned_bytes) {
      if (pinned) cudaFreeHost(pinned);
      pinned = nullptr, pinned_bytes = 0;
      void* p = nullptr;
      const cudaError_t e = cudaMallocHost(&p, host_bytes);
      if (e != cudaSuccess) return device_error("cudaMallocHost (pinned staging)", e);
      pinned = static_cast<char*>(p), pinned_bytes = host_bytes;
    }
    if (device_bytes > workspace_bytes) {
      if (workspace) cudaFree(workspace);
      workspace = nullptr, workspace_bytes = 0;
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, device_bytes);
      if (e != cudaSuccess) return device_error("cudaMalloc (workspace)", e);
      workspace = static_cast<char*>(p), workspace_bytes = device_bytes;
    }
    return Status::success();
  }
};

class ContextPool {
 public:
  static constexpr int kIdlePerDevice = 4;

  Status take(int device, std::unique_ptr<Context>* out) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if ((*it)->device == device) {
          *out = std::move(*it);
          idle_.erase(it);
          return Status::success();
        }
      }
    }
    std::unique_ptr<Context> c(new Context);
    c->device = device;
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) return device_error("cudaGetDeviceProperties", e);
    c->multiprocessors = std::max(1, prop.multiProcessorCount);
    e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) return device_error("cudaStreamCreateWithFlags", e);
    *out = std::move(c);
    return Status::success();
  }

  // At most kIdlePerDevice idle contexts per device are kept (a burst of concurrent calls
  // must not leave as many streams and buffers behind).
  void give(std::unique_ptr<Context> c) {
    std::lock_guard<std::mutex> lock(mutex_);
    int same = 0;
    for (const auto& idle : idle_) same += idle->device == c->device;
    if (same < kIdlePerDevice) idle_.push_back(std::move(c));
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Context>> idle_;
};

// Never destroyed: at process exit the CUDA runtime may already be torn down.
ContextPool& pool() {
  static ContextPool* p = new ContextPool;
  return *p;
}

// Holds a context for one call; returns it to the pool unless the call failed (a failed
// stream may carry a sticky error, so that context is dropped). Buffers grown past what is
// worth keeping are released first, so one large call does not pin its memory forever.
struct Lease {
  static constexpr std::size_t kKeepPinned = std::size_t{64} << 20;
  static constexpr std::size_t kKeepWorkspace = std::size_t{256} << 20;
  std::unique_ptr<Context> context;
  bool healthy = false;
  ~Lease() {
    if (!context || !healthy) return;
    if (context->pinned_bytes > kKeepPinned) {
      cudaFreeHost(context->pinned);
      context->pinned = nullptr, context->pinned_bytes = 0;
    }
    if (context->workspace_bytes > kKeepWorkspace) {
      cudaFree(context->workspace);
      context->workspace = nullptr, context->workspace_bytes = 0;
    }
    pool().give(std::move(context));
  }
};

constexpr std::size_t kAlign = 256;
std::size_t align_up(std::size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Elements a view reaches from its first element (strides are ≥ 0 after check()).
std::int64_t reach(const std::int64_t shape[4], const std::int64_t strides[4]) {
  std::int64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    if (shape[i] == 0) return 0;
    last += (shape[i] - 1) * strides[i];
  }
  return last + 1;
}

// Copies dense rows [B, H, S, E] (element size `es`) into a host view of that shape.
void scatter(const char* dense, const TensorDesc& view, std::size_t es) {
  const std::int64_t* n = view.shape;
  const std::int64_t* st = view.strides;
  char* base = static_cast<char*>(view.data);
  const std::size_t row_bytes = static_cast<std::size_t>(n[3]) * es;
  for (std::int64_t b = 0; b < n[0]; ++b)
    for (std::int64_t h = 0; h < n[1]; ++h)
      for (std::int64_t s = 0; s < n[2]; ++s, dense += row_bytes) {
        char* row = base + static_cast<std::size_t>(b * st[0] + h * st[1] + s * st[2]) * es;
        if (st[3] == 1) {
          std::memcpy(row, dense, row_bytes);
        } else {
          for (std::int64_t e = 0; e < n[3]; ++e) std::memcpy(row + static_cast<std::size_t>(e * st[3]) * es, dense + e * es, es);
        }
      }
}

// Host memory copied into the workspace at `offset`, and the argument field to repoint.
struct Staged {
  const void* host;
  std::size_t bytes;
  std::size_t offset;
  std::function<void(char*)> repoint;
};

constexpr std::int64_t kSplitMinKeys = 128;  // fewer keys than 2 chunks of this: no split

// Split-KV decode (flash-decoding) when few query rows would leave most multiprocessors
// idle: key chunks (multiples of the kernel's 32-key tile) give every multiprocessor
// about two blocks. 1 = no split.
std::int64_t split_chunks(const AttentionArgs& a, int multiprocessors) {
  const std::int64_t B = a.q.shape[0], Hq = a.q.shape[1], Sq = a.q.shape[2], Skv = a.k.shape[2];
  const std::int64_t row_blocks = B * Hq * ((Sq + cuda::kSimtWarps - 1) / cuda::kSimtWarps);
  if (a.q.dtype != DType::float32 || Sq > 16 || Skv < 2 * kSplitMinKeys || row_blocks >= 2 * multiprocessors) return 1;
  std::int64_t chunks = std::min<std::int64_t>((2 * multiprocessors + B * Hq - 1) / (B * Hq), Skv / kSplitMinKeys);
  std::int64_t chunk_keys = (Skv + chunks - 1) / chunks;
  chunk_keys = (chunk_keys + cuda::kSimtKeys - 1) / cuda::kSimtKeys * cuda::kSimtKeys;
  chunks = (Skv + chunk_keys - 1) / chunk_keys;
  return std::max<std::int64_t>(chunks, 1);
}

// `chunks` > 1: split-KV decode into that many key chunks, partials in `partials`
// (B·Hq·Sq·chunks·kPartialFloats floats).
void launch_kernels(const AttentionArgs& d, cudaStream_t stream, std::int64_t chunks, float* partials) {
  const std::int64_t B = d.q.shape[0], Hq = d.q.shape[1], Sq = d.q.shape[2], Skv = d.k.shape[2];
  const MaskRules rules = mask_rules_of(d);
  const unsigned gb = static_cast<unsigned>(B), gh = static_cast<unsigned>(Hq);
  if (d.q.dtype != DType::float32) {
    const dim3 grid(static_cast<unsigned>((Sq + cuda::kMmaRows - 1) / cuda::kMmaRows), gh, gb);
    if (d.q.dtype == DType::float16) QKV_LAUNCH(cuda::attention_mma<cuda::Float16>, grid, dim3(32), stream, d, rules);
    else QKV_LAUNCH(cuda::attention_mma<cuda::BFloat16>, grid, dim3(32), stream, d, rules);
    return;
  }
  const dim3 rows_grid(static_cast<unsigned>((Sq + cuda::kSimtWarps - 1) / cuda::kSimtWarps), gh, gb);
  const dim3 block(32 * cuda::kSimtWarps);
  if (chunks > 1) {
    const std::int64_t chunk_keys = (Skv + chunks - 1) / chunks;
    QKV_LAUNCH(cuda::attention_split_f32, dim3(static_cast<unsigned>(chunks), gh, gb), block, stream, d, rules,
               static_cast<long long>(chunk_keys), partials);
    QKV_LAUNCH(cuda::attention_merge_f32, rows_grid, block, stream, d, static_cast<long long>(chunks),
               static_cast<const float*>(partials));
  } else {
    QKV_LAUNCH(cuda::attention_simt_f32, rows_grid, block, stream, d, rules);
  }
}

}  // namespace

CudaBuffer::~CudaBuffer() {
  if (data_ == nullptr) return;
  int current = 0;
  cudaGetDevice(&current);
  if (current != device_) cudaSetDevice(device_);
  cudaFree(data_);
  if (current != device_) cudaSetDevice(current);
}

constexpr std::int64_t kMaxGrid = 65535;  // gridDim.y and gridDim.z carry query heads and batch

CudaInfo cuda_info() {
  CudaInfo info;
  info.built = true;
  info.max_head_dim = cuda::kSimtMaxDim;
  info.max_grid = kMaxGrid;
#if defined(QKV_CUDA_SHIM)
  info.emulated = true;
  info.runtime = "qkv CUDA shim (CPU emulation)";
#else
  int version = 0;
  if (cudaRuntimeGetVersion(&version) == cudaSuccess) {
    info.runtime = "CUDA runtime " + std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
  }
#endif
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky; clear it for later calls
    info.reason = cuda_error("cudaGetDeviceCount", e);
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
      info.reason += ": no usable NVIDIA driver/GPU on this machine";
    }
    return info;
  }
  if (count == 0) info.reason = "no CUDA device found";
  std::string excluded;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cached_properties(i, &prop) != cudaSuccess) continue;
    const std::string why = unusable_reason(i, prop);
    if (!why.empty()) {
      excluded += (excluded.empty() ? "" : "; ") + why;
      continue;
    }
    CudaDevice dev;
    dev.ordinal = i;
    dev.name = prop.name;
    dev.major = prop.major, dev.minor = prop.minor;
    dev.total_memory = static_cast<std::int64_t>(prop.totalGlobalMem);
    dev.multiprocessors = prop.multiProcessorCount;
    info.devices.push_back(dev);
  }
  if (!excluded.empty()) info.reason = info.devices.empty() ? excluded : "not listed: " + excluded;
  return info;
}

namespace {

Status select_device(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Status::range_error("backend 'cuda' is unavailable: " + cuda_error("cudaGetDeviceCount", e));
  }
  if (device < 0 || device >= count) {
    return Status::range_error("options.device must be a CUDA device ordinal in [0, " + std::to_string(count) + "), got " +
                               std::to_string(device));
  }
  cudaDeviceProp prop;
  const cudaError_t p = cached_properties(device, &prop);
  if (p != cudaSuccess) return device_error("cudaGetDeviceProperties", p);
  const std::string why = unusable_reason(device, prop);
  if (!why.empty()) return Status::range_error("backend 'cuda': " + why);
  const cudaError_t s = cudaSetDevice(device);
  return s == cudaSuccess ? Status::success() : device_failure(device, "cudaSetDevice", s);
}

}  // namespace

Status cuda_allocate(int device, std::int64_t bytes, std::shared_ptr<CudaBuffer>* buffer) {
  Status s = select_device(device);
  if (!s.ok()) return s;
  if (bytes < 0) return Status::range_error("device allocation size must be >= 0, got " + std::to_string(bytes));
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, static_cast<std::size_t>(bytes == 0 ? 1 : bytes));
  if (e != cudaSuccess) return device_error("cudaMalloc", e);
  try {
    *buffer = std::make_shared<CudaBuffer>(p, device, bytes);
  } catch (const std::bad_alloc&) {
    cudaFree(p);
    return Status::range_error("out of host memory");
  }
  return Status::success();
}

namespace {

Status copy_checked(const CudaBuffer& buffer, std::int64_t offset, std::int64_t bytes, const char* what) {
  if (offset < 0 || bytes < 0 || offset > buffer.bytes() || bytes > buffer.bytes() - offset) {
    return Status::range_error(std::string(what) + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                               ") lie outside the device buffer of " + std::to_string(buffer.bytes()) + " bytes");
  }
  return select_device(buffer.device());
}


constexpr std::size_t kCopyChunk = std::size_t{8} << 20;  // pinned staging per copy step

// Host ↔ device through a pooled context's pinned memory, in chunks (so a big upload does
// not pin a buffer as large as itself); complete on return.
Status copy_through_pinned(const CudaBuffer& buffer, std::int64_t offset, char* host, std::int64_t bytes, bool to_device) {
  Lease lease;
  Status s = pool().take(buffer.device(), &lease.context);
  if (!s.ok()) return s;
  Context& c = *lease.context;
  const std::size_t step = std::min<std::size_t>(kCopyChunk, static_cast<std::size_t>(bytes));
  s = c.reserve(step, 0);
  if (!s.ok()) return s;
  char* device = static_cast<char*>(buffer.data()) + offset;
  for (std::int64_t done = 0; done < bytes;) {
    const std::size_t n = std::min<std::size_t>(step, static_cast<std::size_t>(bytes - done));
    if (to_device) std::memcpy(c.pinned, host + done, n);
    cudaError_t e = to_device ? cudaMemcpyAsync(device + done, c.pinned, n, cudaMemcpyHostToDevice, c.stream)
                              : cudaMemcpyAsync(c.pinned, device + done, n, cudaMemcpyDeviceToHost, c.stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c.stream);
    if (e != cudaSuccess) return device_failure(buffer.device(), "cudaMemcpyAsync", e);
    if (!to_device) std::memcpy(host + done, c.pinned, n);
    done += static_cast<std::int64_t>(n);
  }
  lease.healthy = true;
  return Status::success();
}

}  // namespace

Status cuda_write(const CudaBuffer& buffer, std::int64_t offset, const void* host, std::int64_t bytes) {
  Status s = copy_checked(buffer, offset, bytes, "write");
  if (!s.ok() || bytes == 0) return s;
  return copy_through_pinned(buffer, offset, const_cast<char*>(static_cast<const char*>(host)), bytes, true);
}

Status cuda_read(const CudaBuffer& buffer, std::int64_t offset, void* host, std::int64_t bytes) {
  Status s = copy_checked(buffer, offset, bytes, "read");
  if (!s.ok() || bytes == 0) return s;
  return copy_through_pinned(buffer, offset, static_cast<char*>(host), bytes, false);
}

Status attention_cuda(const AttentionArgs& args, int device) {
  Status s = check(args);
  if (!s.ok()) return s;
  if (args.out.location != Location::host || args.lse.location != Location::host) {
    return Status::type_error("backend 'cuda': out and lse must be host memory");
  }
  const std::int64_t B = args.q.shape[0], Hq = args.q.shape[1], Sq = args.q.shape[2], D = args.q.shape[3];
  const std::int64_t Skv = args.k.shape[2], Dv = args.v.shape[3];
  if (D > cuda::kSimtMaxDim || Dv > cuda::kSimtMaxDim) {
    return Status::range_error("backend 'cuda' supports head dims up to " + std::to_string(cuda::kSimtMaxDim) +
                               " (q/k head dim " + std::to_string(D) + ", v head dim " + std::to_string(Dv) +
                               "); use backend 'cpu' for larger ones");
  }
  if (B > kMaxGrid || Hq > kMaxGrid) {
    return Status::range_error("backend 'cuda': batch and query heads must each be <= 65535 (grid limits), got " +
                               std::to_string(B) + " and " + std::to_string(Hq));
  }
  s = select_device(device);
  if (!s.ok() || B * Hq * Sq == 0) return s;

  // Workspace layout (offsets shared by the pinned staging buffer): host inputs, each
  // 256-byte aligned; then the dense output and lse; then decode partials (device only).
  AttentionArgs d = args;
  const std::size_t es = dtype_size(args.q.dtype);
  std::vector<Staged> staged;
  std::size_t at = 0;
  const auto stage = [&](const void* host, std::int64_t bytes, std::function<void(char*)> repoint) {
    if (host == nullptr || bytes <= 0) return;
    staged.push_back({host, static_cast<std::size_t>(bytes), at, std::move(repoint)});
    at = align_up(at + static_cast<std::size_t>(bytes));
  };
  const auto stage_tensor = [&](const TensorDesc& host, TensorDesc& dev) {
    if (host.location == Location::cuda) return;  // already on the device
    stage(host.data, reach(host.shape, host.strides) * static_cast<std::int64_t>(es), [&dev](char* p) { dev.data = p; });
  };
  stage_tensor(args.q, d.q);
  stage_tensor(args.k, d.k);
  stage_tensor(args.v, d.v);
  if (args.mask.kind != MaskKind::none) {
    const std::int64_t mask_shape[4] = {B, Hq, Sq, Skv};
    const std::int64_t mask_es = args.mask.kind == MaskKind::boolean ? 1 : 4;
    stage(args.mask.data, reach(mask_shape, args.mask.strides) * mask_es, [&d](char* p) { d.mask.data = p; });
  }
  stage(args.key_lengths, args.key_lengths_count * 4,
        [&d](char* p) { d.key_lengths = reinterpret_cast<const std::int32_t*>(p); });
  stage(args.alibi_slopes, args.alibi_count * 4, [&d](char* p) { d.alibi_slopes = reinterpret_cast<const float*>(p); });
  const std::size_t inputs_end = at;
  const std::size_t out_bytes = static_cast<std::size_t>(B * Hq * Sq * Dv) * es;
  const std::size_t lse_at = align_up(inputs_end + out_bytes);
  const std::size_t lse_bytes = args.lse.data ? static_cast<std::size_t>(B * Hq * Sq) * 4 : 0;
  const std::size_t outputs_end = lse_at + lse_bytes;

  Lease lease;
  s = pool().take(device, &lease.context);
  if (!s.ok()) return s;
  Context& c = *lease.context;
  const std::int64_t chunks = split_chunks(args, c.multiprocessors);
  const std::size_t partials_at = align_up(outputs_end);
  const std::size_t partial_floats = chunks > 1 ? static_cast<std::size_t>(B * Hq * Sq * chunks * cuda::kPartialFloats) : 0;
  s = c.reserve(outputs_end, partials_at + partial_floats * sizeof(float));
  if (!s.ok()) return s;

  for (const Staged& st : staged) {
    std::memcpy(c.pinned + st.offset, st.host, st.bytes);
    st.repoint(c.workspace + st.offset);
  }
  d.out.data = c.workspace + inputs_end;
  d.out.capacity = B * Hq * Sq * Dv;
  const std::int64_t out_strides[4] = {Hq * Sq * Dv, Sq * Dv, Dv, 1};
  std::copy(out_strides, out_strides + 4, d.out.strides);
  if (args.lse.data) {
    d.lse.data = c.workspace + lse_at;
    d.lse.capacity = B * Hq * Sq;
    const std::int64_t lse_strides[4] = {Hq * Sq, Sq, 1, 1};
    std::copy(lse_strides, lse_strides + 4, d.lse.strides);
  }
  const bool on_device = QKV_EXPECT_DEVICE(d.q.data, es) && QKV_EXPECT_DEVICE(d.k.data, Skv > 0 ? es : 0) &&
                         QKV_EXPECT_DEVICE(d.v.data, Skv > 0 ? es : 0) && QKV_EXPECT_DEVICE(d.out.data, out_bytes) &&
                         QKV_EXPECT_DEVICE(d.lse.data, lse_bytes) && QKV_EXPECT_DEVICE(d.mask.data, 1) &&
                         QKV_EXPECT_DEVICE(d.key_lengths, d.key_lengths_count * 4) &&
                         QKV_EXPECT_DEVICE(d.alibi_slopes, d.alibi_count * 4);
  if (!on_device) return Status::range_error("backend 'cuda': internal error: a kernel argument is not device memory");

  cudaError_t e = cudaSuccess;
  if (inputs_end > 0) e = cudaMemcpyAsync(c.workspace, c.pinned, inputs_end, cudaMemcpyHostToDevice, c.stream);
  if (e != cudaSuccess) return device_failure(device, "cudaMemcpyAsync (inputs)", e);
  launch_kernels(d, c.stream, chunks, reinterpret_cast<float*>(c.workspace + partials_at));
  e = cudaGetLastError();
  if (e != cudaSuccess) return device_failure(device, "kernel launch", e);
  e = cudaMemcpyAsync(c.pinned + inputs_end, c.workspace + inputs_end, outputs_end - inputs_end, cudaMemcpyDeviceToHost,
                      c.stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c.stream);
  if (e != cudaSuccess) return device_failure(device, "attention on the device", e);

  scatter(c.pinned + inputs_end, args.out, es);
  if (args.lse.data) scatter(c.pinned + lse_at, args.lse, 4);
  lease.healthy = true;
  return Status::success();
}

}  // namespace qkv
