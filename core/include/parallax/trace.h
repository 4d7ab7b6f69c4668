// SPDX-License-Identifier: MIT OR Apache-2.0
// Tracing: RAII spans on the hot paths, recorded into bounded per-thread rings and written as
// Chrome trace event JSON (ui.perfetto.dev, chrome://tracing), one file per process.
//
// Off by default. PARALLAX_TRACE=out.json in the environment (read once, at the first span)
// writes out.<pid>.json; a `%p` in the value is replaced by the pid instead (trace-%p.json).
// Tracer::start() does the same from code. While tracing is off a span site costs one relaxed
// load of a byte and one predictable branch (measured in tests/observe/bench_trace.cpp and
// docs/observability.md).
//
// Timestamps are CLOCK_MONOTONIC (the clock of the transport's send stamps), so the files of
// two processes on one machine line up when loaded together.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "parallax/result.h"

namespace parallax::observe {

namespace trace_detail {
enum : std::uint8_t { kUnknown = 0, kOff = 1, kOn = 2 };
/// kUnknown until the first span reads PARALLAX_TRACE; then kOff or kOn.
extern std::atomic<std::uint8_t> g_state;
/// The first use (reads the environment once) or tracing on: true when spans record.
[[nodiscard]] bool enabled_slow() noexcept;
/// CLOCK_MONOTONIC in nanoseconds.
[[nodiscard]] std::uint64_t now_ns() noexcept;
/// Appends one complete event to the calling thread's ring (dropped and counted when full).
/// name, category and arg_key must have static storage duration (string literals).
void record(const char* name, const char* category, std::uint64_t begin_ns, std::uint64_t end_ns,
            const char* arg_key, std::int64_t arg) noexcept;
}  // namespace trace_detail

/// True while spans record. When off this is one relaxed byte load and one branch.
[[nodiscard]] inline bool tracing() noexcept {
  if (trace_detail::g_state.load(std::memory_order_relaxed) == trace_detail::kOff) [[likely]]
    return false;
  return trace_detail::enabled_slow();
}

/// Process-wide tracing control. Thread-safe.
class Tracer {
 public:
  /// Events kept per thread between two flushes (a power of two; 48 bytes each).
  static constexpr std::size_t kDefaultEventsPerThread = std::size_t{1} << 16;
  /// Threads with a ring of their own at the same time; the events of more are dropped.
  static constexpr std::size_t kMaxThreads = 256;

  /// Starts recording into `path` (`%p` is replaced by the pid; no pid is added otherwise).
  /// The file is created at once as a valid, empty trace. invalid_argument for an empty path
  /// or events_per_thread 0, failed_precondition when tracing is already on (by the
  /// environment or an earlier start()), errno errors when the file cannot be created.
  [[nodiscard]] static Result<void> start(std::string path,
                                          std::size_t events_per_thread = kDefaultEventsPerThread);
  [[nodiscard]] static bool enabled() noexcept { return tracing(); }
  /// Appends every event recorded so far to the file, which is a complete JSON document after
  /// each flush; recording goes on. Returns the number of events written by this call.
  /// failed_precondition when tracing was never started. Also runs at process exit.
  [[nodiscard]] static Result<std::size_t> flush();
  /// flush(), then stops recording and closes the file. Returns the events written by it.
  [[nodiscard]] static Result<std::size_t> stop();
  /// The file being written (after `%p` / pid expansion); empty when tracing never started.
  [[nodiscard]] static std::string path();
  /// Events dropped since start because a thread's ring was full or there were more than
  /// kMaxThreads tracing threads (also written to the file's otherData.dropped_events).
  [[nodiscard]] static std::uint64_t dropped() noexcept;
  /// CLOCK_MONOTONIC in nanoseconds (the clock of the trace and of the transport stamps).
  [[nodiscard]] static std::uint64_t now_ns() noexcept { return trace_detail::now_ns(); }
  /// Records one complete event [begin_ns, begin_ns + duration_ns) on the calling thread.
  /// name and category must be string literals (they are kept by pointer until the flush).
  static void record(const char* name, const char* category, std::uint64_t begin_ns,
                     std::uint64_t duration_ns) noexcept {
    if (tracing())
      trace_detail::record(name, category, begin_ns, begin_ns + duration_ns, nullptr, 0);
  }
};

/// RAII span: records [construction, destruction) as one complete ("X") event when tracing
/// is on. Names are string literals, "area.what" (pool.loan, ipc.send...).
class Span {
 public:
  explicit Span(const char* name, const char* category = "parallax") noexcept
      : name_(name), category_(category) {
    if (tracing()) [[unlikely]]
      begin_ = trace_detail::now_ns();
  }
  ~Span() {
    if (begin_ != 0) [[unlikely]]
      trace_detail::record(name_, category_, begin_, trace_detail::now_ns(), key_, arg_);
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  /// True when this span records (tracing was on at its start).
  [[nodiscard]] bool active() const noexcept { return begin_ != 0; }
  /// One integer argument shown with the event (key: a string literal).
  void arg(const char* key, std::int64_t value) noexcept {
    key_ = key;
    arg_ = value;
  }

 private:
  const char* name_;
  const char* category_;
  const char* key_{nullptr};
  std::int64_t arg_{0};
  std::uint64_t begin_{0};  // 0: not recording (CLOCK_MONOTONIC is never 0)
};

}  // namespace parallax::observe

#define PLX_TRACE_CONCAT2_(a, b) a##b
#define PLX_TRACE_CONCAT_(a, b) PLX_TRACE_CONCAT2_(a, b)
/// Traces the enclosing scope: `PLX_TRACE_SPAN("queue.push");` (name must be a literal).
#define PLX_TRACE_SPAN(name) ::parallax::observe::Span PLX_TRACE_CONCAT_(plx_span_, __LINE__)(name)
/// Same, with one integer argument evaluated only when tracing is on:
/// `PLX_TRACE_SPAN_ARG("ipc.send", "bytes", buffer.size());`
#define PLX_TRACE_SPAN_ARG(name, key, value)                              \
  ::parallax::observe::Span PLX_TRACE_CONCAT_(plx_span_, __LINE__)(name); \
  if (PLX_TRACE_CONCAT_(plx_span_, __LINE__).active()) [[unlikely]]       \
  PLX_TRACE_CONCAT_(plx_span_, __LINE__).arg(key, static_cast<std::int64_t>(value))
