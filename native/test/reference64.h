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

}  // namespace test
}  // namespace qkv
