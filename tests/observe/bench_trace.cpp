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

// The same, in a function that calls another (as every traced function does: loan, send,
// receive). A leaf function pays for the stack frame the span's slow path needs; these do not.
[[gnu::noinline]] void opaque(std::uint64_t& x) {
  benchmark::DoNotOptimize(x);
}

[[gnu::noinline]] std::uint64_t no_span_calls(std::uint64_t x) {
  opaque(x);
  return x * 2654435761u + 1;
}

[[gnu::noinline]] std::uint64_t with_span_calls(std::uint64_t x) {
  PLX_TRACE_SPAN("bench.span");
  opaque(x);
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

void BM_NoSpanCalls(benchmark::State& state) {
  std::uint64_t x = 1;
  for (auto _ : state)
    x = no_span_calls(x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_NoSpanCalls);

void BM_SpanOffCalls(benchmark::State& state) {
  if (parallax::observe::tracing()) state.SkipWithError("tracing is on (PARALLAX_TRACE set?)");
  std::uint64_t x = 1;
  for (auto _ : state)
    x = with_span_calls(x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_SpanOffCalls);

// Tracing on: two clock reads and a ring slot per span. A fixed number of iterations that fits
// the ring, so nothing is dropped and nothing is written while timing (stop() writes ~8 MiB).
constexpr int kOnIterations = 1 << 16;

void BM_SpanOn(benchmark::State& state) {
  using parallax::observe::Tracer;
  const std::string path = "/tmp/plx-bench-trace-" + std::to_string(::getpid()) + ".json";
  if (!Tracer::start(path, kOnIterations).ok()) {
    state.SkipWithError("cannot start tracing");
    return;
  }
  std::uint64_t x = 1;
  for (auto _ : state)
    x = with_span_calls(x);
  benchmark::DoNotOptimize(x);
  if (Tracer::dropped() != 0) state.SkipWithError("events were dropped");
  if (!Tracer::stop().ok()) state.SkipWithError("stop failed");
  std::remove(path.c_str());
}
BENCHMARK(BM_SpanOn)->Iterations(kOnIterations);

}  // namespace

BENCHMARK_MAIN();
