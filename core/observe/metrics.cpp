// SPDX-License-Identifier: MIT OR Apache-2.0
// Metrics registry (Prometheus/JSON export). The span recorder is trace.cpp.
#include "parallax/metrics.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <variant>

#include "parallax/log.h"

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
  if (it == entries_.end()) {
    if (!name.ends_with("_total"))
      return err(Errc::invalid_argument,
                 "counter '" + std::string(name) + "' must be named *_total (Prometheus)");
    it = entries_.emplace(std::string(name), std::make_unique<Entry>(std::string(help), 0)).first;
  }
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
  Exposition ex;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) {
      if (const auto* c = std::get_if<Counter>(&e->metric)) {
        ex.counter(name, e->help, {}, c->value());
      } else if (const auto* g = std::get_if<Gauge>(&e->metric)) {
        ex.gauge(name, e->help, {}, static_cast<double>(g->value()));
      } else if (const auto* h = std::get_if<Histogram>(&e->metric)) {
        Exposition::Family* f = ex.family(name, "histogram", e->help, {});
        if (f == nullptr) continue;
        const auto b = h->buckets();
        std::uint64_t cum = 0;
        std::size_t last = 0;
        for (std::size_t k = 0; k < b.size(); ++k)
          if (b[k] != 0) last = k;
        for (std::size_t k = 0; k <= last && k < 64; ++k) {
          cum += b[k];
          f->lines.push_back(name + "_bucket{le=\"" + std::to_string(bucket_bound(k)) + "\"} " +
                             std::to_string(cum));
        }
        f->lines.push_back(name + "_bucket{le=\"+Inf\"} " + std::to_string(h->count()));
        f->lines.push_back(name + "_sum " + std::to_string(h->sum()));
        f->lines.push_back(name + "_count " + std::to_string(h->count()));
      }
    }
  }
  {
    std::lock_guard lock(collectors_mu_);
    for (const auto& [id, fn] : collectors_) {
      try {
        fn(ex);
      } catch (const std::exception& e) {
        PLX_LOG(warn, "metrics", "collector %llu failed: %s", static_cast<unsigned long long>(id),
                e.what());
      }
    }
  }
  if (ex.rejected() != 0)
    ex.counter("parallax_metrics_rejected_samples_total",
               "Samples a collector wrote that did not fit the exposition format (skipped)", {},
               ex.rejected());
  return ex.text();
}

MetricsRegistry::Registration MetricsRegistry::add_collector(Collector collector) {
  std::lock_guard lock(collectors_mu_);
  const std::uint64_t id = next_collector_++;
  collectors_.emplace(id, std::move(collector));
  return Registration(this, id);
}

void MetricsRegistry::Registration::reset() noexcept {
  if (reg_ == nullptr) return;
  std::lock_guard lock(reg_->collectors_mu_);
  reg_->collectors_.erase(id_);
  reg_ = nullptr;
}

MetricsRegistry::Registration& MetricsRegistry::Registration::operator=(Registration&& o) noexcept {
  if (this != &o) {
    reset();
    reg_ = std::exchange(o.reg_, nullptr);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

namespace {
// JSON string body (quotes not included).
std::string json_escape(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out;
}
}  // namespace

std::string MetricsRegistry::json() const {
  std::lock_guard lock(mu_);
  std::string out = "{";
  bool first = true;
  for (const auto& [name, e] : entries_) {
    if (!first) out += ",";
    first = false;
    out += "\"" + json_escape(name) + "\":";
    if (const auto* c = std::get_if<Counter>(&e->metric))
      out += std::to_string(c->value());
    else if (const auto* g = std::get_if<Gauge>(&e->metric))
      out += std::to_string(g->value());
    else if (const auto* h = std::get_if<Histogram>(&e->metric))
      out += "{\"count\":" + std::to_string(h->count()) + ",\"sum\":" + std::to_string(h->sum()) +
             ",\"max\":" + std::to_string(h->max()) +
             ",\"p50\":" + std::to_string(h->quantile(0.5)) +
             ",\"p99\":" + std::to_string(h->quantile(0.99)) + "}";
  }
  return out + "}";
}

// ---- Exposition ----

namespace {
bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// Label values: backslash, double quote and line feed are escaped (the text format's rule).
std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

// HELP text: backslash and line feed are escaped.
std::string escape_help(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string label_text(const Labels& labels, std::string_view extra_name = {},
                       std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"" + escape_label_value(v) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first) out += ",";
    out += std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
  }
  return out + "}";
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// 2^k ns in seconds, exactly (a multiple of 1 ns): "0.000001024".
std::string pow2_ns_in_seconds(std::size_t k) {
  const std::uint64_t ns = std::uint64_t{1} << k;
  std::string frac = std::to_string(ns % 1'000'000'000ULL);
  frac.insert(0, 9 - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0')
    frac.pop_back();
  std::string out = std::to_string(ns / 1'000'000'000ULL);
  if (!frac.empty()) out += "." + frac;
  return out;
}
}  // namespace

Exposition::Family* Exposition::family(std::string_view name, std::string_view type,
                                       std::string_view help, const Labels& labels) {
  if (!valid_metric_name(name)) {
    ++rejected_;
    return nullptr;
  }
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k) || k == "le" || k == "quantile") {
      ++rejected_;
      return nullptr;
    }
  }
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (std::size_t j = i + 1; j < labels.size(); ++j)
      if (labels[i].first == labels[j].first) {
        ++rejected_;
        return nullptr;
      }
  auto it = families_.find(name);
  if (it == families_.end()) {
    // A histogram's _bucket/_sum/_count names belong to it: no family may take them.
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (name.ends_with(suffix)) {
        auto base = families_.find(name.substr(0, name.size() - std::strlen(suffix)));
        if (base != families_.end() && base->second.type == "histogram") {
          ++rejected_;
          return nullptr;
        }
      }
    }
    it = families_.emplace(std::string(name), Family{std::string(type), std::string(help), {}, {}})
             .first;
  } else if (it->second.type != type) {
    ++rejected_;
    return nullptr;
  }
  std::string key = label_text(labels);
  for (const auto& s : it->second.series)
    if (s == key) {
      ++rejected_;
      return nullptr;
    }
  it->second.series.push_back(std::move(key));
  return &it->second;
}

void Exposition::counter(std::string_view name, std::string_view help, const Labels& labels,
                         std::uint64_t value) {
  if (!name.ends_with("_total")) {
    ++rejected_;
    return;
  }
  Family* f = family(name, "counter", help, labels);
  if (f == nullptr) return;
  f->lines.push_back(std::string(name) + label_text(labels) + " " + std::to_string(value));
}

void Exposition::gauge(std::string_view name, std::string_view help, const Labels& labels,
                       double value) {
  Family* f = family(name, "gauge", help, labels);
  if (f == nullptr) return;
  f->lines.push_back(std::string(name) + label_text(labels) + " " + format_double(value));
}

void Exposition::log2_histogram_seconds(std::string_view name, std::string_view help,
                                        const Labels& labels,
                                        const std::array<std::uint64_t, 64>& log2_ns,
                                        std::uint64_t sum_ns, std::size_t first_bucket,
                                        std::size_t last_bucket) {
  if (first_bucket > last_bucket || last_bucket >= 63) {
    ++rejected_;
    return;
  }
  Family* f = family(name, "histogram", help, labels);
  if (f == nullptr) return;
  const std::string n(name);
  std::uint64_t cum = 0, total = 0;
  for (auto c : log2_ns)
    total += c;
  // Bucket k holds values below 2^k ns, so everything up to bucket k is <= 2^k ns.
  for (std::size_t k = 0; k < first_bucket; ++k)
    cum += log2_ns[k];
  for (std::size_t k = first_bucket; k <= last_bucket; ++k) {
    cum += log2_ns[k];
    f->lines.push_back(n + "_bucket" + label_text(labels, "le", pow2_ns_in_seconds(k)) + " " +
                       std::to_string(cum));
  }
  f->lines.push_back(n + "_bucket" + label_text(labels, "le", "+Inf") + " " +
                     std::to_string(total));
  f->lines.push_back(n + "_sum" + label_text(labels) + " " +
                     format_double(static_cast<double>(sum_ns) / 1e9));
  f->lines.push_back(n + "_count" + label_text(labels) + " " + std::to_string(total));
}

std::string Exposition::text() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    for (const auto& l : f.lines)
      out += l + "\n";
  }
  return out;
}

// ---- File export ----

Result<std::chrono::milliseconds> parse_metrics_interval(std::string_view text) {
  const std::string t(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || *end != '\0' || errno != 0 || !std::isfinite(v) || v <= 0 ||
      v > 86400)
    return err(Errc::invalid_argument,
               "metrics interval '" + t + "' is not a number of seconds in (0, 86400]");
  const auto ms = static_cast<std::int64_t>(std::llround(v * 1000.0));
  return std::chrono::milliseconds(ms < 1 ? 1 : ms);
}

MetricsFileExporter::MetricsFileExporter(std::string path, std::chrono::milliseconds interval,
                                         MetricsRegistry& r)
    : path_(std::move(path)), interval_(interval), registry_(r) {}

Result<std::unique_ptr<MetricsFileExporter>> MetricsFileExporter::start(
    std::string path, std::chrono::milliseconds interval, MetricsRegistry& registry) {
  if (path.empty()) return err(Errc::invalid_argument, "metrics file path is empty");
  if (interval.count() <= 0) return err(Errc::invalid_argument, "metrics interval must be > 0");
  std::unique_ptr<MetricsFileExporter> e(
      new MetricsFileExporter(std::move(path), interval, registry));
  PLX_TRY(e->write_now());
  MetricsFileExporter* raw = e.get();
  e->thread_ = std::thread([raw] { raw->run(); });
  return e;
}

MetricsFileExporter::~MetricsFileExporter() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // No last write: at exit the components are gone, and an empty file would replace their
  // last figures (parallax-launch writes once more itself before it tears the pipeline down).
}

void MetricsFileExporter::run() {
  pthread_setname_np(pthread_self(), "plx-metrics");
  bool failing = false;
  std::unique_lock lk(mu_);
  while (!stop_) {
    if (cv_.wait_for(lk, interval_, [this] { return stop_; })) break;
    lk.unlock();
    auto r = write_now();
    if (!r && !failing)
      PLX_LOG(error, "metrics", "cannot write %s: %s", path_.c_str(), r.error().message.c_str());
    failing = !r;
    lk.lock();
  }
}

Result<void> MetricsFileExporter::write_now() {
  const std::string text = registry_.prometheus();
  std::lock_guard wl(write_mu_);
  // Same directory (rename is atomic only within a file system), not ending in .prom (the
  // textfile collector only reads *.prom), unique per process.
  const std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno("create " + tmp);
  std::size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = Error::from_errno("write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    off += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    auto e = Error::from_errno("close " + tmp);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    auto e = Error::from_errno("rename " + tmp + " to " + path_);
    ::unlink(tmp.c_str());
    return e;
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

namespace {
struct ProcessExporter {
  std::mutex mu;
  bool env_checked{false};
  std::unique_ptr<MetricsFileExporter> exporter;  // destroyed at exit: stops after a last write
};
ProcessExporter& process_exporter() {
  static ProcessExporter p;
  return p;
}
}  // namespace

bool start_metrics_from_env() noexcept {
  try {
    ProcessExporter& p = process_exporter();
    std::lock_guard lk(p.mu);
    if (p.env_checked) return p.exporter != nullptr;
    p.env_checked = true;
    if (p.exporter) return true;
    const char* file = std::getenv("PARALLAX_METRICS_FILE");
    if (file == nullptr || *file == '\0') return false;
    std::chrono::milliseconds interval(5000);
    if (const char* iv = std::getenv("PARALLAX_METRICS_INTERVAL"); iv != nullptr && *iv != '\0') {
      auto r = parse_metrics_interval(iv);
      if (!r) {
        PLX_LOG(error, "metrics", "PARALLAX_METRICS_INTERVAL: %s; metrics file off",
                r.error().message.c_str());
        return false;
      }
      interval = *r;
    }
    auto e = MetricsFileExporter::start(file, interval);
    if (!e) {
      PLX_LOG(error, "metrics", "PARALLAX_METRICS_FILE: %s; metrics file off",
              e.error().message.c_str());
      return false;
    }
    p.exporter = std::move(*e);
    PLX_LOG(info, "metrics", "writing %s every %lld ms", file,
            static_cast<long long>(interval.count()));
    return true;
  } catch (...) {
    return false;  // out of memory or no thread: no metrics file, the stream goes on
  }
}

Result<void> write_process_metrics_now() {
  ProcessExporter& p = process_exporter();
  std::lock_guard lk(p.mu);
  if (!p.exporter) return err(Errc::failed_precondition, "no metrics file is written");
  return p.exporter->write_now();
}

Result<void> start_process_metrics_file(std::string path, std::chrono::milliseconds interval) {
  ProcessExporter& p = process_exporter();
  std::lock_guard lk(p.mu);
  if (p.exporter)
    return err(Errc::already_exists, "a metrics file is already written: " + p.exporter->path());
  PLX_ASSIGN(p.exporter, MetricsFileExporter::start(std::move(path), interval));
  p.env_checked = true;  // the explicit file wins over the environment
  return {};
}

}  // namespace parallax::observe
