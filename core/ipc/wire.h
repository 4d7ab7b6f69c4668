// SPDX-License-Identifier: MIT OR Apache-2.0
// The IPC wire format: socket messages, the shared-memory ring and ack areas, ring records,
// and their encoders/decoders. Everything a peer sends is decoded here and validated before use.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "parallax/ipc.h"
#include "parallax/metadata.h"
#include "parallax/result.h"

namespace parallax::link::wire {

inline constexpr std::uint32_t kMagic = 0x49584c50;  // "PLXI" little-endian
// 2: wake socket; stats request, send stamps, ack report; segment messages carry the NUMA
// node; segment_retired.
// 3: a subscriber sleeps on a futex (AckHeader::sub_sleeping = kSleepFutex) or the wake socket
// (kSleepSocket) and the publisher wakes it accordingly (a futex wake-up is half as slow as a
// socket byte here); RingHeader::ctl_sent counts the publisher's control messages so a
// subscriber woken by the futex knows when to read its socket. Layout unchanged.
inline constexpr std::uint16_t kVersion = 3;
/// AckHeader::sub_sleeping: how the subscriber sleeps (0: it does not).
inline constexpr std::uint32_t kSleepFutex = 1;
inline constexpr std::uint32_t kSleepSocket = 2;

// ---------------------------------------------------------------------------------------------
// Socket messages (SOCK_SEQPACKET: one message per datagram, boundaries kept by the kernel).

enum class MsgType : std::uint16_t {
  hello = 1,    ///< subscriber -> publisher, no fds
  welcome = 2,  ///< publisher -> subscriber, fds: ring (read-only), ack (read-write), wake socket
                ///< (AF_UNIX SOCK_SEQPACKET, one end of a pair the publisher made)
  segment = 3,  ///< publisher -> subscriber, fd: one pool segment (read-only)
  refuse = 4,   ///< publisher -> subscriber, no fds: why the connection is refused, then close
  // Stats (docs/observability.md): a peer sends stats_request instead of hello; the publisher
  // answers stats_publisher, stats_segment x N, stats_subscriber x M, stats_end, then closes.
  stats_request = 5,     ///< peer -> publisher, no fds
  stats_publisher = 6,   ///< publisher -> peer
  stats_segment = 7,     ///< publisher -> peer, one per pool segment
  stats_subscriber = 8,  ///< publisher -> peer, one per connected subscriber
  stats_end = 9,         ///< publisher -> peer: counts of what came before
  segment_retired = 10,  ///< publisher -> subscriber, no fds: a segment no descriptor will name
                         ///< again (and none of this subscriber's leases does): unmap it once
                         ///< the last buffer over it is gone
};

struct MsgHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t type;
  std::uint32_t size;  ///< whole message, header included
  std::uint32_t reserved;
};

inline constexpr std::uint32_t kPolicyDefault = 0xff;
struct HelloMsg {
  MsgHeader h;
  std::uint32_t policy;  ///< Policy or kPolicyDefault
  std::uint32_t flags;   ///< reserved, 0
  std::uint64_t reserved;
};

inline constexpr int kWelcomeFds = 3;
struct WelcomeMsg {
  MsgHeader h;
  std::uint32_t ring_bytes;       ///< data capacity of the ring (power of two)
  std::uint32_t ring_map_size;    ///< header + data
  std::uint32_t ack_map_size;     ///< header + return slots
  std::uint32_t return_capacity;  ///< return slots (power of two)
  std::uint32_t quota;
  std::uint32_t policy;
  std::uint64_t publisher_pid;
  std::uint64_t connection_id;
};

/// A segment's NUMA node is unknown (not bound, pages on several nodes, or none touched yet).
inline constexpr std::int32_t kNoNode = -1;
/// Largest NUMA node number a segment message may carry.
inline constexpr std::int32_t kMaxNode = 4095;
struct SegmentMsg {
  MsgHeader h;
  std::uint64_t segment_id;
  std::uint64_t size;
  std::int32_t numa_node;  ///< hwloc logical node of the pages, or kNoNode (since version 2)
  std::uint32_t reserved;  ///< 0
};

struct SegmentRetiredMsg {
  MsgHeader h;
  std::uint64_t segment_id;
  std::uint64_t reserved;  ///< 0
};

inline constexpr std::size_t kMaxRefuseText = 256;
struct RefuseMsg {
  MsgHeader h;
  std::uint32_t code;  ///< parallax::Errc
  std::uint32_t text_len;
  // followed by text_len bytes of text
};

struct StatsRequestMsg {
  MsgHeader h;
  std::uint32_t flags;  ///< reserved, 0
  std::uint32_t reserved0;
  std::uint64_t reserved1;
};

inline constexpr std::size_t kMaxStatsFormat = 256;  ///< caps text carried (longer: truncated)
struct StatsPublisherMsg {
  MsgHeader h;
  std::uint64_t publisher_pid;
  std::uint64_t uptime_ns;  ///< since bind()
  std::uint64_t buffers_sent, zero_copy, copies, bytes_copied, events_sent;
  std::uint64_t connections, disconnects, refused, protocol_errors, stats_requests;
  std::uint64_t slot_size;
  std::uint32_t slots, in_use, high_water, segments;
  std::uint32_t subscribers;
  std::uint32_t format_len;  ///< bytes of caps text that follow (<= kMaxStatsFormat)
  std::uint32_t format_truncated;
  std::uint32_t reserved;
  // followed by format_len bytes
};

struct StatsSegmentMsg {
  MsgHeader h;
  std::uint64_t segment_id;
  std::uint64_t size;
  std::uint32_t index;
  std::uint32_t slots;
};

struct StatsSubscriberMsg {
  MsgHeader h;
  std::uint64_t id, pid;
  std::uint32_t uid, gid;
  std::uint32_t policy, leases, max_leases, ring_capacity;
  std::uint64_t ring_used;  ///< bytes written and not yet taken
  std::uint64_t buffers_sent, bytes_sent, events_sent, dropped_oldest, dropped_newest,
      blocked_sends;
  std::uint64_t connected_ns;  ///< how long it has been connected
  // What the subscriber reports in its ack area (its own figures, untrusted, display only).
  std::uint64_t received, latency_count, latency_p50_ns, latency_p99_ns, latency_max_ns;
};

struct StatsEndMsg {
  MsgHeader h;
  std::uint32_t segments;
  std::uint32_t subscribers;
};

/// Largest socket message either side accepts.
inline constexpr std::size_t kMaxMsgSize = 512;

// ---------------------------------------------------------------------------------------------
// Shared memory. The ring area is written by the publisher and mapped read-only by the
// subscriber. The ack area is written by the subscriber (and CAS-ed by the publisher for
// drop-oldest); the publisher validates everything it reads there like a message.

inline constexpr std::uint32_t kRingMagic = 0x474e5252;  // "RRNG"
inline constexpr std::uint32_t kAckMagic = 0x4b434141;   // "AACK"

struct RingHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t header_size;  ///< == sizeof(RingHeader): data starts here
  std::uint32_t capacity;     ///< data bytes, power of two
  std::uint32_t reserved0;
  std::uint8_t pad0[48];
  /// Byte position (monotonic) one past the last complete record. Publisher stores (release).
  std::atomic<std::uint64_t> write_pos;
  std::uint8_t pad1[56];
  /// Count (mod 2^32) of the messages the publisher sent on the control socket since the
  /// handshake (segments, retirements; the publisher stores it after each send, release; a
  /// dropped connection bumps it too). A subscriber that finds it changed reads its socket:
  /// its sleep is a futex wait that a socket message alone would not end (version 3).
  std::atomic<std::uint32_t> ctl_sent;
  std::uint8_t pad2[60];
  std::uint8_t pad3[64];
};

inline constexpr std::size_t kLatencyBuckets = 64;
struct AckReport {
  std::atomic<std::uint64_t> received;
  std::atomic<std::uint64_t> latency_count;
  std::atomic<std::uint64_t> latency_max_ns;
  std::uint8_t pad[40];
  std::atomic<std::uint64_t> latency_log2[kLatencyBuckets];
};

struct AckHeader {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t header_size;
  std::uint32_t return_capacity;
  std::uint32_t reserved0;
  /// 1 while the publisher sleeps waiting for this subscriber. The subscriber wakes it (wake
  /// socket, clearing the flag with an exchange so there is one write per sleep) once
  /// ret_write >= wake_ret or read_pos >= wake_read: the publisher asks for a batch, not for
  /// every single return. The publisher trusts none of this: it sleeps at most 100 ms.
  std::atomic<std::uint32_t> pub_waiting;
  std::uint32_t reserved1;
  std::atomic<std::uint64_t> wake_ret;
  std::atomic<std::uint64_t> wake_read;
  std::uint8_t pad0[24];
  /// Byte position one past the last record the subscriber took. Advanced by CAS: by the
  /// subscriber to take a record, by the publisher to retract unread records (drop-oldest).
  /// Whoever wins the CAS owns the record's lease.
  std::atomic<std::uint64_t> read_pos;
  std::uint8_t pad1[56];
  /// Non-zero while the subscriber sleeps, saying how: kSleepFutex, a futex wait on this word
  /// (shared futex: keyed by the memfd's page, so both processes' mappings name it), or
  /// kSleepSocket, a poll of the wake socket. The publisher that finds it non-zero after a ring
  /// write exchanges it to 0 and wakes the sleeper that way (one wake-up per sleep); a control
  /// message (or dropping the connection) wakes a futex sleeper too. Version 2 had only the
  /// socket sleep (value 1).
  std::atomic<std::uint32_t> sub_sleeping;
  std::uint8_t pad2[60];
  /// Count (monotonic) of lease tokens written to the return slots. Subscriber stores (release).
  std::atomic<std::uint64_t> ret_write;
  std::uint8_t pad3[56];
  /// The subscriber's own report (stats replies, parallax-inspect): buffers taken and the
  /// log2 histogram of transit latency (receive minus BufferRecord::send_ns), bucket k holding
  /// [2^(k-1), 2^k) ns like observe::Histogram (the last one everything above). Written by the
  /// subscriber only (plain stores of its own counts), read by the publisher for display only.
  AckReport report;
  // followed by return_capacity x std::atomic<std::uint64_t> lease tokens
};

// ---------------------------------------------------------------------------------------------
// Ring records: 8-byte aligned, never wrapping (a pad record fills the end of the data area).

enum class RecordType : std::uint16_t { pad = 1, buffer = 2, event = 3, goodbye = 4 };

struct RecordHeader {
  std::uint32_t size;  ///< whole record, header included, multiple of 8
  std::uint16_t type;
  std::uint16_t flags;  ///< 0
};

enum MetaPresent : std::uint32_t {
  kHasPts = 1,
  kHasDts = 2,
  kHasDuration = 4,
  kHasOffset = 8,
  kHasOffsetEnd = 16,
};

struct BufferRecord {
  RecordHeader h;
  std::uint64_t token;  ///< lease token to return
  std::uint64_t segment_id;
  std::uint64_t offset;  ///< of the first byte inside the segment
  std::uint64_t length;
  std::uint64_t pts, dts, duration, offset_value, offset_end;
  std::uint64_t sequence;
  std::uint32_t flags;
  std::uint32_t present;  ///< MetaPresent bits
  std::uint32_t entry_count;
  std::uint32_t entries_bytes;
  /// CLOCK_MONOTONIC ns when the publisher wrote the record into this subscriber's ring (0 =
  /// not stamped). The subscriber's transit latency is its receive time minus this.
  std::uint64_t send_ns;
  // followed by entries_bytes of encoded metadata entries
};
/// Word index of BufferRecord::send_ns (the publisher patches it per subscriber).
inline constexpr std::size_t kSendNsWord = 13;

/// EventRecord::kind: the wire's numbers for the kinds of parallax::EventType (frozen by wire
/// version 2; encode_event/decode_record map between the two).
enum class EventKind : std::uint32_t {
  caps = 1,  ///< payload: the caps text
  stream_start = 2,
  segment = 3,
  eos = 4,
  flush_start = 5,
  flush_stop = 6,
  custom = 7,
};

struct EventRecord {
  RecordHeader h;
  std::uint32_t kind;  ///< EventKind
  std::uint32_t payload_bytes;
  // followed by the payload
};

struct SegmentPayload {
  std::uint32_t format;
  std::uint32_t flags;
  double rate;
  double applied_rate;
  std::uint64_t base, offset, start, stop, time, position, duration;
};

inline constexpr std::size_t kMaxEntries = 256;
inline constexpr std::size_t kMaxKeyBytes = 256;
inline constexpr std::size_t kMaxRecordBytes = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Decoded forms.

struct Pad {};
struct Goodbye {};
struct BufferDesc {
  std::uint64_t token{0};
  std::uint64_t segment_id{0};
  std::uint64_t offset{0};
  std::uint64_t length{0};
  std::uint64_t send_ns{0};
  Metadata meta;
};
using Record = std::variant<Pad, BufferDesc, Event, Goodbye>;

struct Hello {
  std::uint32_t policy{kPolicyDefault};
};
struct Welcome {
  std::uint32_t ring_bytes{0}, ring_map_size{0}, ack_map_size{0}, return_capacity{0};
  std::uint32_t quota{0};
  Policy policy{Policy::block};
  std::uint64_t publisher_pid{0}, connection_id{0};
};
struct SegmentAnnounce {
  std::uint64_t segment_id{0};
  std::uint64_t size{0};
  std::int32_t numa_node{kNoNode};
};
struct Refuse {
  Errc code{Errc::permission_denied};
  std::string text;
};
struct SegmentRetired {
  std::uint64_t segment_id{0};
};
using PublisherMsg = std::variant<Welcome, SegmentAnnounce, Refuse, SegmentRetired>;

struct StatsRequest {};
/// What a connecting peer may say first.
using PeerMsg = std::variant<Hello, StatsRequest>;

struct StatsSegment {
  std::uint64_t segment_id{0}, size{0};
  std::uint32_t index{0}, slots{0};
};
struct StatsEnd {
  std::uint32_t segments{0}, subscribers{0};
};
/// The parts of a stats reply, in order: PublisherStats (the publisher's own fields, no
/// subscribers), StatsSegment x segments, SubscriberInfo x subscribers, StatsEnd. A Refuse
/// instead means the request was refused (credentials, limits).
using StatsMsg = std::variant<PublisherStats, StatsSegment, SubscriberInfo, StatsEnd, Refuse>;

/// CLOCK_MONOTONIC in ns (system-wide, so comparable across processes).
[[nodiscard]] std::uint64_t mono_ns() noexcept;
/// Bucket of a latency value in AckReport::latency_log2.
[[nodiscard]] std::size_t latency_bucket(std::uint64_t ns) noexcept;
/// Upper bound (inclusive) of quantile q over log2 buckets (0 when empty), capped by max.
[[nodiscard]] std::uint64_t latency_quantile(std::span<const std::uint64_t> buckets, double q,
                                             std::uint64_t max) noexcept;

// Encoders write whole records as 64-bit words (so the ring copy is word-atomic).
void encode_buffer(std::vector<std::uint64_t>& out, const BufferDesc& d);
/// The same record with the metadata taken from `meta` (d.meta is ignored): the publisher's
/// send path encodes a Buffer's metadata where it is instead of copying it into a BufferDesc.
void encode_buffer(std::vector<std::uint64_t>& out, const BufferDesc& d, const Metadata& meta);
/// Words of a buffer record whose metadata has no entries: the common record, of a fixed size.
inline constexpr std::size_t kPlainBufferWords = 14;
/// The record encode_buffer() writes for metadata without entries (`meta.entries` must be
/// empty), into `out`'s kPlainBufferWords words: the publisher's send path, with no vector to
/// size and clear first.
void encode_plain_buffer(std::uint64_t* out, const BufferDesc& d, const Metadata& meta) noexcept;
/// invalid_argument if the event is too large.
[[nodiscard]] Result<void> encode_event(std::vector<std::uint64_t>& out, const Event& e);
void encode_simple(std::vector<std::uint64_t>& out, RecordType t, std::size_t total_bytes = 8);

/// Decodes one ring record (the exact bytes of one record, header included).
[[nodiscard]] Result<Record> decode_record(std::span<const std::byte> bytes);
/// The type field of a record's header (0 when `bytes` is shorter than a header); nothing is
/// validated: decode_record() / decode_buffer() do that.
[[nodiscard]] std::uint16_t peek_record_type(std::span<const std::byte> bytes) noexcept;
/// Decodes a buffer record into `out` (every field overwritten; its metadata's entry storage
/// is reused), with exactly decode_record()'s checks: the subscriber's receive path, without
/// building a Record variant per buffer.
[[nodiscard]] Result<void> decode_buffer(std::span<const std::byte> bytes, BufferDesc& out);

std::vector<std::byte> encode_hello(const Hello& h);
std::vector<std::byte> encode_welcome(const Welcome& w);
std::vector<std::byte> encode_segment(const SegmentAnnounce& s);
std::vector<std::byte> encode_refuse(const Refuse& r);
std::vector<std::byte> encode_segment_retired(const SegmentRetired& r);
/// Publisher side: a subscriber's message (only hello is valid).
[[nodiscard]] Result<Hello> decode_hello(std::span<const std::byte> bytes);
/// Publisher side: a connecting peer's first message (hello or stats_request).
[[nodiscard]] Result<PeerMsg> decode_peer_msg(std::span<const std::byte> bytes);

std::vector<std::byte> encode_stats_request();
/// `p`'s own fields, `format` cut to kMaxStatsFormat bytes.
std::vector<std::byte> encode_stats_publisher(const PublisherStats& p);
std::vector<std::byte> encode_stats_segment(const StatsSegment& s);
std::vector<std::byte> encode_stats_subscriber(const SubscriberInfo& s);
std::vector<std::byte> encode_stats_end(const StatsEnd& e);
/// Stats client side: one message of a stats reply.
[[nodiscard]] Result<StatsMsg> decode_stats_msg(std::span<const std::byte> bytes);
/// Subscriber side: a publisher's message.
[[nodiscard]] Result<PublisherMsg> decode_publisher_msg(std::span<const std::byte> bytes);

/// Validates a ring header as mapped by a subscriber against what the welcome announced.
[[nodiscard]] Result<void> check_ring_header(const RingHeader& h, std::uint32_t ring_bytes);
[[nodiscard]] Result<void> check_ack_header(const AckHeader& h, std::uint32_t return_capacity);

// ---------------------------------------------------------------------------------------------
// Layout freeze: every peer built before relies on these sizes and offsets. Changing any of
// them is a protocol change: bump kVersion (and say so in docs/protocol.md) instead.
static_assert(kVersion == 3,
              "wire version 3: futex wake-ups on sub_sleeping, ctl_sent (layout of 2)");
static_assert(kWelcomeFds == 3);
static_assert(std::is_standard_layout_v<RingHeader> && std::is_standard_layout_v<AckHeader>);
static_assert(sizeof(RingHeader) == 256);
static_assert(offsetof(RingHeader, magic) == 0);
static_assert(offsetof(RingHeader, version) == 4);
static_assert(offsetof(RingHeader, header_size) == 6);
static_assert(offsetof(RingHeader, capacity) == 8);
static_assert(offsetof(RingHeader, write_pos) == 64);
static_assert(offsetof(RingHeader, ctl_sent) == 128);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 &&
              std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(AckHeader) == 832);
static_assert(offsetof(AckHeader, return_capacity) == 8);
static_assert(offsetof(AckHeader, pub_waiting) == 16);
static_assert(offsetof(AckHeader, wake_ret) == 24);
static_assert(offsetof(AckHeader, wake_read) == 32);
static_assert(offsetof(AckHeader, read_pos) == 64);
static_assert(offsetof(AckHeader, sub_sleeping) == 128);
static_assert(offsetof(AckHeader, ret_write) == 192);
static_assert(offsetof(AckHeader, report) == 256);
static_assert(offsetof(AckHeader, report) + offsetof(AckReport, latency_log2) == 320);
static_assert(sizeof(MsgHeader) == 16);
static_assert(offsetof(MsgHeader, type) == 6);
static_assert(offsetof(MsgHeader, size) == 8);
static_assert(sizeof(HelloMsg) == 32);
static_assert(sizeof(WelcomeMsg) == 56);
static_assert(offsetof(WelcomeMsg, publisher_pid) == 40);
static_assert(sizeof(SegmentMsg) == 40);
static_assert(offsetof(SegmentMsg, numa_node) == 32);
static_assert(sizeof(SegmentRetiredMsg) == 32);
static_assert(offsetof(SegmentRetiredMsg, segment_id) == 16);
static_assert(static_cast<int>(MsgType::segment_retired) == 10);
static_assert(sizeof(RecordHeader) == 8);
static_assert(sizeof(BufferRecord) == 112);
static_assert(sizeof(BufferRecord) == kPlainBufferWords * 8);
static_assert(offsetof(BufferRecord, token) == 8);  // patched per subscriber
static_assert(offsetof(BufferRecord, segment_id) == 16);
static_assert(offsetof(BufferRecord, sequence) == 80);
static_assert(offsetof(BufferRecord, entries_bytes) == 100);
static_assert(offsetof(BufferRecord, send_ns) == 104);  // patched per subscriber
static_assert(offsetof(BufferRecord, send_ns) == kSendNsWord * 8);
static_assert(sizeof(EventRecord) == 16);
static_assert(sizeof(SegmentPayload) == 80);
static_assert(sizeof(StatsRequestMsg) == 32);
static_assert(sizeof(StatsPublisherMsg) == 152);
static_assert(sizeof(StatsSegmentMsg) == 40);
static_assert(sizeof(StatsSubscriberMsg) == 160);
static_assert(sizeof(StatsEndMsg) == 24);

}  // namespace parallax::link::wire
