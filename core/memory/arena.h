// SPDX-License-Identifier: MIT OR Apache-2.0
// The variable-size side of MemoryPool (MemoryPool::create_arena): blocks of any size carved by
// Boost.Interprocess's rbtree_best_fit allocator out of shared segments, one allocator per
// segment, growing by whole segments within a byte budget. Private to core/memory.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "parallax/buffer.h"
#include "parallax/pool.h"
#include "parallax/result.h"
#include "parallax/segment.h"

namespace parallax::memory {

/// The grow function of a pool or arena created without one: a new segment of `first`'s
/// backend and name. A file-backed one cannot grow on its own (unsupported, naming `what`).
std::function<Result<Segment>(std::size_t)> default_grow(const Segment& first, const char* what);

struct MemoryPool::Arena {
  struct Seg;  // one segment and the allocator living at its start

  /// A block of at least `size` bytes: nullopt for try (nothing free now and no growth),
  /// waiting up to `timeout` otherwise (nanoseconds::max() = forever). The core has refs 1.
  Result<detail::BufferCore*> loan(std::size_t size, std::optional<std::chrono::nanoseconds> wait);

  static Result<Arena*> create(Segment first, ArenaOptions opts);
  /// The handle is gone: frees now if no block is out, else the last release frees.
  void orphan() noexcept;

  [[nodiscard]] std::size_t largest_block() const noexcept;
  [[nodiscard]] PoolStats stats() const noexcept;
  [[nodiscard]] std::size_t segment_count() const noexcept {
    return count.load(std::memory_order_acquire);
  }
  [[nodiscard]] const Segment& segment(std::size_t i) const noexcept;

  ~Arena();

  std::uint64_t id{0};
  std::size_t alignment{64};
  std::size_t max_bytes{0};
  std::function<Result<Segment>(std::size_t)> grow_fn;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::array<std::unique_ptr<Seg>, kMaxArenaSegments> segs;
  std::atomic<std::size_t> count{0};
  std::atomic<std::size_t> total_bytes{0};  // of all segments
  std::size_t last_size{0};                 // of the newest segment (growth doubles it)
  std::atomic<std::size_t> bytes_in_use{0};
  std::atomic<std::size_t> high_water{0};
  std::atomic<std::size_t> blocks{0};
  std::atomic<std::size_t> block_high_water{0};
  std::atomic<std::uint64_t> waits{0}, failed{0}, grows{0};
  bool orphaned{false};

 private:
  Result<void> add_segment_locked(Segment seg);
  detail::BufferCore* try_alloc_locked(std::size_t size) noexcept;
  std::size_t largest_block_locked() const noexcept;
  static void release(detail::BufferCore* c) noexcept;
};

}  // namespace parallax::memory
