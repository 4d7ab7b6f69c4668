// SPDX-License-Identifier: MIT OR Apache-2.0
// Encoders and validating decoders for the IPC wire format (see wire.h and docs/protocol.md).
#include "ipc/wire.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <optional>
#include <type_traits>
#include <unordered_set>

// g++ 12 with -fsanitize=address reports a false -Wmaybe-uninitialized inside std::variant's
// move constructor for PublisherMsg (a std::string alternative); the code is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace parallax::link::wire {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<RingHeader> && sizeof(RingHeader) == 256);
static_assert(std::is_standard_layout_v<AckHeader> && sizeof(AckHeader) == 832);
static_assert(sizeof(AckReport) == 576 && offsetof(AckHeader, report) == 256);
static_assert(sizeof(MsgHeader) == 16 && sizeof(HelloMsg) == 32 && sizeof(WelcomeMsg) == 56);
static_assert(sizeof(SegmentMsg) == 40 && sizeof(RefuseMsg) == 24);
static_assert(sizeof(SegmentRetiredMsg) == 32);
static_assert(sizeof(StatsRequestMsg) == 32 && sizeof(StatsPublisherMsg) == 152 &&
              sizeof(StatsSegmentMsg) == 40 && sizeof(StatsSubscriberMsg) == 160 &&
              sizeof(StatsEndMsg) == 24);
static_assert(sizeof(StatsPublisherMsg) + kMaxStatsFormat <= kMaxMsgSize);
static_assert(offsetof(BufferRecord, send_ns) == kSendNsWord * 8);
static_assert(sizeof(RecordHeader) == 8 && sizeof(BufferRecord) == 112 &&
              sizeof(EventRecord) == 16);
static_assert(sizeof(SegmentPayload) == 80);

namespace {

Error bad(std::string what) {
  return err(Errc::data_loss, std::move(what));
}

constexpr std::size_t round8(std::size_t n) {
  return (n + 7) & ~std::size_t{7};
}

// Appends raw bytes to a word vector being filled at byte position `pos`.
struct WordWriter {
  std::vector<std::uint64_t>& out;
  std::size_t pos{0};  // bytes
  void reserve_bytes(std::size_t total) { out.assign(round8(total) / 8, 0); }
  void put(const void* p, std::size_t n) {
    if (n == 0) return;  // empty strings/vectors may have a null data()
    std::memcpy(reinterpret_cast<std::byte*>(out.data()) + pos, p, n);
    pos += n;
  }
  template <typename T>
  void put_val(const T& v) {
    put(&v, sizeof v);
  }
};

// Bounds-checked reader over untrusted bytes.
struct Reader {
  std::span<const std::byte> b;
  std::size_t pos{0};
  bool take(void* dst, std::size_t n) {
    if (n > b.size() - pos) return false;
    std::memcpy(dst, b.data() + pos, n);
    pos += n;
    return true;
  }
  template <typename T>
  bool get(T& v) {
    return take(&v, sizeof v);
  }
  bool get_string(std::string& s, std::size_t n) {
    if (n > b.size() - pos) return false;
    s.assign(reinterpret_cast<const char*>(b.data() + pos), n);
    pos += n;
    return true;
  }
  bool get_bytes(std::vector<std::byte>& v, std::size_t n) {
    if (n > b.size() - pos) return false;
    v.assign(b.data() + pos, b.data() + pos + n);
    pos += n;
    return true;
  }
};

// Metadata entry encoding: u16 key_len, u8 type (variant index + 1), u8 0, u32 value_len, key,
// value. Scalars are 8 bytes (bool: 1 byte, 0 or 1).
std::size_t entries_size(const Metadata& m) {
  std::size_t n = 0;
  for (const auto& e : m.entries) {
    n += 8 + e.key.size();
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<std::byte>>)
            n += v.size();
          else if constexpr (std::is_same_v<T, bool>)
            n += 1;
          else
            n += 8;
        },
        e.value);
  }
  return n;
}

void put_entries(WordWriter& w, const Metadata& m) {
  for (const auto& e : m.entries) {
    const auto klen = static_cast<std::uint16_t>(e.key.size());
    const auto type = static_cast<std::uint8_t>(e.value.index() + 1);
    const std::uint8_t zero = 0;
    std::uint32_t vlen = 0;
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<std::byte>>)
            vlen = static_cast<std::uint32_t>(v.size());
          else if constexpr (std::is_same_v<T, bool>)
            vlen = 1;
          else
            vlen = 8;
        },
        e.value);
    w.put_val(klen);
    w.put_val(type);
    w.put_val(zero);
    w.put_val(vlen);
    w.put(e.key.data(), e.key.size());
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<std::byte>>)
            w.put(v.data(), v.size());
          else if constexpr (std::is_same_v<T, bool>) {
            const std::uint8_t b = v ? 1 : 0;
            w.put_val(b);
          } else
            w.put_val(v);
        },
        e.value);
  }
}

Result<void> get_entries(Reader& r, std::uint32_t count, Metadata& m) {
  if (count > kMaxEntries) return bad("too many metadata entries");
  if (count == 0) return {};  // most buffers: no hash set to build
  m.entries.reserve(count);
  // Duplicate keys: a scan of the few entries so far for small counts (no allocation), a hash
  // set in O(1) per entry for more (a hostile peer's 256 entries would cost a quadratic scan).
  constexpr std::uint32_t kScanBelow = 8;
  std::unordered_set<std::string> keys;
  if (count >= kScanBelow) keys.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint16_t klen = 0;
    std::uint8_t type = 0, zero = 0;
    std::uint32_t vlen = 0;
    if (!r.get(klen) || !r.get(type) || !r.get(zero) || !r.get(vlen))
      return bad("truncated metadata entry");
    if (zero != 0 || klen == 0 || klen > kMaxKeyBytes) return bad("bad metadata entry header");
    std::string key;
    if (!r.get_string(key, klen)) return bad("truncated metadata key");
    const bool duplicate = count >= kScanBelow
                               ? !keys.insert(key).second
                               : std::any_of(m.entries.begin(), m.entries.end(),
                                             [&](const MetaEntry& e) { return e.key == key; });
    if (duplicate) return bad("duplicate metadata key");
    MetaValue value;
    switch (type) {
      case 1: {
        std::int64_t v;
        if (vlen != 8 || !r.get(v)) return bad("bad int64 entry");
        value = v;
        break;
      }
      case 2: {
        std::uint64_t v;
        if (vlen != 8 || !r.get(v)) return bad("bad uint64 entry");
        value = v;
        break;
      }
      case 3: {
        double v;
        if (vlen != 8 || !r.get(v)) return bad("bad double entry");
        value = v;
        break;
      }
      case 4: {
        std::uint8_t v;
        if (vlen != 1 || !r.get(v) || v > 1) return bad("bad bool entry");
        value = v == 1;
        break;
      }
      case 5: {
        std::string s;
        if (!r.get_string(s, vlen)) return bad("truncated string entry");
        value = std::move(s);
        break;
      }
      case 6: {
        std::vector<std::byte> v;
        if (!r.get_bytes(v, vlen)) return bad("truncated bytes entry");
        value = std::move(v);
        break;
      }
      default:
        return bad("unknown metadata entry type " + std::to_string(type));
    }
    m.entries.push_back(MetaEntry{std::move(key), std::move(value)});
  }
  return {};
}

std::size_t event_payload_size(const Event& e, const std::string& caps_text) {
  switch (e.type) {
    case EventType::caps:
      return caps_text.size();
    case EventType::stream_start:
      return 8 + e.stream_id.size();
    case EventType::segment:
      return sizeof(SegmentPayload);
    case EventType::flush_stop:
      return 8;
    case EventType::custom:
      return 8 + e.name.size() + e.data.size();
    default:
      return 0;
  }
}

std::optional<EventKind> event_kind(EventType t) {
  switch (t) {
    case EventType::caps:
      return EventKind::caps;
    case EventType::stream_start:
      return EventKind::stream_start;
    case EventType::segment:
      return EventKind::segment;
    case EventType::eos:
      return EventKind::eos;
    case EventType::flush_start:
      return EventKind::flush_start;
    case EventType::flush_stop:
      return EventKind::flush_stop;
    case EventType::custom:
      return EventKind::custom;
  }
  return std::nullopt;
}

MsgHeader header(MsgType t, std::size_t size) {
  return MsgHeader{kMagic, kVersion, static_cast<std::uint16_t>(t),
                   static_cast<std::uint32_t>(size), 0};
}

template <typename T>
std::vector<std::byte> as_bytes(const T& v) {
  std::vector<std::byte> out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}

Result<MsgHeader> check_header(std::span<const std::byte> b) {
  MsgHeader h{};
  if (b.size() < sizeof h) return bad("message shorter than its header");
  std::memcpy(&h, b.data(), sizeof h);
  if (h.magic != kMagic) return bad("bad message magic");
  if (h.version != kVersion)
    return bad("unsupported protocol version " + std::to_string(h.version) + " (we speak " +
               std::to_string(kVersion) + ")");
  if (h.size != b.size()) return bad("message size field disagrees with the datagram");
  if (h.reserved != 0) return bad("reserved header field is not zero");
  return h;
}

}  // namespace

void encode_simple(std::vector<std::uint64_t>& out, RecordType t, std::size_t total_bytes) {
  WordWriter w{out};
  w.reserve_bytes(total_bytes);
  RecordHeader h{static_cast<std::uint32_t>(round8(total_bytes)), static_cast<std::uint16_t>(t), 0};
  w.put_val(h);
}

void encode_buffer(std::vector<std::uint64_t>& out, const BufferDesc& d) {
  encode_buffer(out, d, d.meta);
}

namespace {
// Every field of a buffer record's fixed part (`entries_bytes` of encoded entries follow it).
BufferRecord buffer_record(const BufferDesc& d, const Metadata& m, std::size_t entries_bytes) {
  BufferRecord r{};
  r.h = RecordHeader{static_cast<std::uint32_t>(round8(sizeof(BufferRecord) + entries_bytes)),
                     static_cast<std::uint16_t>(RecordType::buffer), 0};
  r.token = d.token;
  r.segment_id = d.segment_id;
  r.offset = d.offset;
  r.length = d.length;
  if (m.pts) r.pts = *m.pts, r.present |= kHasPts;
  if (m.dts) r.dts = *m.dts, r.present |= kHasDts;
  if (m.duration) r.duration = *m.duration, r.present |= kHasDuration;
  if (m.offset) r.offset_value = *m.offset, r.present |= kHasOffset;
  if (m.offset_end) r.offset_end = *m.offset_end, r.present |= kHasOffsetEnd;
  r.sequence = m.sequence;
  r.flags = m.flags;
  r.entry_count = static_cast<std::uint32_t>(m.entries.size());
  r.entries_bytes = static_cast<std::uint32_t>(entries_bytes);
  r.send_ns = d.send_ns;
  return r;
}
}  // namespace

void encode_buffer(std::vector<std::uint64_t>& out, const BufferDesc& d, const Metadata& m) {
  const std::size_t eb = entries_size(m);
  WordWriter w{out};
  w.reserve_bytes(sizeof(BufferRecord) + eb);
  w.put_val(buffer_record(d, m, eb));
  put_entries(w, m);
}

void encode_plain_buffer(std::uint64_t* out, const BufferDesc& d, const Metadata& m) noexcept {
  const BufferRecord r = buffer_record(d, m, 0);
  std::memcpy(out, &r, sizeof r);
}

Result<void> encode_event(std::vector<std::uint64_t>& out, const Event& e) {
  const std::optional<EventKind> kind = event_kind(e.type);
  if (!kind) return err(Errc::invalid_argument, "unknown event type");
  const std::string caps_text = e.type == EventType::caps ? e.caps.text() : std::string();
  const std::size_t pb = event_payload_size(e, caps_text);
  if (pb > kMaxEventBytes)
    return err(Errc::invalid_argument,
               "event of " + std::to_string(pb) + " bytes exceeds the transport's limit");
  const std::size_t total = sizeof(EventRecord) + pb;
  WordWriter w{out};
  w.reserve_bytes(total);
  EventRecord r{RecordHeader{static_cast<std::uint32_t>(round8(total)),
                             static_cast<std::uint16_t>(RecordType::event), 0},
                static_cast<std::uint32_t>(*kind), static_cast<std::uint32_t>(pb)};
  w.put_val(r);
  switch (e.type) {
    case EventType::caps:
      w.put(caps_text.data(), caps_text.size());
      break;
    case EventType::stream_start: {
      const auto len = static_cast<std::uint32_t>(e.stream_id.size());
      w.put_val(e.group_id);
      w.put_val(len);
      w.put(e.stream_id.data(), e.stream_id.size());
      break;
    }
    case EventType::segment: {
      const StreamSegment& s = e.segment;
      SegmentPayload p{static_cast<std::uint32_t>(s.format),
                       s.flags,
                       s.rate,
                       s.applied_rate,
                       s.base,
                       s.offset,
                       s.start,
                       s.stop,
                       s.time,
                       s.position,
                       s.duration};
      w.put_val(p);
      break;
    }
    case EventType::flush_stop: {
      const std::uint32_t reset = e.reset_time ? 1 : 0, zero = 0;
      w.put_val(reset);
      w.put_val(zero);
      break;
    }
    case EventType::custom: {
      const auto nlen = static_cast<std::uint32_t>(e.name.size());
      const auto dlen = static_cast<std::uint32_t>(e.data.size());
      w.put_val(nlen);
      w.put_val(dlen);
      w.put(e.name.data(), e.name.size());
      w.put(e.data.data(), e.data.size());
      break;
    }
    default:
      break;
  }
  return {};
}

namespace {
// The size rule of every record: the header's size is the bytes it came in, whole words, within
// the limit.
constexpr bool record_size_ok(const RecordHeader& h, std::size_t bytes) noexcept {
  return h.size == bytes && h.size % 8 == 0 && h.size <= kMaxRecordBytes;
}

Result<RecordHeader> check_record_header(std::span<const std::byte> bytes) {
  RecordHeader h{};
  if (bytes.size() < sizeof h) return bad("record shorter than its header");
  std::memcpy(&h, bytes.data(), sizeof h);
  if (!record_size_ok(h, bytes.size())) return bad("bad record size " + std::to_string(h.size));
  if (h.flags != 0) return bad("record flags are not zero");
  return h;
}
}  // namespace

std::uint16_t peek_record_type(std::span<const std::byte> bytes) noexcept {
  RecordHeader h{};
  if (bytes.size() < sizeof h) return 0;
  std::memcpy(&h, bytes.data(), sizeof h);
  return h.type;
}

Result<void> decode_buffer(std::span<const std::byte> bytes, BufferDesc& d) {
  // The checks of check_record_header() and the type's, in one test on the copied-out record
  // for the common case; its error message (and precedence) when anything is off.
  BufferRecord r;  // every byte is copied in below
  const bool whole = bytes.size() >= sizeof r;
  if (whole) std::memcpy(&r, bytes.data(), sizeof r);
  if (!whole || !record_size_ok(r.h, bytes.size()) || r.h.flags != 0 ||
      static_cast<RecordType>(r.h.type) != RecordType::buffer) [[unlikely]] {
    PLX_ASSIGN(const RecordHeader h, check_record_header(bytes));
    if (static_cast<RecordType>(h.type) != RecordType::buffer) return bad("not a buffer record");
    return bad("truncated buffer record");
  }
  if (r.present & ~std::uint32_t{31}) return bad("unknown metadata presence bits");
  if (round8(sizeof r + std::size_t{r.entries_bytes}) != r.h.size)
    return bad("buffer record size disagrees with its entries");
  d.token = r.token;
  d.segment_id = r.segment_id;
  d.offset = r.offset;
  d.length = r.length;
  d.send_ns = r.send_ns;
  Metadata& m = d.meta;
  m.clear();
  if (r.present & kHasPts) m.pts = r.pts;
  if (r.present & kHasDts) m.dts = r.dts;
  if (r.present & kHasDuration) m.duration = r.duration;
  if (r.present & kHasOffset) m.offset = r.offset_value;
  if (r.present & kHasOffsetEnd) m.offset_end = r.offset_end;
  m.sequence = r.sequence;
  m.flags = r.flags;
  if (r.entry_count == 0 && r.entries_bytes == 0) [[likely]]
    return {};
  Reader rd{bytes.subspan(sizeof r, r.entries_bytes)};
  PLX_TRY(get_entries(rd, r.entry_count, m));
  if (rd.pos != rd.b.size()) return bad("trailing bytes after metadata entries");
  return {};
}

Result<Record> decode_record(std::span<const std::byte> bytes) {
  PLX_ASSIGN(const RecordHeader h, check_record_header(bytes));
  switch (static_cast<RecordType>(h.type)) {
    case RecordType::pad:
      return Record{Pad{}};
    case RecordType::goodbye:
      if (h.size != 8) return bad("goodbye record with a body");
      return Record{Goodbye{}};
    case RecordType::buffer: {
      BufferDesc d;
      PLX_TRY(decode_buffer(bytes, d));
      return Record{std::move(d)};
    }
    case RecordType::event: {
      EventRecord r{};
      if (bytes.size() < sizeof r) return bad("truncated event record");
      std::memcpy(&r, bytes.data(), sizeof r);
      if (round8(sizeof r + std::size_t{r.payload_bytes}) != h.size)
        return bad("event record size disagrees with its payload");
      Reader rd{bytes.subspan(sizeof r, r.payload_bytes)};
      Event e;
      switch (static_cast<EventKind>(r.kind)) {
        case EventKind::caps: {
          e.type = EventType::caps;
          std::string text;
          rd.get_string(text, r.payload_bytes);
          e.caps = Caps::from_text(std::move(text));  // never fails: the text is kept whole
          break;
        }
        case EventKind::stream_start: {
          e.type = EventType::stream_start;
          std::uint32_t len = 0;
          if (!rd.get(e.group_id) || !rd.get(len) || !rd.get_string(e.stream_id, len))
            return bad("truncated stream-start event");
          break;
        }
        case EventKind::segment: {
          e.type = EventType::segment;
          SegmentPayload p{};
          if (!rd.get(p)) return bad("truncated segment event");
          e.segment = StreamSegment{static_cast<SegmentFormat>(p.format),
                                    p.flags,
                                    p.rate,
                                    p.applied_rate,
                                    p.base,
                                    p.offset,
                                    p.start,
                                    p.stop,
                                    p.time,
                                    p.position,
                                    p.duration};
          break;
        }
        case EventKind::eos:
          e.type = EventType::eos;
          break;
        case EventKind::flush_start:
          e.type = EventType::flush_start;
          break;
        case EventKind::flush_stop: {
          e.type = EventType::flush_stop;
          std::uint32_t reset = 0, zero = 0;
          if (!rd.get(reset) || !rd.get(zero) || reset > 1 || zero != 0)
            return bad("bad flush-stop event");
          e.reset_time = reset == 1;
          break;
        }
        case EventKind::custom: {
          e.type = EventType::custom;
          std::uint32_t nlen = 0, dlen = 0;
          if (!rd.get(nlen) || !rd.get(dlen) || !rd.get_string(e.name, nlen) ||
              !rd.get_string(e.data, dlen))
            return bad("truncated custom event");
          break;
        }
        default:
          return bad("unknown event type " + std::to_string(r.kind));
      }
      if (rd.pos != rd.b.size()) return bad("trailing bytes in event payload");
      return Record{std::move(e)};
    }
  }
  return bad("unknown record type " + std::to_string(h.type));
}

std::vector<std::byte> encode_hello(const Hello& h) {
  HelloMsg m{header(MsgType::hello, sizeof(HelloMsg)), h.policy, 0, 0};
  return as_bytes(m);
}

std::vector<std::byte> encode_welcome(const Welcome& w) {
  WelcomeMsg m{header(MsgType::welcome, sizeof(WelcomeMsg)),
               w.ring_bytes,
               w.ring_map_size,
               w.ack_map_size,
               w.return_capacity,
               w.quota,
               static_cast<std::uint32_t>(w.policy),
               w.publisher_pid,
               w.connection_id};
  return as_bytes(m);
}

std::vector<std::byte> encode_segment(const SegmentAnnounce& s) {
  SegmentMsg m{header(MsgType::segment, sizeof(SegmentMsg)), s.segment_id, s.size, s.numa_node, 0};
  return as_bytes(m);
}

std::vector<std::byte> encode_refuse(const Refuse& r) {
  const std::size_t n = std::min(r.text.size(), kMaxRefuseText);
  RefuseMsg m{header(MsgType::refuse, sizeof(RefuseMsg) + n), static_cast<std::uint32_t>(r.code),
              static_cast<std::uint32_t>(n)};
  std::vector<std::byte> out(sizeof m + n);
  std::memcpy(out.data(), &m, sizeof m);
  std::memcpy(out.data() + sizeof m, r.text.data(), n);
  return out;
}

std::vector<std::byte> encode_segment_retired(const SegmentRetired& r) {
  SegmentRetiredMsg m{header(MsgType::segment_retired, sizeof(SegmentRetiredMsg)), r.segment_id, 0};
  return as_bytes(m);
}

Result<Hello> decode_hello(std::span<const std::byte> bytes) {
  PLX_ASSIGN(MsgHeader h, check_header(bytes));
  if (h.type != static_cast<std::uint16_t>(MsgType::hello)) return bad("expected a hello message");
  if (bytes.size() != sizeof(HelloMsg)) return bad("hello message of the wrong size");
  HelloMsg m{};
  std::memcpy(&m, bytes.data(), sizeof m);
  if (m.policy > 2 && m.policy != kPolicyDefault) return bad("hello: unknown policy");
  if (m.flags != 0 || m.reserved != 0) return bad("hello: reserved fields are not zero");
  return Hello{m.policy};
}

Result<PeerMsg> decode_peer_msg(std::span<const std::byte> bytes) {
  PLX_ASSIGN(MsgHeader h, check_header(bytes));
  if (h.type == static_cast<std::uint16_t>(MsgType::stats_request)) {
    if (bytes.size() != sizeof(StatsRequestMsg)) return bad("stats request of the wrong size");
    StatsRequestMsg m{};
    std::memcpy(&m, bytes.data(), sizeof m);
    if (m.flags != 0 || m.reserved0 != 0 || m.reserved1 != 0)
      return bad("stats request: reserved fields are not zero");
    return PeerMsg{StatsRequest{}};
  }
  PLX_ASSIGN(Hello hello, decode_hello(bytes));
  return PeerMsg{hello};
}

std::vector<std::byte> encode_stats_request() {
  StatsRequestMsg m{header(MsgType::stats_request, sizeof(StatsRequestMsg)), 0, 0, 0};
  return as_bytes(m);
}

std::vector<std::byte> encode_stats_publisher(const PublisherStats& p) {
  const std::size_t n = std::min(p.format.size(), kMaxStatsFormat);
  StatsPublisherMsg m{};
  m.h = header(MsgType::stats_publisher, sizeof m + n);
  m.publisher_pid = static_cast<std::uint64_t>(p.publisher_pid);
  m.uptime_ns = p.uptime_ns;
  m.buffers_sent = p.buffers_sent;
  m.zero_copy = p.zero_copy;
  m.copies = p.copies;
  m.bytes_copied = p.bytes_copied;
  m.events_sent = p.events_sent;
  m.connections = p.connections;
  m.disconnects = p.disconnects;
  m.refused = p.refused;
  m.protocol_errors = p.protocol_errors;
  m.stats_requests = p.stats_requests;
  m.slot_size = p.slot_size;
  m.slots = p.slots;
  m.in_use = p.slots_in_use;
  m.high_water = p.slots_high_water;
  m.segments = static_cast<std::uint32_t>(p.segments.size());
  m.subscribers = static_cast<std::uint32_t>(p.subscribers.size());
  m.format_len = static_cast<std::uint32_t>(n);
  m.format_truncated = (p.format.size() > n || p.format_truncated) ? 1 : 0;
  std::vector<std::byte> out(sizeof m + n);
  std::memcpy(out.data(), &m, sizeof m);
  if (n != 0) std::memcpy(out.data() + sizeof m, p.format.data(), n);
  return out;
}

std::vector<std::byte> encode_stats_segment(const StatsSegment& s) {
  StatsSegmentMsg m{header(MsgType::stats_segment, sizeof(StatsSegmentMsg)), s.segment_id, s.size,
                    s.index, s.slots};
  return as_bytes(m);
}

std::vector<std::byte> encode_stats_subscriber(const SubscriberInfo& s) {
  StatsSubscriberMsg m{};
  m.h = header(MsgType::stats_subscriber, sizeof m);
  m.id = s.id;
  m.pid = static_cast<std::uint64_t>(s.pid);
  m.uid = s.uid;
  m.gid = s.gid;
  m.policy = static_cast<std::uint32_t>(s.policy);
  m.leases = s.leases;
  m.max_leases = s.max_leases;
  m.ring_capacity = s.ring_capacity;
  m.ring_used = s.ring_used;
  m.buffers_sent = s.buffers_sent;
  m.bytes_sent = s.bytes_sent;
  m.events_sent = s.events_sent;
  m.dropped_oldest = s.dropped_oldest;
  m.dropped_newest = s.dropped_newest;
  m.blocked_sends = s.blocked_sends;
  m.connected_ns = s.connected_ns;
  m.received = s.received;
  m.latency_count = s.latency_count;
  m.latency_p50_ns = s.latency_p50_ns;
  m.latency_p99_ns = s.latency_p99_ns;
  m.latency_max_ns = s.latency_max_ns;
  return as_bytes(m);
}

std::vector<std::byte> encode_stats_end(const StatsEnd& e) {
  StatsEndMsg m{header(MsgType::stats_end, sizeof(StatsEndMsg)), e.segments, e.subscribers};
  return as_bytes(m);
}

Result<StatsMsg> decode_stats_msg(std::span<const std::byte> bytes) {
  PLX_ASSIGN(MsgHeader h, check_header(bytes));
  switch (static_cast<MsgType>(h.type)) {
    case MsgType::stats_publisher: {
      StatsPublisherMsg m{};
      if (bytes.size() < sizeof m) return bad("truncated stats_publisher message");
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.format_len > kMaxStatsFormat || sizeof m + m.format_len != bytes.size())
        return bad("stats_publisher: bad format length");
      if (m.format_truncated > 1 || m.reserved != 0)
        return bad("stats_publisher: reserved fields are not zero");
      if (m.publisher_pid == 0 || m.publisher_pid > 0x7fffffff)
        return bad("stats_publisher: bad pid");
      PublisherStats p;
      p.publisher_pid = static_cast<pid_t>(m.publisher_pid);
      p.uptime_ns = m.uptime_ns;
      p.buffers_sent = m.buffers_sent;
      p.zero_copy = m.zero_copy;
      p.copies = m.copies;
      p.bytes_copied = m.bytes_copied;
      p.events_sent = m.events_sent;
      p.connections = m.connections;
      p.disconnects = m.disconnects;
      p.refused = m.refused;
      p.protocol_errors = m.protocol_errors;
      p.stats_requests = m.stats_requests;
      p.slot_size = m.slot_size;
      p.slots = m.slots;
      p.slots_in_use = m.in_use;
      p.slots_high_water = m.high_water;
      p.format.assign(reinterpret_cast<const char*>(bytes.data() + sizeof m), m.format_len);
      p.format_truncated = m.format_truncated == 1;
      // The counts announce what follows; the client checks them against stats_end.
      p.segments.resize(0);
      p.subscribers.resize(0);
      return StatsMsg{std::move(p)};
    }
    case MsgType::stats_segment: {
      if (bytes.size() != sizeof(StatsSegmentMsg)) return bad("stats_segment of the wrong size");
      StatsSegmentMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.size == 0 || m.size > (std::uint64_t{1} << 40)) return bad("stats_segment: bad size");
      return StatsMsg{StatsSegment{m.segment_id, m.size, m.index, m.slots}};
    }
    case MsgType::stats_subscriber: {
      if (bytes.size() != sizeof(StatsSubscriberMsg))
        return bad("stats_subscriber of the wrong size");
      StatsSubscriberMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.policy > 2) return bad("stats_subscriber: unknown policy");
      if (m.pid > 0x7fffffff) return bad("stats_subscriber: bad pid");
      if (m.leases > m.max_leases || m.ring_used > m.ring_capacity)
        return bad("stats_subscriber: counts out of range");
      SubscriberInfo s;
      s.id = m.id;
      s.pid = static_cast<pid_t>(m.pid);
      s.uid = m.uid;
      s.gid = m.gid;
      s.policy = static_cast<Policy>(m.policy);
      s.leases = m.leases;
      s.max_leases = m.max_leases;
      s.ring_capacity = m.ring_capacity;
      s.ring_used = m.ring_used;
      s.buffers_sent = m.buffers_sent;
      s.bytes_sent = m.bytes_sent;
      s.events_sent = m.events_sent;
      s.dropped_oldest = m.dropped_oldest;
      s.dropped_newest = m.dropped_newest;
      s.blocked_sends = m.blocked_sends;
      s.connected_ns = m.connected_ns;
      s.received = m.received;
      s.latency_count = m.latency_count;
      s.latency_p50_ns = m.latency_p50_ns;
      s.latency_p99_ns = m.latency_p99_ns;
      s.latency_max_ns = m.latency_max_ns;
      return StatsMsg{s};
    }
    case MsgType::stats_end: {
      if (bytes.size() != sizeof(StatsEndMsg)) return bad("stats_end of the wrong size");
      StatsEndMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      return StatsMsg{StatsEnd{m.segments, m.subscribers}};
    }
    case MsgType::refuse: {
      PLX_ASSIGN(PublisherMsg pm, decode_publisher_msg(bytes));
      return StatsMsg{std::get<Refuse>(std::move(pm))};
    }
    default:
      return bad("unexpected message type " + std::to_string(h.type) + " in a stats reply");
  }
}

std::uint64_t mono_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::size_t latency_bucket(std::uint64_t ns) noexcept {
  return std::min<std::size_t>(static_cast<std::size_t>(std::bit_width(ns)), kLatencyBuckets - 1);
}

std::uint64_t latency_quantile(std::span<const std::uint64_t> buckets, double q,
                               std::uint64_t max) noexcept {
  std::uint64_t total = 0;
  for (auto c : buckets)
    total += c;
  if (total == 0) return 0;
  q = std::clamp(q, 1e-9, 1.0);
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
  std::uint64_t seen = 0;
  for (std::size_t k = 0; k < buckets.size(); ++k) {
    seen += buckets[k];
    if (seen >= rank) {
      const std::uint64_t bound =
          k == 0 ? 0 : (k + 1 >= buckets.size() ? UINT64_MAX : (std::uint64_t{1} << k) - 1);
      return std::min(bound, max);
    }
  }
  return max;
}

Result<PublisherMsg> decode_publisher_msg(std::span<const std::byte> bytes) {
  PLX_ASSIGN(MsgHeader h, check_header(bytes));
  switch (static_cast<MsgType>(h.type)) {
    case MsgType::welcome: {
      if (bytes.size() != sizeof(WelcomeMsg)) return bad("welcome message of the wrong size");
      WelcomeMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      auto pow2 = [](std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; };
      if (!pow2(m.ring_bytes) || m.ring_bytes < 4096 || m.ring_bytes > (64u << 20))
        return bad("welcome: bad ring size");
      if (m.ring_map_size != sizeof(RingHeader) + m.ring_bytes)
        return bad("welcome: ring mapping size disagrees");
      if (!pow2(m.return_capacity) || m.return_capacity > 65536)
        return bad("welcome: bad return capacity");
      if (m.ack_map_size != sizeof(AckHeader) + 8ull * m.return_capacity)
        return bad("welcome: ack mapping size disagrees");
      if (m.quota == 0 || m.quota > m.return_capacity) return bad("welcome: bad quota");
      if (m.policy > 2) return bad("welcome: unknown policy");
      Welcome w{m.ring_bytes,      m.ring_map_size, m.ack_map_size,
                m.return_capacity, m.quota,         static_cast<Policy>(m.policy),
                m.publisher_pid,   m.connection_id};
      return PublisherMsg{w};
    }
    case MsgType::segment: {
      if (bytes.size() != sizeof(SegmentMsg)) return bad("segment message of the wrong size");
      SegmentMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.size == 0 || m.size > (std::uint64_t{1} << 40)) return bad("segment: bad size");
      if (m.numa_node < kNoNode || m.numa_node > kMaxNode) return bad("segment: bad NUMA node");
      if (m.reserved != 0) return bad("segment: reserved field is not zero");
      return PublisherMsg{SegmentAnnounce{m.segment_id, m.size, m.numa_node}};
    }
    case MsgType::segment_retired: {
      if (bytes.size() != sizeof(SegmentRetiredMsg))
        return bad("segment_retired message of the wrong size");
      SegmentRetiredMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.reserved != 0) return bad("segment_retired: reserved field is not zero");
      return PublisherMsg{SegmentRetired{m.segment_id}};
    }
    case MsgType::refuse: {
      if (bytes.size() < sizeof(RefuseMsg)) return bad("truncated refuse message");
      RefuseMsg m{};
      std::memcpy(&m, bytes.data(), sizeof m);
      if (m.text_len > kMaxRefuseText || sizeof m + m.text_len != bytes.size())
        return bad("refuse: bad text length");
      if (m.code < 1 || m.code > 14) return bad("refuse: unknown error code");
      Refuse r{static_cast<Errc>(m.code),
               std::string(reinterpret_cast<const char*>(bytes.data() + sizeof m), m.text_len)};
      return PublisherMsg{std::move(r)};
    }
    default:
      return bad("unexpected message type " + std::to_string(h.type) + " from the publisher");
  }
}

Result<void> check_ring_header(const RingHeader& h, std::uint32_t ring_bytes) {
  if (h.magic != kRingMagic || h.version != kVersion || h.header_size != sizeof(RingHeader) ||
      h.capacity != ring_bytes)
    return bad("ring header does not match the welcome");
  return {};
}

Result<void> check_ack_header(const AckHeader& h, std::uint32_t return_capacity) {
  if (h.magic != kAckMagic || h.version != kVersion || h.header_size != sizeof(AckHeader) ||
      h.return_capacity != return_capacity)
    return bad("ack header does not match the welcome");
  return {};
}

}  // namespace parallax::link::wire
