// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target: affinity strings (CPU lists and kind:list forms) and affinity rules.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "parallax/affinity.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto r = parallax::topology::parse_cpu_list(s);
  if (r.ok()) {
    // Round trip: printing and parsing again gives the same set.
    auto again = parallax::topology::parse_cpu_list(r->to_string());
    if (!again.ok() || again->cpus != r->cpus) __builtin_trap();
  }
  static auto topo = parallax::topology::Topology::load();
  if (topo.ok()) (void)topo->resolve(s);  // any result is fine: only crashes are bugs
  auto rules = parallax::topology::AffinityRules::parse(s);
  if (rules.ok()) {
    // Round trip: the canonical text parses to the same rules.
    auto again = parallax::topology::AffinityRules::parse(rules->to_string());
    if (!again.ok() || again->rules() != rules->rules()) __builtin_trap();
    (void)rules->match(s, s);
  }
  return 0;
}
