// SPDX-License-Identifier: MIT OR Apache-2.0
// The futex hand-over of wire version 3 reduced to its bones, for the benchmarks' floors
// (bench_ipc's futex rows, plx_gst_app --wake-peer): raw system calls, nothing of libparallax.
// The receiver says it sleeps (flag 1), looks at the counter again and FUTEX_WAITs on the flag
// while the counter has not moved; the sender stores the counter, and if it finds the flag set,
// clears it and FUTEX_WAKEs. Both sides' store-then-load are seq_cst (a two-flag handshake: with
// a weaker store the sender's load could pass it and a wake-up be lost).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace parallax::test {

/// Receiver: returns once `seq` is no longer `seen`.
inline void futex_sleep_while(std::atomic<std::uint32_t>& sleeping,
                              const std::atomic<std::uint64_t>& seq, std::uint64_t seen) noexcept {
  sleeping.store(1, std::memory_order_seq_cst);
  while (seq.load(std::memory_order_seq_cst) == seen) {
    (void)::syscall(SYS_futex, &sleeping, FUTEX_WAIT, 1, nullptr, nullptr, 0);
    sleeping.store(1, std::memory_order_seq_cst);
  }
  sleeping.store(0, std::memory_order_relaxed);
}

/// Sender: stores `value` into `seq` and wakes the receiver if it said it sleeps. True when a
/// FUTEX_WAKE was made.
inline bool futex_post(std::atomic<std::uint64_t>& seq, std::uint64_t value,
                       std::atomic<std::uint32_t>& sleeping) noexcept {
  seq.store(value, std::memory_order_seq_cst);
  if (sleeping.load(std::memory_order_seq_cst) == 0 ||
      sleeping.exchange(0, std::memory_order_seq_cst) == 0)
    return false;
  (void)::syscall(SYS_futex, &sleeping, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  return true;
}

}  // namespace parallax::test
