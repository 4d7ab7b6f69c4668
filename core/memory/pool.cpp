// SPDX-License-Identifier: MIT OR Apache-2.0
// MemoryPool: a lock-free LIFO free list of slot indices packed with the free count, two state
// bits and an ABA tag into one 64-bit word, so a loan is one CAS and a release is one CAS.
#include "parallax/pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <mutex>
#include <string>

#include "arena.h"
#include "parallax/log.h"
#include "parallax/trace.h"

namespace parallax::memory {

std::function<Result<Segment>(std::size_t)> default_grow(const Segment& first, const char* what) {
  const Backend b = first.backend();
  std::string name = first.name();
  std::string file_error =
      std::string("a file-backed ") + what + " needs an explicit grow function";
  return [b, name = std::move(name),
          file_error = std::move(file_error)](std::size_t size) -> Result<Segment> {
    switch (b) {
      case Backend::heap:
        return HeapSegment::create(size);
      case Backend::memfd:
        return SharedMemorySegment::create(name, size);
      case Backend::hugepage:
        return HugePageSegment::create(name, size);
      case Backend::file:
        return err(Errc::unsupported, file_error);
    }
    return err(Errc::internal, "unknown backend");
  };
}
namespace {

// Layout of the free-list head (one std::atomic<uint64_t>):
//   bits  0..15  index of the top free slot, kEmpty when none is free
//   bits 16..32  number of free slots (17 bits: up to 65535)
//   bit  33      kWaiting: a blocked loan sleeps on the futex (high 32 bits of the word)
//   bit  34      kOrphan: the MemoryPool handle is gone; the last release frees the pool
//   bits 35..63  ABA tag, +1 on every successful CAS (29 bits: 536M operations to wrap)
// Every CAS that succeeds bumps the tag, so the high 32 bits change on every push and pop:
// that is what the futex waits on.
constexpr std::uint64_t kEmpty = 0xFFFF;
constexpr int kCountShift = 16;
constexpr std::uint64_t kCountMask = 0x1FFFF;
constexpr std::uint64_t kWaiting = std::uint64_t{1} << 33;
constexpr std::uint64_t kOrphan = std::uint64_t{1} << 34;
constexpr int kTagShift = 35;
constexpr std::uint64_t kFlagMask = kWaiting | kOrphan;

constexpr std::uint64_t top_of(std::uint64_t h) {
  return h & 0xFFFF;
}
constexpr std::uint64_t count_of(std::uint64_t h) {
  return (h >> kCountShift) & kCountMask;
}
constexpr std::uint64_t tag_of(std::uint64_t h) {
  return h >> kTagShift;
}
constexpr std::uint64_t pack(std::uint64_t top, std::uint64_t count, std::uint64_t flags,
                             std::uint64_t tag) {
  return top | (count << kCountShift) | (flags & kFlagMask) | (tag << kTagShift);
}

std::atomic<std::uint64_t> g_next_pool_id{1};

long futex(std::uint32_t* addr, int op, std::uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, addr, op, val, ts, nullptr, 0);
}

}  // namespace

struct MemoryPool::Impl {
  // The hot line: the free-list head and what loan/release read next to it.
  alignas(64) std::atomic<std::uint64_t> head{pack(kEmpty, 0, 0, 0)};
  std::atomic<std::size_t> capacity{0};
  std::atomic<std::size_t> high_water{0};
  // Slow-path counters on a line of their own.
  alignas(64) std::atomic<std::uint64_t> waits{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> grows{0};

  std::size_t slot_size{0};
  std::size_t slots_per_segment{0};
  std::size_t max_segments{1};
  std::uint64_t id{0};
  std::function<Result<Segment>(std::size_t)> grow_fn;

  // Fixed-size arrays sized for max_segments so addresses never move while slots are out.
  std::unique_ptr<std::atomic<std::uint16_t>[]> next;  // next[i]: slot below i on the stack
  std::unique_ptr<Segment[]> segments;
  std::unique_ptr<std::unique_ptr<detail::BufferCore[]>[]> cores;
  std::atomic<std::size_t> segment_count{0};
  std::mutex grow_mu;  // serialises growth only; never taken on the loan/release fast path

  std::uint32_t* futex_word() noexcept {
    // The high half of the head word on a little-endian machine.
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
    return reinterpret_cast<std::uint32_t*>(&head) + 1;
  }

  detail::BufferCore* core(std::uint32_t slot) noexcept {
    return &cores[slot / slots_per_segment][slot % slots_per_segment];
  }

  // Pops a free slot; nullptr when none is free.
  detail::BufferCore* try_pop() noexcept {
    std::uint64_t old = head.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t top = top_of(old);
      if (top == kEmpty) return nullptr;
      const std::uint64_t nxt = next[top].load(std::memory_order_relaxed);
      const std::uint64_t now = pack(nxt, count_of(old) - 1, old, tag_of(old) + 1);
      if (head.compare_exchange_weak(old, now, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
        const std::size_t used = capacity.load(std::memory_order_relaxed) - count_of(now);
        std::size_t hw = high_water.load(std::memory_order_relaxed);
        while (used > hw &&
               !high_water.compare_exchange_weak(hw, used, std::memory_order_relaxed)) {
        }
        detail::BufferCore* c = core(static_cast<std::uint32_t>(top));
        c->refs.store(1, std::memory_order_relaxed);
        return c;
      }
    }
  }

  // Adds a segment's worth of slots. Called with grow_mu held.
  Result<void> add_segment(Segment seg) {
    const std::size_t index = segment_count.load(std::memory_order_relaxed);
    const std::size_t base = index * slots_per_segment;
    auto chunk = std::make_unique<detail::BufferCore[]>(slots_per_segment);
    segments[index] = std::move(seg);
    const Segment& s = segments[index];
    for (std::size_t i = 0; i < slots_per_segment; ++i) {
      detail::BufferCore& c = chunk[i];
      c.slot = static_cast<std::uint32_t>(base + i);
      c.segment = &s;
      c.segment_offset = i * slot_size;
      c.data = s.writable_data() + c.segment_offset;
      c.capacity = slot_size;
      c.pool_id = id;
      c.owner = this;
      c.release = &Impl::release;
      next[base + i].store(
          static_cast<std::uint16_t>(i + 1 < slots_per_segment ? base + i + 1 : kEmpty),
          std::memory_order_relaxed);
    }
    cores[index] = std::move(chunk);
    capacity.fetch_add(slots_per_segment, std::memory_order_relaxed);
    segment_count.store(index + 1, std::memory_order_release);
    // Push the whole chain [base, base+n) in one CAS.
    const std::size_t last = base + slots_per_segment - 1;
    std::uint64_t old = head.load(std::memory_order_relaxed);
    std::uint64_t now;
    do {
      next[last].store(static_cast<std::uint16_t>(top_of(old)), std::memory_order_relaxed);
      now = pack(base, count_of(old) + slots_per_segment, old & ~kWaiting, tag_of(old) + 1);
    } while (!head.compare_exchange_weak(old, now, std::memory_order_release,
                                         std::memory_order_relaxed));
    if (old & kWaiting) futex(futex_word(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
    return {};
  }

  Result<bool> try_grow() {
    std::lock_guard lock(grow_mu);
    if (top_of(head.load(std::memory_order_acquire)) != kEmpty) return true;  // raced: refilled
    const std::size_t n = segment_count.load(std::memory_order_relaxed);
    if (n >= max_segments) return false;
    PLX_ASSIGN(Segment seg, grow_fn(slots_per_segment * slot_size));
    if (seg.size() < slots_per_segment * slot_size || seg.writable_data() == nullptr)
      return err(Errc::invalid_argument, "pool grow function returned an unusable segment");
    PLX_TRY(add_segment(std::move(seg)));
    grows.fetch_add(1, std::memory_order_relaxed);
    PLX_LOG(debug, "memory", "pool %llu grew to %zu segments", static_cast<unsigned long long>(id),
            n + 1);
    return true;
  }

  // Returns a slot. Lock order / lifetime: everything this function needs from the pool is
  // read BEFORE the CAS that publishes the slot as free. After that CAS the pool may be freed
  // by a concurrent ~MemoryPool or by another release, unless this call is the one that
  // brought an orphaned pool back to "all free", in which case it frees it.
  static void release(detail::BufferCore* c) noexcept {
    auto* p = static_cast<Impl*>(c->owner);
    c->meta.clear();  // the next loan starts from empty metadata
    const auto slot = static_cast<std::uint16_t>(c->slot);
    const std::size_t cap = p->capacity.load(std::memory_order_relaxed);
    std::uint32_t* fw = p->futex_word();
    std::uint64_t old = p->head.load(std::memory_order_relaxed);
    std::uint64_t now;
    do {
      p->next[slot].store(static_cast<std::uint16_t>(top_of(old)), std::memory_order_relaxed);
      now = pack(slot, count_of(old) + 1, old & ~kWaiting, tag_of(old) + 1);
    } while (!p->head.compare_exchange_weak(old, now, std::memory_order_acq_rel,
                                            std::memory_order_relaxed));
    // A futex wake only names an address; it does not touch the memory, so it is safe even if
    // the pool was freed meanwhile (a stale kWaiting bit is possible after a timed-out loan).
    if (old & kWaiting) futex(fw, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
    if ((old & kOrphan) && count_of(now) == cap) delete p;
  }
};

Result<std::shared_ptr<MemoryPool>> MemoryPool::create(Segment segment, std::size_t slot_size,
                                                       PoolOptions opts) {
  if (!segment.valid()) return err(Errc::invalid_argument, "pool: empty segment");
  if (segment.writable_data() == nullptr)
    return err(Errc::permission_denied, "pool: segment is mapped read-only");
  if (slot_size == 0) return err(Errc::invalid_argument, "pool: slot size is zero");
  if (opts.alignment == 0 || (opts.alignment & (opts.alignment - 1)) != 0)
    return err(Errc::invalid_argument,
               "pool: alignment " + std::to_string(opts.alignment) + " is not a power of two");
  if (opts.alignment > 4096)
    return err(Errc::invalid_argument, "pool: alignment above 4096 (the page size)");
  if (opts.max_segments == 0) return err(Errc::invalid_argument, "pool: max_segments is zero");
  if (slot_size > segment.size())
    return err(Errc::invalid_argument, "pool: slot size " + std::to_string(slot_size) +
                                           " is larger than the segment (" +
                                           std::to_string(segment.size()) + " bytes)");
  const std::size_t stride = (slot_size + opts.alignment - 1) & ~(opts.alignment - 1);
  const std::size_t per_segment = segment.size() / stride;
  if (per_segment == 0)
    return err(Errc::invalid_argument,
               "pool: aligned slot size " + std::to_string(stride) + " is larger than the segment");
  if (per_segment > kMaxPoolSlots || per_segment * opts.max_segments > kMaxPoolSlots)
    return err(Errc::invalid_argument, "pool: " + std::to_string(per_segment * opts.max_segments) +
                                           " slots exceed the limit of " +
                                           std::to_string(kMaxPoolSlots) +
                                           " per pool; use larger slots or fewer segments");

  auto impl = std::make_unique<Impl>();
  impl->slot_size = stride;
  impl->slots_per_segment = per_segment;
  impl->max_segments = opts.max_segments;
  impl->id = g_next_pool_id.fetch_add(1, std::memory_order_relaxed);
  impl->grow_fn = opts.grow ? std::move(opts.grow) : default_grow(segment, "pool");
  impl->next = std::make_unique<std::atomic<std::uint16_t>[]>(per_segment * opts.max_segments);
  impl->segments = std::make_unique<Segment[]>(opts.max_segments);
  impl->cores = std::make_unique<std::unique_ptr<detail::BufferCore[]>[]>(opts.max_segments);
  PLX_TRY(impl->add_segment(std::move(segment)));
  return std::shared_ptr<MemoryPool>(new MemoryPool(impl.release()));
}

Result<std::shared_ptr<MemoryPool>> MemoryPool::create_arena(Segment segment, ArenaOptions opts) {
  PLX_ASSIGN(Arena * a, Arena::create(std::move(segment), std::move(opts)));
  return std::shared_ptr<MemoryPool>(new MemoryPool(a));
}

namespace {
Error arena_needs_size() {
  return err(Errc::invalid_argument,
             "a variable-size pool (arena) needs the size of the block: use loan(size)");
}
}  // namespace

Result<Loan> MemoryPool::loan(std::size_t size) {
  return loan_for(size, std::chrono::nanoseconds::max());
}

Result<Loan> MemoryPool::try_loan(std::size_t size) {
  if (arena_ != nullptr) {
    PLX_ASSIGN(detail::BufferCore * c, arena_->loan(size, std::nullopt));
    return Loan(c, size);
  }
  if (size > impl_->slot_size)
    return err(Errc::invalid_argument, "loan of " + std::to_string(size) +
                                           " bytes exceeds the slot size " +
                                           std::to_string(impl_->slot_size));
  PLX_ASSIGN(Loan l, try_loan());
  PLX_TRY(l.set_size(size));
  return l;
}

Result<Loan> MemoryPool::loan_for(std::size_t size, std::chrono::nanoseconds timeout) {
  if (arena_ != nullptr) {
    PLX_ASSIGN(detail::BufferCore * c, arena_->loan(size, timeout));
    return Loan(c, size);
  }
  if (size > impl_->slot_size)
    return err(Errc::invalid_argument, "loan of " + std::to_string(size) +
                                           " bytes exceeds the slot size " +
                                           std::to_string(impl_->slot_size));
  PLX_ASSIGN(Loan l, loan_for(timeout));
  PLX_TRY(l.set_size(size));
  return l;
}

MemoryPool::~MemoryPool() {
  if (arena_ != nullptr) {
    arena_->orphan();
    return;
  }
  // Mark the pool orphaned. If every slot is home, free it now; otherwise the release that
  // brings the count back to capacity frees it (see Impl::release).
  Impl* p = impl_;
  const std::size_t cap = p->capacity.load(std::memory_order_relaxed);
  std::uint64_t old = p->head.load(std::memory_order_relaxed);
  while (!p->head.compare_exchange_weak(old, old | kOrphan, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
  }
  if (count_of(old) == cap) delete p;
}

Result<Loan> MemoryPool::try_loan() {
  PLX_TRACE_SPAN("pool.loan");
  if (arena_ != nullptr) return arena_needs_size();
  for (;;) {
    if (detail::BufferCore* c = impl_->try_pop()) return Loan(c, impl_->slot_size);
    PLX_ASSIGN(bool grown, impl_->try_grow());
    if (!grown) break;
  }
  impl_->failed.fetch_add(1, std::memory_order_relaxed);
  return err(Errc::resource_exhausted, "pool exhausted: all " + std::to_string(capacity()) +
                                           " slots of " + std::to_string(impl_->slot_size) +
                                           " bytes are in use");
}

Result<Loan> MemoryPool::loan_for(std::chrono::nanoseconds timeout) {
  PLX_TRACE_SPAN("pool.loan");
  if (arena_ != nullptr) return arena_needs_size();
  for (;;) {
    if (detail::BufferCore* c = impl_->try_pop()) return Loan(c, impl_->slot_size);
    PLX_ASSIGN(bool grown, impl_->try_grow());
    if (!grown) break;
  }
  impl_->waits.fetch_add(1, std::memory_order_relaxed);
  const bool forever = timeout == std::chrono::nanoseconds::max();
  const auto deadline =
      std::chrono::steady_clock::now() + (forever ? std::chrono::hours(0) : timeout);
  for (;;) {
    if (detail::BufferCore* c = impl_->try_pop()) return Loan(c, impl_->slot_size);
    std::uint64_t old = impl_->head.load(std::memory_order_acquire);
    if (top_of(old) != kEmpty) continue;
    // Announce the sleeper in the head word itself, so a release sees it in its CAS.
    if (!(old & kWaiting) &&
        !impl_->head.compare_exchange_strong(old, old | kWaiting, std::memory_order_acq_rel)) {
      continue;
    }
    const auto expected = static_cast<std::uint32_t>((old | kWaiting) >> 32);
    timespec ts{};
    const timespec* tsp = nullptr;
    if (!forever) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) break;
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    futex(impl_->futex_word(), FUTEX_WAIT_PRIVATE, expected, tsp);
  }
  impl_->failed.fetch_add(1, std::memory_order_relaxed);
  return err(Errc::timeout,
             "no pool slot became free within " + std::to_string(timeout.count() / 1000) + " us");
}

Result<Loan> MemoryPool::loan() {
  return loan_for(std::chrono::nanoseconds::max());
}

std::size_t MemoryPool::slot_size() const noexcept {
  if (arena_ != nullptr) return arena_->largest_block();
  return impl_->slot_size;
}
std::size_t MemoryPool::capacity() const noexcept {
  if (arena_ != nullptr) return arena_->total_bytes.load(std::memory_order_relaxed);
  return impl_->capacity.load(std::memory_order_relaxed);
}
std::size_t MemoryPool::in_use() const noexcept {
  if (arena_ != nullptr) return arena_->bytes_in_use.load(std::memory_order_relaxed);
  const std::uint64_t h = impl_->head.load(std::memory_order_relaxed);
  const std::size_t cap = capacity();
  const std::size_t free = count_of(h);
  return free > cap ? 0 : cap - free;
}
std::uint64_t MemoryPool::id() const noexcept {
  if (arena_ != nullptr) return arena_->id;
  return impl_->id;
}

PoolStats MemoryPool::stats() const noexcept {
  if (arena_ != nullptr) return arena_->stats();
  PoolStats s;
  s.slot_size = impl_->slot_size;
  s.capacity = capacity();
  s.in_use = in_use();
  s.high_water = impl_->high_water.load(std::memory_order_relaxed);
  s.segments = segment_count();
  s.waits = impl_->waits.load(std::memory_order_relaxed);
  s.failed_loans = impl_->failed.load(std::memory_order_relaxed);
  s.grows = impl_->grows.load(std::memory_order_relaxed);
  s.bytes_capacity = s.capacity * s.slot_size;
  s.bytes_in_use = s.in_use * s.slot_size;
  s.bytes_high_water = s.high_water * s.slot_size;
  return s;
}

std::size_t MemoryPool::segment_count() const noexcept {
  if (arena_ != nullptr) return arena_->segment_count();
  return impl_->segment_count.load(std::memory_order_acquire);
}
const Segment& MemoryPool::segment(std::size_t index) const noexcept {
  if (arena_ != nullptr) return arena_->segment(index);
  return impl_->segments[index];
}
std::size_t MemoryPool::slots_per_segment() const noexcept {
  if (arena_ != nullptr) return 0;
  return impl_->slots_per_segment;
}
std::size_t MemoryPool::slot_offset(std::uint32_t slot) const noexcept {
  if (arena_ != nullptr) return 0;
  return (slot % impl_->slots_per_segment) * impl_->slot_size;
}

}  // namespace parallax::memory
