// SPDX-License-Identifier: MIT OR Apache-2.0
// detail::Fifo, the Connection's records in flight: order kept across wrap-around and growth,
// iteration from the front, clear.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <vector>

#include "ipc/fifo.h"

using parallax::link::detail::Fifo;

namespace {
template <typename T>
std::vector<T> contents(const Fifo<T>& f) {
  return std::vector<T>(f.begin(), f.end());
}
}  // namespace

// Against std::deque as the model: pushes and pops in uneven batches wrap the array many times
// and grow it with elements on both sides of the wrap.
TEST(IpcFifo, BehavesLikeADequeThroughWrapsAndGrowth) {
  Fifo<std::uint64_t> f;
  std::deque<std::uint64_t> model;
  EXPECT_TRUE(f.empty());
  std::uint64_t next = 0;
  for (int round = 0; round < 400; ++round) {
    const int push = (round * 7) % 23 + (round % 50 == 0 ? 150 : 0);
    for (int i = 0; i < push; ++i) {
      f.push_back(next);
      model.push_back(next);
      ++next;
    }
    const int pop = (round * 5) % 19;
    for (int i = 0; i < pop && !model.empty(); ++i) {
      ASSERT_EQ(f.front(), model.front());
      f.pop_front();
      model.pop_front();
    }
    ASSERT_EQ(f.size(), model.size());
    ASSERT_EQ(f.empty(), model.empty());
    ASSERT_EQ(contents(f), std::vector<std::uint64_t>(model.begin(), model.end())) << round;
  }
  while (!model.empty()) {
    ASSERT_EQ(f.front(), model.front());
    f.pop_front();
    model.pop_front();
  }
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.begin(), f.end());
}

TEST(IpcFifo, ClearEmptiesItAndItIsUsableAgain) {
  struct Rec {
    std::uint64_t end, token;
    std::uint8_t kind;
  };
  Fifo<Rec> f;
  for (std::uint64_t i = 0; i < 100; ++i)
    f.push_back({i, i * 2, 1});
  f.pop_front();
  EXPECT_EQ(f.front().end, 1u);
  f.clear();
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.size(), 0u);
  f.push_back({5, 6, 2});
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.front().token, 6u);
  std::size_t n = 0;
  for (const Rec& r : f) {
    EXPECT_EQ(r.kind, 2);
    ++n;
  }
  EXPECT_EQ(n, 1u);
}
