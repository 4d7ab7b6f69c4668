// SPDX-License-Identifier: MIT OR Apache-2.0
// The archived (in-place readable) forms of strings, vectors, optionals, variants, pairs and maps,
// and the optional archive header. These are the bytes of the format: layout changes break it.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "parallax/result.h"

namespace parallax::archive {

static_assert(std::endian::native == std::endian::little,
              "parallax::archive reads archives in place and assumes a little-endian host");

/// Every archive buffer must start at an address aligned to this (the largest alignment an
/// archived object can have). std::vector<std::byte> storage and pool slots satisfy it.
inline constexpr std::size_t kBufferAlignment = 8;

template <typename T>
struct Traits;  // operations per native type (traits.h)

namespace detail {
/// Resolves a relative pointer: the target is `offset` bytes from the offset field itself.
/// Both accessors and the validator go through this one function.
inline const std::byte* rel_target(const std::int32_t* field) noexcept {
  return reinterpret_cast<const std::byte*>(field) + *field;
}
/// Checks UTF-8 (fast ASCII path inline, the rest out of line). On failure `bad` is the index of
/// the first byte of the offending sequence.
bool utf8_valid_slow(const unsigned char* p, std::size_t n, std::size_t i,
                     std::size_t& bad) noexcept;
inline bool utf8_valid(const unsigned char* p, std::size_t n, std::size_t& bad) noexcept {
  // All-ASCII is the common case: test the high bits of whole words, the tail with one
  // overlapping load (never reading outside [p, p+n)), and only on a hit walk byte by byte.
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  std::uint64_t any = 0;
  if (n >= 8) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      std::uint64_t a;
      std::uint64_t b;
      __builtin_memcpy(&a, p + i, 8);
      __builtin_memcpy(&b, p + i + 8, 8);
      any |= a | b;
    }
    std::uint64_t a;
    std::uint64_t b;
    __builtin_memcpy(&a, p + (i + 8 <= n ? i : n - 8), 8);
    __builtin_memcpy(&b, p + n - 8, 8);
    any |= a | b;
  } else if (n >= 4) {
    std::uint32_t a;
    std::uint32_t b;
    __builtin_memcpy(&a, p, 4);
    __builtin_memcpy(&b, p + n - 4, 4);
    any = a | b;
  } else if (n > 0) {
    any = p[0] | p[n / 2] | p[n - 1];
  }
  if ((any & kHigh) == 0) [[likely]]
    return true;
  return utf8_valid_slow(p, n, 0, bad);
}

/// True when the n bytes at p are all ASCII. Long runs (a coalesced run of many strings) are
/// scanned 64 bytes per step with 16-byte vectors (GCC/Clang vector extensions: SSE2 on
/// x86-64, NEON on arm64), the tail with overlapping 8-byte loads.
inline bool ascii_in(const std::byte* p, std::size_t n) noexcept {
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  if (n < 16) {
    std::uint64_t any = 0;
    if (n >= 8) {
      std::uint64_t a;
      std::uint64_t b;
      __builtin_memcpy(&a, p, 8);
      __builtin_memcpy(&b, p + n - 8, 8);
      any = a | b;
    } else if (n >= 4) {
      std::uint32_t a;
      std::uint32_t b;
      __builtin_memcpy(&a, p, 4);
      __builtin_memcpy(&b, p + n - 4, 4);
      any = a | b;
    } else if (n > 0) {
      any = static_cast<std::uint64_t>(p[0]) | static_cast<std::uint64_t>(p[n / 2]) |
            static_cast<std::uint64_t>(p[n - 1]);
    }
    return (any & kHigh) == 0;
  }
  using V = std::uint64_t __attribute__((vector_size(16)));
  std::size_t i = 0;
  V acc = {0, 0};
  for (; i + 64 <= n; i += 64) {
    V a;
    V b;
    V c;
    V d;
    __builtin_memcpy(&a, p + i, 16);
    __builtin_memcpy(&b, p + i + 16, 16);
    __builtin_memcpy(&c, p + i + 32, 16);
    __builtin_memcpy(&d, p + i + 48, 16);
    acc |= (a | b) | (c | d);
  }
  for (; i + 16 <= n; i += 16) {
    V a;
    __builtin_memcpy(&a, p + i, 16);
    acc |= a;
  }
  V last;
  __builtin_memcpy(&last, p + n - 16, 16);  // n >= 16: overlaps what the loops read
  acc |= last;
  return ((acc[0] | acc[1]) & kHigh) == 0;
}

/// Top `k` bytes (k in 0..8) of a little-endian word loaded so that it ends at a string's end.
inline std::uint64_t top_bytes(std::uint64_t w, std::size_t k) noexcept {
  return k == 0 ? 0 : w & (~0ULL << (64 - 8 * k));
}

/// As utf8_valid for the n bytes at base+t, for a string inside a buffer that starts at `base`:
/// short strings (the common case) are tested with loads that end at the string's end and may
/// start before it, inside the buffer, with the extra bytes masked off. No branch depends on
/// the length below 16 bytes, which matters for fields of random short lengths.
inline bool utf8_valid_in(const std::byte* base, std::size_t t, std::size_t n,
                          std::size_t& bad) noexcept {
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const auto* p = reinterpret_cast<const unsigned char*>(base + t);
  std::uint64_t any;
  if (n <= 16 && t + n >= 16) [[likely]] {
    std::uint64_t hi;
    std::uint64_t lo;
    __builtin_memcpy(&hi, p + n - 8, 8);
    __builtin_memcpy(&lo, p + n - 16, 8);
    any = top_bytes(hi, n < 8 ? n : 8) | top_bytes(lo, n > 8 ? n - 8 : 0);
  } else if (n > 16) {
    any = 0;
    std::size_t i = 0;
    for (; i + 8 < n; i += 8) {
      std::uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      any |= w;
    }
    std::uint64_t w;
    __builtin_memcpy(&w, p + n - 8, 8);
    any |= w;
  } else {
    return utf8_valid(p, n, bad);  // within the first 16 bytes of the buffer
  }
  if ((any & kHigh) == 0) [[likely]]
    return true;
  return utf8_valid_slow(p, n, 0, bad);
}
}  // namespace detail

/// An archived std::string: a relative pointer to `size()` bytes. In an archive validated at
/// Validation::full the bytes are valid UTF-8; at Validation::structural call utf8() to check.
class ArchivedString {
 public:
  [[nodiscard]] std::size_t size() const noexcept { return len_; }
  [[nodiscard]] bool empty() const noexcept { return len_ == 0; }
  [[nodiscard]] const char* data() const noexcept {
    return len_ == 0 ? "" : reinterpret_cast<const char*>(detail::rel_target(&rel_));
  }
  [[nodiscard]] std::string_view view() const noexcept { return {data(), len_}; }
  operator std::string_view() const noexcept { return view(); }
  /// An owned copy.
  [[nodiscard]] std::string str() const { return std::string(view()); }
  /// The text, after checking it is UTF-8 (for archives accessed at Validation::structural).
  [[nodiscard]] Result<std::string_view> utf8() const;

  friend bool operator==(const ArchivedString& a, std::string_view b) noexcept {
    return a.view() == b;
  }
  friend bool operator==(const ArchivedString& a, const ArchivedString& b) noexcept {
    return a.view() == b.view();
  }
  friend std::strong_ordering operator<=>(const ArchivedString& a, std::string_view b) noexcept {
    return a.view() <=> b;
  }
  friend std::strong_ordering operator<=>(const ArchivedString& a,
                                          const ArchivedString& b) noexcept {
    return a.view() <=> b.view();
  }

 private:
  template <typename>
  friend struct Traits;
  std::int32_t rel_;  // offset of the bytes from this field
  std::uint32_t len_;
};

/// An archived std::vector<T> (and the entries of maps): a relative pointer to `size()`
/// contiguous archived elements.
template <typename E>
class ArchivedVec {
 public:
  using value_type = E;
  using const_iterator = const E*;
  [[nodiscard]] std::size_t size() const noexcept { return len_; }
  [[nodiscard]] bool empty() const noexcept { return len_ == 0; }
  [[nodiscard]] const E* data() const noexcept {
    return len_ == 0 ? nullptr : reinterpret_cast<const E*>(detail::rel_target(&rel_));
  }
  [[nodiscard]] const E* begin() const noexcept { return data(); }
  [[nodiscard]] const E* end() const noexcept { return data() + len_; }
  /// Unchecked indexing, like std::vector.
  [[nodiscard]] const E& operator[](std::size_t i) const noexcept { return data()[i]; }
  /// Checked indexing: nullptr when i >= size().
  [[nodiscard]] const E* get(std::size_t i) const noexcept {
    return i < len_ ? data() + i : nullptr;
  }
  [[nodiscard]] std::span<const E> span() const noexcept { return {data(), len_}; }

 private:
  template <typename>
  friend struct Traits;
  std::int32_t rel_;
  std::uint32_t len_;
};

/// An archived std::optional<T>: a tag byte (0 none, 1 some) and inline storage. When the tag
/// is 0 the storage holds zero bytes and is never read.
template <typename A>
class ArchivedOption {
 public:
  [[nodiscard]] bool has_value() const noexcept { return tag_ != 0; }
  explicit operator bool() const noexcept { return has_value(); }
  /// The value, or nullptr.
  [[nodiscard]] const A* get() const noexcept { return tag_ != 0 ? &value_ : nullptr; }
  /// Precondition: has_value().
  [[nodiscard]] const A& operator*() const noexcept { return value_; }
  [[nodiscard]] const A* operator->() const noexcept { return &value_; }

 private:
  template <typename>
  friend struct Traits;
  std::uint8_t tag_;
  A value_;
};

namespace detail {
template <std::size_t I, typename... Ts>
using nth_t = std::tuple_element_t<I, std::tuple<Ts...>>;
}

/// An archived std::variant<Ts...>: a tag byte (the alternative's index) and storage aligned for
/// every alternative. Read it with index(), get_if<I>() or visit().
template <typename... As>
class ArchivedVariant {
  static_assert(sizeof...(As) >= 1 && sizeof...(As) <= 255, "1 to 255 alternatives");

 public:
  static constexpr std::size_t kAlign = std::max({alignof(As)...});
  static constexpr std::size_t kSize = std::max({sizeof(As)...});

  [[nodiscard]] std::size_t index() const noexcept { return tag_; }
  template <std::size_t I>
  [[nodiscard]] const detail::nth_t<I, As...>* get_if() const noexcept {
    return tag_ == I ? reinterpret_cast<const detail::nth_t<I, As...>*>(storage_) : nullptr;
  }
  /// Calls f(std::integral_constant<size_t, I>, const A_I&) for the held alternative.
  template <typename F>
  decltype(auto) visit(F&& f) const {
    return visit_impl(std::forward<F>(f), std::make_index_sequence<sizeof...(As)>{});
  }

 private:
  template <typename F, std::size_t... I>
  decltype(auto) visit_impl(F&& f, std::index_sequence<I...>) const {
    using R = decltype(f(std::integral_constant<std::size_t, 0>{}, *get_if<0>()));
    if constexpr (std::is_void_v<R>) {
      (void)((tag_ == I ? (f(std::integral_constant<std::size_t, I>{}, *get_if<I>()), true)
                        : false) ||
             ...);
    } else {
      R r{};
      (void)((tag_ == I ? (r = f(std::integral_constant<std::size_t, I>{}, *get_if<I>()), true)
                        : false) ||
             ...);
      return r;
    }
  }
  template <typename>
  friend struct Traits;
  std::uint8_t tag_;
  alignas(kAlign) std::byte storage_[kSize];
};

/// An archived std::pair<K, V>.
template <typename A, typename B>
struct ArchivedPair {
  A first;
  B second;
};

/// An archived std::map<K, V>: entries sorted by key, strictly increasing (checked on
/// validation for comparable keys), so find() is a binary search.
template <typename K, typename V>
class ArchivedMap {
 public:
  using Entry = ArchivedPair<K, V>;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] const Entry* begin() const noexcept { return entries_.begin(); }
  [[nodiscard]] const Entry* end() const noexcept { return entries_.end(); }
  [[nodiscard]] const ArchivedVec<Entry>& entries() const noexcept { return entries_; }
  /// The value for `key`, or nullptr.
  template <typename Q>
  [[nodiscard]] const V* find(const Q& key) const noexcept {
    const Entry* lo = begin();
    std::size_t n = size();
    while (n > 0) {  // lower_bound without std:: iterator requirements on archived types
      const std::size_t half = n / 2;
      if (lo[half].first < key) {
        lo += half + 1;
        n -= half + 1;
      } else {
        n = half;
      }
    }
    return (lo != end() && lo->first == key) ? &lo->second : nullptr;
  }
  template <typename Q>
  [[nodiscard]] bool contains(const Q& key) const noexcept {
    return find(key) != nullptr;
  }

 private:
  template <typename>
  friend struct Traits;
  ArchivedVec<Entry> entries_;
};

/// The optional 16-byte header before the archive body: magic "PLXA", format version, flags
/// (0), and the schema hash of the root type. Written by WriteOptions{.header = true}.
struct ArchiveHeader {
  std::array<char, 4> magic;
  std::uint16_t version;
  std::uint16_t flags;
  std::uint64_t schema_hash;
};
static_assert(sizeof(ArchiveHeader) == 16 && std::is_standard_layout_v<ArchiveHeader>);
inline constexpr std::array<char, 4> kArchiveMagic{'P', 'L', 'X', 'A'};
inline constexpr std::uint16_t kArchiveVersion = 1;

}  // namespace parallax::archive
