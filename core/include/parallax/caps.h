// SPDX-License-Identifier: MIT OR Apache-2.0
// Caps: a stream format in GStreamer's caps syntax ("video/x-raw,format=RGBA,width=640"),
// parsed just far enough to check compatibility (capsfilter) and to print it back. Caps made
// from text keep that text, so a format crosses processes and relays byte for byte.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parallax/result.h"

namespace parallax {

/// The value of one caps field: a fixed value, a list of alternatives (`{ RGBA, BGRA }`) or an
/// integer range (`[ 1, 4096 ]`). Values are kept as text with type casts ("(int)") and quotes
/// removed; numbers compare numerically.
struct CapsValue {
  enum class Kind : unsigned char { fixed, list, range };
  Kind kind{Kind::fixed};
  std::vector<std::string> items;  ///< one item when fixed, the alternatives when a list
  long long lo{0};                 ///< range bounds (inclusive), when kind == range
  long long hi{0};

  bool operator==(const CapsValue&) const = default;
};

struct CapsField {
  std::string name;
  CapsValue value;
  bool operator==(const CapsField&) const = default;
};

/// One structure: a media type ("video/x-raw", features such as "(memory:DMABuf)" included)
/// and its fields in order.
struct CapsStructure {
  std::string media_type;
  std::vector<CapsField> fields;

  [[nodiscard]] const CapsValue* field(std::string_view name) const noexcept;
  bool operator==(const CapsStructure&) const = default;
};

/// A format: ANY, EMPTY, or one or more structures separated by ';'.
class Caps {
 public:
  /// ANY caps (the default): compatible with everything.
  Caps() = default;

  /// Parses GStreamer caps syntax. When `error_pos` is given, it receives the byte offset of
  /// the first character that could not be parsed.
  /// The caps keep `text` (text()).
  [[nodiscard]] static Result<Caps> parse(std::string_view text, std::size_t* error_pos = nullptr);
  /// Caps from a format string of any origin (a GStreamer peer, the wire); never fails. What
  /// the parser reads whole is parsed; otherwise (GStreamer arrays `< … >`, nested structures)
  /// the caps hold the media type alone (ANY when even that cannot be read) and complete() is
  /// false. Either way text() is `text` unchanged.
  [[nodiscard]] static Caps from_text(std::string text);
  [[nodiscard]] static Caps any() { return Caps{}; }
  [[nodiscard]] static Caps empty_caps();

  [[nodiscard]] bool is_any() const noexcept { return any_; }
  /// EMPTY caps: compatible with nothing.
  [[nodiscard]] bool is_empty() const noexcept { return !any_ && structures_.empty(); }
  /// One structure whose fields all hold a single value.
  [[nodiscard]] bool is_fixed() const noexcept;
  [[nodiscard]] const std::vector<CapsStructure>& structures() const noexcept {
    return structures_;
  }

  /// Whether some format satisfies both: media types equal and every field present in both
  /// has overlapping values (fields present on one side only do not constrain).
  [[nodiscard]] bool can_intersect(const Caps& other) const;
  /// The formats satisfying both (EMPTY when none). Fields of both sides are kept.
  [[nodiscard]] Caps intersect(const Caps& other) const;

  /// Canonical text: "video/x-raw, format=RGBA, width=640".
  [[nodiscard]] std::string to_string() const;
  /// The text these caps were made from (parse(), from_text()), casts and spacing as given;
  /// the canonical to_string() for caps that were computed (intersect() of two parsed caps).
  /// This is what crosses a process boundary.
  [[nodiscard]] std::string text() const { return text_.empty() ? to_string() : text_; }
  /// Whether the structures hold everything text() says (false: from_text() could read only
  /// the media type, or nothing).
  [[nodiscard]] bool complete() const noexcept { return complete_; }

  /// Equal formats: the same structures (ANY / EMPTY alike). Caps that are not complete() are
  /// equal only when their texts are too, since their structures hold only part of them.
  [[nodiscard]] bool operator==(const Caps& o) const {
    return any_ == o.any_ && structures_ == o.structures_ && complete_ == o.complete_ &&
           (complete_ || text_ == o.text_);
  }

 private:
  bool any_{true};
  bool complete_{true};
  std::vector<CapsStructure> structures_;
  std::string text_;  ///< source text, empty when computed
};

namespace pipeline {
using parallax::Caps;
using parallax::CapsField;
using parallax::CapsStructure;
using parallax::CapsValue;
}  // namespace pipeline

}  // namespace parallax
