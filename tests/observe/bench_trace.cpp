// SPDX-License-Identifier: MIT OR Apache-2.0
// What a span site costs: the same small out-of-line function without a span, with a span while
// tracing is off (the default: one byte load and a branch), and with tracing on.
//   bench_trace --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
// Run it without PARALLAX_TRACE in the environment (the "on" case starts its own tracer).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "parallax/trace.h"

namespace {

// Stand-ins for a hot function: a little work that cannot be folded away.
[[gnu::noinline]] std::uint64_t no_span(std::uint64_t x) {
  benchmark::DoNotOptimize(x);
  return x * 2654435761u + 1;
}

[[gnu::noinline]] std::uint64_t with_span(std::uint64_t x) {
  PLX_TRACE_SPAN("bench.span");
  benchmark::DoNotOptimize(x);
  return x * 2654435761u + 1;
}

[[gnu::noinline]] std::uint64_t with_span_arg(std::uint64_t x) {
  PLX_TRACE_SPAN_ARG("bench.span", "x", x);
  benchmark::DoNotOptimize(x);
  return x * 2654435761u + 1;
}

void BM_NoSpan(benchmark::State& state) {
  std::uint64_t x = 1;
  for (auto _ : state)
    x = no_span(x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_NoSpan);

void BM_SpanOff(benchmark::State& state) {
  if (parallax::observe::tracing()) state.SkipWithError("tracing is on (PARALLAX_TRACE set?)");
  std::uint64_t x = 1;
  for (auto _ : state)
    x = with_span(x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_SpanOff);

void BM_SpanArgOff(benchmark::State& state) {
  if (parallax::observe::tracing()) state.SkipWithError("tracing is on (PARALLAX_TRACE set?)");
  std::uint64_t x = 1;
  for (auto _ : state)
    x = with_span_arg(x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_SpanArgOff);

// Tracing on: two clock reads and a ring slot per span. The ring is flushed (outside the timed
// part) before it fills, so no event is dropped.
void BM_SpanOn(benchmark::State& state) {
  using parallax::observe::Tracer;
  const std::string path = "/tmp/plx-bench-trace-" + std::to_string(::getpid()) + ".json";
  if (!Tracer::start(path, 1 << 16).ok()) {
    state.SkipWithError("cannot start tracing");
    return;
  }
  std::uint64_t x = 1;
  std::size_t n = 0;
  for (auto _ : state) {
    x = with_span(x);
    if (++n == (1 << 15)) [[unlikely]] {
      state.PauseTiming();
      if (!Tracer::flush().ok()) state.SkipWithError("flush failed");
      n = 0;
      state.ResumeTiming();
    }
  }
  benchmark::DoNotOptimize(x);
  if (Tracer::dropped() != 0) state.SkipWithError("events were dropped");
  if (!Tracer::stop().ok()) state.SkipWithError("stop failed");
  std::remove(path.c_str());
}
BENCHMARK(BM_SpanOn);

}  // namespace

BENCHMARK_MAIN();
