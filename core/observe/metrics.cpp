// SPDX-License-Identifier: MIT OR Apache-2.0
// Metrics registry (Prometheus/JSON export) and the Chrome-trace span recorder.
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

// ---- Tracer ----

namespace {

struct TraceEvent {
  std::string name;
  std::string category;
  std::uint64_t begin_ns;
  std::uint64_t duration_ns;
  std::uint64_t tid;
};

struct TraceState {
  std::atomic<bool> on{false};
  std::mutex mu;
  std::string path;
  std::size_t max_events{0};
  std::uint64_t dropped{0};
  std::vector<TraceEvent> events;
  std::chrono::steady_clock::time_point epoch{std::chrono::steady_clock::now()};
};

TraceState& trace_state() {
  static TraceState* s = [] {
    auto* st = new TraceState;  // never destroyed: spans may end during static destruction
    if (const char* env = std::getenv("PARALLAX_TRACE"); env != nullptr && *env != '\0') {
      st->path = env;
      st->max_events = 1'000'000;
      st->on.store(true);
      std::atexit([] { (void)Tracer::flush(); });
    }
    return st;
  }();
  return *s;
}

}  // namespace

Result<void> Tracer::start(std::string path, std::size_t max_events) {
  if (path.empty()) return err(Errc::invalid_argument, "trace path is empty");
  if (max_events == 0) return err(Errc::invalid_argument, "max_events is zero");
  TraceState& s = trace_state();
  std::lock_guard lock(s.mu);
  s.path = std::move(path);
  s.max_events = max_events;
  s.events.clear();
  s.dropped = 0;
  s.epoch = std::chrono::steady_clock::now();
  s.on.store(true, std::memory_order_release);
  return {};
}

bool Tracer::enabled() noexcept {
  return trace_state().on.load(std::memory_order_relaxed);
}

std::uint64_t Tracer::now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - trace_state().epoch)
                                        .count());
}

void Tracer::record(std::string_view name, std::string_view category, std::uint64_t begin_ns,
                    std::uint64_t duration_ns) noexcept {
  TraceState& s = trace_state();
  if (!s.on.load(std::memory_order_relaxed)) return;
  const auto tid = static_cast<std::uint64_t>(::gettid());
  try {
    std::lock_guard lock(s.mu);
    if (s.events.size() >= s.max_events) {
      ++s.dropped;
      return;
    }
    s.events.push_back(
        TraceEvent{std::string(name), std::string(category), begin_ns, duration_ns, tid});
  } catch (...) {
    // Out of memory while tracing: drop the event rather than the process.
  }
}

Result<std::size_t> Tracer::flush() {
  TraceState& s = trace_state();
  std::lock_guard lock(s.mu);
  if (s.path.empty()) return err(Errc::failed_precondition, "tracing was never started");
  s.on.store(false);
  nlohmann::json events = nlohmann::json::array();
  const int pid = ::getpid();
  for (const auto& e : s.events)
    events.push_back({{"name", e.name},
                      {"cat", e.category},
                      {"ph", "X"},
                      {"ts", static_cast<double>(e.begin_ns) / 1000.0},
                      {"dur", static_cast<double>(e.duration_ns) / 1000.0},
                      {"pid", pid},
                      {"tid", e.tid}});
  nlohmann::json doc = {{"traceEvents", events},
                        {"displayTimeUnit", "ns"},
                        {"otherData", {{"dropped_events", s.dropped}}}};
  std::ofstream out(s.path, std::ios::trunc);
  if (!out) return Error::from_errno("open trace file " + s.path);
  out << doc.dump();
  if (!out) return Error::from_errno("write trace file " + s.path);
  const std::size_t n = s.events.size();
  s.events.clear();
  return n;
}

}  // namespace parallax::observe
