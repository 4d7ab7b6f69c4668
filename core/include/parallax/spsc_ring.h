// SPDX-License-Identifier: MIT OR Apache-2.0
// SpscRing<T>: a bounded single-producer / single-consumer ring with batch hand-over and a
// sleeping protocol, the thread boundary of the dynamic `queue` element and the typed `queue`
// stage.
#pragma once

#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "parallax/cpu_relax.h"

namespace parallax {

/// A fixed ring of `capacity()` slots (a power of two) shared by exactly one producer thread
/// and one consumer thread (or any threads that serialize each role among themselves).
///
/// Hand-over is lock-free: the producer fills slot(), then publish() makes it visible with one
/// store; the consumer sees available() items at once, moves them out with at(i) and frees them
/// with consume(n), one store per batch. Each side caches the other's index and reads the
/// shared one only when its cached view says empty / full.
///
/// Sleeping: a side that finds nothing to do may wait_readable() / wait_consumed(). It raises
/// its "sleeping" flag and re-checks the index (both seq_cst), and the other side checks the
/// flag after each publish()/consume() (seq_cst too): one of the two always sees the other, so
/// no wake-up is lost (Dekker). Only a side that actually sleeps costs a mutex and a futex; a
/// running stream pays one uncontended load per hand-over. stop() is any predicate that some
/// thread makes true and then calls wake_all(): every wait re-evaluates it under the mutex
/// before sleeping, so it returns promptly.
template <typename T>
class SpscRing {
 public:
  /// Capacity is rounded up to a power of two (at least 2).
  explicit SpscRing(std::size_t min_capacity)
      : cap_(std::bit_ceil(min_capacity < 2 ? std::size_t{2} : min_capacity)),
        mask_(cap_ - 1),
        slots_(std::make_unique<T[]>(cap_)) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }

  /// Items queued now, from any thread (a snapshot).
  [[nodiscard]] std::size_t size() const noexcept {
    const std::size_t h = head_.load(std::memory_order_acquire);
    const std::size_t t = tail_.load(std::memory_order_acquire);
    return t - h;
  }

  // ---- producer side ----

  /// Items queued as the producer sees them (exact from below: the consumer only removes).
  [[nodiscard]] std::size_t producer_size() noexcept {
    head_cache_ = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_relaxed) - head_cache_;
  }
  /// True when slot() may be filled and fewer than `limit` (<= capacity()) items are queued;
  /// refreshes the cached consumer index only when the cached view says no.
  [[nodiscard]] bool writable(std::size_t limit = SIZE_MAX) noexcept {
    if (limit > cap_) limit = cap_;
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ < limit) return true;
    head_cache_ = head_.load(std::memory_order_acquire);
    return t - head_cache_ < limit;
  }
  /// The slot the next publish() hands over (only after writable()), and its sequence number.
  [[nodiscard]] T& slot() noexcept { return slots_[tail_.load(std::memory_order_relaxed) & mask_]; }
  [[nodiscard]] std::size_t tail_index() const noexcept {
    return tail_.load(std::memory_order_relaxed);
  }
  /// The producer's view of the oldest item's sequence number (as of producer_size/writable).
  [[nodiscard]] std::size_t head_index_cached() const noexcept { return head_cache_; }
  /// Hands slot() over to the consumer and wakes it if it sleeps.
  void publish() noexcept {
    tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
    if (consumer_sleeping_.load(std::memory_order_seq_cst)) [[unlikely]]
      wake(consumer_sleeping_, readable_cv_);
  }
  /// Waits until the consumer has freed something since the producer saw head index `seen`
  /// (head_index_cached() after producer_size() or writable()), or stop(). Returns true on
  /// progress. Use it for "no slot free" as for any limit of the producer's own (bytes, time).
  template <typename Stop>
  bool wait_consumed(std::size_t seen, Stop&& stop, int spins = 64) {
    return wait(
        producer_sleeping_, writable_cv_,
        [&] { return head_.load(std::memory_order_acquire) != seen; },
        [&] { return head_.load(std::memory_order_seq_cst) != seen; }, stop, spins);
  }

  // ---- consumer side ----

  /// Items the consumer may take now (refreshes the cached producer index only when needed).
  [[nodiscard]] std::size_t available() noexcept {
    const std::size_t h = head_.load(std::memory_order_relaxed);
    if (tail_cache_ != h) return tail_cache_ - h;
    tail_cache_ = tail_.load(std::memory_order_acquire);
    return tail_cache_ - h;
  }
  /// The i-th oldest item (i < available()).
  [[nodiscard]] T& at(std::size_t i) noexcept {
    return slots_[(head_.load(std::memory_order_relaxed) + i) & mask_];
  }
  /// Frees the n oldest items (already moved out or reset) and wakes the producer if it sleeps.
  void consume(std::size_t n) noexcept {
    if (n == 0) return;
    head_.store(head_.load(std::memory_order_relaxed) + n, std::memory_order_seq_cst);
    if (producer_sleeping_.load(std::memory_order_seq_cst)) [[unlikely]]
      wake(producer_sleeping_, writable_cv_);
  }
  /// Waits until something is queued or stop(); returns true when something was queued, false
  /// only when stop() said so. Reads only the shared indices (not the consumer's cache), so
  /// other threads that take the consumer role under a lock of their own (a flush clearing the
  /// ring) may run meanwhile: after true, available() may then be 0 again.
  template <typename Stop>
  bool wait_readable(Stop&& stop, int spins = 64) {
    return wait(
        consumer_sleeping_, readable_cv_,
        [&] {
          return tail_.load(std::memory_order_acquire) != head_.load(std::memory_order_acquire);
        },
        [&] {
          return tail_.load(std::memory_order_seq_cst) != head_.load(std::memory_order_seq_cst);
        },
        stop, spins);
  }

  // ---- either side ----

  /// Wakes every waiter so it re-evaluates its stop predicate. Call after making it true.
  void wake_all() {
    {
      std::lock_guard l(mu_);
      consumer_sleeping_.store(false, std::memory_order_relaxed);
      producer_sleeping_.store(false, std::memory_order_relaxed);
    }
    readable_cv_.notify_all();
    writable_cv_.notify_all();
  }

 private:
  void wake(std::atomic<bool>& flag, std::condition_variable& cv) {
    {
      std::lock_guard l(mu_);
      flag.store(false, std::memory_order_relaxed);
    }
    cv.notify_one();
  }

  // ready(): the cheap check; recheck(): the same with a seq_cst load of the other side's index,
  // made after raising the flag (the Dekker half that pairs with publish()/consume()).
  template <typename Ready, typename Recheck, typename Stop>
  bool wait(std::atomic<bool>& flag, std::condition_variable& cv, Ready&& ready, Recheck&& recheck,
            Stop& stop, int spins) {
    for (int i = 0; i < spins; ++i) {
      if (ready()) return true;
      if (stop()) return false;
      cpu_relax();
    }
    std::unique_lock l(mu_);
    bool progress = false;
    for (;;) {
      flag.store(true, std::memory_order_seq_cst);
      if (recheck()) {
        progress = true;
        break;
      }
      if (stop()) break;
      cv.wait(l);
    }
    flag.store(false, std::memory_order_relaxed);
    // Not recheck() again once it said yes: another thread holding the consumer role (a
    // leaky queue's producer dropping the oldest items, a flush) may have emptied the ring in
    // between, and a false here means "stop" to the caller, which would then end its loop
    // with items still to come (the queue element's thread did, and its pipeline never saw
    // EOS: QueueRing.LeakyDownstreamUnderPressureReachesEos under TSan).
    return progress || recheck();
  }

  const std::size_t cap_;
  const std::size_t mask_;
  std::unique_ptr<T[]> slots_;
  // Producer's line: its index and its cached view of the consumer's.
  alignas(64) std::atomic<std::size_t> tail_{0};
  std::size_t head_cache_{0};
  // Consumer's line.
  alignas(64) std::atomic<std::size_t> head_{0};
  std::size_t tail_cache_{0};
  alignas(64) std::atomic<bool> consumer_sleeping_{false};
  std::atomic<bool> producer_sleeping_{false};
  std::mutex mu_;
  std::condition_variable readable_cv_;
  std::condition_variable writable_cv_;
};

}  // namespace parallax
