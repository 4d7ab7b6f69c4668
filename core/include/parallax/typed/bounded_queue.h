// SPDX-License-Identifier: MIT OR Apache-2.0
// BoundedQueue<T>: the fixed-capacity blocking queue behind the typed pipeline's thread stages.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace parallax::typed {

/// A multi-producer, multi-consumer FIFO with a capacity fixed at construction (a ring of
/// optional slots allocated once, so memory never grows with the stream). push() blocks while
/// full, pop() blocks while empty. close() wakes everybody: after it push() refuses new items and
/// pop() still drains what is queued, then returns nullopt. Either side may close: the producer
/// to say "end of stream", the consumer to say "stop sending".
template <typename T>
class BoundedQueue {
 public:
  /// capacity must be >= 1 (the typed stages validate it before constructing a queue).
  explicit BoundedQueue(std::size_t capacity) : slots_(capacity == 0 ? 1 : capacity) {}

  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  /// Blocks while the queue is full. Returns false (and drops v) when the queue is closed.
  bool push(T&& v) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || size_ < slots_.size(); });
    if (closed_) return false;
    slots_[(head_ + size_) % slots_.size()].emplace(std::move(v));
    ++size_;
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Blocks while the queue is empty and open. Returns nullopt once closed and drained.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || size_ > 0; });
    if (size_ == 0) return std::nullopt;
    std::optional<T> out(std::move(slots_[head_]));
    slots_[head_].reset();
    head_ = (head_ + 1) % slots_.size();
    --size_;
    lock.unlock();
    not_full_.notify_one();
    return out;
  }

  /// Idempotent. Items already queued stay poppable.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }

 private:
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::vector<std::optional<T>> slots_;  // guarded by mutex_
  std::size_t head_ = 0;                 // guarded by mutex_
  std::size_t size_ = 0;                 // guarded by mutex_
  bool closed_ = false;                  // guarded by mutex_
};

}  // namespace parallax::typed
