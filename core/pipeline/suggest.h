// SPDX-License-Identifier: MIT OR Apache-2.0
// "Did you mean": the known names closest to a misspelt one, by edit distance.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace parallax::pipeline::detail {

/// Candidates within a small edit distance of `name` (or containing it), best first, at most 3.
[[nodiscard]] std::vector<std::string> closest_names(std::string_view name,
                                                     const std::vector<std::string>& candidates);
/// "did you mean 'a' or 'b'?" or "" when nothing is close.
[[nodiscard]] std::string did_you_mean(const std::vector<std::string>& suggestions);

}  // namespace parallax::pipeline::detail
