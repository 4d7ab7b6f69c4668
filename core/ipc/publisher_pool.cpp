// SPDX-License-Identifier: MIT OR Apache-2.0
// The pool an IpcPublisher makes, and the pools it accepts (see publisher_pool.h).
#include "ipc/publisher_pool.h"

#include <algorithm>
#include <functional>
#include <string>

namespace parallax::link::detail {

// Subscribers import only sealed memfds (Segment::import): a pool in heap memory cannot be
// sent at all, and a mapped file (MappedFileSegment) would be refused by every subscriber at
// its first segment announcement. Both are refused here, where the mistake is made.
Result<void> check_publishable_pool(const memory::MemoryPool& pool) {
  for (std::size_t i = 0; i < pool.segment_count(); ++i) {
    const memory::Segment& seg = pool.segment(i);
    if (!seg.shareable())
      return err(Errc::invalid_argument,
                 "the publisher's pool must live in shared memory (memfd or hugepage), not " +
                     std::string(memory::to_string(seg.backend())));
    if (seg.backend() == memory::Backend::file)
      return err(Errc::invalid_argument,
                 "the publisher's pool must live in memfd or hugepage memory: a file-backed "
                 "segment (" +
                     seg.name() +
                     ") cannot be sealed, and subscribers map only sealed memfds, so every "
                     "subscriber would refuse it");
  }
  return {};
}

namespace {

// ---- the pool the publisher makes (PublisherOptions::pool unset) ----------------------------

// Automatic slot count: enough slots that a consumer a few hundred small buffers behind does not
// stall the producer (every stall costs a sleep and a wake-up, ~10-20 us on a VM), without
// taking more than ~16 MiB for small slots. Large frames get 6: the producer writes, the ring
// and the consumer hold a few; more only spreads the frames over memory that no longer fits
// in the cache (1080p RGBx: 4 slots 780 fps, 16 slots 731 fps on the benchmark machine).
constexpr std::size_t kMinAutoSlots = 6;
constexpr std::size_t kMaxAutoSlots = 256;
constexpr std::size_t kAutoPoolBytes = 16 << 20;
constexpr std::size_t kMinSlots = 2;
// A variable-size pool's first segment: at least this (its pages are committed as blocks
// touch them, so it costs what the blocks in flight use).
constexpr std::size_t kArenaMinFirst = 2 << 20;
// The block count a variable-size pool's quota is computed from when slot_count is automatic.
constexpr std::size_t kArenaAutoBlocks = 64;

std::string bytes_text(std::uint64_t n) {
  return std::to_string(n) + " bytes";
}

// Makes the pool's segments: the backend asked for, prefaulted when asked (not with numa_node:
// the placement binds first, then prefaults; never for a variable-size pool: its pages are
// committed as blocks touch them, so it costs what the blocks in flight use).
std::function<Result<memory::Segment>(std::size_t)> segment_maker(const PublisherOptions& o,
                                                                  bool slots) {
  const bool huge = o.memory == PoolMemory::hugepage;
  const bool prefault = slots && o.prefault && !o.numa_node;
  return [name = o.pool_name, huge, prefault](std::size_t bytes) -> Result<memory::Segment> {
    auto seg = huge ? memory::HugePageSegment::create(name, bytes)
                    : memory::SharedMemorySegment::create(name, bytes);
    if (!seg)
      return err(seg.error().code, "could not create " + bytes_text(bytes) +
                                       " of shared memory: " + seg.error().message);
    if (prefault) {
      if (auto committed = seg->prefault(); !committed)
        return err(committed.error().code, "could not commit " + bytes_text(bytes) +
                                               " of shared memory: " + committed.error().message +
                                               " (prefault=false defers it to first use)");
    }
    return std::move(*seg);
  };
}

// The budget of the pool the publisher makes: max_pool_bytes, or (0) whatever the first
// segment needs.
std::uint64_t pool_budget(const PublisherOptions& o, std::uint64_t first) {
  return o.max_pool_bytes != 0 ? o.max_pool_bytes : first;
}

}  // namespace

Result<std::shared_ptr<memory::MemoryPool>> make_pool(const PublisherOptions& o,
                                                      std::size_t slot_size, std::size_t block) {
  auto segment = segment_maker(o, slot_size != 0);
  if (slot_size == 0) {
    const std::size_t count = o.slot_count != 0 ? o.slot_count : 1;
    const std::size_t want =
        ((std::max<std::size_t>(block, 1) + 4095) & ~std::size_t{4095}) * count;
    std::size_t first = std::max(want, kArenaMinFirst);
    if (o.max_pool_bytes != 0) first = std::min<std::uint64_t>(first, o.max_pool_bytes);
    PLX_ASSIGN(memory::Segment seg, segment(first));
    memory::ArenaOptions ao;
    ao.max_bytes = static_cast<std::size_t>(pool_budget(o, first));
    ao.grow = segment;
    const std::size_t arena_budget = ao.max_bytes;
    auto pool = memory::MemoryPool::create_arena(std::move(seg), std::move(ao));
    if (!pool)
      return err(pool.error().code,
                 "could not create the variable-size pool: " + pool.error().message +
                     " (budget max_pool_bytes " + bytes_text(arena_budget) + ")");
    return std::move(*pool);
  }
  const std::size_t slot = (slot_size + 63) & ~std::size_t{63};
  std::size_t count = o.slot_count != 0
                          ? o.slot_count
                          : std::clamp(kAutoPoolBytes / slot, kMinAutoSlots, kMaxAutoSlots);
  if (o.slot_count == 0 && o.max_pool_bytes != 0 && slot * count > o.max_pool_bytes)
    count = std::max<std::size_t>(kMinSlots, o.max_pool_bytes / slot);
  const std::uint64_t bytes = std::uint64_t{slot} * count;
  const std::uint64_t budget = pool_budget(o, bytes);
  if (bytes > budget)
    return err(Errc::resource_exhausted, std::to_string(count) + " slots of " + bytes_text(slot) +
                                             " need " + bytes_text(bytes) +
                                             " of shared memory, the budget (max_pool_bytes) is " +
                                             bytes_text(budget));
  PLX_ASSIGN(memory::Segment seg, segment(static_cast<std::size_t>(bytes)));
  memory::PoolOptions po;
  // Growth by whole segments at admission (fan-out) within the budget; never on a loan: a full
  // pool is backpressure, not a reason to take more memory.
  po.max_segments = std::max<std::uint64_t>(1, budget / bytes);
  po.max_segments = std::min<std::size_t>(po.max_segments,
                                          std::max<std::size_t>(1, memory::kMaxPoolSlots / count));
  po.grow = segment;
  po.grow_on_loan = false;
  auto pool = memory::MemoryPool::create(std::move(seg), slot, std::move(po));
  if (!pool)
    return err(pool.error().code, "could not create the slot pool: " + pool.error().message);
  return std::move(*pool);
}

std::uint32_t resolve_quota(const PublisherOptions& o, const memory::MemoryPool& pool) {
  if (o.max_leases_per_subscriber != 0) return o.max_leases_per_subscriber;
  const std::size_t n = pool.variable_size() ? (o.slot_count != 0 ? o.slot_count : kArenaAutoBlocks)
                                             : pool.capacity();
  return static_cast<std::uint32_t>(std::clamp<std::size_t>(n * 3 / 4, 1, 4096));
}
}  // namespace parallax::link::detail
