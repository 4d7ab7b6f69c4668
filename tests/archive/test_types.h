// SPDX-License-Identifier: MIT OR Apache-2.0
// Types and deterministic random generators shared by the archive tests, benchmark and fuzzer:
// the `log` dataset of rust_serialization_benchmark and a struct with every supported shape.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "parallax/archive.h"

namespace plxtest {

// ---- the `log` dataset -------------------------------------------------------------------

struct Address {
  std::uint8_t x0, x1, x2, x3;
  bool operator==(const Address&) const = default;
};
PLX_ARCHIVE(Address, x0, x1, x2, x3);

struct Log {
  Address address;
  std::string identity;
  std::string userid;
  std::string date;
  std::string request;
  std::uint16_t code;
  std::uint64_t size;
  bool operator==(const Log&) const = default;
};
PLX_ARCHIVE(Log, address, identity, userid, date, request, code, size);

struct Logs {
  std::vector<Log> logs;
  bool operator==(const Logs&) const = default;
};
PLX_ARCHIVE(Logs, logs);

// xorshift-style PRNG with a fixed seed: the same dataset on every machine and run.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  std::uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool coin() { return (next() & 1) != 0; }

 private:
  std::uint64_t s_;
};

inline std::string alnum(Rng& r, std::size_t lo, std::size_t hi) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s(lo + r.below(hi - lo + 1), ' ');
  for (auto& c : s)
    c = kChars[r.below(sizeof kChars - 1)];
  return s;
}

// Mimics the shape of rust_serialization_benchmark's generator (datasets/log.rs).
inline Log random_log(Rng& r) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  static constexpr const char* kMethods[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};
  static constexpr const char* kExt[] = {"html", "gif", "png", "css", "js"};
  static constexpr std::uint16_t kCodes[] = {200, 204, 301, 304, 400, 401, 403, 404, 500, 503};
  Log l;
  l.address = {static_cast<std::uint8_t>(r.next()), static_cast<std::uint8_t>(r.next()),
               static_cast<std::uint8_t>(r.next()), static_cast<std::uint8_t>(r.next())};
  l.identity = alnum(r, 1, 10);
  l.userid = alnum(r, 1, 10);
  char date[40];
  std::snprintf(date, sizeof date, "%02u/%s/%04u:%02u:%02u:%02u %c%04u",
                static_cast<unsigned>(1 + r.below(28)), kMonths[r.below(12)],
                static_cast<unsigned>(1970 + r.below(60)), static_cast<unsigned>(r.below(24)),
                static_cast<unsigned>(r.below(60)), static_cast<unsigned>(r.below(60)),
                r.coin() ? '+' : '-', static_cast<unsigned>(r.below(13) * 100));
  l.date = date;
  std::string path;
  const auto depth = 1 + r.below(3);
  for (std::uint64_t i = 0; i < depth; ++i)
    path += "/" + alnum(r, 2, 12);
  l.request = std::string(kMethods[r.below(5)]) + " " + path + "." + kExt[r.below(5)] + " HTTP/1." +
              (r.coin() ? "0" : "1");
  l.code = kCodes[r.below(10)];
  l.size = r.below(100'000'000);
  return l;
}

inline Logs make_logs(std::size_t n, std::uint64_t seed = 42) {
  Rng r(seed);
  Logs out;
  out.logs.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    out.logs.push_back(random_log(r));
  return out;
}

// ---- every supported shape ---------------------------------------------------------------

enum class Color : std::uint8_t { red = 0, green = 1, blue = 2 };
PLX_ARCHIVE_ENUM(Color, red, green, blue);

enum class Sparse : std::int32_t { minus = -7, one = 1, big = 1000 };
PLX_ARCHIVE_ENUM(Sparse, minus, one, big);

struct Point {
  float x;
  double y;
  bool operator==(const Point&) const = default;
};
PLX_ARCHIVE(Point, x, y);

struct Inner {
  std::string name;
  std::vector<std::uint32_t> ids;
  std::optional<Color> color;
  bool operator==(const Inner&) const = default;
};
PLX_ARCHIVE(Inner, name, ids, color);

struct Everything {
  std::int8_t i8;
  std::int16_t i16;
  std::int32_t i32;
  std::int64_t i64;
  std::uint8_t u8;
  std::uint16_t u16;
  std::uint32_t u32;
  std::uint64_t u64;
  float f32;
  double f64;
  bool flag;
  Color color;
  Sparse sparse;
  std::array<std::uint16_t, 3> triple;
  std::array<std::string, 2> names;
  std::string text;
  std::vector<std::string> words;
  std::vector<Point> points;
  std::optional<std::string> maybe_text;
  std::optional<Point> maybe_point;
  std::variant<std::uint32_t, std::string, Point, std::vector<Color>> choice;
  Inner inner;
  std::vector<Inner> inners;
  std::map<std::string, std::uint32_t> counts;
  std::map<std::uint32_t, std::vector<std::string>> index;
  std::vector<bool> bits;
  std::vector<std::vector<std::uint8_t>> nested;
  bool operator==(const Everything&) const = default;
};
PLX_ARCHIVE(Everything, i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, flag, color, sparse, triple,
            names, text, words, points, maybe_text, maybe_point, choice, inner, inners, counts,
            index, bits, nested);

// A recursive type, for the depth limit.
struct Node {
  std::uint32_t value;
  std::vector<Node> children;
  bool operator==(const Node&) const = default;
};
PLX_ARCHIVE(Node, value, children);

/// Random UTF-8 text: ASCII mostly, with 2-, 3- and 4-byte characters.
inline std::string random_text(Rng& r, std::size_t max_chars) {
  static const char* kWide[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xe4\xb8\xad",
                                "\xd0\x96"};
  std::string s;
  const auto n = r.below(max_chars + 1);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (r.below(5) == 0) {
      s += kWide[r.below(5)];
    } else {
      s += static_cast<char>(' ' + r.below(95));
    }
  }
  return s;
}

inline float random_float(Rng& r) {
  return static_cast<float>(static_cast<std::int64_t>(r.next() % 2000000) - 1000000) / 64.0f;
}

inline Point random_point(Rng& r) {
  return {random_float(r), static_cast<double>(static_cast<std::int64_t>(r.next())) / 3.0};
}

inline Inner random_inner(Rng& r) {
  Inner in;
  in.name = random_text(r, 12);
  const auto n = r.below(6);
  for (std::uint64_t i = 0; i < n; ++i)
    in.ids.push_back(static_cast<std::uint32_t>(r.next()));
  if (r.coin()) in.color = static_cast<Color>(r.below(3));
  return in;
}

inline Everything random_everything(Rng& r) {
  Everything e;
  e.i8 = static_cast<std::int8_t>(r.next());
  e.i16 = static_cast<std::int16_t>(r.next());
  e.i32 = static_cast<std::int32_t>(r.next());
  e.i64 = static_cast<std::int64_t>(r.next());
  e.u8 = static_cast<std::uint8_t>(r.next());
  e.u16 = static_cast<std::uint16_t>(r.next());
  e.u32 = static_cast<std::uint32_t>(r.next());
  e.u64 = r.next();
  e.f32 = random_float(r);
  e.f64 = static_cast<double>(static_cast<std::int64_t>(r.next())) / 7.0;
  e.flag = r.coin();
  e.color = static_cast<Color>(r.below(3));
  static constexpr Sparse kSparse[] = {Sparse::minus, Sparse::one, Sparse::big};
  e.sparse = kSparse[r.below(3)];
  for (auto& t : e.triple)
    t = static_cast<std::uint16_t>(r.next());
  for (auto& s : e.names)
    s = random_text(r, 6);
  e.text = random_text(r, 30);
  for (auto n = r.below(5); n > 0; --n)
    e.words.push_back(random_text(r, 8));
  for (auto n = r.below(4); n > 0; --n)
    e.points.push_back(random_point(r));
  if (r.coin()) e.maybe_text = random_text(r, 10);
  if (r.coin()) e.maybe_point = random_point(r);
  switch (r.below(4)) {
    case 0:
      e.choice = static_cast<std::uint32_t>(r.next());
      break;
    case 1:
      e.choice = random_text(r, 10);
      break;
    case 2:
      e.choice = random_point(r);
      break;
    default: {
      std::vector<Color> cs;
      for (auto n = r.below(4); n > 0; --n)
        cs.push_back(static_cast<Color>(r.below(3)));
      e.choice = cs;
    }
  }
  e.inner = random_inner(r);
  for (auto n = r.below(3); n > 0; --n)
    e.inners.push_back(random_inner(r));
  for (auto n = r.below(5); n > 0; --n)
    e.counts[random_text(r, 6)] = static_cast<std::uint32_t>(r.next());
  for (auto n = r.below(3); n > 0; --n) {
    auto& v = e.index[static_cast<std::uint32_t>(r.below(100))];
    for (auto m = r.below(3); m > 0; --m)
      v.push_back(random_text(r, 5));
  }
  for (auto n = r.below(10); n > 0; --n)
    e.bits.push_back(r.coin());
  for (auto n = r.below(3); n > 0; --n) {
    std::vector<std::uint8_t> v;
    for (auto m = r.below(5); m > 0; --m)
      v.push_back(static_cast<std::uint8_t>(r.next()));
    e.nested.push_back(std::move(v));
  }
  return e;
}

inline Node chain(std::size_t depth) {
  Node root{0, {}};
  Node* cur = &root;
  for (std::size_t i = 1; i < depth; ++i) {
    cur->children.push_back(Node{static_cast<std::uint32_t>(i), {}});
    cur = &cur->children.back();
  }
  return root;
}

}  // namespace plxtest
