// SPDX-License-Identifier: MIT OR Apache-2.0
// Property specs: builders, the text form of values, and parsing/checking of values.
#include "parallax/property.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

#include "parallax/caps.h"

// g++ 12 with -fsanitize=address reports moving a std::variant holding a std::string as
// maybe-uninitialized (a known false positive of that release); keep werror for the rest.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace parallax::pipeline {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

template <typename T>
std::optional<T> parse_integer(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  std::string_view digits = s;
  if (digits[0] == '+' || digits[0] == '-') {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  if (digits.empty() || digits[0] == '+' || digits[0] == '-') return std::nullopt;
  std::uint64_t mag = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), mag, base);
  if (ec != std::errc{} || p != digits.data() + digits.size()) return std::nullopt;
  if constexpr (std::is_signed_v<T>) {
    constexpr std::uint64_t lim = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    if (neg) {
      if (mag > lim + 1) return std::nullopt;
      return static_cast<T>(-static_cast<__int128>(mag));
    }
    if (mag > lim) return std::nullopt;
    return static_cast<T>(mag);
  } else {
    if (neg && mag != 0) return std::nullopt;
    return static_cast<T>(mag);
  }
}

}  // namespace

std::string_view to_string(PropertyType t) noexcept {
  switch (t) {
    case PropertyType::boolean:
      return "boolean";
    case PropertyType::int64:
      return "int64";
    case PropertyType::uint64:
      return "uint64";
    case PropertyType::double_:
      return "double";
    case PropertyType::string:
      return "string";
    case PropertyType::enumeration:
      return "enum";
    case PropertyType::caps:
      return "caps";
  }
  return "?";
}

std::string to_string(const PropertyValue& v) {
  struct V {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(std::uint64_t u) const { return std::to_string(u); }
    std::string operator()(double d) const {
      char buf[64];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
      return ec == std::errc{} ? std::string(buf, p) : std::to_string(d);
    }
    std::string operator()(const std::string& s) const { return s; }
  };
  return std::visit(V{}, v);
}

PropertySpec PropertySpec::boolean(std::string name, bool def, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::boolean;
  s.default_value = def;
  s.min = false;
  s.max = true;
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::int64(std::string name, std::int64_t def, std::int64_t min,
                                 std::int64_t max, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::int64;
  s.default_value = def;
  s.min = min;
  s.max = max;
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::uint64(std::string name, std::uint64_t def, std::uint64_t min,
                                  std::uint64_t max, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::uint64;
  s.default_value = def;
  s.min = min;
  s.max = max;
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::number(std::string name, double def, double min, double max,
                                  std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::double_;
  s.default_value = def;
  s.min = min;
  s.max = max;
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::string(std::string name, std::string def, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::string;
  s.default_value = std::move(def);
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::enumeration(std::string name, std::string def,
                                       std::vector<EnumValue> values, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::enumeration;
  s.default_value = std::move(def);
  s.enum_values = std::move(values);
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::caps(std::string name, std::string def, std::string desc) {
  PropertySpec s;
  s.name = std::move(name);
  s.type = PropertyType::caps;
  s.default_value = std::move(def);
  s.description = std::move(desc);
  return s;
}

PropertySpec PropertySpec::with_flags(std::uint32_t f) const {
  PropertySpec s = *this;
  s.flags = f;
  return s;
}

std::string PropertySpec::type_description() const {
  std::string t(to_string(type));
  switch (type) {
    case PropertyType::int64:
    case PropertyType::uint64:
    case PropertyType::double_:
      return t + " " + pipeline::to_string(min) + ".." + pipeline::to_string(max);
    case PropertyType::enumeration: {
      t += " ";
      for (std::size_t i = 0; i < enum_values.size(); ++i)
        t += (i ? "|" : "") + enum_values[i].nick;
      return t;
    }
    default:
      return t;
  }
}

Result<PropertyValue> PropertySpec::parse(std::string_view text) const {
  auto bad = [&](std::string_view expected) {
    return err(Errc::invalid_argument, "invalid value " + quoted(text) + " for property '" + name +
                                           "': expected " + std::string(expected));
  };
  switch (type) {
    case PropertyType::boolean: {
      std::string l = lower(text);
      if (l == "true" || l == "yes" || l == "on" || l == "1") return PropertyValue{true};
      if (l == "false" || l == "no" || l == "off" || l == "0") return PropertyValue{false};
      return bad("a boolean (true/false, yes/no, on/off, 1/0)");
    }
    case PropertyType::int64: {
      auto v = parse_integer<std::int64_t>(text);
      if (!v) return bad("an integer in " + type_description().substr(6));
      return coerce(*v);
    }
    case PropertyType::uint64: {
      auto v = parse_integer<std::uint64_t>(text);
      if (!v) return bad("an unsigned integer in " + type_description().substr(7));
      return coerce(*v);
    }
    case PropertyType::double_: {
      std::string s(text);
      char* end = nullptr;
      double d = s.empty() || std::isspace(static_cast<unsigned char>(s[0]))
                     ? std::nan("")
                     : std::strtod(s.c_str(), &end);
      if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(d))
        return bad("a number in " + type_description().substr(7));
      return coerce(d);
    }
    case PropertyType::string:
      return PropertyValue{std::string(text)};
    case PropertyType::enumeration: {
      for (const auto& e : enum_values)
        if (e.nick == text) return PropertyValue{e.nick};
      if (auto v = parse_integer<std::int64_t>(text)) return coerce(*v);
      return bad("one of " + type_description().substr(5));
    }
    case PropertyType::caps: {
      auto c = Caps::parse(text);
      if (!c) return bad("caps such as 'video/x-raw,format=RGBA' (" + c.error().message + ")");
      return PropertyValue{std::string(text)};
    }
  }
  return bad("a value");
}

Result<PropertyValue> PropertySpec::coerce(PropertyValue v) const {
  auto type_err = [&] {
    return err(Errc::invalid_argument, "property '" + name + "' expects " + type_description() +
                                           ", got " + quoted(to_string(v)));
  };
  auto range_err = [&] {
    return err(Errc::out_of_range, "value " + quoted(to_string(v)) + " for property '" + name +
                                       "' is out of range (" + type_description() + ")");
  };
  switch (type) {
    case PropertyType::boolean:
      if (!std::holds_alternative<bool>(v)) return type_err();
      return v;
    case PropertyType::int64: {
      std::int64_t x = 0;
      if (auto* i = std::get_if<std::int64_t>(&v))
        x = *i;
      else if (auto* u = std::get_if<std::uint64_t>(&v)) {
        if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          return range_err();
        x = static_cast<std::int64_t>(*u);
      } else {
        return type_err();
      }
      if (x < std::get<std::int64_t>(min) || x > std::get<std::int64_t>(max)) return range_err();
      return PropertyValue{x};
    }
    case PropertyType::uint64: {
      std::uint64_t x = 0;
      if (auto* u = std::get_if<std::uint64_t>(&v))
        x = *u;
      else if (auto* i = std::get_if<std::int64_t>(&v)) {
        if (*i < 0) return range_err();
        x = static_cast<std::uint64_t>(*i);
      } else {
        return type_err();
      }
      if (x < std::get<std::uint64_t>(min) || x > std::get<std::uint64_t>(max)) return range_err();
      return PropertyValue{x};
    }
    case PropertyType::double_: {
      double x = 0;
      if (auto* d = std::get_if<double>(&v))
        x = *d;
      else if (auto* i = std::get_if<std::int64_t>(&v))
        x = static_cast<double>(*i);
      else if (auto* u = std::get_if<std::uint64_t>(&v))
        x = static_cast<double>(*u);
      else
        return type_err();
      if (!(x >= std::get<double>(min) && x <= std::get<double>(max))) return range_err();
      return PropertyValue{x};
    }
    case PropertyType::string:
      if (!std::holds_alternative<std::string>(v)) return type_err();
      return v;
    case PropertyType::enumeration: {
      std::optional<std::int64_t> num;
      if (auto* i = std::get_if<std::int64_t>(&v)) num = *i;
      if (auto* u = std::get_if<std::uint64_t>(&v))
        if (*u <= 1000000) num = static_cast<std::int64_t>(*u);
      for (const auto& e : enum_values) {
        if (num && e.value == *num) return PropertyValue{e.nick};
        if (auto* s = std::get_if<std::string>(&v); s && *s == e.nick) return v;
      }
      return err(Errc::invalid_argument, "invalid value " + quoted(to_string(v)) +
                                             " for property '" + name + "': expected one of " +
                                             type_description().substr(5));
    }
    case PropertyType::caps: {
      auto* s = std::get_if<std::string>(&v);
      if (!s) return type_err();
      return parse(*s);
    }
  }
  return type_err();
}

}  // namespace parallax::pipeline
