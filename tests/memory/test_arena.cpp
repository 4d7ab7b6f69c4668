// SPDX-License-Identifier: MIT OR Apache-2.0
// Variable-size pools (MemoryPool::create_arena): sized loans, growth within the budget, the
// error naming the budget, waiting, orphaned lifetime, a randomized alloc/free run checked
// against a model, and a multi-thread run (also in the tsan suite).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "parallax/pool.h"

using namespace parallax;
using namespace parallax::memory;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<MemoryPool> make_arena(std::size_t first, std::size_t budget,
                                       std::size_t alignment = 64) {
  auto s = SharedMemorySegment::create("plx-arena", first);
  EXPECT_TRUE(s.ok());
  ArenaOptions o;
  o.max_bytes = budget;
  o.alignment = alignment;
  auto p = MemoryPool::create_arena(std::move(s).value(), o);
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  return std::move(p).value();
}

// Fills a block with a pattern derived from `tag` so that overlap or corruption shows.
void fill(std::span<std::byte> d, std::uint32_t tag) {
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i] = static_cast<std::byte>((tag * 131u + i * 7u) & 0xff);
}
bool check(std::span<const std::byte> d, std::uint32_t tag) {
  for (std::size_t i = 0; i < d.size(); ++i)
    if (d[i] != static_cast<std::byte>((tag * 131u + i * 7u) & 0xff)) return false;
  return true;
}

}  // namespace

TEST(Arena, SizedLoansLiveInTheSegment) {
  auto pool = make_arena(1 << 20, 1 << 20);
  EXPECT_TRUE(pool->variable_size());
  std::vector<Buffer> held;
  for (std::size_t n : {1u, 100u, 4096u, 20000u, 70000u}) {
    auto l = pool->loan(n);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    EXPECT_EQ(l->size(), n);
    EXPECT_GE(l->capacity(), n);
    fill(l->data(), static_cast<std::uint32_t>(n));
    Buffer b = std::move(*l).freeze();
    EXPECT_EQ(b.pool_id(), pool->id());
    ASSERT_NE(b.segment(), nullptr);
    EXPECT_EQ(b.segment(), &pool->segment(0));
    EXPECT_EQ(b.segment_offset() % 64, 0u);
    EXPECT_LE(b.segment_offset() + b.size(), b.segment()->size());
    EXPECT_EQ(b.data().data(), b.segment()->data() + b.segment_offset());
    held.push_back(std::move(b));
  }
  for (const Buffer& b : held)
    EXPECT_TRUE(check(b.data(), static_cast<std::uint32_t>(b.size())));
  const PoolStats s = pool->stats();
  EXPECT_TRUE(s.variable_size);
  EXPECT_GE(s.bytes_in_use, 1u + 100 + 4096 + 20000 + 70000);
  EXPECT_EQ(s.bytes_capacity, std::size_t{1} << 20);
  held.clear();
  EXPECT_EQ(pool->stats().bytes_in_use, 0u);
  EXPECT_GE(pool->stats().bytes_high_water, 94197u);
}

TEST(Arena, UnsizedLoanIsAnError) {
  auto pool = make_arena(64 << 10, 64 << 10);
  auto l = pool->try_loan();
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::invalid_argument);
  EXPECT_FALSE(pool->loan_for(1ms).ok());
}

TEST(Arena, GrowsWithinTheBudgetThenRefusesNamingIt) {
  auto pool = make_arena(64 << 10, 16 << 20);
  auto small = pool->loan(4096);
  ASSERT_TRUE(small.ok());
  // 6 MiB after 4 KiB: a new segment big enough for it.
  auto big = pool->try_loan(6 << 20);
  ASSERT_TRUE(big.ok()) << big.error().to_string();
  EXPECT_EQ(pool->segment_count(), 2u);
  EXPECT_EQ(pool->stats().grows, 1u);
  EXPECT_LE(pool->capacity(), std::size_t{16} << 20);
  std::memset(big->data().data(), 0x5a, big->size());
  // Larger than the whole budget: refused at once, never waiting, naming the budget.
  auto huge = pool->loan_for(32 << 20, 10s);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, Errc::out_of_range);
  EXPECT_NE(huge.error().message.find("budget"), std::string::npos) << huge.error().message;
}

TEST(Arena, FullArenaWaitsForARelease) {
  auto pool = make_arena(256 << 10, 256 << 10);
  std::vector<Loan> loans;
  for (;;) {
    auto l = pool->try_loan(32 << 10);
    if (!l) {
      EXPECT_EQ(l.error().code, Errc::resource_exhausted);
      break;
    }
    loans.push_back(std::move(*l));
  }
  ASSERT_GE(loans.size(), 5u);
  auto t0 = std::chrono::steady_clock::now();
  auto timed = pool->loan_for(32 << 10, 50ms);
  ASSERT_FALSE(timed.ok());
  EXPECT_EQ(timed.error().code, Errc::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 45ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(30ms);
    loans.pop_back();
  });
  auto waited = pool->loan_for(32 << 10, 5s);
  releaser.join();
  ASSERT_TRUE(waited.ok()) << waited.error().to_string();
  EXPECT_GE(pool->stats().waits, 2u);
}

TEST(Arena, BuffersOutliveThePoolHandle) {
  Buffer b;
  {
    auto pool = make_arena(64 << 10, 64 << 10);
    auto l = pool->loan(1000);
    ASSERT_TRUE(l.ok());
    fill(l->data(), 7);
    b = std::move(*l).freeze();
  }
  EXPECT_TRUE(check(b.data(), 7));
  Buffer c = b;
  b = Buffer();
  EXPECT_TRUE(check(c.data(), 7));
}  // the last release frees the orphaned arena (ASan/LSan would report otherwise)

TEST(Arena, SlotPoolSizedLoans) {
  auto s = SharedMemorySegment::create("plx-pool", 4 * 4096);
  ASSERT_TRUE(s.ok());
  auto pool = MemoryPool::create(std::move(*s), 4096);
  ASSERT_TRUE(pool.ok());
  auto l = (*pool)->loan(100);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 100u);
  auto big = (*pool)->try_loan(4097);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::invalid_argument);
  EXPECT_FALSE((*pool)->variable_size());
  EXPECT_EQ((*pool)->stats().bytes_capacity, 4u * 4096);
}

// Random loans and releases (sizes over four orders of magnitude) against a model: live blocks
// never overlap, keep their bytes, stay inside their segment, and the byte count adds up.
TEST(Arena, RandomizedAgainstAModel) {
  auto pool = make_arena(256 << 10, 8 << 20);
  std::mt19937_64 rng(20261129);
  struct Live {
    Buffer b;
    std::uint32_t tag;
  };
  std::vector<Live> live;
  std::uint32_t next_tag = 1;
  std::size_t refused = 0;
  for (int step = 0; step < 20000; ++step) {
    const bool do_alloc = live.empty() || (rng() % 100) < 55;
    if (do_alloc) {
      const int magnitude = static_cast<int>(rng() % 4);  // 1..10, ..100, ..10K, ..300K bytes
      const std::size_t limits[] = {10, 100, 10000, 300000};
      const std::size_t n = 1 + rng() % limits[magnitude];
      auto l = pool->try_loan(n);
      if (!l) {
        ASSERT_EQ(l.error().code, Errc::resource_exhausted) << l.error().to_string();
        ++refused;
        continue;
      }
      ASSERT_EQ(l->size(), n);
      const std::uint32_t tag = next_tag++;
      fill(l->data(), tag);
      live.push_back({std::move(*l).freeze(), tag});
    } else {
      const std::size_t i = rng() % live.size();
      ASSERT_TRUE(check(live[i].b.data(), live[i].tag)) << "block corrupted at step " << step;
      live[i] = std::move(live.back());
      live.pop_back();
    }
    if (step % 500 == 0) {
      // No two live blocks of the same segment overlap; each stays inside its segment.
      std::map<const Segment*, std::vector<std::pair<std::size_t, std::size_t>>> by_seg;
      std::size_t sum = 0;
      for (const Live& x : live) {
        ASSERT_LE(x.b.segment_offset() + x.b.size(), x.b.segment()->size());
        by_seg[x.b.segment()].push_back({x.b.segment_offset(), x.b.size()});
        sum += x.b.size();
      }
      for (auto& [seg, v] : by_seg) {
        std::sort(v.begin(), v.end());
        for (std::size_t k = 1; k < v.size(); ++k)
          ASSERT_LE(v[k - 1].first + v[k - 1].second, v[k].first) << "overlap at step " << step;
      }
      const PoolStats s = pool->stats();
      EXPECT_GE(s.bytes_in_use, sum);
      EXPECT_LE(s.bytes_in_use, sum + live.size() * 64);  // rounding to the alignment only
      EXPECT_LE(s.bytes_capacity, std::size_t{8} << 20);
    }
  }
  for (const Live& x : live)
    ASSERT_TRUE(check(x.b.data(), x.tag));
  live.clear();
  EXPECT_EQ(pool->stats().bytes_in_use, 0u);
  // After everything is back, the largest first segment's block is available again
  // (coalescing works: no permanent fragmentation).
  auto again = pool->try_loan(200 << 10);
  EXPECT_TRUE(again.ok()) << again.error().to_string();
  RecordProperty("refused", static_cast<int>(refused));
}

// Producer threads loan and hand blocks to a consumer thread that releases them (the IPC
// pattern: releases come from other threads). Run under TSan in the tsan suite.
TEST(Arena, ConcurrentLoansAndCrossThreadReleases) {
  auto pool = make_arena(512 << 10, 4 << 20);
  std::mutex mu;
  std::deque<std::pair<Buffer, std::uint32_t>> q;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread consumer([&] {
    for (;;) {
      std::pair<Buffer, std::uint32_t> item;
      {
        std::lock_guard lk(mu);
        if (q.empty()) {
          if (done.load()) return;
        } else {
          item = std::move(q.front());
          q.pop_front();
        }
      }
      if (item.first.valid() && !check(item.first.data(), item.second)) bad.fetch_add(1);
      if (!item.first.valid()) std::this_thread::yield();
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < 3; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) + 1);
      for (int i = 0; i < 3000; ++i) {
        const std::size_t n = 1 + rng() % 40000;
        auto l = pool->loan_for(n, 5s);
        if (!l) {
          bad.fetch_add(1);
          continue;
        }
        const auto tag = static_cast<std::uint32_t>(t * 100000 + i);
        fill(l->data(), tag);
        std::lock_guard lk(mu);
        q.emplace_back(std::move(*l).freeze(), tag);
      }
    });
  }
  for (auto& p : producers)
    p.join();
  done.store(true);
  consumer.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(pool->stats().bytes_in_use, 0u);
}
