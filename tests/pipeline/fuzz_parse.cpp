// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target: pipeline descriptions and caps strings must parse or fail cleanly.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "parallax/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  parallax::pipeline::Pipeline p;
  parallax::pipeline::ParseError pe;
  if (p.parse(text, &pe).ok()) {
    (void)p.validate();
    (void)p.to_dot();
  } else if (pe.line == 0 || pe.column == 0) {
    __builtin_trap();  // every parse error names a position
  }
  if (auto c = parallax::pipeline::Caps::parse(text); c.ok()) {
    // Printing and re-parsing gives the same caps.
    auto again = parallax::pipeline::Caps::parse(c->to_string());
    if (!again.ok() || !(*again == *c)) __builtin_trap();
    (void)c->intersect(*again);
  }
  return 0;
}
