// SPDX-License-Identifier: MIT OR Apache-2.0
// A strict parser of the Prometheus text exposition format (version 0.0.4, as node_exporter's
// textfile collector reads it), for tests: it rejects what Prometheus would reject and a few
// things it only discourages (a counter not named *_total, a family split in two, a histogram
// whose buckets are not cumulative or lack +Inf / _sum / _count). Not string matching: every
// line is tokenized by the grammar.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace prom {

struct Sample {
  std::string name;  // as written (histograms: *_bucket, *_sum, *_count)
  std::map<std::string, std::string> labels;
  double value{0};
};

struct Family {
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;
  std::vector<Sample> samples;
};

struct Parsed {
  std::map<std::string, Family> families;
  /// Value of the sample `name` whose labels include all of `want` (nullopt: none, or several).
  [[nodiscard]] std::optional<double> value(
      std::string_view family, std::string_view name,
      const std::map<std::string, std::string>& want = {}) const {
    auto it = families.find(std::string(family));
    if (it == families.end()) return std::nullopt;
    std::optional<double> found;
    for (const auto& s : it->second.samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : want) {
        auto l = s.labels.find(k);
        if (l == s.labels.end() || l->second != v) match = false;
      }
      if (!match) continue;
      if (found) return std::nullopt;  // ambiguous
      found = s.value;
    }
    return found;
  }
};

namespace detail {

inline bool metric_name_ok(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool a = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!(a || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

inline bool label_name_ok(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool a = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!(a || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// A float the way Prometheus (Go's strconv.ParseFloat) reads it, plus NaN / +Inf / -Inf.
inline std::optional<double> parse_value(std::string_view t) {
  if (t == "NaN") return std::nan("");
  if (t == "+Inf" || t == "Inf") return HUGE_VAL;
  if (t == "-Inf") return -HUGE_VAL;
  if (t.empty()) return std::nullopt;
  for (const char c : t)
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
      return std::nullopt;
  const std::string s(t);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

inline std::string_view base_of(std::string_view name, std::string_view suffix) {
  if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix)
    return name.substr(0, name.size() - suffix.size());
  return {};
}

}  // namespace detail

/// Parses `text`; on error returns nullopt and sets `*error` to "line N: why".
inline std::optional<Parsed> parse(std::string_view text, std::string* error) {
  using namespace detail;
  Parsed out;
  std::set<std::string> closed;  // families that ended (another one started after them)
  std::string current;           // the family of the previous line
  std::set<std::string> series;  // name + labels seen
  std::size_t line_no = 0;
  const auto fail = [&](const std::string& why) -> std::optional<Parsed> {
    if (error) *error = "line " + std::to_string(line_no) + ": " + why;
    return std::nullopt;
  };
  if (!text.empty() && text.back() != '\n') {
    line_no = 0;
    return fail("the text does not end with a line feed (truncated?)");
  }
  const auto enter = [&](const std::string& fam) -> bool {
    if (fam == current) return true;
    if (closed.count(fam)) return false;
    if (!current.empty()) closed.insert(current);
    current = fam;
    return true;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    const std::size_t nl = text.find('\n', pos);
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    if (line[0] == '#') {
      // "# HELP name text" / "# TYPE name type"; any other comment is ignored.
      if (line.substr(0, 7) != "# HELP " && line.substr(0, 7) != "# TYPE ") continue;
      const bool help = line[2] == 'H';
      const std::string_view rest = line.substr(7);
      const std::size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      if (!metric_name_ok(name)) return fail("bad metric name in comment '" + name + "'");
      if (sp == std::string_view::npos && !help) return fail("TYPE without a type");
      const std::string_view arg = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
      if (!enter(name)) return fail("family " + name + " appears twice");
      Family& f = out.families[name];
      if (help) {
        if (!f.help.empty()) return fail("second HELP for " + name);
        std::string h;
        for (std::size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] != '\\') {
            h += arg[i];
            continue;
          }
          if (i + 1 >= arg.size()) return fail("dangling backslash in HELP");
          const char e = arg[++i];
          if (e == '\\')
            h += '\\';
          else if (e == 'n')
            h += '\n';
          else
            return fail(std::string("bad escape \\") + e + " in HELP");
        }
        f.help = h.empty() ? " " : h;
      } else {
        if (!f.type.empty()) return fail("second TYPE for " + name);
        if (!f.samples.empty()) return fail("TYPE after samples of " + name);
        const std::string t(arg);
        if (t != "counter" && t != "gauge" && t != "histogram" && t != "summary" && t != "untyped")
          return fail("unknown type '" + t + "'");
        f.type = t;
      }
      continue;
    }
    // Sample: name [{labels}] value [timestamp]
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
      ++i;
    Sample s;
    s.name = std::string(line.substr(0, i));
    if (!metric_name_ok(s.name)) return fail("bad metric name '" + s.name + "'");
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        std::size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) return fail("label without '='");
        const std::string lname(line.substr(i, eq - i));
        if (!label_name_ok(lname)) return fail("bad label name '" + lname + "'");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value not quoted");
        ++i;
        std::string v;
        bool closed_quote = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed_quote = true;
            break;
          }
          if (c != '\\') {
            v += c;
            continue;
          }
          if (i >= line.size()) return fail("dangling backslash in label value");
          const char e = line[i++];
          if (e == '\\')
            v += '\\';
          else if (e == '"')
            v += '"';
          else if (e == 'n')
            v += '\n';
          else
            return fail(std::string("bad escape \\") + e + " in label value");
        }
        if (!closed_quote) return fail("unterminated label value");
        if (!s.labels.emplace(lname, v).second) return fail("duplicate label " + lname);
        if (i < line.size() && line[i] == ',') {
          ++i;
          continue;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        return fail("expected ',' or '}' after a label");
      }
    }
    if (i >= line.size() || line[i] != ' ') return fail("no value");
    ++i;
    const std::size_t sp = line.find(' ', i);
    const auto value = parse_value(line.substr(i, sp == std::string_view::npos ? sp : sp - i));
    if (!value) return fail("bad value in '" + std::string(line) + "'");
    s.value = *value;
    if (sp != std::string_view::npos) {
      const std::string_view ts = line.substr(sp + 1);
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string_view::npos)
        return fail("bad timestamp");
    }
    // Which family: a histogram's _bucket/_sum/_count belong to the base name.
    std::string fam = s.name;
    for (const char* suf : {"_bucket", "_sum", "_count"}) {
      const std::string_view b = base_of(s.name, suf);
      if (!b.empty()) {
        auto it = out.families.find(std::string(b));
        if (it != out.families.end() && it->second.type == "histogram") fam = std::string(b);
      }
    }
    if (!enter(fam)) return fail("family " + fam + " appears twice (samples not grouped)");
    Family& f = out.families[fam];
    if (f.type.empty()) return fail("sample of " + fam + " before its TYPE");
    if (f.type == "histogram" && fam == s.name) return fail("histogram sample without suffix");
    if (f.type == "counter") {
      if (base_of(s.name, "_total").empty()) return fail("counter " + s.name + " not *_total");
      if (!(s.value >= 0)) return fail("negative or NaN counter " + s.name);
    }
    if (f.type == "histogram" && base_of(s.name, "_bucket").size() == fam.size() &&
        !s.labels.count("le"))
      return fail("bucket without le");
    std::string key = s.name + "{";
    for (const auto& [k, v] : s.labels)
      key += k + "=" + v + ",";
    if (!series.insert(key).second) return fail("duplicate series " + key);
    f.samples.push_back(std::move(s));
  }
  // Histograms: per label set (without le) cumulative buckets in increasing le, a +Inf bucket
  // equal to _count, and a _sum.
  for (const auto& [name, f] : out.families) {
    if (f.type.empty()) {
      line_no = 0;
      return fail("family " + name + " has HELP but no TYPE");
    }
    if (f.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts, sums;
    for (const auto& s : f.samples) {
      auto l = s.labels;
      if (s.name == name + "_bucket") {
        const auto le = parse_value(l["le"]);
        if (!le) return fail("bad le '" + l["le"] + "' in " + name);
        l.erase("le");
        buckets[l].emplace_back(*le, s.value);
      } else if (s.name == name + "_count") {
        counts[l] = s.value;
      } else if (s.name == name + "_sum") {
        sums[l] = s.value;
      }
    }
    if (buckets.empty()) return fail("histogram " + name + " without buckets");
    for (const auto& [l, bs] : buckets) {
      for (std::size_t k = 1; k < bs.size(); ++k) {
        if (!(bs[k].first > bs[k - 1].first)) return fail(name + ": le not increasing");
        if (bs[k].second < bs[k - 1].second) return fail(name + ": buckets not cumulative");
      }
      if (!std::isinf(bs.back().first)) return fail(name + ": no +Inf bucket");
      if (!counts.count(l) || counts[l] != bs.back().second)
        return fail(name + ": _count missing or not the +Inf bucket");
      if (!sums.count(l)) return fail(name + ": _sum missing");
    }
  }
  return out;
}

}  // namespace prom
