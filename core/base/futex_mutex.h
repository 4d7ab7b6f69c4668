// SPDX-License-Identifier: MIT OR Apache-2.0
// A mutex on one futex word (private to libparallax), for the locks on the IPC latency path:
// taking and releasing it when nobody else holds it is one compare-exchange and one exchange,
// inline. std::mutex is a call into libc for each (pthread_mutex_lock/unlock), and after the
// thread slept between two buffers those calls are cold: tests/base/bench_cold_lock measures
// the pair 50 us after a sleep (docs/benchmarks.md has its figures). Contended, it spins
// briefly and then sleeps on the futex (the three states of Drepper's "Futexes Are Tricky",
// mutex 2). Not recursive, no owner checks, no priority inheritance; satisfies Lockable, so
// std::lock_guard and std::unique_lock take it.
#pragma once

#include <atomic>
#include <cstdint>

namespace parallax::base {

class FutexMutex {
 public:
  FutexMutex() = default;
  FutexMutex(const FutexMutex&) = delete;
  FutexMutex& operator=(const FutexMutex&) = delete;

  void lock() noexcept {
    if (!try_lock()) [[unlikely]]
      lock_slow();
  }
  [[nodiscard]] bool try_lock() noexcept {
    std::uint32_t c = kFree;
    return state_.compare_exchange_strong(c, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() noexcept {
    if (state_.exchange(kFree, std::memory_order_release) == kContended) [[unlikely]]
      wake_one();
  }

 private:
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kLocked = 1;     // held, nobody sleeps on it
  static constexpr std::uint32_t kContended = 2;  // held, someone may sleep on it

  void lock_slow() noexcept;
  void wake_one() noexcept;

  std::atomic<std::uint32_t> state_{kFree};
};

}  // namespace parallax::base
