// SPDX-License-Identifier: MIT OR Apache-2.0
// Observability: named counters, gauges and latency histograms in a registry that exports
// Prometheus text and JSON. (Tracing spans: parallax/trace.h.)
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

}  // namespace parallax::observe
