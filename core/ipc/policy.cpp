// SPDX-License-Identifier: MIT OR Apache-2.0
// The names of the publisher's policies (events: core/stream/event.cpp).
#include <string>

#include "parallax/ipc.h"

namespace parallax::link {

std::string_view to_string(Policy p) noexcept {
  switch (p) {
    case Policy::block:
      return "block";
    case Policy::drop_oldest:
      return "drop-oldest";
    case Policy::drop_newest:
      return "drop-newest";
  }
  return "unknown";
}

Result<Policy> policy_from_string(std::string_view s) {
  std::string n(s);
  for (char& c : n)
    if (c == '_') c = '-';
  if (n == "block") return Policy::block;
  if (n == "drop-oldest") return Policy::drop_oldest;
  if (n == "drop-newest") return Policy::drop_newest;
  return err(Errc::invalid_argument,
             "unknown policy '" + std::string(s) + "' (block, drop-oldest, drop-newest)");
}

}  // namespace parallax::link
