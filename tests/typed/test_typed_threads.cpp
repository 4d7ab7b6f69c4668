// SPDX-License-Identifier: MIT OR Apache-2.0
// Tests of the typed pipeline's thread stages (queue, parallel) and of their queues: order kept,
// bounded memory, stop and error propagation across threads. Run under ThreadSanitizer too.
#include <parallax/typed.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace parallax::typed;
using parallax::Errc;
using parallax::Result;

/// A few microseconds of work that varies with x, so parallel workers finish out of order.
int busy(int x) {
  volatile int s = 0;
  for (int i = 0; i < (x % 7) * 200; ++i)
    s = s + i;
  return x * 2 + (s & 0);
}

std::vector<int> iota_vec(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    v[static_cast<std::size_t>(i)] = i;
  return v;
}

// ----- BoundedQueue and SpscQueue: one contract (push blocks while full, pop while empty, close
// wakes both; after close push refuses and pop drains), so one typed suite over both -----

/// One queue template as a gtest type parameter: Kind::type<T> is the queue of T.
template <template <typename> class Q>
struct Kind {
  template <typename T>
  using type = Q<T>;
};
struct KindName {
  template <typename K>
  static std::string GetName(int /*i*/) {
    return std::is_same_v<K, Kind<BoundedQueue>> ? "BoundedQueue" : "SpscQueue";
  }
};

template <typename K>
class TypedBlockingQueue : public ::testing::Test {};
using QueueKinds = ::testing::Types<Kind<BoundedQueue>, Kind<SpscQueue>>;
TYPED_TEST_SUITE(TypedBlockingQueue, QueueKinds, KindName);

template <typename K, typename T>
using QueueT = typename K::template type<T>;

TYPED_TEST(TypedBlockingQueue, FifoAndCloseDrains) {
  QueueT<TypeParam, int> q(2);
  ASSERT_TRUE(q.push(1));
  ASSERT_TRUE(q.push(2));
  q.close();
  EXPECT_FALSE(q.push(3));
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), std::nullopt);
}

TYPED_TEST(TypedBlockingQueue, HoldsAtMostItsCapacity) {
  QueueT<TypeParam, int> q(3);  // SpscQueue: the ring below is 4 slots; the limit is 3
  ASSERT_TRUE(q.push(1));
  ASSERT_TRUE(q.push(2));
  ASSERT_TRUE(q.push(3));
  std::atomic<bool> returned{false};
  std::jthread producer([&] {
    EXPECT_TRUE(q.push(4));  // full: blocks until the consumer takes one
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(returned.load());
  EXPECT_EQ(q.pop(), 1);
  producer.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(q.pop(), 2);
}

TYPED_TEST(TypedBlockingQueue, CloseWakesABlockedProducerAndABlockedConsumer) {
  QueueT<TypeParam, int> full(1);
  ASSERT_TRUE(full.push(1));
  QueueT<TypeParam, int> empty(1);
  std::atomic<bool> returned{false};
  bool pushed = true;
  std::optional<int> popped = 7;
  std::jthread producer([&] {
    pushed = full.push(2);  // full: blocks until close()
    returned = true;
  });
  std::jthread consumer([&] { popped = empty.pop(); });  // empty: blocks until close()
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(returned.load());
  full.close();
  empty.close();
  producer.join();
  consumer.join();
  EXPECT_FALSE(pushed);
  EXPECT_EQ(popped, std::nullopt);
}

TYPED_TEST(TypedBlockingQueue, TwoThreadsKeepEveryItemInOrder) {
  QueueT<TypeParam, std::unique_ptr<int>> q(4);
  constexpr int kItems = 100000;
  std::jthread producer([&] {
    for (int i = 0; i < kItems; ++i)
      ASSERT_TRUE(q.push(std::make_unique<int>(i)));
    q.close();
  });
  int expected = 0;
  while (auto v = q.pop()) {
    ASSERT_EQ(**v, expected);
    ++expected;
  }
  EXPECT_EQ(expected, kItems);
}

// ----- queue() -----

TEST(TypedQueue, KeepsOrderAndRunsDownstreamOnAnotherThread) {
  // Arrange
  const auto caller = std::this_thread::get_id();
  std::thread::id downstream;
  // Act
  auto r = pipeline(range(0, 20000))
               .then(queue(8))
               .then(inspect([&downstream](int) { downstream = std::this_thread::get_id(); }))
               .sink(collect<int>())
               .run();
  // Assert
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, iota_vec(20000));
  EXPECT_NE(downstream, caller);
}

TEST(TypedQueue, MemoryStaysBounded) {
  std::atomic<long> produced{0}, consumed{0};
  std::atomic<long> worst{0};
  auto r = pipeline(range(0, 5000))
               .then(inspect([&](int) {
                 long ahead = ++produced - consumed.load();
                 long w = worst.load();
                 while (ahead > w && !worst.compare_exchange_weak(w, ahead)) {
                 }
               }))
               .then(queue(4))
               .sink(for_each([&](int) { ++consumed; }))
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(consumed.load(), 5000);
  // 4 queued + 1 in the consumer's hands + the one being produced.
  EXPECT_LE(worst.load(), 6);
}

TEST(TypedQueue, DownstreamStopEndsAnEndlessSource) {
  int n = 0;
  auto r = pipeline(repeat_with([&n] { return n++; }))
               .then(queue(2))
               .then(take(5))
               .sink(collect<int>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(TypedQueue, UpstreamErrorDeliversEarlierItemsThenFails) {
  std::vector<int> got;
  auto r =
      pipeline(range(0, 100))
          .then(map([](int x) -> Result<int> {
            if (x == 50) return parallax::err(Errc::data_loss, "up");
            return x;
          }))
          .then(queue(4))
          .then(batch(8))
          .sink(for_each([&got](std::vector<int> b) { got.insert(got.end(), b.begin(), b.end()); }))
          .run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "up");
  EXPECT_EQ(got, iota_vec(48));  // 6 full batches; the partial one is dropped after the error
}

TEST(TypedQueue, DownstreamErrorWins) {
  auto r = pipeline(range(0, 1000000))
               .then(map([](int x) -> Result<int> {
                 if (x == 900000) return parallax::err(Errc::data_loss, "up");
                 return x;
               }))
               .then(queue(4))
               .sink(for_each([](int x) -> Result<void> {
                 if (x == 10) return parallax::err(Errc::internal, "down");
                 return {};
               }))
               .run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "down");
}

TEST(TypedQueue, ZeroCapacityIsAnInvalidArgument) {
  auto r = pipeline(range(0, 3)).then(queue(0)).sink(discard()).run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(TypedQueue, EmptySource) {
  auto r = pipeline(range(0, 0)).then(queue(3)).sink(collect<int>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

// ----- parallel() -----

TEST(TypedParallel, KeepsOrderWithUnevenWork) {
  const auto caller = std::this_thread::get_id();
  std::atomic<int> off_thread{0};
  auto r = pipeline(range(0, 20000))
               .parallel(2,
                         [&, caller](int x) {
                           if (std::this_thread::get_id() != caller) ++off_thread;
                           return busy(x);
                         })
               .sink(collect<int>())
               .run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 20000u);
  for (int i = 0; i < 20000; ++i)
    ASSERT_EQ((*r)[static_cast<std::size_t>(i)], 2 * i) << i;
  EXPECT_EQ(off_thread.load(), 20000);
}

TEST(TypedParallel, InFlightItemsAreBounded) {
  long produced = 0, consumed = 0, worst = 0;  // both touched on the caller's thread only
  auto r = pipeline(range(0, 5000))
               .then(inspect([&](int) { worst = std::max(worst, ++produced - consumed); }))
               .then(parallel(
                   3, [](int x) { return busy(x); }, 2))
               .sink(for_each([&](int) { ++consumed; }))
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(consumed, 5000);
  EXPECT_LE(worst, 3 * 2 + 1);
}

TEST(TypedParallel, ErrorStopsInStreamOrder) {
  std::vector<int> got;
  auto r = pipeline(range(0, 10000))
               .then(parallel(2,
                              [](int x) -> Result<int> {
                                if (x == 777) return parallax::err(Errc::data_loss, "777");
                                return busy(x);
                              }))
               .sink(for_each([&got](int x) { got.push_back(x); }))
               .run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "777");
  ASSERT_EQ(got.size(), 777u);
  EXPECT_EQ(got.back(), 776 * 2);
}

TEST(TypedParallel, UpstreamErrorStillDeliversItemsAlreadySent) {
  std::vector<int> got;
  auto r = pipeline(range(0, 100))
               .then(map([](int x) -> Result<int> {
                 if (x == 40) return parallax::err(Errc::data_loss, "up");
                 return x;
               }))
               .then(parallel(2, [](int x) { return x; }))
               .sink(for_each([&got](int x) { got.push_back(x); }))
               .run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "up");
  EXPECT_EQ(got, iota_vec(40));
}

TEST(TypedParallel, ThrowingCallableBecomesAnInternalError) {
  auto r = pipeline(range(0, 100))
               .then(parallel(2,
                              [](int x) {
                                if (x == 5) throw std::runtime_error("no");
                                return x;
                              }))
               .sink(discard())
               .run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::internal);
}

TEST(TypedParallel, DownstreamTakeStopsAnEndlessSource) {
  int n = 0;
  auto r = pipeline(repeat_with([&n] { return n++; }))
               .then(parallel(2, [](int x) { return x + 1; }))
               .then(take(3))
               .sink(collect<int>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{1, 2, 3}));
}

TEST(TypedParallel, MoveOnlyItems) {
  std::vector<std::unique_ptr<int>> v;
  for (int i = 0; i < 100; ++i)
    v.push_back(std::make_unique<int>(i));
  auto r = pipeline(from_iter(std::move(v)))
               .then(parallel(2, [](std::unique_ptr<int> p) { return *p * 3; }))
               .sink(fold(0, [](int a, int x) { return a + x; }))
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3 * 99 * 100 / 2);
}

TEST(TypedParallel, InvalidArguments) {
  auto no_threads =
      pipeline(range(0, 3)).then(parallel(0, [](int x) { return x; })).sink(discard()).run();
  auto no_depth = pipeline(range(0, 3))
                      .then(parallel(
                          2, [](int x) { return x; }, 0))
                      .sink(discard())
                      .run();
  ASSERT_FALSE(no_threads.ok());
  ASSERT_FALSE(no_depth.ok());
  EXPECT_EQ(no_threads.error().code, Errc::invalid_argument);
}

TEST(TypedParallel, EmptySourceAndFewerItemsThanThreads) {
  auto empty =
      pipeline(range(0, 0)).parallel(2, [](int x) { return x; }).sink(collect<int>()).run();
  auto one = pipeline(once(9)).parallel(4, [](int x) { return x; }).sink(collect<int>()).run();
  ASSERT_TRUE(empty.ok() && one.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(*one, (std::vector<int>{9}));
}

TEST(TypedThreads, QueueThenParallelThenBatch) {
  auto r = pipeline(range(0, 3000))
               .then(queue(16))
               .then(parallel(2, [](int x) { return busy(x); }))
               .then(batch(1000))
               .sink(collect<std::vector<int>>())
               .run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[2].back(), 2 * 2999);
}

}  // namespace
