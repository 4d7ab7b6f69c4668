// SPDX-License-Identifier: MIT OR Apache-2.0
// Tests of parallax::typed on the caller's thread: every source, operator and sink, the error
// path, move-only and large items, and the compile-time acceptance concepts.
#include <parallax/typed.h>

#include <gtest/gtest.h>

#include <array>
#include <list>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace parallax::typed;
using parallax::Errc;
using parallax::Error;
using parallax::Result;

/// Counts copies and moves, to prove which paths copy items.
struct Counted {
  static inline int copies = 0;
  static inline int moves = 0;
  int v = 0;
  explicit Counted(int x) : v(x) {}
  Counted(const Counted& o) : v(o.v) { ++copies; }
  Counted(Counted&& o) noexcept : v(o.v) { ++moves; }
  Counted& operator=(const Counted& o) {
    v = o.v;
    ++copies;
    return *this;
  }
  Counted& operator=(Counted&& o) noexcept {
    v = o.v;
    ++moves;
    return *this;
  }
  static void reset() { copies = moves = 0; }
};

// ----- the original README program -----

TEST(TypedReadme, EvenNumbersTimesTen) {
  // Arrange / Act
  auto result = pipeline(from_iter(std::vector{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
                    .then(filter([](const int& x) { return x % 2 == 0; }))
                    .then(map([](int x) { return x * 10; }))
                    .sink(collect<int>())
                    .run();
  // Assert
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(std::move(result).into_inner(), (std::vector<int>{20, 40, 60, 80, 100}));
}

TEST(TypedReadme, PipeSyntaxGivesTheSameResult) {
  auto result = (pipeline(from_iter(std::vector{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})) |
                 filter([](const int& x) { return x % 2 == 0; }) |
                 map([](int x) { return x * 10; }) | collect<int>())
                    .run();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, (std::vector<int>{20, 40, 60, 80, 100}));
}

TEST(TypedReadme, PipeCanStartFromABareSource) {
  auto result = (range(0, 5) | map([](int x) { return x + 1; }) | collect<int>()).run();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, (std::vector<int>{1, 2, 3, 4, 5}));
}

// ----- sources -----

TEST(TypedSources, FromIterEmptyVectorGivesNothing) {
  auto r = pipeline(from_iter(std::vector<int>{})).sink(collect<int>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(TypedSources, FromIterBorrowedLeavesTheRangeIntactAndCopiesOnlyInTheSink) {
  // Arrange
  std::vector<Counted> v;
  for (int i = 0; i < 6; ++i)
    v.emplace_back(i);
  Counted::reset();
  // Act: filter and take see `const Counted&`; only collect copies (3 kept items).
  auto r = pipeline(from_iter(v))
               .then(filter([](const Counted& c) { return c.v % 2 == 1; }))
               .then(take(10))
               .sink(collect<Counted>())
               .run();
  // Assert
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[2].v, 5);
  EXPECT_EQ(Counted::copies, 3);
  EXPECT_EQ(v.size(), 6u);
  EXPECT_EQ(v[5].v, 5);
}

TEST(TypedSources, FromIterOwnedMovesAndNeverCopies) {
  std::vector<Counted> v;
  for (int i = 0; i < 4; ++i)
    v.emplace_back(i);
  Counted::reset();
  auto r = pipeline(from_iter(std::move(v)))
               .then(filter([](const Counted& c) { return c.v != 1; }))
               .sink(collect<Counted>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(Counted::copies, 0);
}

TEST(TypedSources, FromIterInitializerListAndOtherContainers) {
  auto a = pipeline(from_iter({3, 1, 2})).sink(collect<int>()).run();
  std::list<std::string> l{"x", "y"};
  auto b = pipeline(from_iter(l)).sink(collect<std::string>()).run();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, (std::vector<int>{3, 1, 2}));
  EXPECT_EQ(*b, (std::vector<std::string>{"x", "y"}));
}

// clang 14 cannot use libstdc++ 12's views (a known toolchain mismatch), so only g++ and newer
// clang run this one; from_iter itself needs nothing of <ranges> but the concepts.
#if !defined(__clang__) || __clang_major__ >= 15
TEST(TypedSources, FromIterTakesViews) {
  auto owned = pipeline(from_iter(std::views::iota(5, 8))).sink(collect<int>()).run();
  const std::vector<int> v{1, 2, 3, 4};
  auto borrowed_view = v | std::views::reverse;
  auto borrowed = pipeline(from_iter(borrowed_view)).sink(collect<int>()).run();
  ASSERT_TRUE(owned.ok() && borrowed.ok());
  EXPECT_EQ(*owned, (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(*borrowed, (std::vector<int>{4, 3, 2, 1}));
}
#endif

TEST(TypedSources, RangeIsHalfOpenAndEmptyWhenReversed) {
  auto a = pipeline(range(2, 6)).sink(collect<int>()).run();
  auto empty = pipeline(range(4, 4)).sink(collect<int>()).run();
  auto reversed = pipeline(range(9, 2)).sink(collect<int>()).run();
  auto mixed = pipeline(range(0, std::size_t{3})).sink(collect<std::size_t>()).run();
  ASSERT_TRUE(a.ok() && empty.ok() && reversed.ok() && mixed.ok());
  EXPECT_EQ(*a, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_TRUE(empty->empty());
  EXPECT_TRUE(reversed->empty());
  EXPECT_EQ(*mixed, (std::vector<std::size_t>{0, 1, 2}));
}

TEST(TypedSources, OnceGivesExactlyOneItem) {
  auto r = pipeline(once(std::string("hello"))).sink(collect<std::string>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<std::string>{"hello"}));
}

TEST(TypedSources, RepeatWithIsCalledOnlyAsOftenAsTakeNeeds) {
  int calls = 0;
  auto r =
      pipeline(repeat_with([&calls] { return ++calls; })).then(take(3)).sink(collect<int>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(calls, 3);  // take stops right after the 3rd item, not on a 4th
}

TEST(TypedSources, MergeInterleavesThenDrainsTheLongerSource) {
  auto r =
      pipeline(merge(from_iter({1, 3, 5, 7, 9}), from_iter({2, 4}))).sink(collect<int>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{1, 2, 3, 4, 5, 7, 9}));
}

TEST(TypedSources, MergeWithAnEmptySideAndNested) {
  auto a = pipeline(merge(from_iter(std::vector<int>{}), range(0, 3))).sink(collect<int>()).run();
  auto b = pipeline(merge(merge(once(1), once(2)), once(3))).sink(collect<int>()).run();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(*b, (std::vector<int>{1, 3, 2}));
}

TEST(TypedSources, ZipPairsUntilTheShorterEnds) {
  std::vector<std::string> names{"a", "b", "c", "d"};
  auto r = pipeline(zip(range(0, 3), from_iter(names)))
               .then(map([](std::pair<int, std::string> p) {
                 return p.second + std::to_string(p.first);
               }))
               .sink(collect<std::string>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<std::string>{"a0", "b1", "c2"}));
}

TEST(TypedSources, ZipWithRepeatWithAndEmpty) {
  int n = 0;
  auto a = pipeline(zip(from_iter({'x', 'y'}), repeat_with([&n] { return n++; })))
               .sink(collect<std::pair<char, int>>())
               .run();
  auto b = pipeline(zip(from_iter(std::vector<int>{}), range(0, 10))).sink(discard()).run();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, (std::vector<std::pair<char, int>>{{'x', 0}, {'y', 1}}));
  EXPECT_EQ(*b, 0u);
}

// ----- operators -----

TEST(TypedOperators, MapCanChangeTheItemType) {
  auto r = pipeline(range(1, 4))
               .then(map([](int x) { return std::string(static_cast<std::size_t>(x), '*'); }))
               .sink(collect<std::string>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<std::string>{"*", "**", "***"}));
}

TEST(TypedOperators, FilterKeepsAllOrNothing) {
  auto all =
      pipeline(range(0, 4)).then(filter([](int) { return true; })).sink(collect<int>()).run();
  auto none =
      pipeline(range(0, 4)).then(filter([](int) { return false; })).sink(collect<int>()).run();
  ASSERT_TRUE(all.ok() && none.ok());
  EXPECT_EQ(all->size(), 4u);
  EXPECT_TRUE(none->empty());
}

TEST(TypedOperators, FilterMapParsesAndDrops) {
  auto r = pipeline(from_iter(std::vector<std::string>{"1", "x", "22", "", "3"}))
               .then(filter_map([](const std::string& s) -> std::optional<int> {
                 if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
                   return std::nullopt;
                 }
                 return std::stoi(s);
               }))
               .sink(collect<int>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{1, 22, 3}));
}

TEST(TypedOperators, TakeBoundaries) {
  int seen = 0;
  auto zero =
      pipeline(repeat_with([&seen] { return ++seen; })).then(take(0)).sink(collect<int>()).run();
  auto more_than_there_is = pipeline(range(0, 3)).then(take(100)).sink(collect<int>()).run();
  auto exact = pipeline(range(0, 3)).then(take(3)).sink(collect<int>()).run();
  ASSERT_TRUE(zero.ok() && more_than_there_is.ok() && exact.ok());
  EXPECT_TRUE(zero->empty());
  EXPECT_EQ(seen, 0);  // take(0): the source is never asked for an item
  EXPECT_EQ(more_than_there_is->size(), 3u);
  EXPECT_EQ(*exact, (std::vector<int>{0, 1, 2}));
}

TEST(TypedOperators, TakeStopsTheSourceEarly) {
  int produced = 0;
  auto r = pipeline(range(0, 1000))
               .then(inspect([&produced](int) { ++produced; }))
               .then(take(5))
               .sink(discard())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 5u);
  EXPECT_EQ(produced, 5);
}

TEST(TypedOperators, SkipBoundaries) {
  auto none = pipeline(range(0, 3)).then(skip(0)).sink(collect<int>()).run();
  auto some = pipeline(range(0, 5)).then(skip(3)).sink(collect<int>()).run();
  auto past_end = pipeline(range(0, 3)).then(skip(7)).sink(collect<int>()).run();
  ASSERT_TRUE(none.ok() && some.ok() && past_end.ok());
  EXPECT_EQ(*none, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(*some, (std::vector<int>{3, 4}));
  EXPECT_TRUE(past_end->empty());
}

TEST(TypedOperators, SkipThenTakeIsAWindow) {
  auto r = pipeline(range(0, 100)).then(skip(10)).then(take(3)).sink(collect<int>()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<int>{10, 11, 12}));
}

TEST(TypedOperators, InspectSeesEveryItemAndChangesNothing) {
  std::vector<int> seen;
  auto r = pipeline(range(0, 4))
               .then(inspect([&seen](const int& x) { seen.push_back(x); }))
               .sink(collect<int>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(*r, seen);
}

TEST(TypedOperators, BatchGroupsAndFlushesTheRest) {
  auto r = pipeline(range(0, 7)).then(batch(3)).sink(collect<std::vector<int>>()).run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ((*r)[2], (std::vector<int>{6}));
}

TEST(TypedOperators, BatchExactMultipleAndEmptyInput) {
  auto exact = pipeline(range(0, 4)).then(batch(2)).sink(collect<std::vector<int>>()).run();
  auto empty = pipeline(range(0, 0)).then(batch(2)).sink(collect<std::vector<int>>()).run();
  ASSERT_TRUE(exact.ok() && empty.ok());
  EXPECT_EQ(exact->size(), 2u);  // no empty trailing batch
  EXPECT_TRUE(empty->empty());
}

TEST(TypedOperators, BatchZeroIsAnInvalidArgument) {
  auto r = pipeline(range(0, 4)).then(batch(0)).sink(discard()).run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(TypedOperators, TakeAfterBatchStopsWithoutFlushingAnotherBatch) {
  auto r =
      pipeline(range(0, 100)).then(batch(4)).then(take(2)).sink(collect<std::vector<int>>()).run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->back(), (std::vector<int>{4, 5, 6, 7}));
}

TEST(TypedOperators, TakeBeforeBatchFlushesThePartialBatch) {
  auto r =
      pipeline(range(0, 100)).then(take(5)).then(batch(2)).sink(collect<std::vector<int>>()).run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ(r->back(), (std::vector<int>{4}));
}

TEST(TypedOperators, TheDocsChainOfEveryOperator) {
  std::vector<int> inspected;
  auto r = pipeline(range(0, 10))
               .then(map([](int x) { return std::to_string(x); }))
               .then(filter([](const std::string& s) { return s != "3"; }))
               .then(filter_map([](std::string s) -> std::optional<int> {
                 return s.size() == 1 ? std::optional<int>(std::stoi(s)) : std::nullopt;
               }))
               .then(skip(2))
               .then(take(4))
               .then(inspect([&inspected](const int& x) { inspected.push_back(x); }))
               .then(batch(3))
               .sink(collect<std::vector<int>>())
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<std::vector<int>>{{2, 4, 5}, {6}}));
  EXPECT_EQ(inspected, (std::vector<int>{2, 4, 5, 6}));
}

// ----- sinks -----

TEST(TypedSinks, ForEachSeesEveryItemInOrder) {
  std::vector<int> seen;
  Result<void> r =
      pipeline(range(0, 3)).sink(for_each([&seen](int x) { seen.push_back(x); })).run();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
}

TEST(TypedSinks, FoldSumsAndConcatenates) {
  auto sum = pipeline(range(1, 101)).sink(fold(0L, [](long acc, int x) { return acc + x; })).run();
  auto text = pipeline(from_iter({"a", "b", "c"}))
                  .sink(fold(std::string(), [](std::string acc, const char* s) { return acc + s; }))
                  .run();
  auto empty = pipeline(range(0, 0)).sink(fold(7, [](int acc, int x) { return acc + x; })).run();
  ASSERT_TRUE(sum.ok() && text.ok() && empty.ok());
  EXPECT_EQ(*sum, 5050);
  EXPECT_EQ(*text, "abc");
  EXPECT_EQ(*empty, 7);  // no item: the initial value
}

TEST(TypedSinks, DiscardCountsItems) {
  auto r =
      pipeline(range(0, 42)).then(filter([](int x) { return x % 2 == 0; })).sink(discard()).run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 21u);
}

// ----- errors -----

Result<int> fail_on_three(int x) {
  if (x == 3) return parallax::err(Errc::data_loss, "three is corrupt");
  return x * 2;
}

TEST(TypedErrors, FirstErrorStopsThePipelineAndIsReturned) {
  // Arrange
  std::vector<int> before, after;
  // Act
  auto r = pipeline(range(0, 100))
               .then(inspect([&before](int x) { before.push_back(x); }))
               .then(map(fail_on_three))
               .then(inspect([&after](int x) { after.push_back(x); }))
               .sink(collect<int>())
               .run();
  // Assert
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
  EXPECT_EQ(r.error().message, "three is corrupt");
  EXPECT_EQ(before, (std::vector<int>{0, 1, 2, 3}));  // the source stopped at the failing item
  EXPECT_EQ(after, (std::vector<int>{0, 2, 4}));
}

TEST(TypedErrors, EveryFallibleCallableStops) {
  auto boom = [] { return parallax::err(Errc::invalid_argument, "boom"); };
  auto f = pipeline(range(0, 5))
               .then(filter([&](int x) -> Result<bool> {
                 if (x == 2) return boom();
                 return true;
               }))
               .sink(discard())
               .run();
  auto fm = pipeline(range(0, 5))
                .then(filter_map([&](int x) -> Result<std::optional<int>> {
                  if (x == 4) return boom();
                  return std::optional<int>(x);
                }))
                .sink(discard())
                .run();
  auto in = pipeline(range(0, 5))
                .then(inspect([&](int x) -> Result<void> {
                  if (x == 1) return boom();
                  return {};
                }))
                .sink(discard())
                .run();
  int calls = 0;
  Result<void> fe = pipeline(range(0, 5))
                        .sink(for_each([&](int x) -> Result<void> {
                          ++calls;
                          if (x == 1) return boom();
                          return {};
                        }))
                        .run();
  auto fo = pipeline(range(0, 5))
                .sink(fold(0,
                           [&](int acc, int x) -> Result<int> {
                             if (x == 3) return boom();
                             return acc + x;
                           }))
                .run();
  EXPECT_FALSE(f.ok());
  EXPECT_FALSE(fm.ok());
  EXPECT_FALSE(in.ok());
  EXPECT_FALSE(fe.ok());
  EXPECT_EQ(calls, 2);
  ASSERT_FALSE(fo.ok());
  EXPECT_EQ(fo.error().code, Errc::invalid_argument);
}

TEST(TypedErrors, AnErrorSuppressesThePartialBatch) {
  int batches = 0;
  auto r = pipeline(range(0, 10))
               .then(map(fail_on_three))
               .then(batch(2))
               .sink(for_each([&batches](std::vector<int>) { ++batches; }))
               .run();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(batches, 1);  // {0, 2}; the partial {4} is not flushed after the error
}

TEST(TypedErrors, ErrorOnTheLastItemIsStillReported) {
  auto r = pipeline(range(0, 4)).then(map(fail_on_three)).sink(discard()).run();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
}

// ----- move-only and large items -----

TEST(TypedItems, MoveOnlyItemsFlowThroughEveryStage) {
  std::vector<std::unique_ptr<int>> v;
  for (int i = 0; i < 7; ++i)
    v.push_back(std::make_unique<int>(i));
  auto r = pipeline(from_iter(std::move(v)))
               .then(filter([](const std::unique_ptr<int>& p) { return *p != 0; }))
               .then(map([](std::unique_ptr<int> p) {
                 *p *= 10;
                 return p;
               }))
               .then(skip(1))
               .then(take(4))
               .then(batch(3))
               .sink(collect<std::vector<std::unique_ptr<int>>>())
               .run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(*(*r)[0][0], 20);
  EXPECT_EQ(*(*r)[1][0], 50);
}

TEST(TypedItems, OnceAndFilterMapWithMoveOnly) {
  auto r = pipeline(once(std::make_unique<std::string>("m")))
               .then(filter_map([](std::unique_ptr<std::string> p) {
                 return std::optional<std::unique_ptr<std::string>>(std::move(p));
               }))
               .sink(collect<std::unique_ptr<std::string>>())
               .run();
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(*r->front(), "m");
}

struct Large {
  std::array<unsigned char, 16 * 1024> bytes{};
  int id = 0;
};

TEST(TypedItems, LargeItemsKeepTheirContent) {
  std::vector<Large> v(8);
  for (int i = 0; i < 8; ++i) {
    v[static_cast<std::size_t>(i)].id = i;
    v[static_cast<std::size_t>(i)].bytes.fill(static_cast<unsigned char>(i));
  }
  auto r = pipeline(from_iter(v))
               .then(filter([](const Large& l) { return l.id >= 4; }))
               .sink(fold(0L, [](long acc,
                                 const Large& l) { return acc + l.bytes[1000] + l.bytes.back(); }))
               .run();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 2 * (4 + 5 + 6 + 7));
}

// ----- compile-time acceptance (the compile-fail tests cover the diagnostics) -----

TEST(TypedConcepts, StageAndSinkAcceptance) {
  auto on_string = map([](const std::string& s) { return s.size(); });
  auto odd = filter([](int x) { return x % 2 == 1; });
  auto not_bool = filter([](int x) { return x; });
  static_assert(StageAccepts<decltype(on_string), std::string>);
  static_assert(!StageAccepts<decltype(on_string), int>);
  static_assert(StageAccepts<decltype(odd), const int&>);
  static_assert(!StageAccepts<decltype(not_bool), int>);
  static_assert(SinkAccepts<Collect<int>, int&&>);
  static_assert(!SinkAccepts<Collect<long>, int&&>);
  static_assert(!SinkAccepts<Collect<std::unique_ptr<int>>, const std::unique_ptr<int>&>);
  static_assert(!StageAccepts<int, int>);
  static_assert(std::same_as<stage_output_t<decltype(on_string), std::string&&>, std::size_t&&>);
  static_assert(std::same_as<stage_output_t<Filter<decltype([](int) { return true; })>, const int&>,
                             const int&>);
  SUCCEED();
}

}  // namespace
