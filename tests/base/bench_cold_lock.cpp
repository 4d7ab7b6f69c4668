// SPDX-License-Identifier: MIT OR Apache-2.0
// bench_cold_lock: what one lock and unlock of a free mutex costs on a thread that just slept,
// as the IPC send path takes its connection lock after the producer slept between two buffers
// (and the subscriber its interrupt lock after a futex wait): std::mutex (two calls into libc)
// against base::FutexMutex (two inline atomics), and nothing at all (the timer's own cost).
// Each sample sleeps `gap` first (clock_nanosleep; the vCPU may halt and the host run
// something else on the core), then times one lock+unlock; "warm" repeats it back to back.
// Prints medians and 90th percentiles in ns (CLOCK_MONOTONIC around the pair).
//   bench_cold_lock [samples]   env BENCH_COLD_GAP_US (default 50)
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "base/futex_mutex.h"

namespace {

std::uint64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleep_us(long us) {
  const std::uint64_t until = now_ns() + static_cast<std::uint64_t>(us) * 1000;
  const timespec ts{static_cast<time_t>(until / 1'000'000'000ull),
                    static_cast<long>(until % 1'000'000'000ull)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

template <typename F>
void row(const char* name, int n, long gap_us, F&& pair) {
  std::vector<std::uint64_t> cold, warm;
  cold.reserve(static_cast<std::size_t>(n));
  warm.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    sleep_us(gap_us);
    std::uint64_t t0 = now_ns();
    pair();
    std::uint64_t t1 = now_ns();
    cold.push_back(t1 - t0);
    t0 = now_ns();
    pair();
    t1 = now_ns();
    warm.push_back(t1 - t0);
  }
  auto q = [](std::vector<std::uint64_t>& v, double f) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(f * static_cast<double>(v.size() - 1))];
  };
  const auto c50 = q(cold, 0.5), c90 = q(cold, 0.9), w50 = q(warm, 0.5), w90 = q(warm, 0.9);
  std::printf(
      "%-32s cold (after %ld us asleep): p50 %4llu ns  p90 %4llu ns | warm: p50 %4llu ns  "
      "p90 %4llu ns\n",
      name, gap_us, static_cast<unsigned long long>(c50), static_cast<unsigned long long>(c90),
      static_cast<unsigned long long>(w50), static_cast<unsigned long long>(w90));
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(100, std::atoi(argv[1])) : 5000;
  const char* g = std::getenv("BENCH_COLD_GAP_US");
  const long gap = g != nullptr ? std::max(0L, std::atol(g)) : 50;
  std::mutex m;
  parallax::base::FutexMutex f;
  volatile int sink = 0;
  // Alternating rounds, so that a slow spell of the host does not land on one row only.
  for (int round = 0; round < 2; ++round) {
    row("timer alone", n / 2, gap, [&] { sink = sink + 1; });
    row("std::mutex lock+unlock", n / 2, gap, [&] {
      m.lock();
      m.unlock();
    });
    row("base::FutexMutex lock+unlock", n / 2, gap, [&] {
      f.lock();
      f.unlock();
    });
  }
  return 0;
}
