// SPDX-License-Identifier: MIT OR Apache-2.0
// Metadata carried by every buffer: timestamps, offsets, sequence, flags (GStreamer's buffer
// flags are the reference, same bit values), and extensible typed entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace parallax {

/// Buffer flags, bit-compatible with GstBufferFlags.
enum BufferFlags : std::uint32_t {
  kFlagNone = 0,
  kFlagLive = 1u << 4,
  kFlagDecodeOnly = 1u << 5,
  kFlagDiscont = 1u << 6,
  kFlagResync = 1u << 7,
  kFlagCorrupted = 1u << 8,
  kFlagMarker = 1u << 9,
  kFlagHeader = 1u << 10,
  kFlagGap = 1u << 11,
  kFlagDroppable = 1u << 12,
  kFlagDeltaUnit = 1u << 13,
  kFlagTagMemory = 1u << 14,
  kFlagSyncAfter = 1u << 15,
  kFlagNonDroppable = 1u << 16,
};

/// A value of an extensible metadata entry: a small scalar, a string, or bytes (for example
/// an archive of video plane offsets and strides).
using MetaValue =
    std::variant<std::int64_t, std::uint64_t, double, bool, std::string, std::vector<std::byte>>;

struct MetaEntry {
  std::string key;
  MetaValue value;
  bool operator==(const MetaEntry&) const = default;
};

/// Buffer metadata. Times are nanoseconds; std::nullopt is "none" (GST_CLOCK_TIME_NONE).
struct Metadata {
  std::optional<std::uint64_t> pts;
  std::optional<std::uint64_t> dts;
  std::optional<std::uint64_t> duration;
  std::optional<std::uint64_t> offset;      ///< GST_BUFFER_OFFSET (e.g. frame or sample number)
  std::optional<std::uint64_t> offset_end;  ///< GST_BUFFER_OFFSET_END
  std::uint64_t sequence{0};
  std::uint32_t flags{kFlagNone};
  std::vector<MetaEntry> entries;  ///< extensible entries, unique keys, insertion order

  [[nodiscard]] bool has_flag(std::uint32_t f) const noexcept { return (flags & f) == f; }
  /// Sets or replaces the entry `key`.
  void set(std::string_view key, MetaValue value);
  /// The entry `key`, or nullptr.
  [[nodiscard]] const MetaValue* get(std::string_view key) const noexcept;
  /// Typed lookup: nullptr if absent or of another type.
  template <typename T>
  [[nodiscard]] const T* get_as(std::string_view key) const noexcept {
    const MetaValue* v = get(key);
    return v ? std::get_if<T>(v) : nullptr;
  }
  bool erase(std::string_view key);
  /// Resets every field (keeps the entries' capacity). Inline: a pool slot's release runs it
  /// on every buffer, and most buffers carry no entries (the vector is then not touched).
  void clear() noexcept {
    // Whole-object assignments (plain stores) rather than reset() (a test and a store each).
    pts = std::optional<std::uint64_t>();
    dts = std::optional<std::uint64_t>();
    duration = std::optional<std::uint64_t>();
    offset = std::optional<std::uint64_t>();
    offset_end = std::optional<std::uint64_t>();
    sequence = 0;
    flags = kFlagNone;
    if (!entries.empty()) [[unlikely]]
      clear_entries();
  }

  bool operator==(const Metadata&) const = default;

 private:
  void clear_entries() noexcept;
};

}  // namespace parallax
