// SPDX-License-Identifier: MIT OR Apache-2.0
// What every Traits<T> works with: the Writer (aligned, zero-padded regions into a vector, a span
// or nowhere), the validation context (rkyv's shrinking allowed range, the error path) and the
// schema-hash helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "parallax/archive/format.h"

namespace parallax::archive {

namespace detail {

/// Appends aligned, zero-padded regions. Three modes: grow a std::vector, fill a fixed span
/// (a pool loan) or only count (measuring pass; also what a span writer becomes once full, so
/// the caller can say how many bytes were needed).
class Writer {
 public:
  struct Slot {
    std::size_t pos;
    std::byte* ptr;  // nullptr when counting or out of room: skip writing
  };
  static Writer counting() noexcept { return Writer(nullptr, {}); }
  static Writer into(std::span<std::byte> out) noexcept { return Writer(nullptr, out); }
  static Writer into(std::vector<std::byte>& out) noexcept { return Writer(&out, {}); }

  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] bool overflowed() const noexcept { return overflow_; }

  /// Reserves `size` bytes at the next multiple of `align` (a power of two). Padding is
  /// zeroed; the region too unless `zero` is false (the caller overwrites it entirely).
  Slot alloc(std::size_t size, std::size_t align, bool zero = true) {
    const std::size_t p = (pos_ + align - 1) & ~(align - 1);
    const std::size_t end = p + size;
    std::byte* ptr = nullptr;
    if (vec_ != nullptr) {
      vec_->resize(end);  // value-initialises: padding and region are zero
      ptr = vec_->data() + p;
    } else if (!overflow_ && end <= span_.size()) {
      std::memset(span_.data() + pos_, 0, p - pos_);
      ptr = span_.data() + p;
      if (zero) std::memset(ptr, 0, size);
    } else if (!span_.empty()) {
      overflow_ = true;
    }
    pos_ = end;
    return {p, ptr};
  }

 private:
  Writer(std::vector<std::byte>* v, std::span<std::byte> s) noexcept : vec_(v), span_(s) {}
  std::vector<std::byte>* vec_;
  std::span<std::byte> span_;
  std::size_t pos_{0};
  bool overflow_{false};
};

/// Validation state: the buffer, the allowed range [begin, end) for the next claim (rkyv's
/// ArchiveContext), the nesting depth, and the error being reported.
struct ValidateCtx {
  const std::byte* base{nullptr};
  std::size_t len{0};
  std::size_t begin{0};  // nothing before this may be claimed any more (already claimed/skipped)
  std::size_t end{0};    // the start of the object whose children are being checked
  std::uint32_t depth{0};
  std::uint32_t max_depth{64};
  bool check_utf8{true};
  // Pending run of claimed string bytes whose UTF-8 check is deferred (see Traits<string>).
  // When off, each string is checked as it is claimed, so an error names its exact field.
  bool coalesce_utf8{true};
  // Coalesced runs in two flavours. ascii_runs (the first pass): a run must be all ASCII, so
  // no string byte is read while claiming (see Traits<string>); a run that is not sets
  // need_utf8_pass and fails. Otherwise (the second pass, for such archives): each piece's
  // first byte must be a character boundary and the run is checked as UTF-8.
  bool ascii_runs{false};
  bool need_utf8_pass{false};
  std::size_t utf8_begin{0};
  std::size_t utf8_end{0};
  // Error report, filled on the cold path only: what, where, and the path built while unwinding.
  std::string what;
  std::size_t at{0};
  std::vector<std::string> path_rev;

  [[nodiscard]] std::size_t pos_of(const void* p) const noexcept {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base);
  }
  /// Records the error; always returns false so callers can `return c.fail(...)`.
  [[gnu::cold]] bool fail(std::size_t at_byte, std::string message);
  [[gnu::cold]] void push_field(std::string_view name);
  [[gnu::cold]] void push_index(std::size_t i);
  /// Classifies a refused claim (out of bounds, misaligned, aliasing, not a prefix).
  [[gnu::cold]] bool claim_failed(std::size_t field_pos, std::int64_t target, std::uint64_t bytes,
                                  std::size_t align);
  [[gnu::cold]] bool utf8_failed(std::size_t at_byte);
  /// Checks the pending run of string bytes. With ascii_runs, all ASCII passes (every byte is
  /// then a character boundary, so each piece is valid on its own) and anything else fails
  /// with need_utf8_pass set; access() then validates again without ascii_runs.
  bool flush_utf8() {
    if (utf8_end > utf8_begin) {
      if (ascii_runs) {
        if (!ascii_in(base + utf8_begin, utf8_end - utf8_begin)) [[unlikely]]
          return utf8_not_ascii();
      } else {
        std::size_t bad = 0;
        if (!utf8_valid_in(base, utf8_begin, utf8_end - utf8_begin, bad)) [[unlikely]]
          return utf8_failed(utf8_begin + bad);
      }
    }
    utf8_begin = utf8_end;
    return true;
  }
  [[gnu::cold]] bool utf8_not_ascii();
  /// Joined path, e.g. "records[17].request" ("(root)" when empty).
  [[nodiscard]] std::string path() const;

  /// Claims [target, target+bytes) for the relative pointer at `field`: it must lie inside the
  /// allowed range and be aligned. On success `out` is the target position.
  [[gnu::always_inline]] bool claim(const std::int32_t* field, std::uint64_t bytes,
                                    std::size_t align, std::size_t& out) {
    const std::size_t fpos = pos_of(field);
    const std::int64_t t = static_cast<std::int64_t>(fpos) + *field;
    if (t >= static_cast<std::int64_t>(begin) && static_cast<std::uint64_t>(t) + bytes <= end &&
        (static_cast<std::uint64_t>(t) & (align - 1)) == 0) [[likely]] {
      out = static_cast<std::size_t>(t);
      return true;
    }
    return claim_failed(fpos, t, bytes, align);
  }
};

struct Empty {};

constexpr std::uint64_t fnv1a(std::string_view s,
                              std::uint64_t h = 14695981039346656037ULL) noexcept {
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ULL;
  }
  return h;
}
constexpr std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xff;
    h *= 1099511628211ULL;
  }
  return h;
}

/// Schema hashes stop descending after this many levels so recursive types terminate.
inline constexpr int kSchemaDepth = 8;

template <typename T>
constexpr std::string_view arithmetic_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, float>)
    return "f32";
  else if constexpr (std::is_same_v<T, double>)
    return "f64";
  else if constexpr (std::is_signed_v<T>) {
    constexpr std::string_view n[] = {"", "i8", "i16", "", "i32", "", "", "", "i64"};
    return n[sizeof(T)];
  } else {
    constexpr std::string_view n[] = {"", "u8", "u16", "", "u32", "", "", "", "u64"};
    return n[sizeof(T)];
  }
}

}  // namespace detail

}  // namespace parallax::archive
