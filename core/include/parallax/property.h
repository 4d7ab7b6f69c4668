// SPDX-License-Identifier: MIT OR Apache-2.0
// Typed, introspectable element properties: a spec (name, type, default, range or enum values,
// description, flags) and the parsing of a property's text form as written in a pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "parallax/result.h"

namespace parallax::pipeline {

enum class PropertyType : std::uint8_t {
  boolean,      ///< true/false, yes/no, on/off, 1/0
  int64,        ///< signed integer within [min, max]
  uint64,       ///< unsigned integer within [min, max]
  double_,      ///< floating point within [min, max]
  string,       ///< any text
  enumeration,  ///< one of enum_values, by nick or by number; stored as the nick
  caps,         ///< a caps string (validated by Caps::parse); stored as text
};

[[nodiscard]] std::string_view to_string(PropertyType t) noexcept;

/// A property value. Enumerations and caps are held as their text (std::string).
using PropertyValue = std::variant<bool, std::int64_t, std::uint64_t, double, std::string>;

/// Text form of a value ("true", "42", "1.5", "text").
[[nodiscard]] std::string to_string(const PropertyValue& v);

struct EnumValue {
  std::int64_t value{0};
  std::string nick;
  std::string description;
};

enum PropertyFlags : std::uint32_t {
  kPropReadable = 1u << 0,
  kPropWritable = 1u << 1,
  /// May be changed while the pipeline runs (otherwise only before start()).
  kPropMutablePlaying = 1u << 2,
  kPropReadWrite = kPropReadable | kPropWritable,
};

struct PropertySpec {
  std::string name;
  PropertyType type{PropertyType::string};
  PropertyValue default_value{std::string{}};
  /// Inclusive bounds for numeric types (same alternative as the type; ignored otherwise).
  PropertyValue min{std::int64_t{0}};
  PropertyValue max{std::int64_t{0}};
  std::vector<EnumValue> enum_values;
  std::string description;
  std::uint32_t flags{kPropReadWrite};

  [[nodiscard]] bool readable() const noexcept { return (flags & kPropReadable) != 0; }
  [[nodiscard]] bool writable() const noexcept { return (flags & kPropWritable) != 0; }

  // Builders for the common cases.
  [[nodiscard]] static PropertySpec boolean(std::string name, bool def, std::string desc);
  [[nodiscard]] static PropertySpec int64(std::string name, std::int64_t def, std::int64_t min,
                                          std::int64_t max, std::string desc);
  [[nodiscard]] static PropertySpec uint64(std::string name, std::uint64_t def, std::uint64_t min,
                                           std::uint64_t max, std::string desc);
  [[nodiscard]] static PropertySpec number(std::string name, double def, double min, double max,
                                           std::string desc);
  [[nodiscard]] static PropertySpec string(std::string name, std::string def, std::string desc);
  [[nodiscard]] static PropertySpec enumeration(std::string name, std::string def,
                                                std::vector<EnumValue> values, std::string desc);
  [[nodiscard]] static PropertySpec caps(std::string name, std::string def, std::string desc);
  /// Returns a copy with the flags replaced (e.g. kPropReadable for a read-only counter).
  [[nodiscard]] PropertySpec with_flags(std::uint32_t f) const;

  /// "uint64 0..18446744073709551615", "enum none|upstream|downstream", "string".
  [[nodiscard]] std::string type_description() const;

  /// Parses the whole of `text` as this property's type; the text is read to its end before it
  /// is typed, so "10abc" is an error for an integer and "1.5.bin" a fine string.
  [[nodiscard]] Result<PropertyValue> parse(std::string_view text) const;
  /// Checks (and converts where lossless, e.g. int64 3 -> uint64 3) a typed value.
  [[nodiscard]] Result<PropertyValue> coerce(PropertyValue v) const;
};

}  // namespace parallax::pipeline
