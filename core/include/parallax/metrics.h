// SPDX-License-Identifier: MIT OR Apache-2.0
// Observability: named counters, gauges and latency histograms in a registry that exports
// Prometheus text and JSON. (Tracing spans: parallax/trace.h.)
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
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

/// Label pairs of one sample, in order: {{"socket", "/run/x.sock"}, {"pid", "42"}}. Names
/// follow Prometheus label rules ([a-zA-Z_][a-zA-Z0-9_]*); values are any text (escaped on export).
using Labels = std::vector<std::pair<std::string, std::string>>;

/// What a collector writes into at export time: samples grouped into families by name. The
/// first writer of a family fixes its type and help; a sample whose name, labels or type do
/// not fit is skipped (and counted in parallax_metrics_rejected_samples_total).
class Exposition {
 public:
  /// A counter family must be named *_total.
  void counter(std::string_view name, std::string_view help, const Labels& labels,
               std::uint64_t value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, double value);
  /// A histogram from log2 nanosecond buckets (bucket k counts [2^(k-1), 2^k) ns, bucket 0 the
  /// value 0), exported in seconds with cumulative buckets le = 2^k ns for k in
  /// [first_bucket, last_bucket] plus +Inf, and _sum (ns total, in seconds) and _count.
  void log2_histogram_seconds(std::string_view name, std::string_view help, const Labels& labels,
                              const std::array<std::uint64_t, 64>& log2_ns, std::uint64_t sum_ns,
                              std::size_t first_bucket = 10, std::size_t last_bucket = 34);
  /// Samples rejected so far.
  [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_; }
  /// The text exposition format (families in name order, each with HELP and TYPE).
  [[nodiscard]] std::string text() const;

 private:
  friend class MetricsRegistry;
  struct Family {
    std::string type;
    std::string help;
    std::vector<std::string> lines;
    std::vector<std::string> series;  // name+labels already written (duplicates are rejected)
  };
  Family* family(std::string_view name, std::string_view type, std::string_view help,
                 const Labels& labels);
  std::map<std::string, Family, std::less<>> families_;
  std::uint64_t rejected_{0};
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

  /// A function that writes samples (with labels) at export time, e.g. from a component's
  /// existing stats struct. Called from the exporting thread, under the registry's collector
  /// lock: it must be thread-safe against its component and must not block on I/O.
  using Collector = std::function<void(Exposition&)>;
  /// Unregisters its collector when destroyed (waiting for an export that is running it).
  class Registration {
   public:
    Registration() noexcept = default;
    Registration(Registration&& o) noexcept
        : reg_(std::exchange(o.reg_, nullptr)), id_(std::exchange(o.id_, 0)) {}
    Registration& operator=(Registration&& o) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration() { reset(); }
    void reset() noexcept;
    [[nodiscard]] bool active() const noexcept { return reg_ != nullptr; }

   private:
    friend class MetricsRegistry;
    Registration(MetricsRegistry* reg, std::uint64_t id) noexcept : reg_(reg), id_(id) {}
    MetricsRegistry* reg_{nullptr};
    std::uint64_t id_{0};
  };
  [[nodiscard]] Registration add_collector(Collector collector);

  /// Prometheus text exposition format (version 0.0.4): the registered metrics (histograms as
  /// _bucket{le=...}, _sum, _count) and every collector's samples.
  [[nodiscard]] std::string prometheus() const;
  /// {"name": value, ...}; histograms as {"count","sum","max","p50","p99"}.
  [[nodiscard]] std::string json() const;

 private:
  struct Entry;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
  mutable std::mutex collectors_mu_;  // held while collectors run (Registration waits on it)
  std::map<std::uint64_t, Collector> collectors_;
  std::uint64_t next_collector_{1};
};

/// Writes a registry's prometheus() text to `path` every `interval`, the way node_exporter's
/// textfile collector expects: a temporary file in the same directory, then rename(), so a
/// reader sees the old file or the new one, never a part. A background thread does it; the
/// destructor stops it promptly (no last write: call write_now() while the components live).
class MetricsFileExporter {
 public:
  /// invalid_argument for an empty path or a non-positive interval; the first write happens
  /// before start() returns (its error, e.g. a missing directory, is returned).
  [[nodiscard]] static Result<std::unique_ptr<MetricsFileExporter>> start(
      std::string path, std::chrono::milliseconds interval,
      MetricsRegistry& registry = MetricsRegistry::global());
  ~MetricsFileExporter();
  MetricsFileExporter(const MetricsFileExporter&) = delete;
  MetricsFileExporter& operator=(const MetricsFileExporter&) = delete;

  /// One rewrite now (also what the thread does).
  [[nodiscard]] Result<void> write_now();
  [[nodiscard]] std::uint64_t writes() const noexcept {
    return writes_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  MetricsFileExporter(std::string path, std::chrono::milliseconds interval, MetricsRegistry& r);
  void run();
  std::string path_;
  std::chrono::milliseconds interval_;
  MetricsRegistry& registry_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_{false};
  std::mutex write_mu_;
  std::atomic<std::uint64_t> writes_{0};
  std::thread thread_;
};

/// The process's exporter from the environment: PARALLAX_METRICS_FILE=/path/x.prom (and
/// PARALLAX_METRICS_INTERVAL in seconds, default 5, fractions allowed). Started once, by the
/// first call (publishers and subscribers call it when created); stopped at exit (the file
/// keeps the last periodic write). Returns whether one is running; a bad value or an unwritable
/// file is logged as an error once and leaves it off.
bool start_metrics_from_env() noexcept;
/// Starts the process's exporter explicitly (parallax-launch --metrics); already_exists when
/// one runs. Stopped at exit like the environment's.
[[nodiscard]] Result<void> start_process_metrics_file(std::string path,
                                                      std::chrono::milliseconds interval);
/// Rewrites the process's metrics file now (failed_precondition when there is none).
[[nodiscard]] Result<void> write_process_metrics_now();
/// Parses a PARALLAX_METRICS_INTERVAL value (seconds, > 0, at most a day).
[[nodiscard]] Result<std::chrono::milliseconds> parse_metrics_interval(std::string_view text);

}  // namespace parallax::observe
