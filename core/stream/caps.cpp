// SPDX-License-Identifier: MIT OR Apache-2.0
// Caps parsing (GStreamer syntax), intersection and printing.
#include "parallax/caps.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

namespace parallax {
namespace {

class CapsParser {
 public:
  explicit CapsParser(std::string_view s) : s_(s) {}

  Result<Caps> parse_all(std::vector<CapsStructure>& out, bool& any) {
    skip_ws();
    std::string_view rest = s_.substr(pos_);
    auto trimmed = rest;
    while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back())))
      trimmed.remove_suffix(1);
    if (trimmed == "ANY") {
      any = true;
      return Caps{};
    }
    any = false;
    if (trimmed == "EMPTY") return Caps{};
    if (trimmed.empty()) return fail("expected a media type such as 'video/x-raw'");
    for (;;) {
      CapsStructure st;
      PLX_TRY(parse_structure(st));
      out.push_back(std::move(st));
      skip_ws();
      if (pos_ == s_.size()) break;
      if (s_[pos_] != ';') return fail("expected ',' or ';'");
      ++pos_;
      skip_ws();
      if (pos_ == s_.size()) break;  // a trailing ';' is accepted, as GStreamer does
    }
    return Caps{};
  }

  std::size_t pos() const { return pos_; }

 private:
  Error fail(std::string what) const {
    return err(Errc::invalid_argument, what + " at offset " + std::to_string(pos_));
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_])))
      ++pos_;
  }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '+' ||
           c == '.' || c == '/' || c == ':';
  }

  Result<void> parse_structure(CapsStructure& st) {
    skip_ws();
    if (pos_ >= s_.size() || !std::isalpha(static_cast<unsigned char>(s_[pos_])))
      return fail("expected a media type such as 'video/x-raw'");
    std::size_t b = pos_;
    while (pos_ < s_.size() && name_char(s_[pos_]))
      ++pos_;
    st.media_type.assign(s_.substr(b, pos_ - b));
    if (st.media_type == "ANY" || st.media_type == "EMPTY") {
      pos_ = b;
      return fail("expected ANY or EMPTY alone, not as a structure");
    }
    if (pos_ < s_.size() && s_[pos_] == '(') {  // caps features: (memory:DMABuf)
      std::size_t close = s_.find(')', pos_);
      if (close == std::string_view::npos) return fail("expected ')' closing the caps features");
      st.media_type.append(s_.substr(pos_, close + 1 - pos_));
      pos_ = close + 1;
    }
    for (;;) {
      skip_ws();
      if (pos_ == s_.size() || s_[pos_] == ';') return ok();
      if (s_[pos_] != ',') return fail("expected ',' between caps fields");
      ++pos_;
      skip_ws();
      if (pos_ == s_.size()) return fail("expected a field name after ','");
      CapsField f;
      std::size_t nb = pos_;
      if (!std::isalpha(static_cast<unsigned char>(s_[pos_])) && s_[pos_] != '_')
        return fail("expected a field name");
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                  s_[pos_] == '_' || s_[pos_] == '-' || s_[pos_] == '.'))
        ++pos_;
      f.name.assign(s_.substr(nb, pos_ - nb));
      skip_ws();
      if (pos_ == s_.size() || s_[pos_] != '=') return fail("expected '=' after field name");
      ++pos_;
      PLX_TRY(parse_value(f.value));
      for (const auto& existing : st.fields)
        if (existing.name == f.name) return fail("duplicate field '" + f.name + "'");
      st.fields.push_back(std::move(f));
    }
  }

  void skip_cast() {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '(') {
      std::size_t close = s_.find(')', pos_);
      if (close != std::string_view::npos) pos_ = close + 1;
      skip_ws();
    }
  }

  Result<std::string> parse_scalar() {
    skip_cast();
    if (pos_ == s_.size()) return fail("expected a value");
    std::string v;
    if (s_[pos_] == '"' || s_[pos_] == '\'') {
      char q = s_[pos_++];
      while (pos_ < s_.size() && s_[pos_] != q) {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
        v.push_back(s_[pos_++]);
      }
      if (pos_ == s_.size()) return fail(std::string("expected closing ") + q);
      ++pos_;
      return v;
    }
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == ',' || c == ';' || c == ']' || c == '}' || c == '{' || c == '[' ||
          std::isspace(static_cast<unsigned char>(c)))
        break;
      if (c == '\\' && pos_ + 1 < s_.size()) ++pos_;
      v.push_back(s_[pos_++]);
    }
    if (v.empty()) return fail("expected a value");
    return v;
  }

  Result<void> parse_value(CapsValue& out) {
    skip_cast();
    if (pos_ < s_.size() && s_[pos_] == '{') {
      ++pos_;
      out.kind = CapsValue::Kind::list;
      for (;;) {
        PLX_ASSIGN(std::string item, parse_scalar());
        out.items.push_back(std::move(item));
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          break;
        }
        return fail("expected ',' or '}' in a list");
      }
      if (out.items.size() == 1) out.kind = CapsValue::Kind::fixed;
      return ok();
    }
    if (pos_ < s_.size() && s_[pos_] == '[') {
      ++pos_;
      PLX_ASSIGN(std::string lo, parse_scalar());
      skip_ws();
      if (pos_ == s_.size() || s_[pos_] != ',') return fail("expected ',' in a range");
      ++pos_;
      PLX_ASSIGN(std::string hi, parse_scalar());
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {  // optional step, ignored
        ++pos_;
        PLX_ASSIGN(std::string step, parse_scalar());
        (void)step;
        skip_ws();
      }
      if (pos_ == s_.size() || s_[pos_] != ']') return fail("expected ']' closing a range");
      ++pos_;
      auto l = to_int(lo), h = to_int(hi);
      if (!l || !h || *l > *h) return fail("expected an integer range [ low, high ]");
      out.kind = CapsValue::Kind::range;
      out.lo = *l;
      out.hi = *h;
      return ok();
    }
    PLX_ASSIGN(std::string v, parse_scalar());
    out.kind = CapsValue::Kind::fixed;
    out.items.push_back(std::move(v));
    return ok();
  }

 public:
  static std::optional<long long> to_int(std::string_view s) {
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
  }

 private:
  std::string_view s_;
  std::size_t pos_{0};
};

// Scalars compare numerically when both are integers or both fractions ("30/1" == "60/2").
bool scalar_equal(const std::string& a, const std::string& b) {
  if (a == b) return true;
  auto ia = CapsParser::to_int(a), ib = CapsParser::to_int(b);
  if (ia && ib) return *ia == *ib;
  auto frac = [](const std::string& s) -> std::optional<std::pair<long long, long long>> {
    auto slash = s.find('/');
    if (slash == std::string::npos) {
      auto i = CapsParser::to_int(s);
      if (!i) return std::nullopt;
      return std::make_pair(*i, 1LL);
    }
    auto n = CapsParser::to_int(std::string_view(s).substr(0, slash));
    auto d = CapsParser::to_int(std::string_view(s).substr(slash + 1));
    if (!n || !d || *d == 0) return std::nullopt;
    return std::make_pair(*n, *d);
  };
  auto fa = frac(a), fb = frac(b);
  if (fa && fb)
    return static_cast<__int128>(fa->first) * fb->second ==
           static_cast<__int128>(fb->first) * fa->second;
  return false;
}

bool in_range(const std::string& s, long long lo, long long hi) {
  auto v = CapsParser::to_int(s);
  return v && *v >= lo && *v <= hi;
}

std::optional<CapsValue> intersect_values(const CapsValue& a, const CapsValue& b) {
  using K = CapsValue::Kind;
  if (a.kind == K::range && b.kind == K::range) {
    CapsValue r;
    r.kind = K::range;
    r.lo = std::max(a.lo, b.lo);
    r.hi = std::min(a.hi, b.hi);
    if (r.lo > r.hi) return std::nullopt;
    if (r.lo == r.hi) return CapsValue{K::fixed, {std::to_string(r.lo)}, 0, 0};
    return r;
  }
  if (a.kind == K::range) return intersect_values(b, a);
  // a is fixed or list.
  CapsValue r;
  for (const auto& item : a.items) {
    bool match = false;
    if (b.kind == K::range) {
      match = in_range(item, b.lo, b.hi);
    } else {
      match = std::any_of(b.items.begin(), b.items.end(),
                          [&](const std::string& o) { return scalar_equal(item, o); });
    }
    if (match) r.items.push_back(item);
  }
  if (r.items.empty()) return std::nullopt;
  r.kind = r.items.size() == 1 ? K::fixed : K::list;
  return r;
}

std::optional<CapsStructure> intersect_structures(const CapsStructure& a, const CapsStructure& b) {
  if (a.media_type != b.media_type) return std::nullopt;
  CapsStructure r{a.media_type, {}};
  for (const auto& f : a.fields) {
    if (const CapsValue* other = b.field(f.name)) {
      auto v = intersect_values(f.value, *other);
      if (!v) return std::nullopt;
      r.fields.push_back({f.name, std::move(*v)});
    } else {
      r.fields.push_back(f);
    }
  }
  for (const auto& f : b.fields)
    if (a.field(f.name) == nullptr) r.fields.push_back(f);
  return r;
}

std::string value_to_string(const CapsValue& v) {
  auto quote = [](const std::string& s) {
    bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
             c == '/' || c == ':' || c == '+';
    });
    if (plain) return s;
    std::string q = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') q.push_back('\\');
      q.push_back(c);
    }
    return q + "\"";
  };
  switch (v.kind) {
    case CapsValue::Kind::fixed:
      return v.items.empty() ? std::string{} : quote(v.items[0]);
    case CapsValue::Kind::list: {
      std::string s = "{ ";
      for (std::size_t i = 0; i < v.items.size(); ++i)
        s += (i ? ", " : "") + quote(v.items[i]);
      return s + " }";
    }
    case CapsValue::Kind::range:
      return "[ " + std::to_string(v.lo) + ", " + std::to_string(v.hi) + " ]";
  }
  return {};
}

}  // namespace

const CapsValue* CapsStructure::field(std::string_view name) const noexcept {
  for (const auto& f : fields)
    if (f.name == name) return &f.value;
  return nullptr;
}

Result<Caps> Caps::parse(std::string_view text, std::size_t* error_pos) {
  CapsParser p(text);
  Caps c;
  bool any = false;
  auto r = p.parse_all(c.structures_, any);
  if (!r) {
    if (error_pos) *error_pos = p.pos();
    return std::move(r).error();
  }
  c.any_ = any;
  c.text_.assign(text);
  return c;
}

Caps Caps::from_text(std::string text) {
  if (auto c = parse(text)) return std::move(*c);
  // What the parser cannot read whole: announce the media type (up to the first ',' or ';').
  Caps c;
  std::string_view media(text);
  media = media.substr(0, media.find_first_of(",;"));
  while (!media.empty() && std::isspace(static_cast<unsigned char>(media.back())))
    media.remove_suffix(1);
  if (auto m = parse(media); m && !m->is_any() && !m->is_empty()) c = std::move(*m);
  c.complete_ = false;
  c.text_ = std::move(text);
  return c;
}

Caps Caps::empty_caps() {
  Caps c;
  c.any_ = false;
  return c;
}

bool Caps::is_fixed() const noexcept {
  if (any_ || structures_.size() != 1) return false;
  return std::all_of(structures_[0].fields.begin(), structures_[0].fields.end(),
                     [](const CapsField& f) { return f.value.kind == CapsValue::Kind::fixed; });
}

bool Caps::can_intersect(const Caps& other) const {
  return !intersect(other).is_empty();
}

Caps Caps::intersect(const Caps& other) const {
  if (any_) return other;
  if (other.any_) return *this;
  Caps r = empty_caps();
  for (const auto& a : structures_)
    for (const auto& b : other.structures_)
      if (auto s = intersect_structures(a, b)) r.structures_.push_back(std::move(*s));
  // Nothing narrowed: the result is this format, so it keeps this format's text.
  if (r.structures_ == structures_) return *this;
  return r;
}

std::string Caps::to_string() const {
  if (any_) return "ANY";
  if (structures_.empty()) return "EMPTY";
  std::string out;
  for (std::size_t i = 0; i < structures_.size(); ++i) {
    if (i) out += "; ";
    out += structures_[i].media_type;
    for (const auto& f : structures_[i].fields)
      out += ", " + f.name + "=" + value_to_string(f.value);
  }
  return out;
}

}  // namespace parallax
