// SPDX-License-Identifier: MIT OR Apache-2.0
// Helpers shared by the memory tests: unique temporary names.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace parallax::test {

/// A path in the temp dir that no other test (or parallel test process) uses.
inline std::string unique_path(const std::string& stem) {
  static std::atomic<int> counter{0};
  return (std::filesystem::temp_directory_path() /
          ("plx-" + stem + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++)))
      .string();
}

}  // namespace parallax::test
