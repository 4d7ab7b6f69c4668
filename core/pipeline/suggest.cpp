// SPDX-License-Identifier: MIT OR Apache-2.0
// Edit-distance suggestions for unknown element and property names.
#include "suggest.h"

#include <algorithm>

namespace parallax::pipeline::detail {
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::vector<std::string> closest_names(std::string_view name,
                                       const std::vector<std::string>& candidates) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  const std::size_t limit = std::max<std::size_t>(2, name.size() / 3);
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(name, c);
    bool contains = name.size() >= 3 && c.find(name) != std::string::npos;
    if (d <= limit || contains) scored.emplace_back(contains ? std::min(d, limit) : d, c);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < scored.size() && i < 3; ++i)
    out.push_back(scored[i].second);
  return out;
}

std::string did_you_mean(const std::vector<std::string>& s) {
  if (s.empty()) return {};
  std::string out = "did you mean ";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += i + 1 == s.size() ? " or " : ", ";
    out += "'" + s[i] + "'";
  }
  return out + "?";
}

}  // namespace parallax::pipeline::detail
