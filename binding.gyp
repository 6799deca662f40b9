{
  "target_defaults": {
    "include_dirs": ["native/include"],
    "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "MACOSX_DEPLOYMENT_TARGET": "10.15"
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
  },
  "targets": [
    {
      "target_name": "qkv_kernel_avx512",
      "type": "static_library",
      "sources": ["native/cpu/kernel_avx512.cpp"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
    },
    {
      "target_name": "qkv_kernel_avx512bf16",
      "type": "static_library",
      "sources": ["native/cpu/kernel_avx512bf16.cpp"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx2", "-mfma", "-mf16c", "-Wno-maybe-uninitialized"]
    },
    {
      "target_name": "qkv_kernel_avx2",
      "type": "static_library",
      "sources": ["native/cpu/kernel_avx2.cpp"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c"]
    },
    {
      "target_name": "qkv",
      "dependencies": ["qkv_kernel_avx512bf16", "qkv_kernel_avx512", "qkv_kernel_avx2"],
      "sources": [
        "native/core/check.cpp",
        "native/cpu/dispatch.cpp",
        "native/cpu/linear.cpp",
        "native/cpu/thread_pool.cpp",
        "native/cpu/kernel_scalar.cpp",
        "native/napi/binding.cpp",
        "native/napi/async_call.cpp",
        "native/napi/arguments.cpp",
        "native/napi/cuda_binding.cpp",
        "native/napi/linear_binding.cpp",
        "native/cuda/host_unavailable.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "QKV_CUDA_UNAVAILABLE_REASON=\"qkv was built with node-gyp, which builds the CPU backend only (build with cmake-js for CUDA)\""],
      "libraries": ["-lpthread"]
    }
  ]
}
