// SPDX-License-Identifier: MIT OR Apache-2.0
// Memory benchmarks: loan+release, loan+freeze+drop, clone, slice, contended loans, against
// std::make_shared<std::vector<std::byte>> of the same size in the same run.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "parallax/pool.h"
#include "parallax/spsc_ring.h"

using namespace parallax::memory;

namespace {

std::shared_ptr<MemoryPool> pool_of(std::size_t slot, std::size_t count) {
  auto seg = SharedMemorySegment::create("plx-bench", slot * count);
  return std::move(MemoryPool::create(std::move(seg).value(), slot)).value();
}

void BM_LoanRelease(benchmark::State& s) {
  auto pool = pool_of(static_cast<std::size_t>(s.range(0)), 64);
  for (auto _ : s) {
    auto l = pool->try_loan();
    benchmark::DoNotOptimize(l);
  }
}
BENCHMARK(BM_LoanRelease)->Arg(64)->Arg(4096);

void BM_LoanFreezeDrop(benchmark::State& s) {
  auto pool = pool_of(static_cast<std::size_t>(s.range(0)), 64);
  for (auto _ : s) {
    Buffer b = std::move(pool->try_loan()).value().freeze();
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_LoanFreezeDrop)->Arg(64)->Arg(4096);

void BM_MakeSharedVector(benchmark::State& s) {
  const auto n = static_cast<std::size_t>(s.range(0));
  for (auto _ : s) {
    auto v = std::make_shared<std::vector<std::byte>>(n);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_MakeSharedVector)->Arg(64)->Arg(4096);

// Clone alone: 1000 clones per timed batch into preallocated storage; the drops of the batch
// are timed separately (BM_Drop) so each figure is one refcount operation.
void BM_Clone(benchmark::State& s) {
  auto pool = pool_of(4096, 4);
  Buffer b = std::move(pool->try_loan()).value().freeze();
  std::vector<Buffer> out(1000);
  for (auto _ : s) {
    for (auto& o : out)
      new (&o) Buffer(b);
    benchmark::ClobberMemory();
    s.PauseTiming();
    for (auto& o : out)
      o.~Buffer();
    s.ResumeTiming();
  }
  for (auto& o : out)
    new (&o) Buffer();
  s.SetItemsProcessed(s.iterations() * 1000);
}
BENCHMARK(BM_Clone)->UseRealTime();

void BM_CloneDrop(benchmark::State& s) {
  auto pool = pool_of(4096, 4);
  Buffer b = std::move(pool->try_loan()).value().freeze();
  for (auto _ : s) {
    Buffer c = b;
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_CloneDrop);

void BM_SharedPtrCopyDrop(benchmark::State& s) {
  auto v = std::make_shared<std::vector<std::byte>>(4096);
  for (auto _ : s) {
    auto c = v;
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_SharedPtrCopyDrop);

void BM_Slice(benchmark::State& s) {
  auto pool = pool_of(4096, 4);
  Buffer b = std::move(pool->try_loan()).value().freeze();
  for (auto _ : s) {
    auto sl = b.slice(16, 1024);
    benchmark::DoNotOptimize(sl);
  }
}
BENCHMARK(BM_Slice);

// Two threads loaning and releasing from one pool.
std::shared_ptr<MemoryPool> g_contended;
void BM_LoanReleaseContended(benchmark::State& s) {
  if (s.thread_index() == 0) g_contended = pool_of(4096, 64);
  // google benchmark synchronises threads at the start of the loop.
  for (auto _ : s) {
    auto l = g_contended->try_loan();
    benchmark::DoNotOptimize(l);
  }
  if (s.thread_index() == 0) g_contended.reset();
}
BENCHMARK(BM_LoanReleaseContended)->Threads(2)->UseRealTime();

std::shared_ptr<std::vector<std::byte>> g_sink;
void BM_MakeSharedContended(benchmark::State& s) {
  for (auto _ : s) {
    auto v = std::make_shared<std::vector<std::byte>>(4096);
    benchmark::DoNotOptimize(v);
  }
}
BENCHMARK(BM_MakeSharedContended)->Threads(2)->UseRealTime();

// The pattern of every queue: one thread loans (and freezes), another releases. Items cross
// through an SpscRing (parallax/spsc_ring.h, the queue element's hand-over); the peer sends
// make_shared vectors through the same ring. Per item, real time.
template <typename Make>
void producer_consumer(benchmark::State& s, Make make) {
  using Item = decltype(make());
  parallax::SpscRing<Item> ring(32);
  std::atomic<bool> done{false};
  auto stop = [&] { return done.load(std::memory_order_acquire); };
  std::thread consumer([&] {
    for (;;) {
      const bool more = ring.wait_readable(stop);
      const std::size_t n = ring.available();
      for (std::size_t i = 0; i < n; ++i)
        ring.at(i) = Item{};  // the release happens on this thread
      ring.consume(n);
      if (!more && n == 0) return;
    }
  });
  for (auto _ : s) {
    Item it = make();
    while (!ring.writable())
      (void)ring.wait_consumed(ring.head_index_cached(), [] { return false; });
    ring.slot() = std::move(it);
    ring.publish();
  }
  done.store(true, std::memory_order_release);
  ring.wake_all();
  consumer.join();
}

void BM_LoanProducerConsumer(benchmark::State& s) {
  auto pool = pool_of(4096, 64);
  producer_consumer(s, [&] {
    auto l = pool->loan();  // blocks while every slot is in flight
    if (!l) std::abort();
    return std::move(*l).freeze();
  });
}
BENCHMARK(BM_LoanProducerConsumer)->UseRealTime();

void BM_MakeSharedProducerConsumer(benchmark::State& s) {
  producer_consumer(s, [] { return std::make_shared<std::vector<std::byte>>(4096); });
}
BENCHMARK(BM_MakeSharedProducerConsumer)->UseRealTime();

// The floor on this machine: one uncontended lock-prefixed RMW (what a clone costs at least)
// and a load+CAS pair (what a loan or a release costs at least).
void BM_FloorFetchAdd(benchmark::State& s) {
  std::atomic<std::uint32_t> a{0};
  for (auto _ : s) {
    a.fetch_add(1, std::memory_order_relaxed);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_FloorFetchAdd);

void BM_FloorTwoCas(benchmark::State& s) {
  std::atomic<std::uint64_t> a{0};
  for (auto _ : s) {
    std::uint64_t v = a.load(std::memory_order_acquire);
    a.compare_exchange_weak(v, v + 1, std::memory_order_acquire);
    v = a.load(std::memory_order_relaxed);
    a.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_FloorTwoCas);

}  // namespace

BENCHMARK_MAIN();
