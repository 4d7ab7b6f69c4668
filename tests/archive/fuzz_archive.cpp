// SPDX-License-Identifier: MIT OR Apache-2.0
// fuzz_archive: libFuzzer target. Any input is validated as several archive types at each
// level; whatever is accepted must read safely and round-trip to identical bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "parallax/archive.h"
#include "test_types.h"

namespace {

namespace ar = parallax::archive;

template <typename T>
void exercise(std::span<const std::byte> bytes, ar::Validation level) {
  auto view = ar::access<T>(bytes, {.level = level, .max_depth = 16});
  if (!view.ok()) return;
  // Accepted: reading everything must be safe (ASan watches), and re-serializing the owned
  // value must give an archive that validates and re-serializes to the same bytes.
  const T value = ar::deserialize<T>(**view);
  const auto once = ar::serialize(value).value();
  auto again = ar::access<T>(once, {.level = ar::Validation::structural, .max_depth = 1000});
  if (!again.ok()) __builtin_trap();
  const auto twice = ar::serialize(ar::deserialize<T>(**again)).value();
  if (once != twice) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size, aligned copy: ASan flags any read past the end.
  std::unique_ptr<std::byte[]> copy(new std::byte[size]);
  if (size != 0) std::memcpy(copy.get(), data, size);
  const std::span<const std::byte> bytes(copy.get(), size);
  for (auto level : {ar::Validation::full, ar::Validation::structural}) {
    exercise<plxtest::Everything>(bytes, level);
    exercise<plxtest::Logs>(bytes, level);
    exercise<plxtest::Node>(bytes, level);
  }
  return 0;
}
