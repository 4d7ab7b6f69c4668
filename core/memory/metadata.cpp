// SPDX-License-Identifier: MIT OR Apache-2.0
// Metadata entry helpers.
#include "parallax/metadata.h"

#include <algorithm>

namespace parallax {

void Metadata::set(std::string_view key, MetaValue value) {
  for (auto& e : entries) {
    if (e.key == key) {
      e.value = std::move(value);
      return;
    }
  }
  entries.push_back(MetaEntry{std::string(key), std::move(value)});
}

const MetaValue* Metadata::get(std::string_view key) const noexcept {
  for (const auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

bool Metadata::erase(std::string_view key) {
  auto it = std::find_if(entries.begin(), entries.end(),
                         [&](const MetaEntry& e) { return e.key == key; });
  if (it == entries.end()) return false;
  entries.erase(it);
  return true;
}

void Metadata::clear_entries() noexcept {
  entries.clear();
}

}  // namespace parallax
