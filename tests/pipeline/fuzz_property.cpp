// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target: element property values as text (what gst-launch style lines, parallax-launch
// and set_property_from_string hand to PropertySpec::parse). The first byte picks the spec; the
// rest is the untrusted text. An accepted value must satisfy the spec (coerce accepts it) and its
// text form must parse back to the same value (doubles: to the same printed text).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <variant>

#include "parallax/property.h"

using parallax::pipeline::PropertySpec;

namespace {
const PropertySpec& spec_for(std::uint8_t selector) {
  static const PropertySpec specs[] = {
      PropertySpec::boolean("b", false, ""),
      PropertySpec::int64("i", 0, std::numeric_limits<std::int64_t>::min(),
                          std::numeric_limits<std::int64_t>::max(), ""),
      PropertySpec::int64("ir", 5, -3, 1000, ""),
      PropertySpec::uint64("u", 0, 0, std::numeric_limits<std::uint64_t>::max(), ""),
      PropertySpec::uint64("ur", 64, 1, 4096, ""),
      PropertySpec::number("d", 0.0, -1e300, 1e300, ""),
      PropertySpec::number("dr", 0.5, 0.0, 1.0, ""),
      PropertySpec::string("s", "", ""),
      PropertySpec::enumeration("e", "none",
                                {{0, "none", ""}, {1, "upstream", ""}, {2, "downstream", ""}}, ""),
      PropertySpec::caps("c", "ANY", ""),
  };
  return specs[selector % (sizeof(specs) / sizeof(specs[0]))];
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const PropertySpec& spec = spec_for(data[0]);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto v = spec.parse(text);
  if (!v.ok()) return 0;
  if (!spec.coerce(*v).ok()) __builtin_trap();  // parse accepted what the spec refuses
  const std::string printed = parallax::pipeline::to_string(*v);
  auto again = spec.parse(printed);
  if (!again.ok()) __builtin_trap();
  if (std::holds_alternative<double>(*v)) {
    if (parallax::pipeline::to_string(*again) != printed) __builtin_trap();
  } else if (*again != *v) {
    __builtin_trap();
  }
  return 0;
}
