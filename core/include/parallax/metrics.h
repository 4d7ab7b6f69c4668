// SPDX-License-Identifier: MIT OR Apache-2.0
// Observability: named counters, gauges and latency histograms in a registry that exports
// Prometheus text and JSON, and lightweight tracing spans written as Chrome trace events.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "parallax/result.h"

namespace parallax::observe {

/// A monotonically increasing count. add() is one relaxed atomic add.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

/// A value that goes up and down (queue depth, leases held).
class Gauge {
 public:
  void set(std::int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

/// A histogram of non-negative values (typically nanoseconds) in power-of-two buckets:
/// bucket k counts values in [2^(k-1), 2^k) (bucket 0: the value 0). record() is lock-free;
/// quantiles are bucket upper bounds, i.e. accurate to a factor of two.
class Histogram {
 public:
  static constexpr std::size_t kBuckets = 65;
  void record(std::uint64_t v) noexcept;
  [[nodiscard]] std::uint64_t count() const noexcept {
    return count_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }
  /// Upper bound of the bucket holding quantile q (0 < q <= 1); 0 when empty.
  [[nodiscard]] std::uint64_t quantile(double q) const noexcept;
  [[nodiscard]] std::array<std::uint64_t, kBuckets> buckets() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> b_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
};

/// Named metrics. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*); the same name
/// always returns the same object, so components can look theirs up once and keep the
/// reference (valid for the registry's lifetime). Thread-safe.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;
  [[nodiscard]] static MetricsRegistry& global();

  /// invalid_argument for a bad name, already_exists when the name has another kind.
  [[nodiscard]] Result<Counter*> counter(std::string_view name, std::string_view help = {});
  [[nodiscard]] Result<Gauge*> gauge(std::string_view name, std::string_view help = {});
  [[nodiscard]] Result<Histogram*> histogram(std::string_view name, std::string_view help = {});

  /// Prometheus text exposition format (histograms as _bucket{le=...}, _sum, _count).
  [[nodiscard]] std::string prometheus() const;
  /// {"name": value, ...}; histograms as {"count","sum","max","p50","p99"}.
  [[nodiscard]] std::string json() const;

 private:
  struct Entry;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
};

/// Tracing: when enabled (Tracer::start, or PARALLAX_TRACE=file.json in the environment at
/// the first use), Span objects record complete events that flush() writes as a Chrome trace
/// (load it in chrome://tracing or Perfetto). Disabled spans cost one relaxed load.
class Tracer {
 public:
  /// Starts recording; flush() (or process exit) writes `path`. At most `max_events` are kept.
  static Result<void> start(std::string path, std::size_t max_events = 1'000'000);
  [[nodiscard]] static bool enabled() noexcept;
  /// Records one complete event (times in ns since the tracer started).
  static void record(std::string_view name, std::string_view category, std::uint64_t begin_ns,
                     std::uint64_t duration_ns) noexcept;
  /// Nanoseconds since the tracer's epoch.
  [[nodiscard]] static std::uint64_t now_ns() noexcept;
  /// Writes the trace file and stops recording. Returns the number of events written.
  static Result<std::size_t> flush();
};

/// RAII span: records [construction, destruction) when tracing is enabled.
class Span {
 public:
  explicit Span(std::string_view name, std::string_view category = "parallax") noexcept
      : name_(name), category_(category), begin_(Tracer::enabled() ? Tracer::now_ns() : kOff) {}
  ~Span() {
    if (begin_ != kOff) Tracer::record(name_, category_, begin_, Tracer::now_ns() - begin_);
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  static constexpr std::uint64_t kOff = UINT64_MAX;
  std::string_view name_;
  std::string_view category_;
  std::uint64_t begin_;
};

}  // namespace parallax::observe

#define PLX_TRACE_CONCAT2_(a, b) a##b
#define PLX_TRACE_CONCAT_(a, b) PLX_TRACE_CONCAT2_(a, b)
/// Traces the enclosing scope: `PLX_TRACE_SPAN("queue.push");` (name must be a literal).
#define PLX_TRACE_SPAN(name) ::parallax::observe::Span PLX_TRACE_CONCAT_(plx_span_, __LINE__)(name)
