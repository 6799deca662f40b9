// The slice of the CUDA runtime API that native/cuda/host.cu uses, on the CPU: one emulated
// device, "device memory" from the heap, copies as memcpy, launches through qkv_shim::launch
// (one at a time: __shared__ variables are statics shared by every launch). So the host code
// itself (staging, workspace layout, kernel choice, launch configuration) runs in tests.
//
// It also checks what a GPU would punish: a copy in the wrong direction, or a kernel
// argument that is not device memory (QKV_EXPECT_DEVICE), fails instead of silently working
// because host and "device" share one address space here.
#pragma once

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

#include "cuda_shim.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorECCUncorrectable = 214,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchTimeout = 702,
  cudaErrorAssert = 710,
  cudaErrorHardwareStackError = 714,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorInvalidAddressSpace = 717,
  cudaErrorInvalidPc = 718,
  cudaErrorLaunchFailure = 719,
};

enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };

struct CUstream_st {};
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
};

namespace qkv_shim {

struct DeviceHeap {
  std::mutex mutex;
  std::map<const char*, std::size_t> blocks;  // base -> bytes
};

inline DeviceHeap& device_heap() {
  static DeviceHeap heap;
  return heap;
}

// True when [p, p + bytes) lies inside one cudaMalloc block.
inline bool is_device_range(const void* p, std::size_t bytes) {
  DeviceHeap& heap = device_heap();
  std::lock_guard<std::mutex> lock(heap.mutex);
  const char* c = static_cast<const char*>(p);
  auto it = heap.blocks.upper_bound(c);
  if (it == heap.blocks.begin()) return false;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

inline cudaError_t& last_error() {
  static thread_local cudaError_t error = cudaSuccess;
  return error;
}

inline std::string& last_launch_message() {
  static thread_local std::string message;
  return message;
}

inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

template <class Kernel, class... Args>
void launch_recorded(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  std::string error;
  {
    std::lock_guard<std::mutex> lock(launch_mutex());
    error = launch(grid, block, kernel, args...);
  }
  if (!error.empty()) {
    last_error() = cudaErrorLaunchFailure;
    last_launch_message() = error;
  }
}

}  // namespace qkv_shim

inline cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 0;
  return cudaSuccess;
}

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::memset(prop, 0, sizeof *prop);
  std::strcpy(prop->name, "qkv CUDA shim (kernels emulated on the CPU)");
  prop->totalGlobalMem = std::size_t{1} << 32;
  // Test hook: QKV_CUDA_SHIM_CC="7.5" emulates an older device (which qkv must refuse).
  const char* cc = std::getenv("QKV_CUDA_SHIM_CC");
  prop->major = 8;
  prop->minor = 0;
  if (cc != nullptr && std::strlen(cc) == 3 && cc[1] == '.') prop->major = cc[0] - '0', prop->minor = cc[2] - '0';
  prop->multiProcessorCount = 8;  // a small device: few-row calls take the split-KV decode path
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  char* block = static_cast<char*>(std::malloc(bytes == 0 ? 1 : bytes));
  if (block == nullptr) return cudaErrorMemoryAllocation;
  qkv_shim::DeviceHeap& heap = qkv_shim::device_heap();
  std::lock_guard<std::mutex> lock(heap.mutex);
  heap.blocks[block] = bytes;
  *p = block;
  return cudaSuccess;
}

inline cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  qkv_shim::DeviceHeap& heap = qkv_shim::device_heap();
  std::lock_guard<std::mutex> lock(heap.mutex);
  auto it = heap.blocks.find(static_cast<const char*>(p));
  if (it == heap.blocks.end()) return cudaErrorInvalidValue;
  heap.blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}

inline cudaError_t cudaMallocHost(void** p, std::size_t bytes) {
  *p = std::malloc(bytes == 0 ? 1 : bytes);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

inline cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new CUstream_st;
  return cudaSuccess;
}

inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}

// Test hook: QKV_CUDA_SHIM_FAULT=illegal-address makes the work on a stream fail as an
// out-of-bounds access on a GPU would: with a sticky error, reported at synchronisation.
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
  const char* fault = std::getenv("QKV_CUDA_SHIM_FAULT");
  if (fault != nullptr && std::strcmp(fault, "illegal-address") == 0) return cudaErrorIllegalAddress;
  return cudaSuccess;
}

inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  const bool to_device = kind == cudaMemcpyHostToDevice;
  const void* device_side = to_device ? dst : src;
  const void* host_side = to_device ? src : dst;
  if (!qkv_shim::is_device_range(device_side, bytes) || qkv_shim::is_device_range(host_side, 1)) {
    return cudaErrorInvalidValue;
  }
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = qkv_shim::last_error();
  qkv_shim::last_error() = cudaSuccess;
  return e;
}

inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorECCUncorrectable: return "cudaErrorECCUncorrectable";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchTimeout: return "cudaErrorLaunchTimeout";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorHardwareStackError: return "cudaErrorHardwareStackError";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorInvalidAddressSpace: return "cudaErrorInvalidAddressSpace";
    case cudaErrorInvalidPc: return "cudaErrorInvalidPc";
  }
  return "cudaErrorUnknown";
}

inline const char* cudaGetErrorString(cudaError_t e) {
  if (e == cudaErrorLaunchFailure) return qkv_shim::last_launch_message().c_str();
  return cudaGetErrorName(e);
}

#define QKV_LAUNCH(kernel, grid, block, stream, ...) qkv_shim::launch_recorded(grid, block, kernel, __VA_ARGS__)
// A kernel argument must point into device memory (only checkable here).
#define QKV_EXPECT_DEVICE(pointer, bytes) \
  (pointer == nullptr || bytes == 0 || qkv_shim::is_device_range(pointer, static_cast<std::size_t>(bytes)))
