// Compiler-specific spellings, kept in one place (GCC and Clang here; MSVC where it differs,
// not built in this repository's CI).
#pragma once

// For small hot helpers the compiler would otherwise keep out of line (measured: the shared
// softmax row step cost 2-5% in the masked prefill when it was a call).
#if defined(_MSC_VER) && !defined(__clang__)
#define QKV_ALWAYS_INLINE __forceinline
#else
#define QKV_ALWAYS_INLINE inline __attribute__((always_inline))
#endif
