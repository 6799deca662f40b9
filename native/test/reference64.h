// A float64 attention straight from the definition, for the C++ tests: full score rows,
// every mask rule evaluated per element. Shares no code with the kernels it checks.
#pragma once

#include <vector>

#include "qkv/attention.h"

namespace qkv {
namespace test {

struct Reference {
  std::vector<double> out;  // [B, Hq, Sq, Dv] contiguous
  std::vector<double> lse;  // [B, Hq, Sq]
};

Reference reference64(const AttentionArgs& args);

// The tests describe masks as users do (causal, aligned upper-left or lower-right, plus a
// window); AttentionArgs holds them normalised: a diagonal offset, causal as a right edge of 0.
inline void set_geometry(AttentionArgs& a, bool causal, bool lower_right, std::int64_t left, std::int64_t right) {
  a.diagonal_offset = lower_right ? a.k.shape[2] - a.q.shape[2] : 0;
  a.window_left = left;
  a.window_right = causal ? 0 : right;
}

}  // namespace test
}  // namespace qkv
