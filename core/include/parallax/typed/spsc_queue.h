// SPDX-License-Identifier: MIT OR Apache-2.0
// SpscQueue<T>: the blocking push/pop/close face of an SpscRing, for the typed `parallel` stage.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <utility>

#include "parallax/spsc_ring.h"

namespace parallax::typed {

/// BoundedQueue's contract (push blocks while full, pop blocks while empty, close() wakes both:
/// after it push() refuses and pop() drains what is queued, then returns nullopt) for exactly
/// one producer thread and one consumer thread. Items are handed over through an SpscRing:
/// no lock while both sides run, a mutex and a futex only for a side that sleeps.
template <typename T>
class SpscQueue {
 public:
  /// capacity must be >= 1; at most `capacity` items are queued.
  explicit SpscQueue(std::size_t capacity) : limit_(capacity == 0 ? 1 : capacity), ring_(limit_) {}

  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;

  /// Producer thread. Blocks while full. Returns false (and drops v) when closed.
  bool push(T&& v) {
    while (!ring_.writable(limit_)) {
      if (closed()) return false;
      static_cast<void>(ring_.wait_consumed(ring_.head_index_cached(),
                                            [&] { return closed(); }));  // loop re-checks
    }
    if (closed()) return false;
    ring_.slot().emplace(std::move(v));
    ring_.publish();
    return true;
  }

  /// Consumer thread. Blocks while empty and open; nullopt once closed and drained.
  std::optional<T> pop() {
    while (ring_.available() == 0) {
      if (!ring_.wait_readable([&] { return closed(); }) && ring_.available() == 0)
        return std::nullopt;  // closed and nothing was published before
    }
    T v = std::move(*ring_.at(0));
    ring_.at(0).reset();
    ring_.consume(1);
    return std::optional<T>(std::in_place, std::move(v));
  }

  /// Either side; idempotent. Items already queued stay poppable.
  void close() {
    closed_.store(true, std::memory_order_seq_cst);
    ring_.wake_all();
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return limit_; }

 private:
  [[nodiscard]] bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  std::size_t limit_;
  SpscRing<std::optional<T>> ring_;
  std::atomic<bool> closed_{false};
};

}  // namespace parallax::typed
