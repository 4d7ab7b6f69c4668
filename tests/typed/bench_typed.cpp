// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_typed: map + filter + fold over 10 M integers, as a typed pipeline, as a hand-written loop
// and as std::ranges views, in one run, so the pipeline's overhead is read as a ratio.
#include <parallax/typed.h>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <numeric>
#include <ranges>
#include <vector>

namespace {

constexpr std::size_t kItems = 10'000'000;

const std::vector<std::int32_t>& data() {
  static const std::vector<std::int32_t> v = [] {
    std::vector<std::int32_t> d(kItems);
    std::uint32_t x = 12345;  // xorshift: values the compiler cannot fold away
    for (auto& e : d) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      e = static_cast<std::int32_t>(x % 1000);
    }
    return d;
  }();
  return v;
}

// The same three steps everywhere: y = 3x + 1, keep even y, sum as 64-bit.
inline std::int32_t step_map(std::int32_t x) {
  return 3 * x + 1;
}
inline bool step_keep(std::int32_t y) {
  return (y & 1) == 0;
}

void BM_HandLoop(benchmark::State& state) {
  const auto& v = data();
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (std::int32_t x : v) {
      std::int32_t y = step_map(x);
      if (step_keep(y)) sum += y;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kItems));
}

void BM_Ranges(benchmark::State& state) {
  const auto& v = data();
  for (auto _ : state) {
    // Lambdas, not function pointers, so the views get the same inlining chance as the others.
    auto view = v | std::views::transform([](std::int32_t x) { return step_map(x); }) |
                std::views::filter([](std::int32_t y) { return step_keep(y); });
    std::int64_t sum = 0;
    for (std::int32_t y : view)
      sum += y;
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kItems));
}

void BM_TypedPipeline(benchmark::State& state) {
  using namespace parallax::typed;
  const auto& v = data();
  for (auto _ : state) {
    auto r =
        pipeline(from_iter(v))
            .then(map([](std::int32_t x) { return step_map(x); }))
            .then(filter([](std::int32_t y) { return step_keep(y); }))
            .sink(fold(std::int64_t{0}, [](std::int64_t acc, std::int32_t y) { return acc + y; }))
            .run();
    std::int64_t sum = r.value();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kItems));
}

BENCHMARK(BM_HandLoop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Ranges)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TypedPipeline)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
