// SPDX-License-Identifier: MIT OR Apache-2.0
// Variable-size pool: one Boost.Interprocess rbtree_best_fit allocator at the start of each
// segment (its bookkeeping lives in the segment and addresses blocks by offset, so the mapping
// may sit anywhere; subscribers map the segment read-only and never touch it). One mutex guards
// every allocator of the arena: a loan and a release each take it once. Blocked loans wait on
// a condition variable that every release signals.
#include "arena.h"

#include <algorithm>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>
#include <new>
#include <string>

#include "parallax/log.h"
#include "parallax/trace.h"

namespace parallax::memory {
namespace {

namespace bip = boost::interprocess;
// The memory algorithm alone (no segment_manager, no named-object index): its header sits at
// the start of the segment, one header precedes each block, and it links blocks with
// offset_ptr. null_mutex_family: Arena::mu serialises every call.
using Algo = bip::rbtree_best_fit<bip::null_mutex_family>;

// What an empty segment's allocator needs around one block besides the block (its header and
// alignment padding): a block fits an empty segment when it is at most usable - slack.
constexpr std::size_t kHeaderSlack = 4096 + 256;

std::atomic<std::uint64_t> g_next_arena_id{std::uint64_t{1} << 48};

std::size_t round_up(std::size_t v, std::size_t a) {
  return (v + a - 1) & ~(a - 1);
}

void bump_max(std::atomic<std::size_t>& hw, std::size_t v) {
  std::size_t cur = hw.load(std::memory_order_relaxed);
  while (v > cur && !hw.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

struct MemoryPool::Arena::Seg {
  Segment seg;
  Algo* mgr;              // placement-constructed at the segment's start
  std::size_t usable{0};  // free bytes of the allocator when empty
  explicit Seg(Segment s) : seg(std::move(s)), mgr(new (seg.writable_data()) Algo(seg.size(), 0)) {
    usable = mgr->get_free_memory();
  }
  ~Seg() { mgr->~Algo(); }
  Seg(const Seg&) = delete;
  Seg& operator=(const Seg&) = delete;
};

namespace {
struct ArenaCore : detail::BufferCore {
  std::size_t seg_index{0};
};
}  // namespace

Result<MemoryPool::Arena*> MemoryPool::Arena::create(Segment first, ArenaOptions opts) {
  if (!first.valid()) return err(Errc::invalid_argument, "arena: empty segment");
  if (first.writable_data() == nullptr)
    return err(Errc::permission_denied, "arena: segment is mapped read-only");
  if (opts.alignment < 16 || opts.alignment > 4096 || (opts.alignment & (opts.alignment - 1)) != 0)
    return err(Errc::invalid_argument, "arena: alignment " + std::to_string(opts.alignment) +
                                           " is not a power of two in 16..4096");
  if (first.size() < 4096)
    return err(Errc::invalid_argument, "arena: a segment needs at least 4096 bytes");
  if (opts.max_bytes < first.size())
    return err(Errc::invalid_argument, "arena: max_bytes " + std::to_string(opts.max_bytes) +
                                           " is smaller than the first segment (" +
                                           std::to_string(first.size()) + " bytes)");
  auto a = std::make_unique<Arena>();
  a->id = g_next_arena_id.fetch_add(1, std::memory_order_relaxed);
  a->alignment = opts.alignment;
  a->max_bytes = opts.max_bytes;
  a->grow_fn = opts.grow ? std::move(opts.grow) : default_grow(first, "arena");
  {
    std::lock_guard lk(a->mu);
    PLX_TRY(a->add_segment_locked(std::move(first)));
  }
  return a.release();
}

MemoryPool::Arena::~Arena() = default;

Result<void> MemoryPool::Arena::add_segment_locked(Segment seg) {
  const std::size_t n = count.load(std::memory_order_relaxed);
  if (n >= kMaxArenaSegments)
    return err(Errc::resource_exhausted,
               "arena holds " + std::to_string(kMaxArenaSegments) + " segments already");
  if (seg.writable_data() == nullptr || seg.size() < 4096)
    return err(Errc::invalid_argument, "arena: unusable segment");
  const std::size_t size = seg.size();
  try {
    segs[n] = std::make_unique<Seg>(std::move(seg));
  } catch (const std::exception& e) {
    return err(Errc::internal, std::string("arena: allocator setup failed: ") + e.what());
  }
  last_size = size;
  total_bytes.fetch_add(size, std::memory_order_relaxed);
  count.store(n + 1, std::memory_order_release);
  return {};
}

const Segment& MemoryPool::Arena::segment(std::size_t i) const noexcept {
  return segs[i]->seg;
}

detail::BufferCore* MemoryPool::Arena::try_alloc_locked(std::size_t size) noexcept {
  const std::size_t n = count.load(std::memory_order_relaxed);
  // Newest segment first: it is the largest, and older (smaller) ones then drain and stay
  // cold when the stream's buffers grew for good.
  for (std::size_t k = n; k-- > 0;) {
    Seg& s = *segs[k];
    void* p = s.mgr->allocate_aligned(size, alignment);
    if (p == nullptr) continue;
    auto* c = new (std::nothrow) ArenaCore;
    if (c == nullptr) {
      s.mgr->deallocate(p);
      return nullptr;
    }
    c->seg_index = k;
    c->data = static_cast<std::byte*>(p);
    c->capacity = size;
    c->segment = &s.seg;
    c->segment_offset = static_cast<std::size_t>(c->data - s.seg.writable_data());
    c->pool_id = id;
    c->owner = this;
    c->release = &Arena::release;
    c->refs.store(1, std::memory_order_relaxed);
    const std::size_t used = bytes_in_use.fetch_add(size, std::memory_order_relaxed) + size;
    bump_max(high_water, used);
    const std::size_t b = blocks.fetch_add(1, std::memory_order_relaxed) + 1;
    bump_max(block_high_water, b);
    return c;
  }
  return nullptr;
}

std::size_t MemoryPool::Arena::largest_block_locked() const noexcept {
  std::size_t best = 0;
  const std::size_t n = count.load(std::memory_order_relaxed);
  for (std::size_t k = 0; k < n; ++k)
    if (segs[k]->usable > kHeaderSlack) best = std::max(best, segs[k]->usable - kHeaderSlack);
  const std::size_t total = total_bytes.load(std::memory_order_relaxed);
  // A new segment may take what is left of the budget (minus the allocator's own header,
  // which the first segment's usable size tells).
  if (n < kMaxArenaSegments && max_bytes > total) {
    const std::size_t overhead = segs[0]->seg.size() - segs[0]->usable;
    const std::size_t room = max_bytes - total;
    if (room > overhead + alignment) best = std::max(best, room - overhead - alignment);
  }
  return best & ~(alignment - 1);
}

std::size_t MemoryPool::Arena::largest_block() const noexcept {
  std::lock_guard lk(mu);
  return largest_block_locked();
}

Result<detail::BufferCore*> MemoryPool::Arena::loan(std::size_t size,
                                                    std::optional<std::chrono::nanoseconds> wait) {
  PLX_TRACE_SPAN("pool.loan");
  if (size > kMaxSegmentSize)
    return err(Errc::invalid_argument, "arena: block of " + std::to_string(size) + " bytes");
  const std::size_t want = round_up(std::max<std::size_t>(size, 1), alignment);
  std::unique_lock lk(mu);
  if (want > largest_block_locked()) {
    failed.fetch_add(1, std::memory_order_relaxed);
    return err(Errc::out_of_range,
               "a block of " + std::to_string(size) + " bytes can never fit the memory budget of " +
                   std::to_string(max_bytes) + " bytes (" +
                   std::to_string(total_bytes.load(std::memory_order_relaxed)) +
                   " in segments, the largest block possible is " +
                   std::to_string(largest_block_locked()) + "): raise the budget");
  }
  if (auto* c = try_alloc_locked(want)) return c;
  // Grow only for a block that no segment could hold even when empty (the stream's buffers
  // grew): a full arena otherwise means blocks are in flight, and waiting for them is the
  // backpressure. The new segment is at least twice the newest one and room for four such
  // blocks (with the allocator's headers and alignment slack), within the budget.
  const std::size_t total = total_bytes.load(std::memory_order_relaxed);
  const std::size_t n = count.load(std::memory_order_relaxed);
  std::size_t usable_max = 0;
  for (std::size_t k = 0; k < n; ++k)
    usable_max = std::max(usable_max, segs[k]->usable);
  if (want + kHeaderSlack > usable_max && n < kMaxArenaSegments && total < max_bytes) {
    const std::size_t overhead = segs[0]->seg.size() - segs[0]->usable;
    const std::size_t need = round_up(want + overhead + 2 * alignment, 4096);
    const std::size_t size_new = std::min(std::max(4 * need, 2 * last_size), max_bytes - total);
    if (size_new >= need) {
      auto seg = grow_fn(size_new);
      if (!seg) {
        failed.fetch_add(1, std::memory_order_relaxed);
        return err(seg.error().code, "arena could not grow by " + std::to_string(size_new) +
                                         " bytes: " + seg.error().message);
      }
      PLX_TRY(add_segment_locked(std::move(*seg)));
      grows.fetch_add(1, std::memory_order_relaxed);
      PLX_LOG(debug, "memory", "arena %llu grew to %zu segments, %zu bytes",
              static_cast<unsigned long long>(id), n + 1,
              total_bytes.load(std::memory_order_relaxed));
      if (auto* c = try_alloc_locked(want)) return c;
    }
  }
  if (!wait) {
    failed.fetch_add(1, std::memory_order_relaxed);
    return err(Errc::resource_exhausted,
               "arena full: no free block of " + std::to_string(want) + " bytes (" +
                   std::to_string(bytes_in_use.load(std::memory_order_relaxed)) + " of " +
                   std::to_string(total_bytes.load(std::memory_order_relaxed)) +
                   " bytes in use, budget " + std::to_string(max_bytes) + ")");
  }
  waits.fetch_add(1, std::memory_order_relaxed);
  const bool forever = *wait == std::chrono::nanoseconds::max();
  const auto deadline =
      std::chrono::steady_clock::now() + (forever ? std::chrono::nanoseconds(0) : *wait);
  for (;;) {
    if (forever) {
      cv.wait(lk);
    } else if (cv.wait_until(lk, deadline) == std::cv_status::timeout) {
      if (auto* c = try_alloc_locked(want)) return c;
      break;
    }
    if (auto* c = try_alloc_locked(want)) return c;
  }
  failed.fetch_add(1, std::memory_order_relaxed);
  return err(Errc::timeout, "no block of " + std::to_string(want) + " bytes became free within " +
                                std::to_string(wait->count() / 1000) + " us");
}

void MemoryPool::Arena::release(detail::BufferCore* c) noexcept {
  auto* ac = static_cast<ArenaCore*>(c);
  auto* a = static_cast<Arena*>(c->owner);
  bool free_arena = false;
  {
    std::lock_guard lk(a->mu);
    a->segs[ac->seg_index]->mgr->deallocate(c->data);
    a->bytes_in_use.fetch_sub(c->capacity, std::memory_order_relaxed);
    const std::size_t left = a->blocks.fetch_sub(1, std::memory_order_relaxed) - 1;
    free_arena = a->orphaned && left == 0;
    if (!free_arena) a->cv.notify_all();
  }
  delete ac;
  if (free_arena) delete a;
}

void MemoryPool::Arena::orphan() noexcept {
  bool free_now;
  {
    std::lock_guard lk(mu);
    orphaned = true;
    free_now = blocks.load(std::memory_order_relaxed) == 0;
  }
  if (free_now) delete this;
}

PoolStats MemoryPool::Arena::stats() const noexcept {
  PoolStats s;
  s.variable_size = true;
  s.slot_size = largest_block();
  s.bytes_capacity = total_bytes.load(std::memory_order_relaxed);
  s.bytes_in_use = bytes_in_use.load(std::memory_order_relaxed);
  s.bytes_high_water = high_water.load(std::memory_order_relaxed);
  s.capacity = s.bytes_capacity;
  s.in_use = s.bytes_in_use;
  s.high_water = s.bytes_high_water;
  s.segments = segment_count();
  s.waits = waits.load(std::memory_order_relaxed);
  s.failed_loans = failed.load(std::memory_order_relaxed);
  s.grows = grows.load(std::memory_order_relaxed);
  return s;
}

}  // namespace parallax::memory
