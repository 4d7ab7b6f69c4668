// SPDX-License-Identifier: MIT OR Apache-2.0
// The consumer end of one connection's descriptor ring (private to libparallax): claims the
// next record by CAS on the ack area's read_pos, follows the publisher's retractions
// (drop-oldest), and the sleep handshake with the publisher (sub_sleeping).
//
// Owner: the IpcSubscriber, used by its consumer thread only (no lock). Shared-memory protocol
// with the publisher (docs/protocol.md): write_pos is the publisher's (acquire loads here);
// read_pos is advanced by CAS by whoever takes a record, we to claim it, the publisher to
// retract it, and the winner owns the record's lease. Nothing read from the ring is trusted:
// positions and sizes are checked, and a record is copied out before the claim, so what a
// retraction overwrote meanwhile is discarded (ring.h: word-atomic copies).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ipc/remote_connection.h"
#include "ipc/ring.h"
#include "parallax/result.h"

namespace parallax::link::detail {

class RingReader {
 public:
  /// `dropped` counts the records the publisher retracted before we read them (the
  /// subscriber's SubscriberStats::dropped, cumulative over reconnects).
  explicit RingReader(std::uint64_t& dropped) noexcept : dropped_(&dropped) {}

  /// Starts reading a new connection where its ack area says.
  void attach(const RemoteConnection& c) noexcept {
    read_pos_ = c.ah->read_pos.load(std::memory_order_acquire);
  }

  /// Whether the publisher wrote past our position (the spin loops' check).
  [[nodiscard]] bool has_data(const RemoteConnection& c) const noexcept {
    return c.rh->write_pos.load(std::memory_order_acquire) != read_pos_;
  }

  /// Takes the next record off the ring into record(); false when the ring is empty. An error
  /// (data_loss) is a protocol violation by the publisher: the connection must be dropped.
  [[nodiscard]] Result<bool> take(RemoteConnection& c);

  /// The record take() copied out: valid until the next take().
  [[nodiscard]] std::span<const std::byte> record() const noexcept {
    return {reinterpret_cast<const std::byte*>(scratch_.data()), scratch_.size() * 8};
  }

  /// The sleep handshake: says we are about to sleep and how (sub_sleeping = wire::kSleepFutex
  /// or kSleepSocket, so the publisher wakes us that way), then looks at the ring once more.
  /// False (and the flag cleared) when data came meanwhile: do not sleep. Call end_sleep()
  /// after the sleep.
  [[nodiscard]] bool begin_sleep(RemoteConnection& c, std::uint32_t how) noexcept {
    c.ah->sub_sleeping.store(how, std::memory_order_seq_cst);
    if (c.rh->write_pos.load(std::memory_order_seq_cst) != read_pos_) {
      c.ah->sub_sleeping.store(0, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  static void end_sleep(RemoteConnection& c) noexcept {
    c.ah->sub_sleeping.store(0, std::memory_order_relaxed);
  }

 private:
  [[nodiscard]] Result<void> follow_retraction(const RemoteConnection& c, std::uint64_t moved_to,
                                               std::uint64_t r);
  [[nodiscard]] static Error bad_record_size(std::uint64_t size);

  std::uint64_t read_pos_{0};
  std::uint64_t* dropped_;
  // The record being decoded: copied out of the ring before the claim (the publisher may
  // retract and overwrite it meanwhile under drop-oldest; what we copied is then discarded).
  std::vector<std::uint64_t> scratch_;
};

// The hot path, once per record: always_inline into the subscriber's receive loop (see the
// measurement in remote_connection.h).
[[gnu::always_inline]] inline Result<bool> RingReader::take(RemoteConnection& c) {
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
      if (expected == r) return bad_record_size(size);
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
