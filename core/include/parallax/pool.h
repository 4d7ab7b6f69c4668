// SPDX-License-Identifier: MIT OR Apache-2.0
// MemoryPool: fixed-size slots carved from segments. Lock-free loan, wait-free-ish release
// (one CAS), blocking loans with timeouts, growth by whole segments up to a limit.
// Or, made with create_arena(), variable-size blocks (Boost.Interprocess rbtree_best_fit inside
// each segment) growing by segments within a byte budget: for streams whose buffers vary.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "parallax/buffer.h"
#include "parallax/result.h"
#include "parallax/segment.h"

namespace parallax::memory {

/// Most slots one pool can hold (across all its segments): the free list packs slot indices
/// into 16 bits so its ABA tag can be 29 bits wide.
inline constexpr std::size_t kMaxPoolSlots = 65535;

struct PoolOptions {
  /// Slot alignment inside the segment: a power of two, at least 1. Slot size is rounded up.
  std::size_t alignment{64};
  /// How many segments the pool may hold in total (1 = no growth).
  std::size_t max_segments{1};
  /// Makes the segments added by growth; defaults to the first segment's backend and size.
  std::function<Result<Segment>(std::size_t size)> grow{};
  /// Whether a loan that finds no free slot grows the pool (up to max_segments). false: only
  /// grow() adds segments (the IPC publisher grows its pool as subscribers join, and keeps
  /// loans under backpressure instead of growing to the limit).
  bool grow_on_loan{true};
};

/// Options of a variable-size pool (MemoryPool::create_arena).
struct ArenaOptions {
  /// Block alignment (and size granularity) inside a segment: a power of two, 16..4096.
  std::size_t alignment{64};
  /// Most bytes of segments the arena may hold in total (the first segment included). A block
  /// that no segment could hold even when empty adds a segment (at least twice the newest one
  /// and room for four such blocks) while the total stays within this budget. A full arena
  /// does not grow: loans wait for blocks to come back (backpressure).
  std::size_t max_bytes{std::size_t{256} << 20};
  /// Makes the segments added by growth; defaults to the first segment's backend.
  std::function<Result<Segment>(std::size_t size)> grow{};
};

/// Most segments one arena holds.
inline constexpr std::size_t kMaxArenaSegments = 32;

struct PoolStats {
  std::size_t slot_size{0};   ///< arenas: the largest block a loan can get now (see slot_size())
  std::size_t capacity{0};    ///< slots in all segments
  std::size_t in_use{0};      ///< slots loaned or referenced right now
  std::size_t high_water{0};  ///< the most slots ever in use at once
  std::size_t segments{0};
  std::uint64_t waits{0};         ///< loans that had to block
  std::uint64_t failed_loans{0};  ///< loans refused (exhausted, timeout)
  std::uint64_t grows{0};         ///< segments added after creation
  // Byte view (both kinds; for a slot pool, slots x slot size).
  std::size_t bytes_capacity{0};    ///< bytes of all segments
  std::size_t bytes_in_use{0};      ///< bytes of the blocks/slots loaned or referenced now
  std::size_t bytes_high_water{0};  ///< the most bytes ever in use at once
  bool variable_size{false};        ///< made by create_arena()
};

/// A pool of fixed-size slots. Always handled through std::shared_ptr; Loans and Buffers keep
/// the slots' memory valid on their own, so the pool handle may be dropped before them.
class MemoryPool {
 public:
  /// Carves `segment` into slots of `slot_size` bytes (rounded up to opts.alignment).
  [[nodiscard]] static Result<std::shared_ptr<MemoryPool>> create(Segment segment,
                                                                  std::size_t slot_size,
                                                                  PoolOptions opts = {});
  /// Adds one segment's worth of slots now (PoolOptions::grow makes it). false when the pool
  /// already holds max_segments; arenas: unsupported.
  [[nodiscard]] Result<bool> grow();
  /// Slot pools: how many segments it may hold (PoolOptions::max_segments). Arenas: 0.
  [[nodiscard]] std::size_t max_segments() const noexcept;

  /// A variable-size pool over `segment`: loans of any size up to what the budget allows.
  /// capacity()/in_use() count bytes; slot_size() is the largest block it can hand out.
  [[nodiscard]] static Result<std::shared_ptr<MemoryPool>> create_arena(Segment segment,
                                                                        ArenaOptions opts = {});
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  /// A free slot, growing the pool if allowed; blocks until one returns otherwise.
  [[nodiscard]] Result<Loan> loan() { return loan_for(std::chrono::nanoseconds::max()); }
  /// A free slot or resource_exhausted at once (growing first if allowed).
  [[nodiscard]] Result<Loan> try_loan() {
    if (detail::BufferCore* c = pop_fast()) [[likely]]
      return Loan(c, c->capacity);
    return try_loan_slow();
  }
  /// A free slot, waiting at most `timeout` (timeout error after).
  [[nodiscard]] Result<Loan> loan_for(std::chrono::nanoseconds timeout) {
    if (detail::BufferCore* c = pop_fast()) [[likely]]
      return Loan(c, c->capacity);
    return loan_for_slow(timeout);
  }
  // Sized loans (both kinds): the loan's size() is `size`. A slot pool refuses a size above
  // its slot with invalid_argument; an arena refuses a size it can never satisfy within its
  // budget with out_of_range (whose message names the budget), and otherwise grows or
  // waits like the calls above. The unsized calls on an arena are invalid_argument.
  [[nodiscard]] Result<Loan> loan(std::size_t size);
  [[nodiscard]] Result<Loan> try_loan(std::size_t size);
  [[nodiscard]] Result<Loan> loan_for(std::size_t size, std::chrono::nanoseconds timeout);

  /// Whether this pool hands out variable-size blocks (create_arena).
  [[nodiscard]] bool variable_size() const noexcept { return arena_ != nullptr; }

  [[nodiscard]] std::size_t slot_size() const noexcept;
  [[nodiscard]] std::size_t capacity() const noexcept;
  [[nodiscard]] std::size_t in_use() const noexcept;
  [[nodiscard]] PoolStats stats() const noexcept;
  [[nodiscard]] std::uint64_t id() const noexcept;

  /// Segments in index order (segment i holds slots [i*slots_per_segment, ...)). Stable while
  /// the pool lives; the count only grows.
  [[nodiscard]] std::size_t segment_count() const noexcept;
  [[nodiscard]] const Segment& segment(std::size_t index) const noexcept;
  /// Arenas: 0 (blocks, not slots).
  [[nodiscard]] std::size_t slots_per_segment() const noexcept;
  /// Byte offset of slot `slot` inside its segment.
  [[nodiscard]] std::size_t slot_offset(std::uint32_t slot) const noexcept;

  /// Internal: the implementation outlives the handle while slots are out.
  struct Impl;
  struct Arena;

 private:
  explicit MemoryPool(Impl* impl, std::uint64_t id) noexcept : impl_(impl), cache_id_(id) {}
  explicit MemoryPool(Arena* arena) noexcept : impl_(nullptr), arena_(arena) {}
  // The unsized loans' fast path, inline above: a slot from the cache this thread already
  // claimed (slot pools, tracing off), or nullptr; an out-of-line leaf that makes no call, so
  // it needs no frame. Its Loan's length is the slot's full size (core->capacity).
  [[nodiscard]] detail::BufferCore* pop_fast() noexcept;
  // The unsized loans' paths after the fast one found nothing: this thread's cache claimed,
  // the shared list, growth, waiting, errors, arenas, the traced variant.
  [[nodiscard]] Result<Loan> try_loan_slow();
  [[nodiscard]] Result<Loan> loan_for_slow(std::chrono::nanoseconds timeout);
  Impl* impl_;
  Arena* arena_{nullptr};
  // The slot pool's id (what its thread caches are found by; the fast path reads it here
  // rather than through impl_), 0 for an arena.
  std::uint64_t cache_id_{0};
};

/// From now on the calling thread keeps no per-thread slot cache in any slot pool: the slots
/// it releases go straight back to their pool's shared free list (any it had cached stay free
/// and reachable, as when a thread exits). For a thread that releases slots but never loans
/// them, such as an IPC publisher's background thread collecting what subscribers returned: in
/// its own cache a slot would be reached only once the loaning threads' caches and the shared
/// list ran dry, so the loaner would cycle through more slots (colder memory) than it needs.
void disable_thread_slot_cache() noexcept;

}  // namespace parallax::memory
