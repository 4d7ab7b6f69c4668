// SPDX-License-Identifier: MIT OR Apache-2.0
// MemoryPool tests: loans, exhaustion, blocking, growth, stats, lifetime, multi-thread stress.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "parallax/pool.h"
#include "test_util.h"

using namespace parallax;
using namespace parallax::memory;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<MemoryPool> make_pool(std::size_t seg, std::size_t slot, PoolOptions o = {}) {
  auto s = SharedMemorySegment::create("plx-pool", seg);
  EXPECT_TRUE(s.ok());
  auto p = MemoryPool::create(std::move(s).value(), slot, std::move(o));
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  return std::move(p).value();
}

struct HeapBackend {
  static Result<Segment> make(std::size_t n) { return HeapSegment::create(n); }
};
struct MemfdBackend {
  static Result<Segment> make(std::size_t n) { return SharedMemorySegment::create("plx-pool", n); }
};
struct HugeBackend {
  static Result<Segment> make(std::size_t n) { return HugePageSegment::create("plx-huge", n); }
};
struct FileBackend {
  static Result<Segment> make(std::size_t n) {
    return MappedFileSegment::create(test::unique_path("pool") + ".bin", n);
  }
};

template <typename B>
class PoolContract : public ::testing::Test {};
using Backends = ::testing::Types<HeapBackend, MemfdBackend, HugeBackend, FileBackend>;
TYPED_TEST_SUITE(PoolContract, Backends);

TYPED_TEST(PoolContract, LoansDistinctAlignedSlotsUntilExhausted) {
  auto seg = TypeParam::make(64 * 1024);
  ASSERT_TRUE(seg.ok());
  auto pool = MemoryPool::create(std::move(seg).value(), 1000);
  ASSERT_TRUE(pool.ok()) << pool.error().to_string();
  auto& p = *pool;
  EXPECT_EQ(p->slot_size(), 1024u);  // rounded up to the 64-byte default alignment
  EXPECT_EQ(p->capacity(), 64u);
  std::vector<Loan> loans;
  std::set<const std::byte*> seen;
  for (std::size_t i = 0; i < p->capacity(); ++i) {
    auto l = p->try_loan();
    ASSERT_TRUE(l.ok()) << i;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(l->data().data()) % 64, 0u);
    EXPECT_EQ(l->size(), 1024u);
    EXPECT_TRUE(seen.insert(l->data().data()).second) << "slot handed out twice";
    loans.push_back(std::move(l).value());
  }
  auto extra = p->try_loan();
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.error().code, Errc::resource_exhausted);
  EXPECT_EQ(p->in_use(), 64u);
  loans.clear();
  EXPECT_EQ(p->in_use(), 0u);
  auto st = p->stats();
  EXPECT_EQ(st.high_water, 64u);
  EXPECT_EQ(st.failed_loans, 1u);
}

TYPED_TEST(PoolContract, FrozenBufferKeepsSlotUntilLastReference) {
  auto seg = TypeParam::make(8 * 4096);
  ASSERT_TRUE(seg.ok());
  auto pool = MemoryPool::create(std::move(seg).value(), 4096);
  ASSERT_TRUE(pool.ok());
  auto& p = *pool;
  auto loan = p->try_loan();
  ASSERT_TRUE(loan.ok());
  std::memcpy(loan->data().data(), "hello", 5);
  ASSERT_TRUE(loan->set_size(5).ok());
  loan->metadata().pts = 1234;
  Buffer b = std::move(loan).value().freeze();
  EXPECT_EQ(b.size(), 5u);
  EXPECT_EQ(std::memcmp(b.data().data(), "hello", 5), 0);
  EXPECT_EQ(b.metadata().pts, 1234u);
  Buffer c = b.clone();
  EXPECT_EQ(b.use_count(), 2u);
  EXPECT_EQ(c.data().data(), b.data().data());
  EXPECT_EQ(p->in_use(), 1u);
  b = Buffer();
  EXPECT_EQ(p->in_use(), 1u);
  c = Buffer();
  EXPECT_EQ(p->in_use(), 0u);
  // The slot comes back with fresh metadata.
  auto again = p->try_loan();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->metadata().pts.has_value());
}

TEST(Pool, RejectsBadParameters) {
  auto mk = [] { return std::move(SharedMemorySegment::create("plx-bad", 4096)).value(); };
  EXPECT_EQ(MemoryPool::create(mk(), 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(mk(), 8192).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(mk(), 64, {.alignment = 48}).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(mk(), 64, {.alignment = 0}).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(mk(), 64, {.alignment = 8192}).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(mk(), 64, {.max_segments = 0}).error().code, Errc::invalid_argument);
  EXPECT_EQ(MemoryPool::create(Segment(), 64).error().code, Errc::invalid_argument);
  auto many =
      MemoryPool::create(std::move(HeapSegment::create(1 << 20)).value(), 1, {.alignment = 1});
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.error().message.find("65535"), std::string::npos);
}

TEST(Pool, ReadOnlySegmentCannotBePooled) {
  auto seg = SharedMemorySegment::create("plx-ro", 4096);
  ASSERT_TRUE(seg.ok());
  auto fd = seg->export_fd(Access::read_only);
  ASSERT_TRUE(fd.ok());
  auto ro = Segment::import(std::move(fd).value(), Access::read_only, 4096);
  ASSERT_TRUE(ro.ok());
  EXPECT_EQ(MemoryPool::create(std::move(ro).value(), 64).error().code, Errc::permission_denied);
}

TEST(Pool, AlignmentIsConfigurable) {
  auto p = make_pool(64 * 1024, 100, {.alignment = 256});
  EXPECT_EQ(p->slot_size(), 256u);
  auto l = p->try_loan();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(l->data().data()) % 256, 0u);
}

TEST(Pool, LoanSetSizeIsBounded) {
  auto p = make_pool(4096, 1024);
  auto l = p->try_loan();
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->set_size(10).ok());
  EXPECT_EQ(l->data().size(), 10u);
  EXPECT_TRUE(l->set_size(1024).ok());
  auto bad = l->set_size(1025);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::out_of_range);
  EXPECT_EQ(l->size(), 1024u);
}

TEST(Pool, LoanForTimesOutOnExhaustedPool) {
  auto p = make_pool(4096, 4096);
  auto held = p->try_loan();
  ASSERT_TRUE(held.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto l = p->loan_for(30ms);
  auto dt = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::timeout);
  EXPECT_GE(dt, 30ms);
  EXPECT_LT(dt, 2s);
  EXPECT_EQ(p->stats().waits, 1u);
}

TEST(Pool, BlockingLoanWakesWhenASlotReturns) {
  auto p = make_pool(4096, 4096);
  auto held = p->try_loan();
  ASSERT_TRUE(held.ok());
  Buffer b = std::move(held).value().freeze();
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    b = Buffer();
  });
  auto l = p->loan();
  releaser.join();
  ASSERT_TRUE(l.ok()) << l.error().to_string();
}

TEST(Pool, GrowsBySegmentsUpToTheLimit) {
  auto p = make_pool(4096, 1024, {.max_segments = 3});
  EXPECT_EQ(p->capacity(), 4u);
  std::vector<Loan> loans;
  for (int i = 0; i < 12; ++i) {
    auto l = p->try_loan();
    ASSERT_TRUE(l.ok()) << i << ": " << l.error().to_string();
    loans.push_back(std::move(l).value());
  }
  EXPECT_EQ(p->capacity(), 12u);
  EXPECT_EQ(p->segment_count(), 3u);
  EXPECT_EQ(p->stats().grows, 2u);
  EXPECT_EQ(p->try_loan().error().code, Errc::resource_exhausted);
  // Slots know their segment and offset.
  for (auto& l : loans) {
    Buffer b = std::move(l).freeze();
    const Segment* s = b.segment();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(b.data().data(), s->data() + b.segment_offset());
    EXPECT_EQ(b.segment_offset(), p->slot_offset(b.slot_index()));
    EXPECT_EQ(s, &p->segment(b.slot_index() / p->slots_per_segment()));
  }
}

TEST(Pool, GrowErrorIsReported) {
  auto p =
      make_pool(4096, 4096, {.max_segments = 2, .grow = [](std::size_t) -> Result<Segment> {
                               return err(Errc::resource_exhausted, "no more memory for the test");
                             }});
  auto a = p->try_loan();
  ASSERT_TRUE(a.ok());
  auto b = p->try_loan();
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("no more memory"), std::string::npos);
}

TEST(Pool, BuffersOutliveThePoolHandle) {
  Buffer b;
  {
    auto p = make_pool(8192, 4096);
    auto l = p->try_loan();
    ASSERT_TRUE(l.ok());
    std::memset(l->data().data(), 7, l->size());
    b = std::move(l).value().freeze();
  }
  // The pool handle is gone; the buffer's memory is still valid and frees the pool at drop.
  EXPECT_EQ(b.data()[4095], std::byte{7});
  Buffer c = b;
  b = Buffer();
  EXPECT_EQ(c.data()[0], std::byte{7});
}

TEST(Pool, StressManyThreadsLoanAndRelease) {
  auto p = make_pool(64 * 256, 256);  // 64 slots
  constexpr int kThreads = 4;
  constexpr int kIters = 20000;
  std::atomic<bool> corrupt{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<Buffer> keep;
      for (int i = 0; i < kIters; ++i) {
        auto l = (i % 3 == 0) ? p->loan_for(100ms) : p->try_loan();
        if (!l.ok()) continue;
        auto d = l->data();
        std::memset(d.data(), t + 1, d.size());
        Buffer b = std::move(l).value().freeze();
        // Nobody else may write this slot while we own it.
        for (std::size_t k = 0; k < b.size(); k += 31)
          if (b.data()[k] != std::byte(t + 1)) corrupt = true;
        if (i % 4 == 0) keep.push_back(b);  // cross-release in bulk later
        if (keep.size() > 8) keep.clear();
      }
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_FALSE(corrupt.load());
  EXPECT_EQ(p->in_use(), 0u);
  EXPECT_LE(p->stats().high_water, 64u);
  // Every slot is loanable again exactly once.
  std::vector<Loan> all;
  while (true) {
    auto l = p->try_loan();
    if (!l.ok()) break;
    all.push_back(std::move(l).value());
  }
  EXPECT_EQ(all.size(), 64u);
}

TEST(Pool, StressReleaseOnOtherThreadsWhileBlockedLoansWait) {
  auto p = make_pool(4 * 1024, 1024);  // 4 slots
  std::atomic<int> got{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto l = p->loan_for(5s);
        if (!l.ok()) continue;
        ++got;
        Buffer b = std::move(l).value().freeze();
        std::thread([b = std::move(b)]() mutable { b = Buffer(); }).detach();
      }
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(got.load(), 6000);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (p->in_use() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(p->in_use(), 0u);
}

// ---- Thread caches (a pool of >= 8 slots keeps up to an eighth of them per thread) ----

// Loans `n` slots on a thread of its own and releases them there: they park in that thread's
// cache (up to its limit) and the thread exits.
void loan_and_release_on_another_thread(MemoryPool& p, std::size_t n) {
  std::thread([&p, n] {
    std::vector<Loan> loans;
    for (std::size_t i = 0; i < n; ++i) {
      auto l = p.try_loan();
      ASSERT_TRUE(l.ok()) << l.error().to_string();
      loans.push_back(std::move(l).value());
    }
  }).join();
}

// A release whose slot carries metadata clears it (the fast path only takes slots that carry
// none): whichever single field was set, the next loan of that slot (LIFO from this thread's
// cache) starts empty.
TEST(PoolThreadCache, EveryMetadataFieldIsClearedBeforeTheSlotIsLoanedAgain) {
  auto p = make_pool(64 * 256, 256);  // 64 slots: caches of up to 8
  const std::vector<void (*)(Metadata&)> setters = {
      [](Metadata& m) { m.pts = 1; },           [](Metadata& m) { m.dts = 2; },
      [](Metadata& m) { m.duration = 3; },      [](Metadata& m) { m.offset = 4; },
      [](Metadata& m) { m.offset_end = 5; },    [](Metadata& m) { m.sequence = 6; },
      [](Metadata& m) { m.flags = kFlagLive; }, [](Metadata& m) { m.set("k", std::int64_t{7}); },
  };
  // Warm this thread's cache so that each release below takes the cached path.
  { auto warm = p->try_loan(); }
  for (std::size_t i = 0; i < setters.size(); ++i) {
    std::uint32_t slot = 0;
    {
      auto l = p->try_loan();
      ASSERT_TRUE(l.ok());
      setters[i](l->metadata());
      slot = std::move(*l).freeze().slot_index();
    }  // the Buffer's drop releases it
    auto again = p->try_loan();
    ASSERT_TRUE(again.ok());
    Buffer b = std::move(*again).freeze();
    EXPECT_EQ(b.slot_index(), slot) << "field " << i;  // the same slot came back
    EXPECT_EQ(b.metadata(), Metadata{}) << "field " << i;
  }
  EXPECT_EQ(p->in_use(), 0u);
}

TEST(PoolThreadCache, CachedSlotsCountAsFreeAndOtherThreadsGetThem) {
  auto p = make_pool(64 * 256, 256);  // 64 slots: caches of up to 8
  // Released on a thread that keeps them and then exits: free, not in use.
  loan_and_release_on_another_thread(*p, 12);
  EXPECT_EQ(p->in_use(), 0u);
  EXPECT_EQ(p->stats().high_water, 12u);
  // This thread gets every one of the 64 slots, the cached ones included, without growing.
  std::vector<Loan> all;
  for (int i = 0; i < 64; ++i) {
    auto l = p->try_loan();
    ASSERT_TRUE(l.ok()) << i << ": " << l.error().to_string();
    all.push_back(std::move(l).value());
    EXPECT_EQ(p->in_use(), static_cast<std::size_t>(i + 1));
  }
  EXPECT_EQ(p->try_loan().error().code, Errc::resource_exhausted);
  EXPECT_EQ(p->stats().grows, 0u);
  std::set<std::uint32_t> slots;
  for (auto& l : all)
    slots.insert(std::move(l).freeze().slot_index());
  EXPECT_EQ(slots.size(), 64u);
  EXPECT_EQ(p->in_use(), 0u);
}

// A thread that asked for no slot cache (what the IPC publisher's background thread does)
// releases straight to the shared list, so the next loan on another thread gets that very
// slot; a caching thread keeps it, and the same loan gets another one. The releasing thread
// stays alive until the check (a thread's exit gives its cache back, which would hide it).
TEST(PoolThreadCache, AThreadWithoutACacheReleasesToTheSharedListForTheNextLoan) {
  for (const bool caching : {true, false}) {
    auto p = make_pool(64 * 256, 256);
    Buffer b = p->try_loan().value().freeze();
    const std::uint32_t slot = b.slot_index();
    std::atomic<bool> released{false}, checked{false};
    std::thread t([&] {
      if (!caching) memory::disable_thread_slot_cache();
      b = Buffer();
      released.store(true);
      while (!checked.load())
        std::this_thread::yield();
    });
    while (!released.load())
      std::this_thread::yield();
    const std::uint32_t next = p->try_loan().value().freeze().slot_index();
    checked.store(true);
    t.join();
    EXPECT_EQ(next == slot, !caching)
        << (caching ? "caching" : "no cache") << ": slot " << slot << ", next loan " << next;
    EXPECT_EQ(p->in_use(), 0u);
  }
}

// in_use() reads only the caches ever claimed: slots parked in the caches of several live
// threads (each claims its own, in order) all count as free, and loans held count exactly.
TEST(PoolThreadCache, InUseIsExactWithSlotsCachedByEveryLiveThread) {
  auto p = make_pool(64 * 256, 256);  // 64 slots: caches of up to 8
  constexpr int kThreads = 4;
  std::mutex mu;
  std::condition_variable cv;
  int parked = 0;
  bool done = false;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      Loan keep = std::move(p->try_loan()).value();
      {
        std::vector<Loan> some;
        for (int i = 0; i < 5; ++i)
          some.push_back(std::move(p->try_loan()).value());
      }  // 5 slots into this thread's cache
      std::unique_lock lk(mu);
      ++parked;
      cv.notify_all();
      cv.wait(lk, [&] { return done; });
    });
  }
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return parked == kThreads; });
  }
  EXPECT_EQ(p->in_use(), static_cast<std::size_t>(kThreads));  // one held loan per thread
  {
    std::vector<Loan> mine;
    for (int i = 0; i < 3; ++i)
      mine.push_back(std::move(p->try_loan()).value());
    EXPECT_EQ(p->in_use(), static_cast<std::size_t>(kThreads + 3));
  }  // into this thread's cache
  EXPECT_EQ(p->in_use(), static_cast<std::size_t>(kThreads));
  {
    std::lock_guard lk(mu);
    done = true;
  }
  cv.notify_all();
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(p->in_use(), 0u);
}

TEST(PoolThreadCache, PoolDoesNotGrowWhileSlotsSitInACache) {
  auto p = make_pool(16 * 256, 256, {.max_segments = 4});  // 16 slots: caches of up to 2
  loan_and_release_on_another_thread(*p, 16);
  std::vector<Loan> all;
  for (int i = 0; i < 16; ++i) {
    auto l = p->try_loan();
    ASSERT_TRUE(l.ok());
    all.push_back(std::move(l).value());
  }
  EXPECT_EQ(p->stats().grows, 0u);
  EXPECT_EQ(p->segment_count(), 1u);
}

TEST(PoolThreadCache, ASlotReleasedIntoACacheBeforeALoanWaitsIsFound) {
  auto p = make_pool(64 * 256, 256);
  std::vector<Loan> all;
  for (int i = 0; i < 64; ++i)
    all.push_back(std::move(p->try_loan()).value());
  // Released here: it parks in this thread's cache. Another thread's blocking loan finds it.
  all.pop_back();
  Result<Loan> got = err(Errc::internal, "not run");
  std::thread([&] { got = p->loan_for(2s); }).join();
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(p->stats().waits, 0u);
}

TEST(PoolThreadCache, ALoanAsleepOnAnEmptyPoolWakesWhenAnotherThreadReleases) {
  auto p = make_pool(64 * 256, 256);
  std::vector<Loan> all;
  for (int i = 0; i < 64; ++i)
    all.push_back(std::move(p->try_loan()).value());
  std::atomic<bool> returned{false};
  Result<Loan> got = err(Errc::internal, "not run");
  std::thread waiter([&] {
    got = p->loan_for(10s);
    returned = true;
  });
  while (p->stats().waits == 0)
    std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);  // asleep on the futex by now (most likely)
  EXPECT_FALSE(returned.load());
  const auto t0 = std::chrono::steady_clock::now();
  all.pop_back();  // this thread's cache has room: the waiter's flag sends it to the list
  waiter.join();
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(PoolThreadCache, DroppingTheHandleWhileSlotsAreCachedFreesThePool) {
  // Under ASan this also proves the pool (and its caches) is freed exactly once.
  Buffer out;
  {
    auto p = make_pool(64 * 256, 256);
    loan_and_release_on_another_thread(*p, 8);  // cached on a thread that is gone
    {
      std::vector<Loan> mine;
      for (int i = 0; i < 6; ++i)
        mine.push_back(std::move(p->try_loan()).value());
    }  // cached on this thread
    out = std::move(p->try_loan()).value().freeze();
  }
  // The handle is gone with slots in two caches and one out; the last release frees the pool.
  std::thread([b = std::move(out)]() mutable { b = Buffer(); }).join();
}

TEST(PoolThreadCache, StressBlockingLoansWithCrossThreadReleases) {
  auto p = make_pool(16 * 256, 256);  // 16 slots: caches of up to 2, blocking loans
  constexpr int kThreads = 3;
  constexpr int kIters = 5000;
  std::atomic<int> got{0};
  std::atomic<bool> corrupt{false};
  // One buffer parked between threads: each thread swaps its own in and releases what the
  // previous thread left, so slots are loaned on one thread and released on another.
  std::mutex box_mu;
  Buffer box;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        auto l = p->loan_for(5s);
        if (!l.ok()) {
          corrupt = true;  // nothing holds slots for 5 s here
          continue;
        }
        ++got;
        std::memset(l->data().data(), t + 1, l->size());
        Buffer b = std::move(l).value().freeze();
        for (std::size_t k = 0; k < b.size(); k += 17)
          if (b.data()[k] != std::byte(t + 1)) corrupt = true;
        {
          std::lock_guard lock(box_mu);
          std::swap(box, b);
        }
        b = Buffer();  // released here, outside the lock
      }
    });
  }
  for (auto& t : ts)
    t.join();
  box = Buffer();
  EXPECT_FALSE(corrupt.load());
  EXPECT_EQ(got.load(), kThreads * kIters);
  EXPECT_EQ(p->in_use(), 0u);
}

}  // namespace
