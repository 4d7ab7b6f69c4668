// SPDX-License-Identifier: MIT OR Apache-2.0
// Buffer and Metadata tests: heap buffers, slicing, cloning, metadata entries.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "parallax/buffer.h"
#include "parallax/pool.h"

using namespace parallax;
using namespace parallax::memory;

namespace {

std::string str(const Buffer& b) {
  return {reinterpret_cast<const char*>(b.data().data()), b.size()};
}

TEST(Buffer, DefaultIsEmpty) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.use_count(), 0u);
  EXPECT_EQ(b.segment(), nullptr);
  EXPECT_FALSE(b.metadata().pts.has_value());
  EXPECT_FALSE(b.metadata_mut().ok());
}

TEST(Buffer, HeapCopyAndVector) {
  Metadata m;
  m.pts = 5;
  Buffer a = Buffer::copy_from(std::string_view("parallax"), m);
  EXPECT_EQ(str(a), "parallax");
  EXPECT_EQ(a.metadata().pts, 5u);
  EXPECT_EQ(a.segment(), nullptr);
  EXPECT_EQ(a.pool_id(), 0u);
  std::vector<std::byte> v(3, std::byte{9});
  const std::byte* raw = v.data();
  Buffer b = Buffer::from_vector(std::move(v));
  EXPECT_EQ(b.data().data(), raw);  // taken, not copied
}

TEST(Buffer, SliceSharesMemoryAndChecksBounds) {
  Buffer a = Buffer::copy_from(std::string_view("0123456789"));
  auto s = a.slice(2, 5);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(str(*s), "23456");
  EXPECT_EQ(s->data().data(), a.data().data() + 2);
  EXPECT_EQ(a.use_count(), 2u);
  auto ss = s->slice(1, 2);
  ASSERT_TRUE(ss.ok());
  EXPECT_EQ(str(*ss), "34");
  EXPECT_TRUE(a.slice(10, 0).ok());
  EXPECT_EQ(a.slice(11, 0).error().code, Errc::out_of_range);
  EXPECT_EQ(a.slice(5, 6).error().code, Errc::out_of_range);
  EXPECT_EQ(a.slice(SIZE_MAX, 2).error().code, Errc::out_of_range);
  EXPECT_EQ(a.slice(2, SIZE_MAX).error().code, Errc::out_of_range);
}

TEST(Buffer, MetadataIsWritableOnlyWhenUnique) {
  Buffer a = Buffer::copy_from(std::string_view("x"));
  auto m = a.metadata_mut();
  ASSERT_TRUE(m.ok());
  (*m)->dts = 7;
  Buffer b = a;
  EXPECT_EQ(a.metadata_mut().error().code, Errc::failed_precondition);
  EXPECT_EQ(b.metadata().dts, 7u);
}

TEST(Buffer, CopyAssignmentAndSelfAssignment) {
  Buffer a = Buffer::copy_from(std::string_view("abc"));
  Buffer b = Buffer::copy_from(std::string_view("def"));
  b = a;
  EXPECT_EQ(str(b), "abc");
  EXPECT_EQ(a.use_count(), 2u);
  const Buffer& alias = b;
  b = alias;
  EXPECT_EQ(a.use_count(), 2u);
  Buffer c = std::move(b);
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(str(c), "abc");
}

TEST(Buffer, ConcurrentClonesAndDropsKeepCountExact) {
  Buffer a = Buffer::copy_from(std::string_view("shared"));
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 50000; ++i) {
        Buffer c = a.clone();
        ASSERT_EQ(c.size(), 6u);
      }
    });
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(a.use_count(), 1u);
}

TEST(Metadata, EntriesSetGetEraseClear) {
  Metadata m;
  m.set("video.stride", std::int64_t{1920});
  m.set("name", std::string("cam0"));
  m.set("klv", std::vector<std::byte>{std::byte{1}, std::byte{2}});
  m.set("video.stride", std::int64_t{2048});
  ASSERT_EQ(m.entries.size(), 3u);
  EXPECT_EQ(*m.get_as<std::int64_t>("video.stride"), 2048);
  EXPECT_EQ(m.get_as<double>("video.stride"), nullptr);
  EXPECT_EQ(*m.get_as<std::string>("name"), "cam0");
  EXPECT_EQ(m.get("missing"), nullptr);
  EXPECT_TRUE(m.erase("name"));
  EXPECT_FALSE(m.erase("name"));
  m.flags = kFlagDiscont | kFlagDeltaUnit;
  EXPECT_TRUE(m.has_flag(kFlagDiscont));
  EXPECT_FALSE(m.has_flag(kFlagGap));
  m.pts = 1;
  m.clear();
  EXPECT_EQ(m, Metadata{});
}

TEST(Metadata, FlagValuesMatchGstreamer) {
  // GstBufferFlags values (gstbuffer.h, GStreamer 1.22); the bridge maps them one to one.
  EXPECT_EQ(kFlagLive, 16u);
  EXPECT_EQ(kFlagDiscont, 64u);
  EXPECT_EQ(kFlagHeader, 1024u);
  EXPECT_EQ(kFlagDeltaUnit, 8192u);
  EXPECT_EQ(kFlagNonDroppable, 65536u);
}

}  // namespace
