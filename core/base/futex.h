// SPDX-License-Identifier: MIT OR Apache-2.0
// The base layer's futex helpers (private to libparallax): sleep while a 32-bit word holds a
// value, bounded by a deadline, and wake the sleepers of a word. One copy for the memory pool
// and any other core code that sleeps on a word in memory instead of on an fd.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/wait.h"
#include "parallax/result.h"

namespace parallax::base {

/// Who may sleep on and wake a word. A futex is keyed by its address: `process_private` keys it
/// by the virtual address (cheaper; only threads of this process can meet on it), `shared` by
/// the underlying page (a word in a MAP_SHARED mapping, a memfd or a shared anonymous mapping
/// inherited over fork(), that several processes map, at any address). The waiters and the
/// wakers of one word must use the same scope: a private wake never reaches a shared waiter.
enum class FutexScope : std::uint8_t { process_private, shared };

/// How futex_wait() ended. Every outcome may be spurious from the caller's point of view (a
/// wake meant for another value, a wake of a reused address): callers re-check their condition
/// and wait again.
enum class FutexWait : std::uint8_t {
  woken,          // a futex_wake() on the word ended the sleep
  value_changed,  // the word did not hold `expected` when the kernel looked (EAGAIN)
  timed_out,      // the deadline passed
};

/// Sleeps while `*word == expected`, until a futex_wake() on the word or `deadline` (steady
/// clock, i.e. CLOCK_MONOTONIC; kNoDeadline waits without one). A signal handler that runs
/// meanwhile (EINTR) does not end the wait: it resumes until the same deadline. A deadline
/// already past returns timed_out without sleeping (value_changed if the word differs). `word`
/// must be 4-byte aligned; in a shared mapping, use FutexScope::shared. Errors are the
/// kernel's for a bad address or operation (EFAULT, EINVAL, ENOSYS), not a peer's doing.
[[nodiscard]] Result<FutexWait> futex_wait(const std::uint32_t* word, std::uint32_t expected,
                                           Deadline deadline = kNoDeadline,
                                           FutexScope scope = FutexScope::process_private);
[[nodiscard]] inline Result<FutexWait> futex_wait(const std::atomic<std::uint32_t>& word,
                                                  std::uint32_t expected,
                                                  Deadline deadline = kNoDeadline,
                                                  FutexScope scope = FutexScope::process_private) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return futex_wait(reinterpret_cast<const std::uint32_t*>(&word), expected, deadline, scope);
}

/// Wakes at most `count` sleepers of `word` (futex_wake_one: 1; futex_wake_all: every one) and
/// returns how many were woken. The kernel never reads or writes the word: a process_private
/// wake uses only the address, so it is safe even when the memory was freed since (a pool that
/// a release frees right after its push wakes its sleepers this way); a shared wake looks up
/// the page, so the mapping must still exist (an unmapped word: EFAULT, counted as nobody
/// woken, which is also what a wake with no sleeper returns). Change the word before waking,
/// or a sleeper that looks again goes back to sleep.
int futex_wake(const std::uint32_t* word, int count,
               FutexScope scope = FutexScope::process_private) noexcept;
inline int futex_wake_one(const std::uint32_t* word,
                          FutexScope scope = FutexScope::process_private) noexcept {
  return futex_wake(word, 1, scope);
}
int futex_wake_all(const std::uint32_t* word,
                   FutexScope scope = FutexScope::process_private) noexcept;
inline int futex_wake_one(const std::atomic<std::uint32_t>& word,
                          FutexScope scope = FutexScope::process_private) noexcept {
  return futex_wake_one(reinterpret_cast<const std::uint32_t*>(&word), scope);
}
inline int futex_wake_all(const std::atomic<std::uint32_t>& word,
                          FutexScope scope = FutexScope::process_private) noexcept {
  return futex_wake_all(reinterpret_cast<const std::uint32_t*>(&word), scope);
}

}  // namespace parallax::base
