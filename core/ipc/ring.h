// SPDX-License-Identifier: MIT OR Apache-2.0
// Word-atomic copies into and out of the shared descriptor ring. Records are copied as 64-bit
// atomic stores (relaxed) and loads (acquire, so a later re-check of read_pos cannot move
// before them): a subscriber may read a record the publisher is retracting and
// overwriting at the same moment (drop-oldest); it then discards what it read, and the copy
// must not be a data race.
#pragma once

#include <cstddef>
#include <cstdint>

namespace parallax::link::ring {

inline void store_words(std::byte* dst, const std::uint64_t* src, std::size_t words) noexcept {
  auto* d = reinterpret_cast<std::uint64_t*>(dst);
  for (std::size_t i = 0; i < words; ++i)
    __atomic_store_n(d + i, src[i], __ATOMIC_RELAXED);
}

inline void load_words(std::uint64_t* dst, const std::byte* src, std::size_t words) noexcept {
  const auto* s = reinterpret_cast<const std::uint64_t*>(src);
  for (std::size_t i = 0; i < words; ++i)
    dst[i] = __atomic_load_n(s + i, __ATOMIC_RELAXED);
}

inline std::uint64_t load_word(const std::byte* src) noexcept {
  return __atomic_load_n(reinterpret_cast<const std::uint64_t*>(src), __ATOMIC_ACQUIRE);
}

}  // namespace parallax::link::ring
