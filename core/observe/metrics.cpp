// SPDX-License-Identifier: MIT OR Apache-2.0
// Metrics registry (Prometheus/JSON export). The span recorder is trace.cpp.
#include "parallax/metrics.h"

#include <pthread.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <variant>

namespace parallax::observe {

// ---- Histogram ----

void Histogram::record(std::uint64_t v) noexcept {
  const std::size_t k = v == 0 ? 0 : static_cast<std::size_t>(std::bit_width(v));
  b_[k].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  std::uint64_t m = max_.load(std::memory_order_relaxed);
  while (v > m && !max_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
  }
}

std::array<std::uint64_t, Histogram::kBuckets> Histogram::buckets() const noexcept {
  std::array<std::uint64_t, kBuckets> out{};
  for (std::size_t i = 0; i < kBuckets; ++i)
    out[i] = b_[i].load(std::memory_order_relaxed);
  return out;
}

namespace {
// Upper bound (inclusive) of bucket k.
std::uint64_t bucket_bound(std::size_t k) {
  if (k == 0) return 0;
  if (k >= 64) return UINT64_MAX;
  return (std::uint64_t{1} << k) - 1;
}
}  // namespace

std::uint64_t Histogram::quantile(double q) const noexcept {
  const auto b = buckets();
  std::uint64_t total = 0;
  for (auto c : b)
    total += c;
  if (total == 0) return 0;
  if (q <= 0) q = 1e-9;
  if (q > 1) q = 1;
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
  std::uint64_t seen = 0;
  for (std::size_t k = 0; k < kBuckets; ++k) {
    seen += b[k];
    if (seen >= rank) return std::min(bucket_bound(k), max());
  }
  return max();
}

// ---- Registry ----

struct MetricsRegistry::Entry {
  std::string help;
  std::variant<Counter, Gauge, Histogram> metric;
  explicit Entry(std::string h, int kind) : help(std::move(h)) {
    if (kind == 1) metric.emplace<Gauge>();
    if (kind == 2) metric.emplace<Histogram>();
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry& MetricsRegistry::global() {
  static MetricsRegistry* r = new MetricsRegistry;  // never destroyed: used until exit
  return *r;
}

namespace {
bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}
}  // namespace

Result<Counter*> MetricsRegistry::counter(std::string_view name, std::string_view help) {
  if (!valid_metric_name(name))
    return err(Errc::invalid_argument, "bad metric name '" + std::string(name) + "'");
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end())
    it = entries_.emplace(std::string(name), std::make_unique<Entry>(std::string(help), 0)).first;
  if (auto* c = std::get_if<Counter>(&it->second->metric)) return c;
  return err(Errc::already_exists, "metric '" + std::string(name) + "' is not a counter");
}

Result<Gauge*> MetricsRegistry::gauge(std::string_view name, std::string_view help) {
  if (!valid_metric_name(name))
    return err(Errc::invalid_argument, "bad metric name '" + std::string(name) + "'");
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end())
    it = entries_.emplace(std::string(name), std::make_unique<Entry>(std::string(help), 1)).first;
  if (auto* g = std::get_if<Gauge>(&it->second->metric)) return g;
  return err(Errc::already_exists, "metric '" + std::string(name) + "' is not a gauge");
}

Result<Histogram*> MetricsRegistry::histogram(std::string_view name, std::string_view help) {
  if (!valid_metric_name(name))
    return err(Errc::invalid_argument, "bad metric name '" + std::string(name) + "'");
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end())
    it = entries_.emplace(std::string(name), std::make_unique<Entry>(std::string(help), 2)).first;
  if (auto* h = std::get_if<Histogram>(&it->second->metric)) return h;
  return err(Errc::already_exists, "metric '" + std::string(name) + "' is not a histogram");
}

std::string MetricsRegistry::prometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, e] : entries_) {
    if (!e->help.empty()) out += "# HELP " + name + " " + e->help + "\n";
    if (const auto* c = std::get_if<Counter>(&e->metric)) {
      out += "# TYPE " + name + " counter\n" + name + " " + std::to_string(c->value()) + "\n";
    } else if (const auto* g = std::get_if<Gauge>(&e->metric)) {
      out += "# TYPE " + name + " gauge\n" + name + " " + std::to_string(g->value()) + "\n";
    } else if (const auto* h = std::get_if<Histogram>(&e->metric)) {
      out += "# TYPE " + name + " histogram\n";
      const auto b = h->buckets();
      std::uint64_t cum = 0;
      std::size_t last = 0;
      for (std::size_t k = 0; k < b.size(); ++k)
        if (b[k] != 0) last = k;
      for (std::size_t k = 0; k <= last && k < 64; ++k) {
        cum += b[k];
        out += name + "_bucket{le=\"" + std::to_string(bucket_bound(k)) + "\"} " +
               std::to_string(cum) + "\n";
      }
      out += name + "_bucket{le=\"+Inf\"} " + std::to_string(h->count()) + "\n";
      out += name + "_sum " + std::to_string(h->sum()) + "\n";
      out += name + "_count " + std::to_string(h->count()) + "\n";
    }
  }
  return out;
}

std::string MetricsRegistry::json() const {
  std::lock_guard lock(mu_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, e] : entries_) {
    if (const auto* c = std::get_if<Counter>(&e->metric))
      j[name] = c->value();
    else if (const auto* g = std::get_if<Gauge>(&e->metric))
      j[name] = g->value();
    else if (const auto* h = std::get_if<Histogram>(&e->metric))
      j[name] = {{"count", h->count()},
                 {"sum", h->sum()},
                 {"max", h->max()},
                 {"p50", h->quantile(0.5)},
                 {"p99", h->quantile(0.99)}};
  }
  return j.dump();
}

}  // namespace parallax::observe
