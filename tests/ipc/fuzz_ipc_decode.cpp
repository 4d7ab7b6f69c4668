// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target for the IPC decoders: the first byte picks the decoder (ring record as a
// subscriber reads it, a subscriber's hello as the publisher reads it, a publisher message as
// the subscriber reads it, a connecting peer's first message (hello or stats request) as the
// publisher reads it, a stats reply message as parallax-inspect reads it); the rest is the
// untrusted input. Accepted stats messages must re-encode to the same bytes. Accepted records must
// re-encode to something that decodes to the same value. The subscriber's fast decoder
// (decode_buffer) must agree with decode_record on every input: the same descriptor, or the
// same error (for another record type: "not a buffer record").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "ipc/wire.h"

using namespace parallax::link;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto r = wire::decode_record(in);
      wire::BufferDesc fast;
      fast.meta.pts = 1;  // leftovers of an earlier record must not survive
      fast.meta.set("old", true);
      const auto f = wire::decode_buffer(in, fast);
      if (!r) {
        // The same error, except that another record type's own errors are decode_record's
        // and decode_buffer only says it is not a buffer record.
        const bool buffer_type =
            wire::peek_record_type(in) == static_cast<std::uint16_t>(wire::RecordType::buffer);
        if (f || (f.error().message != r.error().message &&
                  (buffer_type || f.error().message != "not a buffer record")))
          std::abort();
        break;
      }
      if (auto* d = std::get_if<wire::BufferDesc>(&*r)) {
        // The same descriptor, compared as its encoding (bit for bit: a double entry may be a
        // NaN, which == would call different from itself).
        if (!f) std::abort();
        std::vector<std::uint64_t> a, b;
        wire::encode_buffer(a, fast);
        wire::encode_buffer(b, *d);
        if (a != b) std::abort();
        if (d->meta.entries.empty()) {  // the publisher's fixed-size encoder: the same words
          std::vector<std::uint64_t> general;
          wire::encode_buffer(general, *d);
          std::uint64_t plain[wire::kPlainBufferWords];
          wire::encode_plain_buffer(plain, *d, d->meta);
          if (general.size() != wire::kPlainBufferWords ||
              std::memcmp(general.data(), plain, sizeof plain) != 0)
            std::abort();
        }
      } else if (f) {
        std::abort();  // not a buffer record: the fast decoder must refuse it
      }
      std::vector<std::uint64_t> again;
      if (auto* d = std::get_if<wire::BufferDesc>(&*r)) {
        wire::encode_buffer(again, *d);
      } else if (auto* e = std::get_if<Event>(&*r)) {
        if (!wire::encode_event(again, *e)) std::abort();
      } else {
        break;
      }
      auto r2 =
          wire::decode_record({reinterpret_cast<const std::byte*>(again.data()), again.size() * 8});
      if (!r2) std::abort();
      if (auto* d = std::get_if<wire::BufferDesc>(&*r)) {
        const auto& d2 = std::get<wire::BufferDesc>(*r2);
        if (d2.token != d->token || d2.offset != d->offset || d2.length != d->length ||
            d2.meta.entries.size() != d->meta.entries.size())
          std::abort();
      }
      break;
    }
    case 1:
      (void)wire::decode_hello(in);
      break;
    case 2:
      (void)wire::decode_publisher_msg(in);
      break;
    case 3:
      (void)wire::decode_peer_msg(in);
      break;
    case 4: {
      auto m = wire::decode_stats_msg(in);
      if (!m) break;
      std::vector<std::byte> again;
      if (auto* p = std::get_if<PublisherStats>(&*m)) {
        again = wire::encode_stats_publisher(*p);
        // The counts of what follows are not part of the decoded value (the client counts the
        // messages themselves): take them from the input for the comparison.
        constexpr std::size_t kCounts = offsetof(wire::StatsPublisherMsg, segments);
        if (again.size() >= kCounts + 8)
          std::memcpy(again.data() + kCounts, in.data() + kCounts, 8);
      } else if (auto* g = std::get_if<wire::StatsSegment>(&*m)) {
        again = wire::encode_stats_segment(*g);
      } else if (auto* s = std::get_if<SubscriberInfo>(&*m)) {
        again = wire::encode_stats_subscriber(*s);
      } else if (auto* e = std::get_if<wire::StatsEnd>(&*m)) {
        again = wire::encode_stats_end(*e);
      } else {
        break;  // a refusal: covered by case 2
      }
      if (again.size() != in.size() || std::memcmp(again.data(), in.data(), in.size()) != 0)
        std::abort();
      break;
    }
  }
  return 0;
}
