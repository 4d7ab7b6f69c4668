// SPDX-License-Identifier: MIT OR Apache-2.0
// Pad lookup shared by Pipeline::link*/the parser: free pads and pads by name (requesting one
// from a template when needed).
#pragma once

#include <string_view>

#include "parallax/element.h"

namespace parallax::pipeline::detail {

/// An unlinked static pad of `e` in direction `dir`, else a new request pad.
Result<Pad*> free_pad(Element& e, PadDirection dir);
/// The pad `name` of `e`, or a request pad of that name; `requested` tells which.
Result<Pad*> named_pad(Element& e, std::string_view name, PadDirection dir, bool& requested);

}  // namespace parallax::pipeline::detail
