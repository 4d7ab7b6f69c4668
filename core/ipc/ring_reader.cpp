// SPDX-License-Identifier: MIT OR Apache-2.0
// The consumer end of a descriptor ring (see ring_reader.h).
#include "ipc/ring_reader.h"

#include <string>

#include "ipc/ring.h"

namespace parallax::link::detail {

// The publisher moved our read position (drop-oldest retraction): validate and follow.
Result<void> RingReader::follow_retraction(const RemoteConnection& c, std::uint64_t moved_to,
                                           std::uint64_t r) {
  const std::uint64_t w = c.rh->write_pos.load(std::memory_order_acquire);
  if (moved_to <= r || moved_to > w || (moved_to & 7) != 0)
    return err(Errc::data_loss, "read position moved outside the written range");
  read_pos_ = moved_to;
  ++*dropped_;
  return {};
}

Result<bool> RingReader::take(RemoteConnection& c) {
  for (;;) {
    const std::uint64_t w = c.rh->write_pos.load(std::memory_order_acquire);
    const std::uint64_t r = read_pos_;
    if (w == r) return false;
    if (w < r || w - r > c.cap || (w & 7) != 0) {
      // More than a ring's worth past our position is fine if the publisher retracted what
      // we had not claimed yet (drop-oldest) and wrote on: follow it, then look again.
      const std::uint64_t moved = c.ah->read_pos.load(std::memory_order_seq_cst);
      if (w < r || (w & 7) != 0 || moved == r)
        return err(Errc::data_loss, "bad ring write position");
      PLX_TRY(follow_retraction(c, moved, r));
      continue;
    }
    const std::uint64_t idx = r & (c.cap - 1);
    const std::uint64_t size = ring::load_word(c.rdata + idx) & 0xffffffffu;
    const bool sane = size >= 8 && size % 8 == 0 && size <= c.cap - idx && size <= w - r &&
                      size <= wire::kMaxRecordBytes;
    if (sane) {
      scratch_.resize(size / 8);
      ring::load_words(scratch_.data(), c.rdata + idx, size / 8);
    }
    // Claim it: if the publisher retracted it meanwhile, the CAS fails and what we copied
    // is discarded (it may be torn).
    std::uint64_t expected = r;
    if (!sane) {
      // load_word() is acquire: this re-check cannot move before the header read.
      expected = c.ah->read_pos.load(std::memory_order_seq_cst);
      if (expected == r) return err(Errc::data_loss, "bad record size " + std::to_string(size));
      PLX_TRY(follow_retraction(c, expected, r));
      continue;
    }
    if (!c.ah->read_pos.compare_exchange_strong(expected, r + size, std::memory_order_seq_cst)) {
      PLX_TRY(follow_retraction(c, expected, r));
      continue;
    }
    read_pos_ = r + size;
    c.poke_publisher();
    return true;
  }
}

}  // namespace parallax::link::detail
