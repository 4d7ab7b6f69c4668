// SPDX-License-Identifier: MIT OR Apache-2.0
// GstHarness and in-process tests of the bridge (allocator, pool, conversions) and of
// parallaxsink / parallaxsrc against native IpcPublisher / IpcSubscriber peers.
#include <fcntl.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/app/gstappsink.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "parallax-gst/allocator.h"
#include "parallax-gst/buffer_pool.h"
#include "parallax-gst/convert.h"
#include "parallax/ipc.h"
#include "parallax/sched.h"
#include "parallax/segment.h"

namespace {

using namespace std::chrono_literals;
namespace link = parallax::link;
namespace pmem = parallax::memory;

std::string unique_socket(const char* what) {
  static std::atomic<int> n{0};
  return "/tmp/plx-gst-test-" + std::to_string(::getpid()) + "-" + what + "-" +
         std::to_string(n++) + ".sock";
}

link::SubscriberOptions sub_options(std::chrono::milliseconds connect_timeout) {
  link::SubscriberOptions o;
  o.connect_timeout = connect_timeout;
  return o;
}

link::PublisherOptions pub_options(std::size_t slot_size, std::size_t slot_count) {
  link::PublisherOptions o;
  o.slot_size = slot_size;
  o.slot_count = slot_count;
  return o;
}

ino_t inode_of(const pmem::Segment* seg) {
  struct stat sb {};
  if (seg == nullptr || ::fstat(seg->fd(), &sb) != 0) return 0;
  return sb.st_ino;
}

// Receives items until a buffer arrives (events are collected), failing after 5 s.
std::optional<pmem::Buffer> recv_buffer(link::IpcSubscriber& sub,
                                        std::vector<link::Event>* events = nullptr) {
  for (int i = 0; i < 100; ++i) {
    auto item = sub.recv_item_for(5s);
    if (!item || !item->has_value()) return std::nullopt;
    if (auto* b = std::get_if<pmem::Buffer>(&**item)) return *b;
    if (events) events->push_back(std::get<link::Event>(**item));
  }
  return std::nullopt;
}

GstStructure* get_stats(GstElement* e) {
  GstStructure* s = nullptr;
  g_object_get(e, "stats", &s, nullptr);
  return s;
}

guint64 stat_u64(GstElement* e, const char* field) {
  GstStructure* s = get_stats(e);
  guint64 v = G_MAXUINT64;
  gst_structure_get_uint64(s, field, &v);
  gst_structure_free(s);
  return v;
}

std::shared_ptr<pmem::MemoryPool> make_pool(std::size_t slot, std::size_t count) {
  auto seg = pmem::SharedMemorySegment::create("test", slot * count);
  EXPECT_TRUE(seg);
  auto pool = pmem::MemoryPool::create(std::move(*seg), slot);
  EXPECT_TRUE(pool);
  return *pool;
}

// ---- bridge ----

TEST(Bridge, MetadataRoundTripKeepsTimestampsFlagsVideoMetaAndReferenceTimestamps) {
  // Arrange: a padded, strided I420 frame description and two reference timestamps.
  GstBuffer* in = gst_buffer_new_allocate(nullptr, 100000, nullptr);
  GST_BUFFER_PTS(in) = 1 * GST_SECOND;
  GST_BUFFER_DTS(in) = 900 * GST_MSECOND;
  GST_BUFFER_DURATION(in) = 33 * GST_MSECOND;
  GST_BUFFER_OFFSET(in) = 30;
  GST_BUFFER_OFFSET_END(in) = 31;
  GST_BUFFER_FLAG_SET(in, GST_BUFFER_FLAG_DISCONT | GST_BUFFER_FLAG_DELTA_UNIT);
  gsize offsets[4] = {128, 128 + 256 * 240, 128 + 256 * 240 + 160 * 120, 0};
  gint strides[4] = {256, 160, 160, 0};
  gst_buffer_add_video_meta_full(in, GST_VIDEO_FRAME_FLAG_INTERLACED, GST_VIDEO_FORMAT_I420, 200,
                                 240, 3, offsets, strides);
  GstCaps* ref = gst_caps_from_string("timestamp/x-ntp");
  gst_buffer_add_reference_timestamp_meta(in, ref, 12345, 678);
  gst_buffer_add_reference_timestamp_meta(in, ref, 999, GST_CLOCK_TIME_NONE);
  gst_caps_unref(ref);

  // Act
  parallax::Metadata meta;
  parallax::gst::metadata_from_gst(in, 7, meta);
  GstBuffer* out = gst_buffer_new();
  parallax::gst::metadata_to_gst(meta, out, 128 + 256 * 240 + 2 * 160 * 120);

  // Assert
  EXPECT_EQ(meta.sequence, 7u);
  EXPECT_EQ(GST_BUFFER_PTS(out), GST_BUFFER_PTS(in));
  EXPECT_EQ(GST_BUFFER_DTS(out), GST_BUFFER_DTS(in));
  EXPECT_EQ(GST_BUFFER_DURATION(out), GST_BUFFER_DURATION(in));
  EXPECT_EQ(GST_BUFFER_OFFSET(out), 30u);
  EXPECT_EQ(GST_BUFFER_OFFSET_END(out), 31u);
  EXPECT_TRUE(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_DISCONT));
  EXPECT_TRUE(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_DELTA_UNIT));
  EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_GAP));
  GstVideoMeta* vm = gst_buffer_get_video_meta(out);
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(vm->format, GST_VIDEO_FORMAT_I420);
  EXPECT_EQ(vm->width, 200u);
  EXPECT_EQ(vm->height, 240u);
  EXPECT_EQ(vm->n_planes, 3u);
  EXPECT_EQ(vm->flags, GST_VIDEO_FRAME_FLAG_INTERLACED);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(vm->offset[i], offsets[i]);
    EXPECT_EQ(vm->stride[i], strides[i]);
  }
  gpointer state = nullptr;
  std::vector<std::pair<guint64, guint64>> refs;
  while (GstMeta* m =
             gst_buffer_iterate_meta_filtered(out, &state, GST_REFERENCE_TIMESTAMP_META_API_TYPE)) {
    auto* r = reinterpret_cast<GstReferenceTimestampMeta*>(m);
    refs.emplace_back(r->timestamp, r->duration);
    EXPECT_TRUE(gst_structure_has_name(gst_caps_get_structure(r->reference, 0), "timestamp/x-ntp"));
  }
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0], std::make_pair(guint64{12345}, guint64{678}));
  EXPECT_EQ(refs[1], std::make_pair(guint64{999}, guint64{GST_CLOCK_TIME_NONE}));
  gst_buffer_unref(in);
  gst_buffer_unref(out);
}

TEST(Bridge, NoneTimestampsAndMalformedEntriesStayNone) {
  parallax::Metadata meta;
  meta.set(parallax::gst::kVideoMetaKey, std::vector<std::byte>(5));  // truncated record
  meta.set(parallax::gst::kReferenceTimestampsKey, std::vector<std::byte>(3));
  GstBuffer* out = gst_buffer_new();
  parallax::gst::metadata_to_gst(meta, out, 4096);
  EXPECT_FALSE(GST_BUFFER_PTS_IS_VALID(out));
  EXPECT_EQ(GST_BUFFER_OFFSET(out), GST_BUFFER_OFFSET_NONE);
  EXPECT_EQ(gst_buffer_get_video_meta(out), nullptr);
  gst_buffer_unref(out);
}

// Issue 12: entries found by fuzz_video_meta that reached GStreamer's g_return_if_fail checks
// (a CRITICAL per buffer; fatal under G_DEBUG=fatal-criticals): a video format number past
// GStreamer's table, a reference timestamp of GST_CLOCK_TIME_NONE, reference caps whose
// structure name gst_caps_from_string() asserts on. Each is dropped quietly; a good one stays.
TEST(Bridge, HostileEntriesAreDroppedWithoutCriticals) {
  static int criticals = 0;
  criticals = 0;
  auto count = [](const gchar*, GLogLevelFlags, const gchar*, gpointer) { ++criticals; };
  std::vector<std::pair<const char*, guint>> handlers;
  for (const char* domain : {"GStreamer", "GStreamer-Video"})
    handlers.emplace_back(domain, g_log_set_handler(domain, G_LOG_LEVEL_CRITICAL, count, nullptr));
  auto put = [](std::vector<std::byte>& v, auto x) {
    const auto* p = reinterpret_cast<const std::byte*>(&x);
    v.insert(v.end(), p, p + sizeof x);
  };
  std::vector<std::byte> vm;
  for (std::uint32_t x : {1u, 5000u, 0u, 8u, 8u, 1u})  // version, format 5000, flags, 8x8, 1 plane
    put(vm, x);
  for (int i = 0; i < 4; ++i)
    put(vm, std::uint64_t{0});
  for (std::int32_t x : {8, 0, 0, 0})
    put(vm, x);
  std::vector<std::byte> refs;
  put(refs, std::uint32_t{1});  // version
  put(refs, std::uint32_t{4});  // count
  const std::pair<guint64, std::string> items[] = {
      {GST_CLOCK_TIME_NONE, "timestamp/x-ntp"},
      {5, "0bad/name, a=(int)1"},
      {6, "timestamp/x-ntp, a=(buffer)zz"},  // GStreamer's own CRITICAL (gst_buffer_unmap)
      {7, "timestamp/x-unix"},
  };
  for (const auto& [ts, caps] : items) {
    put(refs, ts);
    put(refs, std::uint64_t{1});
    put(refs, static_cast<std::uint32_t>(caps.size()));
    const auto* p = reinterpret_cast<const std::byte*>(caps.data());
    refs.insert(refs.end(), p, p + caps.size());
  }
  parallax::Metadata meta;
  meta.set(parallax::gst::kVideoMetaKey, vm);
  meta.set(parallax::gst::kReferenceTimestampsKey, refs);
  GstBuffer* out = gst_buffer_new();
  parallax::gst::metadata_to_gst(meta, out, 4096);
  for (const auto& [domain, id] : handlers)
    g_log_remove_handler(domain, id);
  EXPECT_EQ(criticals, 0);
  EXPECT_EQ(gst_buffer_get_video_meta(out), nullptr);
  std::vector<guint64> kept;
  gpointer state = nullptr;
  while (GstMeta* m =
             gst_buffer_iterate_meta_filtered(out, &state, GST_REFERENCE_TIMESTAMP_META_API_TYPE))
    kept.push_back(reinterpret_cast<GstReferenceTimestampMeta*>(m)->timestamp);
  EXPECT_EQ(kept, std::vector<guint64>{7});
  gst_buffer_unref(out);
}

// A peer's caps text whose structure name GStreamer asserts on (a CRITICAL from
// gst_structure_new_empty) is refused by caps_from_format before GStreamer sees it; valid text,
// including a ';' followed by a letter inside a quoted string, still parses. Found by reading
// fuzz_video_meta's reference-caps finding against the caps-event path.
TEST(Bridge, HostileCapsTextIsRefusedWithoutCriticals) {
  static int criticals = 0;
  criticals = 0;
  auto count = [](const gchar*, GLogLevelFlags, const gchar*, gpointer) { ++criticals; };
  const guint h = g_log_set_handler("GStreamer", G_LOG_LEVEL_CRITICAL, count, nullptr);
  // Conservative: a ';' inside a quoted string must be followed by a letter too.
  for (const char* bad : {"0bad/name", "video/x-raw; 0bad/x", "_x/y", "  9/x", "a/b;;c/d",
                          "video/x-raw, a=(string)\"x;0y\"", "x/y(a\";\"1):"})
    EXPECT_EQ(parallax::gst::caps_from_format(bad), nullptr) << bad;
  for (const char* good :
       {"video/x-raw, format=I420", " video/x-raw", "a/b; c/d", "video/x-raw, a=(string)\"x; y\"",
        "ANY", "video/x-raw(memory:SystemMemory), format=GRAY8"}) {
    GstCaps* caps = parallax::gst::caps_from_format(good);
    EXPECT_NE(caps, nullptr) << good;
    if (caps != nullptr) gst_caps_unref(caps);
  }
  g_log_remove_handler("GStreamer", h);
  EXPECT_EQ(criticals, 0);
}

// GStreamer parses nested values recursively with no depth limit: 60,000 '<' (or 30,000 '{' or
// '[') in a peer's caps, tag or custom-event text overflowed the stack and crashed the
// process. Such text is refused before GStreamer sees it; ordinary nesting still parses.
TEST(Bridge, DeeplyNestedPeerTextIsRefusedBeforeGStreamerParsesIt) {
  for (const char open : {'<', '{', '[', '('}) {
    const std::string deep = "video/x-raw, a=" + std::string(60000, open);
    EXPECT_EQ(parallax::gst::caps_from_format(deep), nullptr) << open;
    EXPECT_EQ(parallax::gst::event_to_gst(
                  link::Event::custom("custom-downstream", "x, a=" + deep.substr(15))),
              nullptr)
        << open;
    EXPECT_EQ(parallax::gst::event_to_gst(
                  link::Event::custom("tag", "taglist, title=" + deep.substr(15))),
              nullptr)
        << open;
  }
  GstCaps* caps =
      parallax::gst::caps_from_format("video/x-raw, a=(int)<<1, 2>, <3, 4>>, b={ 1, 2 }");
  ASSERT_NE(caps, nullptr);
  gst_caps_unref(caps);
  GstEvent* ev = parallax::gst::event_to_gst(
      link::Event::custom("custom-downstream", "x, a=(int)<<1, 2>, <3, 4>>, b=(int)[ 1, 5 ]"));
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(GST_EVENT_TYPE(ev), GST_EVENT_CUSTOM_DOWNSTREAM);
  gst_event_unref(ev);
}

TEST(Bridge, AllocatorMapsSlotsSharesAndSpans) {
  auto pool = make_pool(4096, 4);
  GstAllocator* alloc = parallax::gst::allocator_new(pool);
  GstMemory* mem = gst_allocator_alloc(alloc, 1000, nullptr);
  ASSERT_NE(mem, nullptr);
  EXPECT_EQ(pool->in_use(), 1u);
  EXPECT_TRUE(gst_memory_is_type(mem, GST_PARALLAX_MEMORY_TYPE));
  GstMapInfo info;
  ASSERT_TRUE(gst_memory_map(mem, &info, GST_MAP_WRITE));
  const guint8* first = info.data;
  std::memset(info.data, 0xAB, info.size);
  gst_memory_unmap(mem, &info);
  // Mapping twice gives the same persistent mapping (no mmap per map).
  ASSERT_TRUE(gst_memory_map(mem, &info, GST_MAP_READ));
  EXPECT_EQ(info.data, first);
  gst_memory_unmap(mem, &info);

  GstMemory* a = gst_memory_share(mem, 0, 400);
  GstMemory* b = gst_memory_share(mem, 400, 600);
  gsize off = 99;
  EXPECT_TRUE(gst_memory_is_span(a, b, &off));
  EXPECT_EQ(off, 0u);
  EXPECT_FALSE(gst_memory_is_span(b, a, &off));
  ASSERT_TRUE(gst_memory_map(b, &info, GST_MAP_READ));
  EXPECT_EQ(info.data, first + 400);
  EXPECT_EQ(info.data[0], 0xAB);
  gst_memory_unmap(b, &info);
  // Shares are read-only.
  EXPECT_FALSE(gst_memory_map(b, &info, GST_MAP_WRITE));
  GstMemory* c = gst_memory_copy(a, 10, 20);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(gst_memory_get_sizes(c, nullptr, nullptr), 20u);
  gst_memory_unref(c);
  gst_memory_unref(a);
  gst_memory_unref(b);

  // The slot was shared: a writable map now moves the memory to a fresh slot (copy-on-write)
  // and keeps the bytes.
  ASSERT_TRUE(gst_memory_map(mem, &info, GST_MAP_WRITE));
  EXPECT_NE(info.data, first);
  EXPECT_EQ(info.data[999], 0xAB);
  gst_memory_unmap(mem, &info);
  EXPECT_EQ(parallax::gst::allocator_counters(alloc).cow, 1u);

  gst_memory_unref(mem);
  EXPECT_EQ(pool->in_use(), 0u);
  // Too large for a slot.
  EXPECT_EQ(gst_allocator_alloc(alloc, 5000, nullptr), nullptr);
  gst_object_unref(alloc);
}

TEST(Bridge, PoolRenewsSlotsThatWereSent) {
  auto pool = make_pool(1 << 16, 3);
  GstAllocator* alloc = parallax::gst::allocator_new(pool);
  GstBufferPool* bp = gst_parallax_buffer_pool_new(alloc);
  GstStructure* config = gst_buffer_pool_get_config(bp);
  gst_buffer_pool_config_set_params(config, nullptr, 1000, 5, 0);  // more shells than slots
  ASSERT_TRUE(gst_buffer_pool_set_config(bp, config));
  ASSERT_TRUE(gst_buffer_pool_set_active(bp, TRUE));
  EXPECT_EQ(pool->in_use(), 0u);  // preallocation does not hold slots

  GstBuffer* buf = nullptr;
  ASSERT_EQ(gst_buffer_pool_acquire_buffer(bp, &buf, nullptr), GST_FLOW_OK);
  parallax::Metadata meta;
  auto sent = parallax::gst::to_parallax_zero_copy(buf, alloc, meta);
  ASSERT_TRUE(sent);  // what a publisher would now share
  const std::byte* sent_bytes = sent->data().data();
  gst_buffer_unref(buf);  // back to the GstBufferPool while "subscribers" still read the slot
  ASSERT_EQ(gst_buffer_pool_acquire_buffer(bp, &buf, nullptr), GST_FLOW_OK);
  GstMapInfo info;
  ASSERT_TRUE(gst_buffer_map(buf, &info, GST_MAP_WRITE));
  EXPECT_NE(reinterpret_cast<std::byte*>(info.data), sent_bytes);
  gst_buffer_unmap(buf, &info);
  EXPECT_EQ(pool->in_use(), 2u);
  sent.reset();
  gst_buffer_unref(buf);

  // Flushing wakes an acquire that waits for a slot.
  std::vector<pmem::Loan> hog;
  while (auto l = pool->try_loan())
    hog.push_back(std::move(*l));
  GstFlowReturn ret = GST_FLOW_OK;
  std::thread t([&] {
    GstBuffer* b = nullptr;
    ret = gst_buffer_pool_acquire_buffer(bp, &b, nullptr);
    if (b) gst_buffer_unref(b);
  });
  std::this_thread::sleep_for(50ms);
  gst_buffer_pool_set_flushing(bp, TRUE);
  t.join();
  EXPECT_EQ(ret, GST_FLOW_FLUSHING);
  gst_buffer_pool_set_flushing(bp, FALSE);
  hog.clear();
  ASSERT_TRUE(gst_buffer_pool_set_active(bp, FALSE));
  gst_object_unref(bp);
  gst_object_unref(alloc);
  EXPECT_EQ(pool->in_use(), 0u);
}

TEST(Bridge, BufferSizeForCaps) {
  GstCaps* v = gst_caps_from_string("video/x-raw,format=I420,width=1280,height=720,framerate=30/1");
  EXPECT_EQ(parallax::gst::buffer_size_for_caps(v), std::optional<std::size_t>(1382400));
  GstCaps* a =
      gst_caps_from_string("audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved");
  EXPECT_EQ(parallax::gst::buffer_size_for_caps(a), std::optional<std::size_t>(65536));  // floor
  GstCaps* a8 = gst_caps_from_string(
      "audio/"
      "x-raw,format=S32LE,rate=96000,channels=8,layout=interleaved,channel-mask=(bitmask)0xc3f");
  EXPECT_EQ(parallax::gst::buffer_size_for_caps(a8), std::optional<std::size_t>(614400));  // 200 ms
  gst_caps_unref(a8);
  GstCaps* h = gst_caps_from_string("video/x-h264");
  EXPECT_EQ(parallax::gst::buffer_size_for_caps(h), std::nullopt);
  GstCaps* unfixed = gst_caps_from_string("video/x-raw,width=[1,100]");
  EXPECT_EQ(parallax::gst::buffer_size_for_caps(unfixed), std::nullopt);
  for (GstCaps* c : {v, a, h, unfixed})
    gst_caps_unref(c);
}

// ---- parallaxsink ----

// A harness around a parallaxsink that reaches PLAYING synchronously (async=false).
GstHarness* sink_harness(const std::string& path, bool wait_for_connection = false) {
  GstElement* sink = gst_element_factory_make("parallaxsink", nullptr);
  g_object_set(sink, "socket-path", path.c_str(), "async", FALSE, "wait-for-connection",
               wait_for_connection, nullptr);
  GstHarness* h = gst_harness_new_with_element(sink, "sink", nullptr);
  gst_object_unref(sink);
  return h;
}

constexpr const char* kSmallVideo = "video/x-raw,format=I420,width=64,height=48,framerate=30/1";

// GstEvent -> parallax::Event -> GstEvent keeps what the transport carries, for every kind.
TEST(Bridge, EventsRoundTripThroughTheOneEventModel) {
  namespace pg = parallax::gst;
  auto round_trip = [](GstEvent* in) {
    std::optional<parallax::Event> e = pg::event_from_gst(in);
    GstEvent* out = e ? pg::event_to_gst(*e) : nullptr;
    gst_event_unref(in);
    return std::make_pair(e, out);
  };

  GstEvent* ss = gst_event_new_stream_start("the-id");
  gst_event_set_group_id(ss, 42);
  auto [e1, g1] = round_trip(ss);
  ASSERT_TRUE(e1 && g1);
  EXPECT_EQ(e1->type, parallax::EventType::stream_start);
  EXPECT_EQ(e1->stream_id, "the-id");
  EXPECT_EQ(e1->group_id, 42u);
  const gchar* id = nullptr;
  guint group = 0;
  gst_event_parse_stream_start(g1, &id);
  EXPECT_STREQ(id, "the-id");
  EXPECT_TRUE(gst_event_parse_group_id(g1, &group));
  EXPECT_EQ(group, 42u);
  gst_event_unref(g1);

  // Caps keep GStreamer's text whole, also what the Parallax parser cannot read.
  GstCaps* caps = gst_caps_from_string(
      "video/x-h264, stream-format=(string)avc, "
      "codec_data=(buffer)0142, levels=(string)< 4, 5 >");
  ASSERT_NE(caps, nullptr);
  gchar* caps_text = gst_caps_to_string(caps);
  auto [e2, g2] = round_trip(gst_event_new_caps(caps));
  ASSERT_TRUE(e2 && g2);
  EXPECT_EQ(e2->type, parallax::EventType::caps);
  EXPECT_EQ(e2->caps.text(), caps_text);
  EXPECT_FALSE(e2->caps.complete());
  GstCaps* back = nullptr;
  gst_event_parse_caps(g2, &back);
  EXPECT_TRUE(gst_caps_is_equal(back, caps));
  gst_event_unref(g2);
  g_free(caps_text);
  gst_caps_unref(caps);

  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_BYTES);
  seg.rate = -2.0;
  seg.applied_rate = 0.5;
  seg.base = 11;
  seg.offset = 12;
  seg.start = 100;
  seg.stop = 200;
  seg.time = 13;
  seg.position = 150;
  seg.duration = 1000;
  seg.flags = GST_SEGMENT_FLAG_RESET;
  auto [e3, g3] = round_trip(gst_event_new_segment(&seg));
  ASSERT_TRUE(e3 && g3);
  EXPECT_EQ(e3->segment.format, parallax::SegmentFormat::bytes);
  EXPECT_EQ(e3->segment.rate, -2.0);
  EXPECT_EQ(e3->segment.base, 11u);
  EXPECT_EQ(e3->segment.duration, 1000u);
  const GstSegment* seg_back = nullptr;
  gst_event_parse_segment(g3, &seg_back);
  EXPECT_TRUE(gst_segment_is_equal(seg_back, &seg));
  EXPECT_EQ(seg_back->flags, seg.flags);
  gst_event_unref(g3);

  auto [e4, g4] = round_trip(gst_event_new_flush_stop(FALSE));
  ASSERT_TRUE(e4 && g4);
  EXPECT_FALSE(e4->reset_time);
  gboolean reset = TRUE;
  gst_event_parse_flush_stop(g4, &reset);
  EXPECT_FALSE(reset);
  gst_event_unref(g4);

  for (GstEvent* plain : {gst_event_new_eos(), gst_event_new_flush_start()}) {
    const GstEventType t = GST_EVENT_TYPE(plain);
    auto [e, g] = round_trip(plain);
    ASSERT_TRUE(e && g);
    EXPECT_EQ(GST_EVENT_TYPE(g), t);
    gst_event_unref(g);
  }

  GstStructure* st = gst_structure_new("hello", "n", G_TYPE_INT, 5, nullptr);
  auto [e5, g5] = round_trip(gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, st));
  ASSERT_TRUE(e5 && g5);
  EXPECT_EQ(e5->name, "custom-downstream");
  EXPECT_EQ(GST_EVENT_TYPE(g5), GST_EVENT_CUSTOM_DOWNSTREAM);
  gint n = 0;
  EXPECT_TRUE(gst_structure_get_int(gst_event_get_structure(g5), "n", &n));
  EXPECT_EQ(n, 5);
  gst_event_unref(g5);

  auto [e6, g6] = round_trip(gst_event_new_tag(gst_tag_list_new(GST_TAG_TITLE, "t1", nullptr)));
  ASSERT_TRUE(e6 && g6);
  EXPECT_EQ(e6->name, "tag");
  GstTagList* tags = nullptr;
  gst_event_parse_tag(g6, &tags);
  gchar* title = nullptr;
  EXPECT_TRUE(gst_tag_list_get_string(tags, GST_TAG_TITLE, &title));
  EXPECT_STREQ(title, "t1");
  g_free(title);
  gst_event_unref(g6);

  // A peer's bad input has no GStreamer form: nullptr, the caller drops it.
  EXPECT_EQ(pg::event_to_gst(parallax::Event::custom("custom-both", "not a {structure")), nullptr);
  EXPECT_EQ(pg::event_to_gst(parallax::Event::custom("my-own", "x")), nullptr);
  GstEvent* internal = gst_event_new_reconfigure();
  EXPECT_EQ(pg::event_from_gst(internal), std::nullopt);
  gst_event_unref(internal);
}

TEST(ParallaxSink, PublishesBuffersEventsAndMetadataToANativeSubscriber) {
  const std::string path = unique_socket("sink");
  GstHarness* h = sink_harness(path);
  gst_harness_set_src_caps_str(h, kSmallVideo);  // binds the socket, sized from the caps
  auto sub = link::IpcSubscriber::connect(path, sub_options(2000ms));
  ASSERT_TRUE(sub) << sub.error().message;

  GstBuffer* buf = gst_buffer_new_allocate(nullptr, 64 * 48 * 3 / 2, nullptr);
  gst_buffer_memset(buf, 0, 0x5A, gst_buffer_get_size(buf));
  GST_BUFFER_PTS(buf) = 40 * GST_MSECOND;
  GST_BUFFER_DURATION(buf) = 33 * GST_MSECOND;
  GST_BUFFER_OFFSET(buf) = 1;
  GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
  ASSERT_EQ(gst_harness_push(h, buf), GST_FLOW_OK);
  GstStructure* s = gst_structure_new("my-event", "answer", G_TYPE_INT, 42, nullptr);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_custom(GST_EVENT_CUSTOM_DOWNSTREAM, s)));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));

  std::vector<link::Event> events;
  auto got = recv_buffer(*sub, &events);
  ASSERT_TRUE(got);
  ASSERT_TRUE(sub->format());
  GstCaps* caps = gst_caps_from_string(sub->format()->c_str());
  GstCaps* want = gst_caps_from_string(kSmallVideo);
  EXPECT_TRUE(gst_caps_is_subset(caps, want));
  gst_caps_unref(caps);
  gst_caps_unref(want);
  bool saw_start = false, saw_segment = false;
  for (const auto& e : events) {
    saw_start |= e.type == link::EventType::stream_start;
    saw_segment |= e.type == link::EventType::segment;
  }
  EXPECT_TRUE(saw_start);
  EXPECT_TRUE(saw_segment);
  EXPECT_EQ(got->size(), 64u * 48 * 3 / 2);
  EXPECT_EQ(got->data()[100], std::byte{0x5A});
  EXPECT_EQ(got->metadata().pts, std::optional<std::uint64_t>(40 * GST_MSECOND));
  EXPECT_EQ(got->metadata().dts, std::nullopt);
  EXPECT_EQ(got->metadata().offset, std::optional<std::uint64_t>(1));
  EXPECT_TRUE(got->metadata().has_flag(parallax::kFlagDiscont));

  auto item = sub->recv_item_for(5s);
  ASSERT_TRUE(item && item->has_value());
  auto* ev = std::get_if<link::Event>(&**item);
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->type, link::EventType::custom);
  EXPECT_EQ(ev->name, "custom-downstream");
  item = sub->recv_item_for(5s);
  ASSERT_TRUE(item && item->has_value());
  ev = std::get_if<link::Event>(&**item);
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->type, link::EventType::eos);

  EXPECT_EQ(stat_u64(h->element, "buffers"), 1u);
  EXPECT_EQ(stat_u64(h->element, "copied"), 1u);  // a heap buffer: copied once
  EXPECT_EQ(stat_u64(h->element, "zero-copy"), 0u);
  gst_harness_teardown(h);
}

TEST(ParallaxSink, ProposedPoolIsZeroCopyAtTheSameSegmentOffset) {
  const std::string path = unique_socket("zc");
  GstHarness* h = sink_harness(path);
  gst_harness_set_src_caps_str(h, kSmallVideo);
  auto sub = link::IpcSubscriber::connect(path, sub_options(2000ms));
  ASSERT_TRUE(sub);

  GstCaps* caps = gst_caps_from_string(kSmallVideo);
  GstQuery* q = gst_query_new_allocation(caps, TRUE);
  ASSERT_TRUE(gst_pad_peer_query(h->srcpad, q));
  ASSERT_GE(gst_query_get_n_allocation_pools(q), 1u);
  GstBufferPool* bp = nullptr;
  guint size = 0, min = 0, max = 0;
  gst_query_parse_nth_allocation_pool(q, 0, &bp, &size, &min, &max);
  ASSERT_NE(bp, nullptr);
  EXPECT_TRUE(GST_IS_PARALLAX_BUFFER_POOL(bp));
  EXPECT_EQ(size, 64u * 48 * 3 / 2);
  guint meta_index = 0;
  EXPECT_TRUE(gst_query_find_allocation_meta(q, GST_VIDEO_META_API_TYPE, &meta_index));
  GstStructure* config = gst_buffer_pool_get_config(bp);
  gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  ASSERT_TRUE(gst_buffer_pool_set_config(bp, config));
  ASSERT_TRUE(gst_buffer_pool_set_active(bp, TRUE));

  GstBuffer* buf = nullptr;
  ASSERT_EQ(gst_buffer_pool_acquire_buffer(bp, &buf, nullptr), GST_FLOW_OK);
  EXPECT_NE(gst_buffer_get_video_meta(buf), nullptr);
  gst_buffer_memset(buf, 0, 0x77, size);
  // Where the producer wrote: the slot's segment and offset.
  auto mine = parallax::gst::memory_to_buffer(gst_buffer_peek_memory(buf, 0));
  ASSERT_TRUE(mine);
  const ino_t ino = inode_of(mine->segment());
  const std::size_t off = mine->segment_offset();
  mine.reset();
  ASSERT_EQ(gst_harness_push(h, buf), GST_FLOW_OK);

  auto got = recv_buffer(*sub);
  ASSERT_TRUE(got);
  EXPECT_NE(ino, 0u);
  EXPECT_EQ(inode_of(got->segment()), ino);
  EXPECT_EQ(got->segment_offset(), off);
  EXPECT_EQ(got->data()[size - 1], std::byte{0x77});
  EXPECT_NE(got->metadata().get(parallax::gst::kVideoMetaKey), nullptr);
  EXPECT_EQ(stat_u64(h->element, "zero-copy"), 1u);
  EXPECT_EQ(stat_u64(h->element, "copied"), 0u);
  got.reset();
  gst_buffer_pool_set_active(bp, FALSE);
  gst_object_unref(bp);
  gst_query_unref(q);
  gst_caps_unref(caps);
  gst_harness_teardown(h);
}

TEST(ParallaxSink, WaitForConnectionIsUnlockedByAStateChange) {
  const std::string path = unique_socket("wait");
  GstHarness* h = sink_harness(path, true);
  gst_harness_set_src_caps_str(h, kSmallVideo);
  std::atomic<int> ret{-100};
  std::thread pusher(
      [&] { ret = gst_harness_push(h, gst_buffer_new_allocate(nullptr, 4608, nullptr)); });
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(ret.load(), -100);  // still waiting for a subscriber
  const auto t0 = std::chrono::steady_clock::now();
  gst_element_set_state(h->element, GST_STATE_NULL);
  pusher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(ret.load(), GST_FLOW_FLUSHING);
  gst_harness_teardown(h);
}

// A helper process from tests/gst (PLX_GST_HELPERS), SIGKILLed and reaped at destruction.
// tests/helpers spawns with posix_spawn, not fork: this process runs GStreamer threads.
class HelperProcess : public parallax::test::Process {
 public:
  explicit HelperProcess(std::vector<std::string> args)
      : Process(in_helpers_dir(std::move(args))) {}

 private:
  static std::vector<std::string> in_helpers_dir(std::vector<std::string> args) {
    const char* dir = std::getenv("PLX_GST_HELPERS");
    args[0] = std::string(dir ? dir : ".") + "/" + args[0];
    return args;
  }
};

template <typename F>
bool eventually(F pred, std::chrono::milliseconds t = 5s) {
  const auto until = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

TEST(ParallaxSink, SendBlockedOnAStalledConsumerProcessIsUnlockedByAStateChange) {
  // Arrange: a real pipeline whose only consumer is another process that connected (block
  // policy) and then stopped reading without dying. The sink fills that consumer's lease quota
  // (3/4 of 8 slots) and its streaming thread blocks in send().
  const std::string path = unique_socket("stalled");
  const std::string desc =
      "fakesrc sizetype=fixed sizemax=4096 filltype=nothing ! "
      "parallaxsink name=s socket-path=" +
      path + " slot-size=4096 slot-count=8 wait-for-connection=true";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "s");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  HelperProcess consumer({"plx_native_sub", "--stall", "--timeout-ms", "5000", path});
  ASSERT_TRUE(consumer.started());
  ASSERT_TRUE(eventually([&] { return stat_u64(sink, "leases") == 6; }))
      << "the consumer never held its quota";
  const guint64 sent = stat_u64(sink, "buffers");
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(stat_u64(sink, "buffers"), sent) << "the sink is not blocked";
  // Act
  const auto t0 = std::chrono::steady_clock::now();
  const GstStateChangeReturn ret = gst_element_set_state(pipeline, GST_STATE_NULL);
  const auto took = std::chrono::steady_clock::now() - t0;
  // Assert
  EXPECT_EQ(ret, GST_STATE_CHANGE_SUCCESS);
  EXPECT_LT(took, 1s);
  // The element is reusable: PLAYING again gets as far as waiting for a subscriber.
  EXPECT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
}

// Enum properties are GEnums: the nicks users write keep working, and a bad value is an error
// from the parser (gst-launch's "could not set property") or a GLib warning from g_object_set
// that leaves the property unchanged, never a silent fallback to `block`.
TEST(ParallaxElements, EnumPropertiesTakeTheirNicksAndRefuseBadValues) {
  GError* error = nullptr;
  GstElement* p = gst_parse_launch_full("fakesrc ! parallaxsink name=s policy=drop-everything",
                                        nullptr, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  EXPECT_EQ(p, nullptr);
  ASSERT_NE(error, nullptr);
  EXPECT_NE(std::string(error->message).find("policy"), std::string::npos) << error->message;
  g_clear_error(&error);
  p = gst_parse_launch_full("parallaxsrc name=s policy=never ! fakesink", nullptr,
                            GST_PARSE_FLAG_FATAL_ERRORS, &error);
  EXPECT_EQ(p, nullptr);
  ASSERT_NE(error, nullptr);
  g_clear_error(&error);
  p = gst_parse_launch_full("fakesrc ! parallaxsink name=s memory=floppy", nullptr,
                            GST_PARSE_FLAG_FATAL_ERRORS, &error);
  EXPECT_EQ(p, nullptr);
  ASSERT_NE(error, nullptr);
  g_clear_error(&error);

  GstElement* sink = gst_element_factory_make("parallaxsink", nullptr);
  GstElement* src = gst_element_factory_make("parallaxsrc", nullptr);
  ASSERT_NE(sink, nullptr);
  ASSERT_NE(src, nullptr);
  gint policy = -7;
  for (const auto& [nick, value] :
       {std::pair{"block", 0}, {"drop-oldest", 1}, {"drop-newest", 2}}) {
    gst_util_set_object_arg(G_OBJECT(sink), "policy", nick);
    g_object_get(sink, "policy", &policy, nullptr);
    EXPECT_EQ(policy, value) << nick;
    EXPECT_EQ(policy, static_cast<int>(*link::policy_from_string(nick)));
    gst_util_set_object_arg(G_OBJECT(src), "policy", nick);
    g_object_get(src, "policy", &policy, nullptr);
    EXPECT_EQ(policy, value) << nick;
  }
  gst_util_set_object_arg(G_OBJECT(src), "policy", "default");
  g_object_get(src, "policy", &policy, nullptr);
  EXPECT_EQ(policy, -1);
  // An out-of-range number through g_object_set: GLib's warning, and the value stays.
  gst_util_set_object_arg(G_OBJECT(sink), "policy", "drop-oldest");
  std::atomic<int> warnings{0};
  const guint handler = g_log_set_handler(
      "GLib-GObject", static_cast<GLogLevelFlags>(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL),
      [](const gchar*, GLogLevelFlags, const gchar*, gpointer data) {
        static_cast<std::atomic<int>*>(data)->fetch_add(1);
      },
      &warnings);
  g_object_set(sink, "policy", 7, nullptr);
  g_log_remove_handler("GLib-GObject", handler);
  EXPECT_EQ(warnings.load(), 1);
  g_object_get(sink, "policy", &policy, nullptr);
  EXPECT_EQ(policy, 1);  // still drop-oldest, not block
  gst_object_unref(sink);
  gst_object_unref(src);
}

// The plugin's metadata: a license name GStreamer accepts for the sources' MIT OR Apache-2.0,
// and the elements registered through GST_ELEMENT_REGISTER.
TEST(ParallaxElements, PluginMetadata) {
  GstPlugin* plugin = gst_registry_find_plugin(gst_registry_get(), "parallax");
  ASSERT_NE(plugin, nullptr);
  EXPECT_STREQ(gst_plugin_get_license(plugin), "MIT/X11");
  EXPECT_STREQ(gst_plugin_get_package(plugin), "Parallax");
  EXPECT_NE(gst_plugin_get_origin(plugin), nullptr);
  gst_object_unref(plugin);
  for (const char* name : {"parallaxsink", "parallaxsrc"}) {
    GstElementFactory* f = gst_element_factory_find(name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_STREQ(gst_plugin_feature_get_plugin_name(GST_PLUGIN_FEATURE(f)), "parallax");
    gst_object_unref(f);
  }
}

TEST(ParallaxElements, DefaultsSharedWithTheNativeElements) {
  // Issue 11: wait-for-connection true (like shmsink), linger 2 s, copy-threshold -1 (auto).
  GstElement* sink = gst_element_factory_make("parallaxsink", nullptr);
  GstElement* src = gst_element_factory_make("parallaxsrc", nullptr);
  ASSERT_NE(sink, nullptr);
  ASSERT_NE(src, nullptr);
  gboolean wait = FALSE;
  guint64 linger = 0;
  gint threshold = 0;
  g_object_get(sink, "wait-for-connection", &wait, "linger", &linger, nullptr);
  gint policy = 0;
  g_object_get(src, "copy-threshold", &threshold, "policy", &policy, nullptr);
  EXPECT_EQ(policy, -1);  // "default": the publisher's
  EXPECT_TRUE(wait);
  EXPECT_EQ(linger, 2 * GST_SECOND);
  EXPECT_EQ(threshold, -1);
  gst_object_unref(sink);
  gst_object_unref(src);
}

TEST(ParallaxSink, NoSocketPathIsAClearError) {
  GstElement* sink = gst_element_factory_make("parallaxsink", nullptr);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(gst_element_set_state(sink, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(sink, GST_STATE_NULL);
  gst_object_unref(sink);
}

TEST(ParallaxSink, LiveSocketIsRefusedAndStateChangesRepeat) {
  const std::string path = unique_socket("busy");
  auto pub = link::IpcPublisher::bind(path);
  ASSERT_TRUE(pub);
  GstElement* sink = gst_element_factory_make("parallaxsink", nullptr);
  g_object_set(sink, "socket-path", path.c_str(), "slot-size", G_GUINT64_CONSTANT(65536), "async",
               FALSE, nullptr);
  EXPECT_EQ(gst_element_set_state(sink, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(sink, GST_STATE_NULL);
  pub->close();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(gst_element_set_state(sink, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);  // explicit slot-size: socket exists at once
    EXPECT_EQ(gst_element_set_state(sink, GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
    // basesink starts in NULL->READY and stops in READY->NULL: the socket lives in READY.
    EXPECT_EQ(gst_element_set_state(sink, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
  }
  gst_object_unref(sink);
}

// Pushes a heap buffer of the small video size with the given pts.
GstFlowReturn push_small_frame(GstHarness* h, guint64 pts) {
  GstBuffer* buf = gst_buffer_new_allocate(nullptr, 64 * 48 * 3 / 2, nullptr);
  gst_buffer_memset(buf, 0, static_cast<guint8>(pts), gst_buffer_get_size(buf));
  GST_BUFFER_PTS(buf) = pts;
  return gst_harness_push(h, buf);
}

TEST(ParallaxSink, ForwardsFlushAndTheNewSegmentInOrder) {
  const std::string path = unique_socket("flush");
  GstHarness* h = sink_harness(path);
  gst_harness_set_src_caps_str(h, kSmallVideo);
  auto sub = link::IpcSubscriber::connect(path, sub_options(2000ms));
  ASSERT_TRUE(sub) << sub.error().message;
  ASSERT_EQ(push_small_frame(h, 1), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(FALSE)));
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  seg.start = 5 * GST_SECOND;
  seg.time = 5 * GST_SECOND;
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&seg)));
  ASSERT_EQ(push_small_frame(h, 5 * GST_SECOND), GST_FLOW_OK);

  auto first = recv_buffer(*sub);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->metadata().pts, std::optional<std::uint64_t>(1));
  std::vector<link::Event> events;
  auto second = recv_buffer(*sub, &events);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->metadata().pts, std::optional<std::uint64_t>(5 * GST_SECOND));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, link::EventType::flush_start);
  EXPECT_EQ(events[1].type, link::EventType::flush_stop);
  EXPECT_FALSE(events[1].reset_time);
  EXPECT_EQ(events[2].type, link::EventType::segment);
  EXPECT_EQ(events[2].segment.start, 5 * GST_SECOND);
  gst_harness_teardown(h);
}

// A subscriber that never reads: with a drop policy the producer never blocks, drops are
// counted, and the subscriber later gets the newest (drop-oldest) or the oldest (drop-newest)
// buffers, in order.
void run_drop_policy(const char* policy, bool keeps_newest) {
  const std::string path = unique_socket(policy);
  GstHarness* h = sink_harness(path);
  gst_util_set_object_arg(G_OBJECT(h->element), "policy", policy);
  g_object_set(h->element, "slot-count", 8u, nullptr);
  gst_harness_set_src_caps_str(h, kSmallVideo);
  auto sub = link::IpcSubscriber::connect(path, sub_options(2000ms));
  ASSERT_TRUE(sub) << sub.error().message;
  constexpr guint64 kFrames = 100;
  const auto t0 = std::chrono::steady_clock::now();
  for (guint64 i = 0; i < kFrames; ++i)
    ASSERT_EQ(push_small_frame(h, i), GST_FLOW_OK) << "frame " << i;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // never waited for the subscriber
  EXPECT_GT(stat_u64(h->element, "drops"), 0u);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));

  std::vector<std::uint64_t> got;
  for (;;) {
    auto item = sub->recv_item_for(2s);
    ASSERT_TRUE(item) << item.error().message;
    if (!item->has_value()) break;
    if (auto* ev = std::get_if<link::Event>(&**item)) {
      if (ev->type == link::EventType::eos) break;
      continue;
    }
    const auto& b = std::get<pmem::Buffer>(**item);
    ASSERT_TRUE(b.metadata().pts);
    EXPECT_EQ(b.data()[0], static_cast<std::byte>(*b.metadata().pts & 0xff));
    got.push_back(*b.metadata().pts);
  }
  ASSERT_FALSE(got.empty());
  EXPECT_LT(got.size(), kFrames);
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
  if (keeps_newest) {
    EXPECT_EQ(got.back(), kFrames - 1);
  } else {
    EXPECT_EQ(got.front(), 0u);
    EXPECT_LT(got.back(), kFrames - 1);
  }
  gst_harness_teardown(h);
}

TEST(ParallaxSink, DropOldestNeverBlocksAndKeepsTheNewest) {
  run_drop_policy("drop-oldest", true);
}

TEST(ParallaxSink, DropNewestNeverBlocksAndKeepsTheOldest) {
  run_drop_policy("drop-newest", false);
}

TEST(ParallaxSink, HugePageMemoryCarriesFramesToANativeSubscriber) {
  const std::string path = unique_socket("huge");
  GstHarness* h = sink_harness(path);
  gst_util_set_object_arg(G_OBJECT(h->element), "memory", "hugepage");
  gst_harness_set_src_caps_str(h, kSmallVideo);
  auto sub = link::IpcSubscriber::connect(path, sub_options(2000ms));
  ASSERT_TRUE(sub) << sub.error().message;
  for (guint64 i = 0; i < 3; ++i)
    ASSERT_EQ(push_small_frame(h, 7 + i), GST_FLOW_OK);
  for (guint64 i = 0; i < 3; ++i) {
    auto b = recv_buffer(*sub);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->metadata().pts, std::optional<std::uint64_t>(7 + i));
    EXPECT_EQ(b->size(), 64u * 48 * 3 / 2);
    EXPECT_EQ(b->data()[b->size() - 1], static_cast<std::byte>(7 + i));
  }
  gst_harness_teardown(h);
}

// ---- parallaxsrc ----

struct SrcFixture : ::testing::Test {
  std::string path = unique_socket("src");
  std::optional<link::IpcPublisher> pub;
  void SetUp() override {
    auto p = link::IpcPublisher::bind(path, pub_options(64 * 1024, 8));
    ASSERT_TRUE(p) << p.error().message;
    pub.emplace(std::move(*p));
  }
  void send_frame(std::size_t size, std::uint8_t fill, std::uint64_t pts) {
    auto l = pub->loan();
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->set_size(size));
    std::memset(l->data().data(), fill, size);
    l->metadata().pts = pts;
    l->metadata().duration = 33 * GST_MSECOND;
    ASSERT_TRUE(pub->send(std::move(*l)));
  }
  std::uint32_t leases() {
    pub->collect_returns();
    auto st = pub->stats();
    std::uint32_t n = 0;
    for (const auto& s : st.subscribers)
      n += s.leases;
    return n;
  }
  bool wait_leases(std::uint32_t n) {
    for (int i = 0; i < 200; ++i) {
      if (leases() == n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

TEST_F(SrcFixture, HoldingMoreThanTheCopyThresholdCopiesAndNeverStallsThePublisher) {
  // Issue 11: downstream keeps every buffer (the harness holds them all). The publisher has
  // 8 slots: zero copy, its loan() would stall at the 9th. With copy-threshold=2 the first
  // two are the publisher's slots, the rest copies whose leases went back at once, so 20
  // frames get through. The policy asked for reaches the publisher.
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), "copy-threshold", 2, "policy", 1, nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  EXPECT_EQ(pub->stats().subscribers.at(0).policy, link::Policy::drop_oldest);
  ASSERT_TRUE(pub->set_format(kSmallVideo));
  std::vector<GstBuffer*> held;
  for (int i = 0; i < 20; ++i) {
    send_frame(4608, static_cast<std::uint8_t>(i),
               static_cast<std::uint64_t>(i) * 33 * GST_MSECOND);
    GstBuffer* b = gst_harness_pull(h);
    ASSERT_NE(b, nullptr);
    held.push_back(b);
  }
  for (std::size_t i = 0; i < held.size(); ++i) {
    GstMapInfo m;
    ASSERT_TRUE(gst_buffer_map(held[i], &m, GST_MAP_READ));
    EXPECT_EQ(m.data[100], static_cast<guint8>(i));
    gst_buffer_unmap(held[i], &m);
    // The publisher's slots are fd memory; local copies have no fd to offer.
    EXPECT_EQ(gst_is_fd_memory(gst_buffer_peek_memory(held[i], 0)), i < 2) << i;
  }
  EXPECT_EQ(leases(), 2u);
  GstStructure* st = nullptr;
  g_object_get(h->element, "stats", &st, nullptr);
  guint64 copied = 0;
  guint threshold = 0;
  ASSERT_TRUE(gst_structure_get_uint64(st, "copied", &copied));
  ASSERT_TRUE(gst_structure_get_uint(st, "copy-threshold", &threshold));
  EXPECT_EQ(copied, 18u);
  EXPECT_EQ(threshold, 2u);
  gst_structure_free(st);
  for (GstBuffer* b : held)
    gst_buffer_unref(b);
  EXPECT_TRUE(wait_leases(0));
  gst_harness_teardown(h);
}

TEST_F(SrcFixture, SetsThePublishersCapsAndHandlesACapsChange) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format(kSmallVideo));
  send_frame(4608, 1, 0);

  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  ASSERT_NE(caps, nullptr);
  gint width = 0;
  gst_structure_get_int(gst_caps_get_structure(caps, 0), "width", &width);
  EXPECT_EQ(width, 64);
  gst_caps_unref(caps);
  EXPECT_EQ(GST_BUFFER_PTS(b), 0u);
  EXPECT_EQ(GST_BUFFER_DURATION(b), 33 * GST_MSECOND);
  GstMemory* mem = gst_buffer_peek_memory(b, 0);
  EXPECT_TRUE(GST_MEMORY_IS_READONLY(mem));
  EXPECT_TRUE(gst_memory_is_type(mem, GST_PARALLAX_MEMORY_TYPE));
  GstMapInfo info;
  EXPECT_FALSE(gst_memory_map(mem, &info, GST_MAP_WRITE));
  ASSERT_TRUE(gst_buffer_map(b, &info, GST_MAP_READ));
  EXPECT_EQ(info.size, 4608u);
  EXPECT_EQ(info.data[4607], 1);
  gst_buffer_unmap(b, &info);
  gst_buffer_unref(b);

  ASSERT_TRUE(pub->set_format("video/x-raw,format=I420,width=32,height=24,framerate=30/1"));
  send_frame(1152, 2, 33 * GST_MSECOND);
  b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  caps = gst_pad_get_current_caps(h->sinkpad);
  gst_structure_get_int(gst_caps_get_structure(caps, 0), "width", &width);
  EXPECT_EQ(width, 32);
  gst_caps_unref(caps);
  EXPECT_EQ(gst_buffer_get_size(b), 1152u);
  gst_buffer_unref(b);
  EXPECT_EQ(stat_u64(h->element, "caps-changes"), 1u);
  gst_harness_teardown(h);
}

// Issue 14: what parallaxsrc pushes is fd memory of the publisher's memfd (as libcamera's
// allocator exposes its dmabufs): gst_fd_memory_get_fd() is the segment's fd, read-only, and
// the memory's offset is the bytes' offset in it. Sharing keeps both; a copied payload (lease
// pressure) has no fd and says so.
TEST_F(SrcFixture, ReceivedBuffersAreReadOnlyFdMemoryOfTheSegment) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  send_frame(100, 9, 0);   // slot 0
  send_frame(3000, 7, 1);  // another slot: a non-zero offset in the segment
  gst_buffer_unref(gst_harness_pull(h));
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  GstMemory* mem = gst_buffer_peek_memory(b, 0);
  ASSERT_TRUE(gst_is_fd_memory(mem));
  EXPECT_TRUE(GST_IS_PARALLAX_FD_ALLOCATOR(mem->allocator));
  EXPECT_TRUE(gst_memory_is_type(mem, GST_PARALLAX_MEMORY_TYPE));
  EXPECT_TRUE(GST_MEMORY_IS_READONLY(mem));
  const int fd = gst_fd_memory_get_fd(mem);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(mem->size, 3000u);
  EXPECT_GE(mem->offset, 64u * 1024);  // the second slot of 64 KiB ones
  EXPECT_LE(mem->offset + mem->size, mem->maxsize);
  struct stat sb {};
  ASSERT_EQ(::fstat(fd, &sb), 0);
  EXPECT_GE(static_cast<gsize>(sb.st_size), mem->maxsize);
  GstMapInfo m;
  EXPECT_FALSE(gst_memory_map(mem, &m, GST_MAP_WRITE));
  ASSERT_TRUE(gst_memory_map(mem, &m, GST_MAP_READ));
  std::vector<guint8> from_fd(m.size);
  ASSERT_EQ(::pread(fd, from_fd.data(), m.size, static_cast<off_t>(mem->offset)),
            static_cast<ssize_t>(m.size));
  EXPECT_EQ(std::memcmp(from_fd.data(), m.data, m.size), 0);
  EXPECT_EQ(m.data[2999], 7);
  const guint8* mapped = m.data;
  gst_memory_unmap(mem, &m);
  // The Buffer behind it: same segment offset (what the sink would publish zero-copy).
  auto back = parallax::gst::memory_to_buffer(mem);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->segment_offset(), mem->offset);
  EXPECT_EQ(back->size(), 3000u);
  back.reset();
  // A sub-buffer shares: fd memory of the same fd, 10 bytes further, same pages.
  GstBuffer* part = gst_buffer_copy_region(b, GST_BUFFER_COPY_ALL, 10, 20);
  GstMemory* pm = gst_buffer_peek_memory(part, 0);
  ASSERT_TRUE(gst_is_fd_memory(pm));
  EXPECT_EQ(gst_fd_memory_get_fd(pm), fd);
  EXPECT_EQ(pm->offset, mem->offset + 10);
  EXPECT_TRUE(GST_MEMORY_IS_READONLY(pm));
  ASSERT_TRUE(gst_memory_map(pm, &m, GST_MAP_READ));
  EXPECT_EQ(m.data, mapped + 10);
  gst_memory_unmap(pm, &m);
  gst_buffer_unref(b);
  EXPECT_TRUE(wait_leases(1));  // the sub-buffer keeps the slot
  gst_buffer_unref(part);
  EXPECT_TRUE(wait_leases(0));
  gst_harness_teardown(h);
}

TEST_F(SrcFixture, LeaseReturnsWhenTheLastGstBufferIsFreed) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  send_frame(100, 3, 0);
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  GstBuffer* sub = gst_buffer_copy_region(b, GST_BUFFER_COPY_ALL, 10, 20);  // shares memory
  gst_buffer_unref(b);
  EXPECT_TRUE(wait_leases(1));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(leases(), 1u);  // the sub-buffer still holds the slot
  gst_buffer_unref(sub);
  EXPECT_TRUE(wait_leases(0));
  gst_harness_teardown(h);
}

TEST_F(SrcFixture, SampleOutlivesThePipelineAndReturnsItsLease) {
  GError* error = nullptr;
  const std::string desc = "parallaxsrc socket-path=" + path + " ! appsink name=out";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &error);
  ASSERT_NE(pipeline, nullptr) << (error ? error->message : "");
  GstElement* appsink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  send_frame(1000, 9, 0);
  GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(appsink), 5 * GST_SECOND);
  ASSERT_NE(sample, nullptr);
  EXPECT_EQ(pub->pool()->in_use(), 1u);

  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(appsink);
  gst_object_unref(pipeline);  // element, subscriber and connection gone; the sample is not
  GstMapInfo info;
  ASSERT_TRUE(gst_buffer_map(gst_sample_get_buffer(sample), &info, GST_MAP_READ));
  EXPECT_EQ(info.data[999], 9);
  gst_buffer_unmap(gst_sample_get_buffer(sample), &info);
  gst_sample_unref(sample);

  EXPECT_TRUE(wait_leases(0));
  for (int i = 0; i < 200 && pub->pool()->in_use() != 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(pub->pool()->in_use(), 0u);
}

TEST_F(SrcFixture, CleanPublisherCloseIsEos) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  GstStructure* s = gst_structure_new("hello", "n", G_TYPE_INT, 5, nullptr);
  gchar* str = gst_structure_to_string(s);
  std::string bytes(str);
  g_free(str);
  gst_structure_free(s);
  ASSERT_TRUE(pub->send_event(link::Event::custom("custom-downstream", bytes)));
  send_frame(10, 1, 0);
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  gst_buffer_unref(b);
  pub->close();
  bool eos = false, custom = false;
  for (int i = 0; i < 20 && !eos; ++i) {
    GstEvent* e = gst_harness_pull_event(h);
    if (e == nullptr) break;
    if (GST_EVENT_TYPE(e) == GST_EVENT_CUSTOM_DOWNSTREAM)
      custom = gst_structure_has_name(gst_event_get_structure(e), "hello");
    eos = GST_EVENT_TYPE(e) == GST_EVENT_EOS;
    gst_event_unref(e);
  }
  EXPECT_TRUE(custom);
  EXPECT_TRUE(eos);
  gst_harness_teardown(h);
}

// Flush from the publisher: flush-start, flush-stop and a segment reach downstream before the
// next buffer, live or not (a live source sends its own segment again).
void run_src_flush(SrcFixture& f, bool live) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", f.path.c_str(), "is-live", live, nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(f.pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(f.pub->set_format("application/x-test"));
  f.send_frame(10, 1, 0);
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  gst_buffer_unref(b);
  while (GstEvent* e = gst_harness_try_pull_event(h))
    gst_event_unref(e);  // stream-start, caps, segment
  ASSERT_TRUE(f.pub->send_event(link::Event::flush_start()));
  ASSERT_TRUE(f.pub->send_event(link::Event::flush_stop(true)));
  parallax::StreamSegment si;
  si.start = 2 * GST_SECOND;
  si.time = 2 * GST_SECOND;
  ASSERT_TRUE(f.pub->send_event(link::Event::make_segment(si)));
  f.send_frame(10, 2, 2 * GST_SECOND);
  b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  gst_buffer_unref(b);
  std::vector<GstEventType> types;
  const GstSegment* seg = nullptr;
  GstEvent* seg_event = nullptr;
  while (GstEvent* e = gst_harness_try_pull_event(h)) {
    types.push_back(GST_EVENT_TYPE(e));
    if (GST_EVENT_TYPE(e) == GST_EVENT_SEGMENT) {
      if (seg_event) gst_event_unref(seg_event);
      seg_event = gst_event_ref(e);
    }
    gst_event_unref(e);
  }
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(types[0], GST_EVENT_FLUSH_START);
  EXPECT_EQ(types[1], GST_EVENT_FLUSH_STOP);
  EXPECT_EQ(types.back(), GST_EVENT_SEGMENT);
  ASSERT_NE(seg_event, nullptr);
  gst_event_parse_segment(seg_event, &seg);
  EXPECT_EQ(seg->format, GST_FORMAT_TIME);
  if (!live) {
    EXPECT_EQ(seg->start, 2 * GST_SECOND);  // the publisher's segment
  }
  gst_event_unref(seg_event);
  // The pad has its segment again: the buffer above did not travel without one.
  GstEvent* sticky = gst_pad_get_sticky_event(h->sinkpad, GST_EVENT_SEGMENT, 0);
  EXPECT_NE(sticky, nullptr);
  if (sticky) gst_event_unref(sticky);
  gst_harness_teardown(h);
}

TEST_F(SrcFixture, PublisherFlushReachesDownstreamWithItsSegment) {
  run_src_flush(*this, false);
}

TEST_F(SrcFixture, LiveSourceResendsItsSegmentAfterAFlush) {
  run_src_flush(*this, true);
}

TEST(ParallaxSrc, NoPublisherPostsAnErrorWithinTheTimeout) {
  const std::string desc =
      "parallaxsrc socket-path=" + unique_socket("none") + " timeout=200000000 ! fakesink";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_timed_pop_filtered(
      bus, 5 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  ASSERT_NE(msg, nullptr);
  EXPECT_EQ(GST_MESSAGE_TYPE(msg), GST_MESSAGE_ERROR);
  GError* err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  EXPECT_NE(std::string(err->message).find("Could not connect"), std::string::npos);
  g_error_free(err);
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

TEST(ParallaxSrc, WaitingForAPublisherIsUnlockedByAStateChange) {
  const std::string desc = "parallaxsrc socket-path=" + unique_socket("unlock") +
                           " timeout=0 ! fakesink";  // waits forever
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  for (int i = 0; i < 3; ++i) {
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    std::this_thread::sleep_for(100ms);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  gst_object_unref(pipeline);
}

TEST_F(SrcFixture, BlockedReadIsUnlockedByAStateChange) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));  // connected, nothing to read: recv blocks
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  gst_element_set_state(h->element, GST_STATE_NULL);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  gst_harness_teardown(h);
}

// busy-poll: frames still arrive (in order, with their data) and a state change still gets
// the streaming thread out of its spin.
TEST_F(SrcFixture, BusyPollReceivesAndIsUnlockedByAStateChange) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), "busy-poll", TRUE, nullptr);
  gboolean busy = FALSE;
  g_object_get(h->element, "busy-poll", &busy, nullptr);
  EXPECT_TRUE(busy);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  for (std::uint8_t i = 1; i <= 3; ++i) {
    send_frame(64, i, i * GST_MSECOND);
    GstBuffer* b = gst_harness_pull(h);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(GST_BUFFER_PTS(b), i * GST_MSECOND);
    GstMapInfo info;
    ASSERT_TRUE(gst_buffer_map(b, &info, GST_MAP_READ));
    EXPECT_EQ(info.data[63], i);
    gst_buffer_unmap(b, &info);
    gst_buffer_unref(b);
  }
  std::this_thread::sleep_for(50ms);  // spinning on an empty ring now
  const auto t0 = std::chrono::steady_clock::now();
  gst_element_set_state(h->element, GST_STATE_NULL);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  gst_harness_teardown(h);
}

// sched-slice: the streaming thread (where recv waits) gets the EEVDF slice asked for, read
// back from the kernel in that thread; a value under the kernel's minimum fails start() with an
// element error that says the range.
TEST_F(SrcFixture, SchedSliceIsTheStreamingThreadsAndBadValuesAreRefused) {
  bool supported = true;
  std::thread([&] {
    supported = static_cast<bool>(parallax::sched::set_current_thread_slice(1ms));
  }).join();
  if (!supported) GTEST_SKIP() << "this kernel has no custom time slices (Linux 6.12 or later)";
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), "sched-slice", 100u, nullptr);
  guint got = 0;
  g_object_get(h->element, "sched-slice", &got, nullptr);
  EXPECT_EQ(got, 100u);
  std::atomic<std::int64_t> seen_ns{-1};
  GstPad* src = gst_element_get_static_pad(h->element, "src");
  gst_pad_add_probe(
      src, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo*, gpointer data) {
        auto* seen = static_cast<std::atomic<std::int64_t>*>(data);
        auto s = parallax::sched::current_thread_slice();
        seen->store(s ? s->count() : 0);
        return GST_PAD_PROBE_OK;
      },
      &seen_ns, nullptr);
  gst_object_unref(src);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  send_frame(64, 1, GST_MSECOND);
  GstBuffer* b = gst_harness_pull(h);
  ASSERT_NE(b, nullptr);
  gst_buffer_unref(b);
  EXPECT_EQ(seen_ns.load(), 100'000);
  gst_harness_teardown(h);

  const std::string desc = "parallaxsrc socket-path=" + path + " sched-slice=50 ! fakesink";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  EXPECT_EQ(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_timed_pop_filtered(bus, 2 * GST_SECOND, GST_MESSAGE_ERROR);
  ASSERT_NE(msg, nullptr);
  GError* e = nullptr;
  gchar* dbg = nullptr;
  gst_message_parse_error(msg, &e, &dbg);
  EXPECT_NE(std::string(e->message).find("sched-slice"), std::string::npos) << e->message;
  EXPECT_NE(std::string(dbg).find("100-100000"), std::string::npos) << dbg;
  g_error_free(e);
  g_free(dbg);
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  return rc;
}

// Issue 12, item 3: a publisher announces a 64x64 GRAY8 frame with a video meta whose stride
// is 1 GiB. Before, parallaxsrc attached it as is and videoconvert read far outside the
// 4 KiB frame (SIGSEGV). Now the meta is dropped (warning) and the frame converts as packed.
TEST_F(SrcFixture, HostileVideoMetaOutsideTheBufferIsDropped) {
  const std::string desc = "parallaxsrc socket-path=" + path +
                           " ! videoconvert ! video/x-raw,format=RGB ! fakesink name=out";
  GstElement* pipeline = gst_parse_launch(desc.c_str(), nullptr);
  ASSERT_NE(pipeline, nullptr);
  ASSERT_NE(gst_element_set_state(pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1"));
  auto video_meta = [](std::uint32_t n_planes, std::uint64_t offset0, std::int32_t stride0) {
    std::vector<std::byte> v;
    auto put = [&v](auto x) {
      const auto* p = reinterpret_cast<const std::byte*>(&x);
      v.insert(v.end(), p, p + sizeof x);
    };
    put(std::uint32_t{1});  // version
    put(static_cast<std::uint32_t>(GST_VIDEO_FORMAT_GRAY8));
    put(std::uint32_t{0});  // flags
    put(std::uint32_t{64});
    put(std::uint32_t{64});
    put(n_planes);
    put(offset0);
    for (int i = 0; i < 3; ++i)
      put(std::uint64_t{0});
    put(stride0);
    for (int i = 0; i < 3; ++i)
      put(std::int32_t{0});
    return v;
  };
  const std::vector<std::vector<std::byte>> metas = {
      video_meta(1, 0, 1 << 30),  // stride 1 GiB
      video_meta(1, 4000, 64),    // offset: the plane ends 3904 bytes past the frame
      video_meta(1, 0, 32),       // a row is 64 bytes
      video_meta(4, 0, 64),       // GRAY8 has one plane
      video_meta(1, 0, 64),       // fine: kept
  };
  for (std::size_t i = 0; i < metas.size(); ++i) {
    auto l = pub->loan();
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->set_size(4096));
    std::memset(l->data().data(), 0x40, 4096);
    l->metadata().pts = i * 33 * GST_MSECOND;
    l->metadata().set(std::string(parallax::gst::kVideoMetaKey), metas[i]);
    ASSERT_TRUE(pub->send(std::move(*l)));
  }
  ASSERT_TRUE(pub->send_eos());
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_timed_pop_filtered(
      bus, 10 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  ASSERT_NE(msg, nullptr) << "neither EOS nor an error within 10 s";
  EXPECT_EQ(GST_MESSAGE_TYPE(msg), GST_MESSAGE_EOS);
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

// ---- observability (docs/observability.md) ----

TEST_F(SrcFixture, StatsCarryTransitLatency) {
  GstHarness* h = gst_harness_new("parallaxsrc");
  g_object_set(h->element, "socket-path", path.c_str(), nullptr);
  gst_harness_play(h);
  ASSERT_TRUE(pub->wait_for_subscribers(1, 5s));
  ASSERT_TRUE(pub->set_format("application/x-test"));
  EXPECT_EQ(stat_u64(h->element, "latency-count"), 0u);
  EXPECT_EQ(stat_u64(h->element, "latency-p50"), 0u);
  for (int i = 0; i < 3; ++i) {
    send_frame(100, 3, static_cast<std::uint64_t>(i) * 33 * GST_MSECOND);
    GstBuffer* b = gst_harness_pull(h);
    ASSERT_NE(b, nullptr);
    gst_buffer_unref(b);
  }
  EXPECT_EQ(stat_u64(h->element, "latency-count"), 3u);
  const guint64 p50 = stat_u64(h->element, "latency-p50");
  const guint64 p99 = stat_u64(h->element, "latency-p99");
  EXPECT_GT(p50, 0u);
  EXPECT_LT(p50, 10'000'000'000ull);  // a real time span, not a raw clock value
  EXPECT_GE(p99, p50);
  EXPECT_GE(stat_u64(h->element, "latency-max"), 1u);
  gst_harness_teardown(h);
}
