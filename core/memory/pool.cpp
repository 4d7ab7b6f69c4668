// SPDX-License-Identifier: MIT OR Apache-2.0
// MemoryPool: a lock-free LIFO free list of slot indices packed with the free count, three state
// bits and an ABA tag into one 64-bit word (a loan from it is one CAS, a release one CAS), in
// front of which each thread keeps a small cache of free slots (docs/memory.md: "Thread caches").
#include "parallax/pool.h"

#include <sched.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_set>

#include "arena.h"
#include "base/futex.h"
#include "parallax/cpu_relax.h"
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
//   bits 16..32  number of free slots on the list (17 bits: up to 65535)
//   bit  33      kWaiting: a blocked loan sleeps on the futex (high 32 bits of the word)
//   bit  34      kOrphan: the MemoryPool handle is gone; the last release frees the pool
//   bit  35      kNoCache: the handle is going away; releases bypass the thread caches
//   bits 36..63  ABA tag, +1 on every successful CAS (28 bits: 268M operations to wrap)
// Every CAS that succeeds bumps the tag, so the high 32 bits change on every push and pop:
// that is what the futex waits on.
constexpr std::uint64_t kEmpty = 0xFFFF;
constexpr int kCountShift = 16;
constexpr std::uint64_t kCountMask = 0x1FFFF;
constexpr std::uint64_t kWaiting = std::uint64_t{1} << 33;
constexpr std::uint64_t kOrphan = std::uint64_t{1} << 34;
constexpr std::uint64_t kNoCache = std::uint64_t{1} << 35;
constexpr int kTagShift = 36;
constexpr std::uint64_t kFlagMask = kWaiting | kOrphan | kNoCache;
// A release that sees one of these hands its slot (and its thread's cache) to the shared list.
constexpr std::uint64_t kFlushFlags = kWaiting | kNoCache;

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

// ---- Thread caches ----
// Each pool has kMaxCaches caches of up to kCacheSlots free slots; a thread claims one the first
// time it loans or releases from the pool, and then loans from and releases into it, so two
// threads on one pool stop sharing the head's cache line. A cache's count, a lock bit and a
// generation share one word (`state`):
// - Its owner (the one thread that claimed it) pops and pushes without the lock, each a
//   single CAS on `state`: a pop reads cores[n-1] then CASes n -> n-1; a push writes cores[n]
//   (above what anyone else reads) then CASes n -> n+1. Only the owner changes the count
//   without the lock, so a CAS that succeeds found nobody in between.
// - Anyone else (and the owner's own slow paths) takes the lock bit to move the cache's slots
//   to the shared list: a loan that finds the list empty, a loan about to sleep, the handle's
//   destructor. Unlocking bumps the generation, so an owner's CAS prepared before the lock
//   fails even when the count is the same again (a drained empty cache stays at 0).
// in_use() counts cached slots as free.
constexpr std::size_t kMaxCaches = 16;
constexpr std::size_t kCacheSlots = 16;
constexpr std::uint64_t kCacheCountMask = 0xFF;  // the count (up to kCacheSlots)
constexpr std::uint64_t kCacheLocked = 0x100;
constexpr std::uint64_t kCacheGenOne = 0x200;  // bits 9..63: the generation
static_assert(kCacheSlots <= kCacheCountMask);

struct alignas(64) SlotCache {
  std::atomic<std::uint64_t> state{0};  ///< count | kCacheLocked | generation (see above)
  std::atomic<std::uint64_t> owner{0};  ///< thread token, 0 when no live thread owns it
  // The free slots' cores (not their indices: a loan hands one out without a lookup).
  detail::BufferCore* cores[kCacheSlots]{};

  static std::uint32_t count_in(std::uint64_t st) noexcept {
    return static_cast<std::uint32_t>(st & kCacheCountMask);
  }
  std::uint32_t count() const noexcept { return count_in(state.load(std::memory_order_relaxed)); }

  // Takes the lock if it is free; `st` is the state it held (the count in its low bits).
  bool try_lock(std::uint64_t& st) noexcept {
    st = state.load(std::memory_order_relaxed);
    while (!(st & kCacheLocked)) {
      if (state.compare_exchange_weak(st, st | kCacheLocked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  // Takes the lock, waiting for the holder; returns the state it held.
  std::uint64_t lock() noexcept {
    std::uint64_t st;
    for (unsigned spins = 0; !try_lock(st); ++spins) {
      // A holder keeps it for a few instructions, unless it was preempted inside.
      if (spins < 64)
        cpu_relax();
      else
        sched_yield();
    }
    return st;
  }
  // Unlocks holding `count` slots; `st` is what lock() returned.
  void unlock(std::uint64_t st, std::uint32_t count) noexcept {
    state.store(((st & ~(kCacheLocked | kCacheCountMask)) + kCacheGenOne) | count,
                std::memory_order_release);
  }
};

// What a thread remembers: the cache it owns in each of the last kThreadRefs pools it used
// (nullptr when that pool had no cache left). Trivially destructible, so it can be read during
// thread exit after ThreadCacheCleanup ran (then `dead` routes every call to the shared list).
constexpr std::size_t kThreadRefs = 4;
struct ThreadCacheRef {
  std::uint64_t pool_id;
  SlotCache* cache;
};
struct ThreadCaches {
  ThreadCacheRef refs[kThreadRefs];
  std::uint64_t token;
  unsigned next;
  bool armed;
  bool dead;      // the thread is exiting
  bool no_cache;  // disable_thread_slot_cache(): claim no cache
};
[[gnu::tls_model("initial-exec")]] thread_local constinit ThreadCaches t_caches{};

// Pools alive now, by id: a thread that exits (or forgets a pool) gives its cache back only if
// the pool still exists. Pool deletion takes the same lock, so the pool cannot go meanwhile.
struct PoolRegistry {
  std::mutex mu;
  std::unordered_set<std::uint64_t> live;
};
PoolRegistry& registry() {
  static auto* r = new PoolRegistry;  // never destroyed: threads may exit after main
  return *r;
}
void disown(const ThreadCacheRef& r) noexcept {
  if (r.cache == nullptr) return;
  // The slots stay in the cache (free, counted as free, taken by loans that find the shared
  // list empty); the next thread that claims the cache uses them.
  r.cache->owner.store(0, std::memory_order_release);
}

// Gives every cache this thread claimed back to its pool (the thread exits, or it asked for no
// caches) and forgets them.
void disown_all(ThreadCaches& t) noexcept {
  std::lock_guard lock(registry().mu);
  for (ThreadCacheRef& r : t.refs) {
    if (r.pool_id != 0 && registry().live.count(r.pool_id) != 0) disown(r);
    // Forgotten, so that a later release in this thread takes the slow path (which sees
    // `dead` or `no_cache`) instead of pushing into a cache another thread may own by then:
    // owners push without the lock, so a cache must never have two.
    r = ThreadCacheRef{};
  }
}

struct ThreadCacheCleanup {
  ~ThreadCacheCleanup() {
    ThreadCaches& t = t_caches;
    t.dead = true;
    disown_all(t);
  }
};
thread_local ThreadCacheCleanup t_cleanup;

std::atomic<std::uint64_t> g_next_thread_token{1};

std::atomic<std::uint64_t> g_next_pool_id{1};

// Whether `m` is what Metadata::clear() leaves, read without a branch per field.
[[gnu::always_inline]] inline bool meta_is_clear(const Metadata& m) noexcept {
  // A field added to Metadata must be added here too.
  static_assert(sizeof(Metadata) == 5 * sizeof(std::optional<std::uint64_t>) +
                                        2 * sizeof(std::uint64_t) + sizeof(m.entries));
  const unsigned set =
      static_cast<unsigned>(m.pts.has_value()) | static_cast<unsigned>(m.dts.has_value()) |
      static_cast<unsigned>(m.duration.has_value()) | static_cast<unsigned>(m.offset.has_value()) |
      static_cast<unsigned>(m.offset_end.has_value());
  return set == 0 && (m.sequence | m.flags) == 0 && m.entries.empty();
}

}  // namespace

struct MemoryPool::Impl {
  // The hot line: the free-list head and what loan/release read next to it.
  alignas(64) std::atomic<std::uint64_t> head{pack(kEmpty, 0, 0, 0)};
  std::atomic<std::size_t> capacity{0};
  std::atomic<std::size_t> high_water{0};
  std::atomic<std::uint32_t> cache_limit{0};  // slots one thread cache may hold (0: no caches)
  std::uint64_t id{0};
  // Slow-path counters on a line of their own.
  alignas(64) std::atomic<std::uint64_t> waits{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> grows{0};

  std::size_t slot_size{0};
  std::size_t slots_per_segment{0};
  std::size_t max_segments{1};
  bool grow_on_loan{true};
  std::function<Result<Segment>(std::size_t)> grow_fn;

  // Fixed-size arrays sized for max_segments so addresses never move while slots are out.
  std::unique_ptr<std::atomic<std::uint16_t>[]> next;  // next[i]: slot below i on the stack
  std::unique_ptr<Segment[]> segments;
  std::unique_ptr<std::unique_ptr<detail::BufferCore[]>[]> cores;
  std::unique_ptr<detail::BufferCore*[]> core_of;  // slot index -> its core (no division)
  std::atomic<std::size_t> segment_count{0};
  std::mutex grow_mu;  // serialises growth only; never taken on the loan/release fast path
  // caches[0, caches_used) were ever claimed (claims take the first free one): in_use() reads
  // only those (the IPC publisher asks on every send).
  std::atomic<std::uint32_t> caches_used{0};
  SlotCache caches[kMaxCaches];

  ~Impl() {
    std::lock_guard lock(registry().mu);
    registry().live.erase(id);
  }

  std::uint32_t* futex_word() noexcept {
    // The high half of the head word on a little-endian machine.
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
    return reinterpret_cast<std::uint32_t*>(&head) + 1;
  }

  detail::BufferCore* core(std::uint32_t slot) noexcept { return core_of[slot]; }

  // The calling thread's cache for this pool if it already claimed one, else nullptr (no
  // claim, no call: the fast paths stay leaf functions).
  // `pool_id` comes from the handle or the slot's core, not from the Impl: one dependent load
  // less on the fast paths. Id 0 (an arena's handle) finds nullptr.
  static SlotCache* known_cache(std::uint64_t pool_id) noexcept {
    const ThreadCaches& t = t_caches;
    for (const ThreadCacheRef& r : t.refs)
      if (r.pool_id == pool_id) return r.cache;
    return nullptr;
  }

  // The calling thread's cache for this pool (claimed on first use), or nullptr.
  SlotCache* thread_cache() noexcept {
    if (cache_limit.load(std::memory_order_relaxed) == 0) return nullptr;
    ThreadCaches& t = t_caches;
    for (const ThreadCacheRef& r : t.refs)
      if (r.pool_id == id) return r.cache;
    return claim_cache(t);
  }

  [[gnu::noinline]] SlotCache* claim_cache(ThreadCaches& t) noexcept {
    if (t.dead || t.no_cache) return nullptr;
    if (!t.armed) {
      t.armed = true;
      // Registers ThreadCacheCleanup for this thread's exit.
      static_cast<void>(&t_cleanup);  // odr-use only: the object has no state to read
    }
    if (t.token == 0) t.token = g_next_thread_token.fetch_add(1, std::memory_order_relaxed);
    SlotCache* mine = nullptr;
    for (SlotCache& c : caches) {  // one this thread owned before it forgot the pool
      if (c.owner.load(std::memory_order_relaxed) == t.token) {
        mine = &c;
        break;
      }
    }
    for (std::size_t i = 0; mine == nullptr && i < kMaxCaches; ++i) {
      std::uint64_t none = 0;
      if (caches[i].owner.compare_exchange_strong(none, t.token, std::memory_order_acquire)) {
        mine = &caches[i];
        // Before any slot goes into it (this thread's next release or flush).
        std::uint32_t used = caches_used.load(std::memory_order_relaxed);
        while (used < i + 1 && !caches_used.compare_exchange_weak(
                                   used, static_cast<std::uint32_t>(i + 1),
                                   std::memory_order_release, std::memory_order_relaxed)) {
        }
      }
    }
    ThreadCacheRef& slot = t.refs[t.next++ % kThreadRefs];
    if (slot.pool_id != 0) {  // forget the oldest pool: give its cache back if it still exists
      std::lock_guard lock(registry().mu);
      if (registry().live.count(slot.pool_id) != 0) disown(slot);
    }
    slot = ThreadCacheRef{id, mine};
    return mine;
  }

  void note_high_water(std::uint64_t head_now, const SlotCache* own) noexcept {
    // Slots off the shared list, less this thread's cache: exact with one thread; with several,
    // other threads' cached slots count as in use here (an upper bound; see pool.h).
    const std::size_t off_list = capacity.load(std::memory_order_relaxed) - count_of(head_now);
    const std::size_t cached = own ? own->count() : 0;
    const std::size_t used = off_list > cached ? off_list - cached : 0;
    std::size_t hw = high_water.load(std::memory_order_relaxed);
    while (used > hw && !high_water.compare_exchange_weak(hw, used, std::memory_order_relaxed)) {
    }
  }

  detail::BufferCore* hand_out(std::uint32_t slot) noexcept {
    detail::BufferCore* c = core(slot);
    c->refs.store(1, std::memory_order_relaxed);
    return c;
  }

  // A slot from this thread's cache (the owner's pop: one CAS, no lock); nullptr when it is
  // empty or being drained right now.
  static detail::BufferCore* pop_cached(SlotCache* tc) noexcept {
    std::uint64_t st = tc->state.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t n = SlotCache::count_in(st);
      if (n == 0 || (st & kCacheLocked)) return nullptr;
      // Read before the CAS: a drain that locks meanwhile only reads the cores, and makes the
      // CAS fail.
      detail::BufferCore* c = tc->cores[n - 1];
      if (tc->state.compare_exchange_weak(st, st - 1, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
        c->refs.store(1, std::memory_order_relaxed);
        return c;
      }
    }
  }

  // Pops a free slot from the shared list; nullptr when none is free.
  detail::BufferCore* try_pop(const SlotCache* own) noexcept {
    std::uint64_t old = head.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t top = top_of(old);
      if (top == kEmpty) return nullptr;
      const std::uint64_t nxt = next[top].load(std::memory_order_relaxed);
      const std::uint64_t now = pack(nxt, count_of(old) - 1, old, tag_of(old) + 1);
      if (head.compare_exchange_weak(old, now, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
        note_high_water(now, own);
        return hand_out(static_cast<std::uint32_t>(top));
      }
    }
  }

  // A slot from the cache this thread already claimed in pool `pool_id`; nullptr otherwise (no
  // call made). No cache_limit check: a thread claims a cache only while the limit is nonzero,
  // and the limit never drops (it follows the capacity, which only grows).
  static detail::BufferCore* pop_known(std::uint64_t pool_id) noexcept {
    SlotCache* tc = known_cache(pool_id);
    return tc != nullptr ? pop_cached(tc) : nullptr;
  }

  // This thread's cache first, then the shared list.
  detail::BufferCore* try_take() noexcept {
    SlotCache* tc = thread_cache();
    if (tc != nullptr) {
      if (detail::BufferCore* c = pop_cached(tc)) return c;
    }
    return try_pop(tc);
  }

  // Pushes slots s[0..k) (s[0] ends on top) onto the shared list in one CAS, waking sleeping
  // loans. After the CAS the pool may be freed by someone else; if this push is the one that
  // brings an orphaned pool back to "all free", it frees it.
  [[gnu::noinline]] void push_chain(const std::uint16_t* s, std::size_t k) noexcept {
    for (std::size_t i = 0; i + 1 < k; ++i)
      next[s[i]].store(s[i + 1], std::memory_order_relaxed);
    const std::size_t cap = capacity.load(std::memory_order_relaxed);
    std::uint32_t* fw = futex_word();
    std::uint64_t old = head.load(std::memory_order_relaxed);
    std::uint64_t now;
    do {
      next[s[k - 1]].store(static_cast<std::uint16_t>(top_of(old)), std::memory_order_relaxed);
      now = pack(s[0], count_of(old) + k, old & ~kWaiting, tag_of(old) + 1);
    } while (!head.compare_exchange_weak(old, now, std::memory_order_acq_rel,
                                         std::memory_order_relaxed));
    // A futex wake only names an address; it does not touch the memory, so it is safe even if
    // the pool was freed meanwhile (a stale kWaiting bit is possible after a timed-out loan).
    if (old & kWaiting) base::futex_wake_all(fw);
    if ((old & kOrphan) && count_of(now) == cap) delete this;
  }

  // Moves the slots of every thread cache to the shared list; returns how many moved. Callers
  // hold the pool alive (a MemoryPool handle, before kOrphan is set).
  std::size_t drain_caches() noexcept {
    std::size_t moved = 0;
    for (SlotCache& c : caches) {
      // Every cache is locked, even one that reads empty: a release whose CAS came before
      // this lock is seen here; one prepared before it fails its CAS (the generation moved)
      // and looks again, and then sees the flag the caller set first.
      const std::uint64_t st = c.lock();
      std::uint16_t taken[kCacheSlots];
      const std::uint32_t n = SlotCache::count_in(st);
      for (std::uint32_t i = 0; i < n; ++i)
        taken[i] = static_cast<std::uint16_t>(c.cores[n - 1 - i]->slot);
      c.unlock(st, 0);
      if (n != 0) push_chain(taken, n);
      moved += n;
    }
    return moved;
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
      core_of[base + i] = &c;
      next[base + i].store(
          static_cast<std::uint16_t>(i + 1 < slots_per_segment ? base + i + 1 : kEmpty),
          std::memory_order_relaxed);
    }
    cores[index] = std::move(chunk);
    const std::size_t cap =
        capacity.fetch_add(slots_per_segment, std::memory_order_relaxed) + slots_per_segment;
    // A thread may park an eighth of the pool (at most kCacheSlots): pools of fewer than 8
    // slots (large frames) keep no caches; their loans and releases go to the list directly.
    cache_limit.store(static_cast<std::uint32_t>(std::min(kCacheSlots, cap / 8)),
                      std::memory_order_relaxed);
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
    if (old & kWaiting) base::futex_wake_all(futex_word());
    return {};
  }

  Result<bool> try_grow() {
    std::lock_guard lock(grow_mu);
    if (top_of(head.load(std::memory_order_acquire)) != kEmpty) return true;  // raced: refilled
    if (drain_caches() != 0) return true;  // free slots were parked in thread caches
    if (!grow_on_loan) return false;
    return grow_locked();
  }

  // Adds one segment unless max_segments are there. Called with grow_mu held.
  Result<bool> grow_locked() {
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

  // Returns a slot: into this thread's cache, or onto the shared list when the cache is full
  // (then the older half of the cache goes with it), when a loan sleeps (kWaiting) or when the
  // handle is going away (kNoCache). A sleeping loan sets kWaiting and then locks every cache
  // (drain_caches); a push into a cache reads the flags after its state load and commits with
  // a CAS on that state: either the CAS comes first and the drain sees the slot, or the drain's
  // lock comes first, the CAS fails, and the retry (whose state load follows the drain's
  // unlock) sees the flag. Lifetime: the pool is alive while this slot is out.
  static void release(detail::BufferCore* c) noexcept {
    auto* p = static_cast<Impl*>(c->owner);
    // Fast path, a leaf with no store but its CAS and the slot's entry (a lock-prefixed CAS
    // waits for every earlier store to drain): a slot without metadata (a slot with some is
    // cleared on the slow path), this thread's already-claimed cache has room, is not being
    // drained, and no flag is set.
    const std::uint32_t limit = p->cache_limit.load(std::memory_order_relaxed);
    if (limit != 0 && meta_is_clear(c->meta)) [[likely]] {
      if (SlotCache* tc = known_cache(c->pool_id); tc != nullptr) [[likely]] {
        std::uint64_t st = tc->state.load(std::memory_order_acquire);
        const std::uint64_t h = p->head.load(std::memory_order_acquire);
        const std::uint32_t n = SlotCache::count_in(st);
        if (!(st & kCacheLocked) && !(h & kFlushFlags) && n < limit) [[likely]] {
          tc->cores[n] = c;
          if (tc->state.compare_exchange_strong(st, st + 1, std::memory_order_release,
                                                std::memory_order_relaxed)) [[likely]]
            return;
        }
      }
    }
    p->release_slow(c);  // decides again under the cache's lock
  }

  // The rest of release(): claims this thread's cache, flushes it, or pushes to the list.
  [[gnu::noinline]] void release_slow(detail::BufferCore* c) noexcept {
    Impl* p = this;
    c->meta.clear();  // the next loan starts from empty metadata
    SlotCache* tc = p->thread_cache();
    std::uint64_t st;
    if (tc != nullptr && tc->try_lock(st)) [[likely]] {
      const std::uint64_t h = p->head.load(std::memory_order_acquire);
      const std::uint32_t n = SlotCache::count_in(st);
      if (!(h & kFlushFlags) && n < p->cache_limit.load(std::memory_order_relaxed)) [[likely]] {
        tc->cores[n] = c;
        tc->unlock(st, n + 1);
        return;
      }
      p->release_flush(tc, st, c, h, n);
      return;
    }
    const auto slot = static_cast<std::uint16_t>(c->slot);
    p->push_chain(&slot, 1);  // may free p: nothing of it is touched after
  }

  // release() with the cache locked (`st`: what the lock returned) and full, or a flush flag
  // set: moves slots to the shared list and unlocks. Out of line: the fast path above keeps a
  // small frame.
  [[gnu::noinline]] void release_flush(SlotCache* tc, std::uint64_t st, detail::BufferCore* c,
                                       std::uint64_t h, std::uint32_t n) noexcept {
    Impl* p = this;
    std::uint16_t out[kCacheSlots + 1];
    std::size_t k = 0;
    std::uint32_t keep = 0;
    const auto index = [](const detail::BufferCore* x) {
      return static_cast<std::uint16_t>(x->slot);
    };
    if (h & kFlushFlags) {
      out[k++] = index(c);
      for (std::uint32_t i = n; i-- > 0;)
        out[k++] = index(tc->cores[i]);
    } else {
      // Full: the older half goes to the list, the newest (hottest) slots and this one stay.
      const std::uint32_t move = n - n / 2;
      for (std::uint32_t i = move; i-- > 0;)
        out[k++] = index(tc->cores[i]);
      for (std::uint32_t i = move; i < n; ++i)
        tc->cores[keep++] = tc->cores[i];
      tc->cores[keep++] = c;
    }
    tc->unlock(st, keep);
    if (k != 0) p->push_chain(out, k);  // may free p: nothing of it is touched after
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
  impl->grow_on_loan = opts.grow_on_loan;
  impl->id = g_next_pool_id.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(registry().mu);
    registry().live.insert(impl->id);
  }
  impl->grow_fn = opts.grow ? std::move(opts.grow) : default_grow(segment, "pool");
  impl->next = std::make_unique<std::atomic<std::uint16_t>[]>(per_segment * opts.max_segments);
  impl->segments = std::make_unique<Segment[]>(opts.max_segments);
  impl->cores = std::make_unique<std::unique_ptr<detail::BufferCore[]>[]>(opts.max_segments);
  impl->core_of = std::make_unique<detail::BufferCore*[]>(per_segment * opts.max_segments);
  PLX_TRY(impl->add_segment(std::move(segment)));
  const std::uint64_t id = impl->id;
  return std::shared_ptr<MemoryPool>(new MemoryPool(impl.release(), id));
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
  // First stop caching (kNoCache) and move every cached slot to the list, so that "all free"
  // can only be reached on the list; then mark it orphaned.
  Impl* p = impl_;
  const std::size_t cap = p->capacity.load(std::memory_order_relaxed);
  std::uint64_t old = p->head.load(std::memory_order_relaxed);
  while (!p->head.compare_exchange_weak(old, old | kNoCache, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
  }
  p->drain_caches();
  old = p->head.load(std::memory_order_relaxed);
  while (!p->head.compare_exchange_weak(old, old | kOrphan, std::memory_order_acq_rel,
                                        std::memory_order_relaxed)) {
  }
  if (count_of(old) == cap) delete p;
}

namespace {
// Tracing known to be off (the first span site in a process reads the environment: that one
// takes the slow path, which has the span).
bool trace_off() noexcept {
  return observe::trace_detail::g_state.load(std::memory_order_relaxed) ==
         observe::trace_detail::kOff;
}
}  // namespace

// The fast path of the unsized loans (inline in pool.h around this call), a leaf function: a
// slot from the cache this thread already claimed, tracing off. No span object, no error
// strings, no frame; everything else is out of line.
detail::BufferCore* MemoryPool::pop_fast() noexcept {
  // cache_id_ is 0 for an arena, which no thread cache matches.
  if (trace_off()) [[likely]]
    return Impl::pop_known(cache_id_);
  return nullptr;
}

[[gnu::noinline]] Result<Loan> MemoryPool::try_loan_slow() {
  PLX_TRACE_SPAN("pool.loan");
  if (arena_ != nullptr) return arena_needs_size();
  for (;;) {
    if (detail::BufferCore* c = impl_->try_take()) return Loan(c, impl_->slot_size);
    PLX_ASSIGN(bool grown, impl_->try_grow());
    if (!grown) break;
  }
  impl_->failed.fetch_add(1, std::memory_order_relaxed);
  return err(Errc::resource_exhausted, "pool exhausted: all " + std::to_string(capacity()) +
                                           " slots of " + std::to_string(impl_->slot_size) +
                                           " bytes are in use");
}

[[gnu::noinline]] Result<Loan> MemoryPool::loan_for_slow(std::chrono::nanoseconds timeout) {
  PLX_TRACE_SPAN("pool.loan");
  if (arena_ != nullptr) return arena_needs_size();
  for (;;) {
    if (detail::BufferCore* c = impl_->try_take()) return Loan(c, impl_->slot_size);
    PLX_ASSIGN(bool grown, impl_->try_grow());
    if (!grown) break;
  }
  impl_->waits.fetch_add(1, std::memory_order_relaxed);
  const auto now = std::chrono::steady_clock::now();
  // No deadline for loan() and for timeouts past the clock's range.
  const base::Deadline deadline =
      timeout >= base::kNoDeadline - now ? base::kNoDeadline : now + timeout;
  for (;;) {
    if (detail::BufferCore* c = impl_->try_take()) return Loan(c, impl_->slot_size);
    std::uint64_t old = impl_->head.load(std::memory_order_acquire);
    if (top_of(old) != kEmpty) continue;
    // Announce the sleeper in the head word itself, so a release sees it in its CAS (or, for a
    // release into a thread cache, under that cache's lock), then take what the caches hold.
    if (!(old & kWaiting) &&
        !impl_->head.compare_exchange_strong(old, old | kWaiting, std::memory_order_acq_rel)) {
      continue;
    }
    if (impl_->drain_caches() != 0) continue;
    old = impl_->head.load(std::memory_order_acquire);
    if (top_of(old) != kEmpty || !(old & kWaiting)) continue;
    // Sleeps while the head's high half (tag and flags) is unchanged: every push bumps the tag.
    const auto expected = static_cast<std::uint32_t>(old >> 32);
    PLX_ASSIGN(base::FutexWait how, base::futex_wait(impl_->futex_word(), expected, deadline));
    if (how == base::FutexWait::timed_out) {
      // One last look: a slot that came back as the deadline passed is still taken.
      if (detail::BufferCore* c = impl_->try_take()) return Loan(c, impl_->slot_size);
      break;
    }
  }
  impl_->failed.fetch_add(1, std::memory_order_relaxed);
  return err(Errc::timeout,
             "no pool slot became free within " + std::to_string(timeout.count() / 1000) + " us");
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
  // Free = on the shared list + parked in thread caches. Exact when no loan or release runs;
  // during one, a slot moving between a cache and the list can be missed or seen twice.
  std::size_t free = 0;
  const std::uint32_t used = impl_->caches_used.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < used; ++i)
    free += impl_->caches[i].count();
  free += count_of(impl_->head.load(std::memory_order_relaxed));
  const std::size_t cap = capacity();
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

Result<bool> MemoryPool::grow() {
  if (arena_ != nullptr)
    return err(Errc::unsupported,
               "grow(): a variable-size pool grows on its own within its budget");
  std::lock_guard lock(impl_->grow_mu);
  return impl_->grow_locked();
}

std::size_t MemoryPool::max_segments() const noexcept {
  return arena_ != nullptr ? 0 : impl_->max_segments;
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

void disable_thread_slot_cache() noexcept {
  ThreadCaches& t = t_caches;
  t.no_cache = true;
  disown_all(t);
}

}  // namespace parallax::memory
