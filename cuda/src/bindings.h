// Helpers shared by the binding files (bindings*.cpp): the only code of nerfgen's kernels that
// touches torch. Numbers in error messages are formatted with std::to_string, never by an ostream
// of this library: built with GCC 13 against torch 2.11's wheel (a CUDA machine's image),
// inserting an integer into the message's ostream crashed inside libstdc++'s locale code, so a bad
// argument gave a segfault instead of an error. Strings and dtypes stream safely.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace nerfgen {
namespace bindings {

inline std::string num(int64_t value) { return std::to_string(value); }

inline std::string shape_of(at::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + "]";
}

}  // namespace bindings
}  // namespace nerfgen
