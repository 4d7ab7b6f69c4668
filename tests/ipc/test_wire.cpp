// SPDX-License-Identifier: MIT OR Apache-2.0
// Layout-freeze tests of the shared-memory and wire structs, and the decoders' validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ipc/wire.h"
#include "parallax/ipc.h"

using namespace parallax;
using namespace parallax::link;

namespace {

std::span<const std::byte> bytes_of(const std::vector<std::uint64_t>& w) {
  return {reinterpret_cast<const std::byte*>(w.data()), w.size() * 8};
}

/// The words of d encoded as one buffer record.
std::vector<std::uint64_t> encoded(const wire::BufferDesc& d) {
  std::vector<std::uint64_t> w;
  wire::encode_buffer(w, d);
  return w;
}

/// A descriptor with every field and every metadata value type set.
wire::BufferDesc desc_with_every_field() {
  wire::BufferDesc d;
  d.token = 0x0000000700000003ull;
  d.segment_id = 99;
  d.offset = 4096;
  d.length = 1234;
  d.send_ns = 55;
  d.meta.pts = 1;
  d.meta.dts = 0;
  d.meta.duration = 40000000;
  d.meta.offset = 13;
  d.meta.offset_end = 77;
  d.meta.sequence = 5;
  d.meta.flags = kFlagDiscont | kFlagDeltaUnit;
  d.meta.set("i", std::int64_t{-3});
  d.meta.set("u", std::uint64_t{1} << 63);
  d.meta.set("d", 0.25);
  d.meta.set("b", true);
  d.meta.set("s", std::string("héllo"));
  d.meta.set("bytes", std::vector<std::byte>{std::byte{1}, std::byte{0}, std::byte{255}});
  d.meta.set("video", std::vector<std::byte>(40, std::byte{9}));
  return d;
}

/// decode_record() of a record that must be a buffer record: its descriptor, or the error.
Result<wire::BufferDesc> decode_buffer_record(std::span<const std::byte> bytes) {
  auto r = wire::decode_record(bytes);
  if (!r.ok()) return std::move(r).error();
  auto* d = std::get_if<wire::BufferDesc>(&*r);
  if (d == nullptr) return Error{Errc::internal, "decoded, but not as a buffer record"};
  return std::move(*d);
}

/// A copy of msg with the byte at `at` set to `value`.
template <typename Bytes>
Bytes with_byte(Bytes msg, std::size_t at, std::uint8_t value) {
  reinterpret_cast<std::uint8_t*>(msg.data())[at] = value;
  return msg;
}

/// decode refuses every proper prefix of msg (a message cut anywhere).
template <typename Decode>
void expect_every_prefix_refused(std::span<const std::byte> msg, Decode decode) {
  for (std::size_t n = 0; n < msg.size(); ++n)
    EXPECT_FALSE(decode(msg.first(n)).ok()) << "accepted a message cut at " << n;
}

}  // namespace

// The struct sizes and offsets are frozen by static_asserts in ipc/wire.h (a layout change
// does not compile); these tests check the encoders and decoders.

TEST(IpcWire, SendStampRoundTrips) {
  wire::BufferDesc d;
  d.token = 5;
  d.length = 10;
  d.send_ns = 0x0123456789abcdefull;
  const auto w = encoded(d);
  EXPECT_EQ(w[wire::kSendNsWord], d.send_ns);
  auto r = decode_buffer_record(bytes_of(w));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->send_ns, d.send_ns);
}

TEST(IpcWire, PeerMessageIsHelloOrStatsRequest) {
  auto req = wire::encode_stats_request();
  auto m = wire::decode_peer_msg(req);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_TRUE(std::holds_alternative<wire::StatsRequest>(*m));
  auto h = wire::decode_peer_msg(wire::encode_hello({2}));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(std::get<wire::Hello>(*h).policy, 2u);
  // A stats request is not a hello (decode_hello keeps refusing it).
  EXPECT_FALSE(wire::decode_hello(req).ok());
  EXPECT_FALSE(wire::decode_peer_msg(with_byte(req, 20, 1)).ok());  // reserved field
  auto longer = req;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(wire::decode_peer_msg(longer).ok());
  expect_every_prefix_refused(req, [](auto m) { return wire::decode_peer_msg(m); });
}

TEST(IpcWire, StatsMessagesRoundTripAndAreValidated) {
  PublisherStats p;
  p.publisher_pid = 4242;
  p.uptime_ns = 99;
  p.buffers_sent = 1;
  p.copies = 2;
  p.stats_requests = 3;
  p.slot_size = 4096;
  p.slots = 8;
  p.slots_in_use = 5;
  p.slots_high_water = 6;
  p.format = std::string(300, 'c');  // longer than carried
  p.segments.resize(2);
  p.subscribers.resize(1);
  auto pb = wire::encode_stats_publisher(p);
  EXPECT_LE(pb.size(), wire::kMaxMsgSize);
  auto pm = wire::decode_stats_msg(pb);
  ASSERT_TRUE(pm.ok()) << pm.error().to_string();
  const auto& p2 = std::get<PublisherStats>(*pm);
  EXPECT_EQ(p2.publisher_pid, 4242);
  EXPECT_EQ(p2.copies, 2u);
  EXPECT_EQ(p2.stats_requests, 3u);
  EXPECT_EQ(p2.slots_in_use, 5u);
  EXPECT_EQ(p2.format, std::string(wire::kMaxStatsFormat, 'c'));
  EXPECT_TRUE(p2.format_truncated);
  expect_every_prefix_refused(pb, [](auto m) { return wire::decode_stats_msg(m); });

  SubscriberInfo s;
  s.id = 7;
  s.pid = 77;
  s.uid = 1000;
  s.policy = Policy::drop_newest;
  s.leases = 3;
  s.max_leases = 4;
  s.ring_capacity = 65536;
  s.ring_used = 128;
  s.dropped_newest = 9;
  s.latency_p99_ns = 4095;
  auto sm = wire::decode_stats_msg(wire::encode_stats_subscriber(s));
  ASSERT_TRUE(sm.ok()) << sm.error().to_string();
  const auto& s2 = std::get<SubscriberInfo>(*sm);
  EXPECT_EQ(s2.pid, 77);
  EXPECT_EQ(s2.policy, Policy::drop_newest);
  EXPECT_EQ(s2.leases, 3u);
  EXPECT_EQ(s2.dropped_newest, 9u);
  EXPECT_EQ(s2.latency_p99_ns, 4095u);
  SubscriberInfo liar = s;
  liar.leases = 5;  // more than its quota
  EXPECT_FALSE(wire::decode_stats_msg(wire::encode_stats_subscriber(liar)).ok());
  liar = s;
  liar.ring_used = 65537;
  EXPECT_FALSE(wire::decode_stats_msg(wire::encode_stats_subscriber(liar)).ok());
  EXPECT_FALSE(wire::decode_stats_msg(with_byte(wire::encode_stats_subscriber(s),
                                                offsetof(wire::StatsSubscriberMsg, policy), 3))
                   .ok());

  auto gm = wire::decode_stats_msg(wire::encode_stats_segment({11, 8192, 1, 2}));
  ASSERT_TRUE(gm.ok());
  EXPECT_EQ(std::get<wire::StatsSegment>(*gm).size, 8192u);
  EXPECT_FALSE(wire::decode_stats_msg(wire::encode_stats_segment({11, 0, 1, 2})).ok());
  auto em = wire::decode_stats_msg(wire::encode_stats_end({2, 1}));
  ASSERT_TRUE(em.ok());
  EXPECT_EQ(std::get<wire::StatsEnd>(*em).subscribers, 1u);
  // Other publisher messages are not part of a stats reply; a refusal is.
  EXPECT_FALSE(wire::decode_stats_msg(wire::encode_segment({1, 4096})).ok());
  auto rf = wire::decode_stats_msg(wire::encode_refuse({Errc::permission_denied, "no"}));
  ASSERT_TRUE(rf.ok());
  EXPECT_EQ(std::get<wire::Refuse>(*rf).code, Errc::permission_denied);
  // ...and the subscriber's decoder does not accept stats messages.
  EXPECT_FALSE(wire::decode_publisher_msg(wire::encode_stats_end({0, 0})).ok());
}

TEST(IpcWire, LatencyBucketsAreLog2) {
  EXPECT_EQ(wire::latency_bucket(0), 0u);
  EXPECT_EQ(wire::latency_bucket(1), 1u);
  EXPECT_EQ(wire::latency_bucket(1023), 10u);
  EXPECT_EQ(wire::latency_bucket(1024), 11u);
  EXPECT_EQ(wire::latency_bucket(UINT64_MAX), wire::kLatencyBuckets - 1);
  std::array<std::uint64_t, wire::kLatencyBuckets> b{};
  EXPECT_EQ(wire::latency_quantile(b, 0.5, 0), 0u);
  b[11] = 98;  // [1024, 2047]
  b[20] = 2;   // [524288, 1048575]
  EXPECT_EQ(wire::latency_quantile(b, 0.5, 600000), 2047u);
  EXPECT_EQ(wire::latency_quantile(b, 0.99, 600000), 600000u);  // capped by the max
  EXPECT_EQ(wire::latency_quantile(b, 0.99, 2000000), 1048575u);
}

TEST(IpcWire, BufferRecordRoundTripsAllMetadata) {
  const wire::BufferDesc d = desc_with_every_field();
  auto r = decode_buffer_record(bytes_of(encoded(d)));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const wire::BufferDesc& got = *r;
  EXPECT_EQ(got.token, d.token);
  EXPECT_EQ(got.segment_id, 99u);
  EXPECT_EQ(got.offset, 4096u);
  EXPECT_EQ(got.length, 1234u);
  EXPECT_EQ(got.send_ns, 55u);
  EXPECT_EQ(got.meta, d.meta);
  EXPECT_EQ(got.meta.offset, 13u);
  // An unset optional field stays unset.
  wire::BufferDesc bare;
  bare.length = 1;
  auto b = decode_buffer_record(bytes_of(encoded(bare)));
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  EXPECT_FALSE(b->meta.offset.has_value());
  EXPECT_FALSE(b->meta.pts.has_value());
}

TEST(IpcWire, EveryEventRoundTrips) {
  StreamSegment seg;
  seg.rate = -2.0;
  seg.start = 10;
  seg.stop = 20;
  const Event events[] = {
      Event::make_caps(Caps::from_text("video/x-raw, format=(string)I420, width=(int)64")),
      // a format our caps parser cannot read crosses whole
      Event::make_caps(Caps::from_text("video/x-h264, a=(int)< 1, 2 >")),
      Event::stream_start("stream-1", 7), Event::make_segment(seg), Event::eos(),
      Event::flush_start(), Event::flush_stop(false),
      Event::custom("tag", std::string("\x09\0\x08", 3)), Event::custom("", {})};
  for (const Event& e : events) {
    std::vector<std::uint64_t> w;
    ASSERT_TRUE(wire::encode_event(w, e).ok());
    auto r = wire::decode_record(bytes_of(w));
    ASSERT_TRUE(r.ok()) << to_string(e.type) << ": " << r.error().to_string();
    EXPECT_EQ(std::get<Event>(*r), e) << to_string(e.type);
  }
}

TEST(IpcWire, OversizedEventIsRefused) {
  std::vector<std::uint64_t> w;
  auto r = wire::encode_event(w, Event::custom("big", std::string(kMaxEventBytes + 1, 'x')));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

TEST(IpcWire, EveryTruncationOfARecordIsRejected) {
  wire::BufferDesc d;
  d.meta.set("key", std::string("value"));
  const auto w = encoded(d);
  expect_every_prefix_refused(bytes_of(w), [](auto m) { return wire::decode_record(m); });
}

TEST(IpcWire, CorruptedFieldsAreRejected) {
  wire::BufferDesc d;
  d.meta.set("k", true);
  const auto w = encoded(d);
  ASSERT_TRUE(wire::decode_record(bytes_of(w)).ok());
  auto corrupt = [&](std::size_t byte, std::uint8_t value) {
    return wire::decode_record(bytes_of(with_byte(w, byte, value))).ok();
  };
  EXPECT_FALSE(corrupt(4, 77));                              // record type
  EXPECT_FALSE(corrupt(6, 1));                               // record flags
  EXPECT_FALSE(corrupt(92, 0xff));                           // presence bits
  EXPECT_FALSE(corrupt(96, 2));                              // entry count
  EXPECT_FALSE(corrupt(sizeof(wire::BufferRecord) + 2, 9));  // entry type
  EXPECT_FALSE(corrupt(sizeof(wire::BufferRecord) + 9, 2));  // bool value 2
}

TEST(IpcWire, HelloValidation) {
  auto ok = wire::encode_hello({static_cast<std::uint32_t>(Policy::drop_newest)});
  EXPECT_TRUE(wire::decode_hello(ok).ok());
  auto r = wire::decode_hello(with_byte(ok, 4, wire::kVersion + 1));  // a version we do not speak
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::data_loss);
  EXPECT_FALSE(wire::decode_hello(with_byte(ok, 16, 9)).ok());  // unknown policy
  EXPECT_FALSE(wire::decode_hello(std::span(ok).subspan(0, 20)).ok());
  // A welcome is not a hello.
  EXPECT_FALSE(wire::decode_hello(wire::encode_welcome({})).ok());
}

TEST(IpcWire, WelcomeValidation) {
  wire::Welcome w{65536,
                  static_cast<std::uint32_t>(sizeof(wire::RingHeader) + 65536),
                  static_cast<std::uint32_t>(sizeof(wire::AckHeader) + 8 * 32),
                  32,
                  32,
                  Policy::drop_oldest,
                  1,
                  2};
  EXPECT_TRUE(wire::decode_publisher_msg(wire::encode_welcome(w)).ok());
  auto bad = w;
  bad.ring_bytes = 65535;
  EXPECT_FALSE(wire::decode_publisher_msg(wire::encode_welcome(bad)).ok());
  bad = w;
  bad.quota = 33;  // more than the return slots
  EXPECT_FALSE(wire::decode_publisher_msg(wire::encode_welcome(bad)).ok());
  bad = w;
  bad.ack_map_size += 8;
  EXPECT_FALSE(wire::decode_publisher_msg(wire::encode_welcome(bad)).ok());
  // A hello is not a publisher message.
  EXPECT_FALSE(wire::decode_publisher_msg(wire::encode_hello({})).ok());
  auto refuse = wire::decode_publisher_msg(wire::encode_refuse({Errc::permission_denied, "no"}));
  ASSERT_TRUE(refuse.ok());
  EXPECT_EQ(std::get<wire::Refuse>(*refuse).text, "no");
  auto retired = wire::decode_publisher_msg(wire::encode_segment_retired({42}));
  ASSERT_TRUE(retired.ok());
  EXPECT_EQ(std::get<wire::SegmentRetired>(*retired).segment_id, 42u);
  auto bytes = with_byte(wire::encode_segment_retired({42}), 24, 1);  // reserved must be zero
  EXPECT_FALSE(wire::decode_publisher_msg(bytes).ok());
  bytes.pop_back();
  EXPECT_FALSE(wire::decode_publisher_msg(bytes).ok());
}

TEST(IpcWire, SegmentAnnouncementCarriesTheNumaNode) {
  for (std::int32_t node : {wire::kNoNode, 0, 1, 3, wire::kMaxNode}) {
    auto m = wire::decode_publisher_msg(wire::encode_segment({7, 1 << 20, node}));
    ASSERT_TRUE(m.ok()) << node;
    const auto& sa = std::get<wire::SegmentAnnounce>(*m);
    EXPECT_EQ(sa.segment_id, 7u);
    EXPECT_EQ(sa.size, 1u << 20);
    EXPECT_EQ(sa.numa_node, node);
  }
  for (std::int32_t node : {-2, wire::kMaxNode + 1, INT32_MIN}) {
    auto m = wire::decode_publisher_msg(wire::encode_segment({7, 4096, node}));
    ASSERT_FALSE(m.ok()) << node;
    EXPECT_EQ(m.error().code, Errc::data_loss);
  }
  auto bytes =
      with_byte(wire::encode_segment({7, 4096, 0}), offsetof(wire::SegmentMsg, reserved), 1);
  EXPECT_FALSE(wire::decode_publisher_msg(bytes).ok());
  // A version-1 peer's 32-byte segment message is refused, not misread.
  bytes.resize(32);
  EXPECT_FALSE(wire::decode_publisher_msg(bytes).ok());
}

TEST(IpcPolicyNames, RoundTrip) {
  for (Policy p : {Policy::block, Policy::drop_oldest, Policy::drop_newest})
    EXPECT_EQ(policy_from_string(to_string(p)).value(), p);
  EXPECT_EQ(policy_from_string("drop_oldest").value(), Policy::drop_oldest);
  EXPECT_FALSE(policy_from_string("leaky").ok());
}

// The subscriber's receive path decodes every buffer record into one reused BufferDesc.
TEST(IpcWire, DecodeBufferIntoAReusedDescriptorOverwritesEveryField) {
  const wire::BufferDesc full = desc_with_every_field();
  wire::BufferDesc bare;
  bare.token = 8;
  bare.length = 1;
  const auto wf = encoded(full);
  const auto wb = encoded(bare);
  EXPECT_EQ(wire::peek_record_type(bytes_of(wf)),
            static_cast<std::uint16_t>(wire::RecordType::buffer));
  wire::BufferDesc out;
  ASSERT_TRUE(wire::decode_buffer(bytes_of(wf), out).ok());
  EXPECT_EQ(out.meta, full.meta);
  EXPECT_EQ(out.send_ns, 55u);
  // A record without metadata leaves nothing of the previous one behind.
  ASSERT_TRUE(wire::decode_buffer(bytes_of(wb), out).ok());
  EXPECT_EQ(out.token, 8u);
  EXPECT_EQ(out.segment_id, 0u);
  EXPECT_EQ(out.send_ns, 0u);
  EXPECT_EQ(out.meta, bare.meta);
  // Same answer as decode_record, and anything but a buffer record is refused.
  ASSERT_TRUE(wire::decode_buffer(bytes_of(wf), out).ok());
  auto r = decode_buffer_record(bytes_of(wf));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->meta, out.meta);
  std::vector<std::uint64_t> ev;
  ASSERT_TRUE(wire::encode_event(ev, Event::eos()).ok());
  EXPECT_FALSE(wire::decode_buffer(bytes_of(ev), out).ok());
  EXPECT_EQ(wire::peek_record_type({}), 0u);
}

// Encoding a Buffer's metadata in place gives the same record as copying it into the desc.
TEST(IpcWire, EncodeBufferWithSeparateMetadataIsTheSameRecord) {
  wire::BufferDesc d;
  d.token = 1;
  d.segment_id = 2;
  d.offset = 3;
  d.length = 4;
  Metadata m;
  m.pts = 5;
  m.set("k", std::string("v"));
  std::vector<std::uint64_t> a;
  wire::encode_buffer(a, d, m);
  d.meta = m;
  EXPECT_EQ(a, encoded(d));
}

// Duplicate keys are refused whether the decoder scans the few entries or hashes many.
TEST(IpcWire, DuplicateMetadataKeysAreRejectedAtAnyCount) {
  for (std::size_t count : {2u, 7u, 8u, 40u}) {
    wire::BufferDesc d;
    d.length = 1;
    for (std::size_t i = 0; i + 1 < count; ++i)
      d.meta.entries.push_back(MetaEntry{"key" + std::to_string(i), std::int64_t(i)});
    d.meta.entries.push_back(MetaEntry{"last", std::int64_t{0}});
    const auto ok = encoded(d);
    wire::BufferDesc out;
    EXPECT_TRUE(wire::decode_buffer(bytes_of(ok), out).ok()) << count;
    EXPECT_EQ(out.meta.entries.size(), count);
    d.meta.entries.back().key = "key0";  // the first key again
    const auto dup = encoded(d);
    auto r = wire::decode_buffer(bytes_of(dup), out);
    ASSERT_FALSE(r.ok()) << count;
    EXPECT_NE(r.error().message.find("duplicate"), std::string::npos);
    EXPECT_FALSE(wire::decode_record(bytes_of(dup)).ok()) << count;
  }
}

// The publisher's fixed-size encoder (metadata without entries) writes the general encoder's
// words, whatever fields are set.
TEST(IpcWire, PlainBufferRecordIsTheGeneralEncoding) {
  const wire::BufferDesc d = desc_with_every_field();  // its own metadata is not used: `m` is
  for (int fields = 0; fields < 32; ++fields) {
    Metadata m;
    if (fields & 1) m.pts = 1;
    if (fields & 2) m.dts = 0;
    if (fields & 4) m.duration = 3;
    if (fields & 8) m.offset = 4;
    if (fields & 16) m.offset_end = 5;
    m.sequence = static_cast<std::uint64_t>(fields);
    m.flags = kFlagDiscont;
    std::vector<std::uint64_t> general;
    wire::encode_buffer(general, d, m);
    std::array<std::uint64_t, wire::kPlainBufferWords> plain{};
    wire::encode_plain_buffer(plain.data(), d, m);
    ASSERT_EQ(general.size(), plain.size());
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), general.begin())) << fields;
  }
}

// The subscriber's decoder checks the fixed part in one test: every corruption of a record
// without entries (any byte, several values) gives exactly decode_record()'s answer — the same
// descriptor, or the same error — and anything of another record type is refused.
TEST(IpcWire, DecodeBufferAgreesWithDecodeRecordOnEveryCorruption) {
  wire::BufferDesc d;
  d.token = 9;
  d.segment_id = 1;
  d.length = 10;
  d.meta.pts = 7;
  const auto w = encoded(d);
  ASSERT_EQ(w.size(), wire::kPlainBufferWords);
  std::size_t refused = 0;
  for (std::size_t byte = 0; byte < w.size() * 8; ++byte) {
    for (std::uint8_t value : {std::uint8_t{0}, std::uint8_t{1}, std::uint8_t{2}, std::uint8_t{3},
                               std::uint8_t{8}, std::uint8_t{0x70}, std::uint8_t{0xff}}) {
      const auto bad = with_byte(w, byte, value);
      const auto r = wire::decode_record(bytes_of(bad));
      wire::BufferDesc out;
      const auto f = wire::decode_buffer(bytes_of(bad), out);
      const bool buffer_type = wire::peek_record_type(bytes_of(bad)) ==
                               static_cast<std::uint16_t>(wire::RecordType::buffer);
      if (!r.ok()) {
        ASSERT_FALSE(f.ok()) << byte << "=" << int{value};
        // Another record type's own errors are decode_record's; decode_buffer says what it is
        // not (unless the header itself is bad: then both give the header's error).
        if (buffer_type || f.error().message != "not a buffer record") {
          EXPECT_EQ(f.error().message, r.error().message) << byte << "=" << int{value};
        }
        ++refused;
      } else if (const auto* rd = std::get_if<wire::BufferDesc>(&*r)) {
        ASSERT_TRUE(f.ok()) << byte << "=" << int{value};
        EXPECT_EQ(out.token, rd->token);
        EXPECT_EQ(out.length, rd->length);
        EXPECT_EQ(out.meta, rd->meta);
      } else {
        EXPECT_FALSE(f.ok()) << byte << "=" << int{value};
      }
    }
  }
  EXPECT_GT(refused, 20u);  // the corruptions did reach the checks
  // And every cut, as decode_record.
  for (std::size_t n = 0; n < w.size() * 8; ++n) {
    wire::BufferDesc out;
    const auto f = wire::decode_buffer(bytes_of(w).first(n), out);
    const auto r = wire::decode_record(bytes_of(w).first(n));
    ASSERT_FALSE(f.ok()) << n;
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(f.error().message, r.error().message) << n;
  }
}
