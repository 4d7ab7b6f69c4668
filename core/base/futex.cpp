// SPDX-License-Identifier: MIT OR Apache-2.0
// Futex waits and wake-ups of the base layer (see futex.h), and FutexMutex's slow paths
// (futex_mutex.h).
#include "base/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

#include "base/futex_mutex.h"
#include "parallax/cpu_relax.h"

namespace parallax::base {

namespace {

int op_of(int op, FutexScope scope) noexcept {
  return scope == FutexScope::process_private ? (op | FUTEX_PRIVATE_FLAG) : op;
}

}  // namespace

Result<FutexWait> futex_wait(const std::uint32_t* word, std::uint32_t expected, Deadline deadline,
                             FutexScope scope) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (std::chrono::steady_clock on
  // Linux), so a wait resumed after a signal keeps the caller's deadline without recomputing
  // the time left.
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline != kNoDeadline) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    if (ns <= 0) {
      ts = {};  // the epoch: long past
    } else {
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
    }
    tsp = &ts;
  }
  for (;;) {
    const long r = ::syscall(SYS_futex, word, op_of(FUTEX_WAIT_BITSET, scope), expected, tsp,
                             nullptr, FUTEX_BITSET_MATCH_ANY);
    if (r == 0) return FutexWait::woken;
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:
        return FutexWait::value_changed;
      case ETIMEDOUT:
        return FutexWait::timed_out;
      default:
        return Error::from_errno("futex wait");
    }
  }
}

int futex_wake(const std::uint32_t* word, int count, FutexScope scope) noexcept {
  const long r = ::syscall(SYS_futex, word, op_of(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

int futex_wake_all(const std::uint32_t* word, FutexScope scope) noexcept {
  return futex_wake(word, INT_MAX, scope);
}

// ---- FutexMutex --------------------------------------------------------------------------------

void FutexMutex::lock_slow() noexcept {
  // A short spin first: the holders of the IPC locks keep them for a few hundred nanoseconds
  // and never across I/O, so a sleep would usually cost more than the wait.
  for (int i = 0; i < 64; ++i) {
    if (state_.load(std::memory_order_relaxed) == kFree && try_lock()) return;
    cpu_relax();
  }
  // Say that someone sleeps (kContended) and sleep while it is held; whoever takes it from
  // here takes it as kContended, so its unlock wakes the next sleeper.
  while (state_.exchange(kContended, std::memory_order_acquire) != kFree) {
    // Any outcome (woken, value changed, or an error the kernel gives only for a bad address,
    // which this word is not) ends in a new look at the word above.
    (void)futex_wait(state_, kContended);
  }
}

void FutexMutex::wake_one() noexcept {
  futex_wake_one(state_);  // how many woke does not matter: the word says the rest
}

}  // namespace parallax::base
