// SPDX-License-Identifier: MIT OR Apache-2.0
// Archive round trips (property tests over random values of every shape, deterministic seeds),
// in-place field access, the writers (vector, span, pool loan, measuring pass), the header and
// schema hash, and layout-freeze checks of the format.
#include <gtest/gtest.h>

#include <cstring>

#include "parallax/archive.h"
#include "parallax/pool.h"
#include "parallax/segment.h"
#include "test_types.h"

namespace {

namespace ar = parallax::archive;
using namespace plxtest;
using parallax::Errc;

// Field-by-field comparison through the view: what a user reading in place would check.
void expect_view_matches(const Inner& n, const ar::Archived<Inner>& a) {
  EXPECT_EQ(a.name, n.name);
  ASSERT_EQ(a.ids.size(), n.ids.size());
  for (std::size_t i = 0; i < n.ids.size(); ++i)
    EXPECT_EQ(a.ids[i], n.ids[i]);
  ASSERT_EQ(a.color.has_value(), n.color.has_value());
  if (n.color) {
    EXPECT_EQ(*a.color, *n.color);
  }
}

void expect_view_matches(const Everything& e, const ar::Archived<Everything>& a) {
  EXPECT_EQ(a.i8, e.i8);
  EXPECT_EQ(a.i16, e.i16);
  EXPECT_EQ(a.i32, e.i32);
  EXPECT_EQ(a.i64, e.i64);
  EXPECT_EQ(a.u8, e.u8);
  EXPECT_EQ(a.u16, e.u16);
  EXPECT_EQ(a.u32, e.u32);
  EXPECT_EQ(a.u64, e.u64);
  EXPECT_EQ(a.f32, e.f32);
  EXPECT_EQ(a.f64, e.f64);
  EXPECT_EQ(a.flag, e.flag);
  EXPECT_EQ(a.color, e.color);
  EXPECT_EQ(a.sparse, e.sparse);
  EXPECT_EQ(a.triple, e.triple);
  EXPECT_EQ(a.names[0], e.names[0]);
  EXPECT_EQ(a.names[1], e.names[1]);
  EXPECT_EQ(a.text, e.text);
  ASSERT_EQ(a.words.size(), e.words.size());
  for (std::size_t i = 0; i < e.words.size(); ++i)
    EXPECT_EQ(a.words[i], e.words[i]);
  ASSERT_EQ(a.points.size(), e.points.size());
  for (std::size_t i = 0; i < e.points.size(); ++i) {
    EXPECT_EQ(a.points[i].x, e.points[i].x);
    EXPECT_EQ(a.points[i].y, e.points[i].y);
  }
  ASSERT_EQ(a.maybe_text.has_value(), e.maybe_text.has_value());
  if (e.maybe_text) {
    EXPECT_EQ(*a.maybe_text, *e.maybe_text);
  }
  ASSERT_EQ(a.maybe_point.get() != nullptr, e.maybe_point.has_value());
  if (e.maybe_point) {
    EXPECT_EQ(a.maybe_point->y, e.maybe_point->y);
  }
  ASSERT_EQ(a.choice.index(), e.choice.index());
  switch (e.choice.index()) {
    case 0:
      EXPECT_EQ(*a.choice.get_if<0>(), std::get<0>(e.choice));
      break;
    case 1:
      EXPECT_EQ(*a.choice.get_if<1>(), std::get<1>(e.choice));
      break;
    case 2:
      EXPECT_EQ(a.choice.get_if<2>()->x, std::get<2>(e.choice).x);
      break;
    default:
      EXPECT_EQ(a.choice.get_if<3>()->size(), std::get<3>(e.choice).size());
  }
  expect_view_matches(e.inner, a.inner);
  ASSERT_EQ(a.inners.size(), e.inners.size());
  for (std::size_t i = 0; i < e.inners.size(); ++i)
    expect_view_matches(e.inners[i], a.inners[i]);
  ASSERT_EQ(a.counts.size(), e.counts.size());
  for (const auto& [k, v] : e.counts) {
    const auto* found = a.counts.find(k);
    ASSERT_NE(found, nullptr) << k;
    EXPECT_EQ(*found, v);
  }
  EXPECT_EQ(a.counts.find(std::string("\x01not a key")), nullptr);
  ASSERT_EQ(a.index.size(), e.index.size());
  for (const auto& [k, v] : e.index) {
    const auto* found = a.index.find(k);
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->size(), v.size());
  }
  ASSERT_EQ(a.bits.size(), e.bits.size());
  for (std::size_t i = 0; i < e.bits.size(); ++i)
    EXPECT_EQ(a.bits[i], e.bits[i]);
  ASSERT_EQ(a.nested.size(), e.nested.size());
  for (std::size_t i = 0; i < e.nested.size(); ++i) {
    ASSERT_EQ(a.nested[i].size(), e.nested[i].size());
    for (std::size_t j = 0; j < e.nested[i].size(); ++j)
      EXPECT_EQ(a.nested[i][j], e.nested[i][j]);
  }
}

TEST(ArchiveRoundTrip, RandomEverythingAllLevels) {
  for (std::uint64_t seed = 0; seed < 400; ++seed) {
    SCOPED_TRACE(seed);
    Rng rng(seed);
    const Everything value = random_everything(rng);

    auto bytes = ar::serialize(value);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ(ar::serialized_size(value), bytes->size());

    for (auto level : {ar::Validation::full, ar::Validation::structural, ar::Validation::trusted}) {
      auto view = ar::access<Everything>(*bytes, {.level = level});
      ASSERT_TRUE(view.ok()) << view.error().message;
      expect_view_matches(value, **view);
      EXPECT_EQ(ar::deserialize<Everything>(**view), value);
    }
    // Deterministic: the same value gives the same bytes (padding is zeroed).
    auto again = ar::serialize(value);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *bytes);
  }
}

TEST(ArchiveRoundTrip, RandomLogs) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const Logs logs = make_logs(seed * 7, seed);
    auto back = ar::from_bytes<Logs>(ar::serialize(logs).value());
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, logs);
  }
}

TEST(ArchiveRoundTrip, LogFieldsReadLikeTheStruct) {
  const Logs logs = make_logs(100);
  const auto bytes = ar::serialize(logs).value();

  auto view = ar::access<Logs>(bytes);

  ASSERT_TRUE(view.ok());
  const auto& rec = (*view)->logs[17];
  EXPECT_EQ(rec.address.x2, logs.logs[17].address.x2);
  EXPECT_EQ(rec.identity, logs.logs[17].identity);
  EXPECT_EQ(std::string_view(rec.request), logs.logs[17].request);
  EXPECT_EQ(rec.code, logs.logs[17].code);
  EXPECT_EQ(rec.size, logs.logs[17].size);
}

TEST(ArchiveRoundTrip, RandomTrees) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Rng rng(seed);
    auto grow = [&](auto& self, Node& n, int depth) -> void {
      if (depth == 0) return;
      for (auto k = rng.below(3); k > 0; --k) {
        n.children.push_back(Node{static_cast<std::uint32_t>(rng.next()), {}});
        self(self, n.children.back(), depth - 1);
      }
    };
    Node root{1, {}};
    grow(grow, root, 6);
    auto back = ar::from_bytes<Node>(ar::serialize(root).value());
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, root);
  }
}

TEST(ArchiveRoundTrip, TopLevelShapes) {
  EXPECT_EQ(ar::from_bytes<std::uint64_t>(ar::serialize(std::uint64_t{7}).value()).value(), 7u);
  EXPECT_EQ(ar::from_bytes<std::string>(ar::serialize(std::string("héllo")).value()).value(),
            "héllo");
  EXPECT_EQ(ar::from_bytes<std::string>(ar::serialize(std::string()).value()).value(), "");
  const std::vector<std::uint32_t> empty;
  EXPECT_EQ(ar::from_bytes<std::vector<std::uint32_t>>(ar::serialize(empty).value()).value(),
            empty);
  const std::optional<std::string> none;
  EXPECT_EQ(ar::from_bytes<std::optional<std::string>>(ar::serialize(none).value()).value(), none);
  const std::variant<bool, std::string> var = std::string("x");
  auto v = ar::from_bytes<std::variant<bool, std::string>>(ar::serialize(var).value());
  EXPECT_EQ(v.value(), var);
}

// ---- writers --------------------------------------------------------------------------------

TEST(ArchiveWriter, SpanIntoExactSizeAndTooSmall) {
  const Logs logs = make_logs(10);
  const std::size_t need = ar::serialized_size(logs);
  std::vector<std::byte> storage(need + 64,
                                 std::byte{0xAB});  // dirty memory: padding must be zeroed

  auto n = ar::serialize_into(logs, std::span(storage).first(need));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, need);
  EXPECT_TRUE(
      std::equal(storage.begin(), storage.begin() + need, ar::serialize(logs).value().begin()));

  auto small = ar::serialize_into(logs, std::span(storage).first(need - 1));
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().code, Errc::resource_exhausted);
  EXPECT_NE(small.error().message.find(std::to_string(need)), std::string::npos);
}

TEST(ArchiveWriter, SpanMustBeAligned) {
  std::vector<std::byte> storage(256);
  auto r = ar::serialize_into(std::uint32_t{1}, std::span(storage).subspan(4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(ArchiveWriter, IntoPoolLoanAndReadFromFrozenBuffer) {
  namespace mem = parallax::memory;
  auto seg = mem::HeapSegment::create(1 << 20);
  ASSERT_TRUE(seg.ok()) << seg.error().message;
  auto pool = mem::MemoryPool::create(std::move(*seg), 64 * 1024);
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  auto loan = (*pool)->try_loan();
  ASSERT_TRUE(loan.ok());
  const Logs logs = make_logs(50);

  auto n = ar::serialize_into(logs, *loan);

  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(loan->size(), *n);
  const mem::Buffer buf = std::move(*loan).freeze();
  auto view = ar::access<Logs>(buf.data());
  ASSERT_TRUE(view.ok()) << view.error().message;
  EXPECT_EQ(ar::deserialize<Logs>(**view), logs);
}

TEST(ArchiveWriter, LoanTooSmallIsResourceExhausted) {
  namespace mem = parallax::memory;
  auto pool = mem::MemoryPool::create(mem::HeapSegment::create(1 << 16).value(), 256);
  ASSERT_TRUE(pool.ok());
  auto loan = (*pool)->try_loan();
  ASSERT_TRUE(loan.ok());

  auto n = ar::serialize_into(make_logs(50), *loan);

  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Errc::resource_exhausted);
  mem::Loan empty;
  EXPECT_EQ(ar::serialize_into(std::uint8_t{1}, empty).error().code, Errc::failed_precondition);
}

// ---- header and schema hash ----------------------------------------------------------------

TEST(ArchiveHeader, RoundTripAndSchemaMismatch) {
  const Logs logs = make_logs(5);
  const auto bytes = ar::serialize(logs, {.header = true}).value();
  EXPECT_EQ(bytes.size(), ar::serialized_size(logs) + sizeof(ar::ArchiveHeader));
  EXPECT_EQ(std::memcmp(bytes.data(), "PLXA", 4), 0);

  auto ok = ar::access<Logs>(bytes, {.header = true});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ar::deserialize<Logs>(**ok), logs);

  auto wrong = ar::access<std::vector<Log>>(bytes, {.header = true});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, Errc::data_loss);
  EXPECT_NE(wrong.error().message.find("schema hash"), std::string::npos);

  auto bad_magic = bytes;
  bad_magic[0] = std::byte{'X'};
  EXPECT_NE(ar::access<Logs>(bad_magic, {.header = true}).error().message.find("magic"),
            std::string::npos);
  EXPECT_FALSE(ar::access<Logs>(std::span(bytes).first(10), {.header = true}).ok());
}

TEST(ArchiveHeader, SchemaHashTracksShape) {
  EXPECT_NE(ar::schema_hash_v<Log>, ar::schema_hash_v<Address>);
  EXPECT_NE(ar::schema_hash_v<std::vector<std::uint32_t>>,
            ar::schema_hash_v<std::vector<std::int32_t>>);
  EXPECT_NE(ar::schema_hash_v<Color>, ar::schema_hash_v<std::uint8_t>);
  EXPECT_EQ(ar::schema_hash_v<Everything>, ar::schema_hash_v<Everything>);
  EXPECT_NE(ar::schema_hash_v<Node>, 0u);  // recursive types terminate
}

// ---- layout freeze --------------------------------------------------------------------------

TEST(ArchiveLayout, Frozen) {
  static_assert(sizeof(ar::ArchivedString) == 8 && alignof(ar::ArchivedString) == 4);
  static_assert(sizeof(ar::ArchivedVec<std::uint64_t>) == 8 &&
                alignof(ar::ArchivedVec<std::uint64_t>) == 4);
  static_assert(sizeof(ar::ArchivedOption<std::uint32_t>) == 8);
  static_assert(sizeof(ar::ArchivedOption<std::uint8_t>) == 2);
  static_assert(sizeof(ar::Archived<std::variant<std::uint8_t, std::uint64_t>>) == 16);
  static_assert(sizeof(ar::Archived<Log>) == 48 && alignof(ar::Archived<Log>) == 8);
  static_assert(offsetof(ar::Archived<Log>, identity) == 4);
  static_assert(offsetof(ar::Archived<Log>, code) == 36);
  static_assert(offsetof(ar::Archived<Log>, size) == 40);
  static_assert(std::is_standard_layout_v<ar::Archived<Everything>>);
  SUCCEED();
}

TEST(ArchiveLayout, GoldenBytes) {
  const Inner value{"hi", {1, 2}, Color::green};
  const std::vector<std::uint8_t> golden = {
      'h',  'i',  0,    0,                 // name's bytes, padding to 4
      1,    0,    0,    0,    2, 0, 0, 0,  // ids' elements
      0xF4, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0,  // root.name: rel -12, len 2
      0xF0, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0,  // root.ids: rel -16, len 2
      1,    1,    0,    0,                 // root.color: tag some, green, padding
  };

  const auto bytes = ar::serialize(value).value();

  ASSERT_EQ(bytes.size(), golden.size());
  EXPECT_EQ(std::memcmp(bytes.data(), golden.data(), golden.size()), 0);
}

}  // namespace
