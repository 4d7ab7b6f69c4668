// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target for the IPC decoders: the first byte picks the decoder (ring record as a
// subscriber reads it, a subscriber's hello as the publisher reads it, a publisher message as
// the subscriber reads it, a connecting peer's first message (hello or stats request) as the
// publisher reads it, a stats reply message as parallax-inspect reads it); the rest is the
// untrusted input. Accepted stats messages must re-encode to the same bytes. Accepted records must
// re-encode to something that decodes to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "ipc/wire.h"

using namespace parallax::link;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto r = wire::decode_record(in);
      if (!r) break;
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
        // The counts of what follows travel in the header: rebuild them for the comparison.
        wire::StatsPublisherMsg h{};
        std::memcpy(&h, in.data(), sizeof h);
        p->segments.resize(h.segments);
        p->subscribers.resize(h.subscribers);
        again = wire::encode_stats_publisher(*p);
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
