// SPDX-License-Identifier: MIT OR Apache-2.0
// One subscriber connection of an IpcPublisher (private to libparallax): the subscriber's
// descriptor ring and ack area (sealed memfds shared with it), its lease table and quota, the
// records it has not taken yet, events waiting for ring space, the slots quarantined after it
// went away, and the wake socket in both directions. The publisher (publisher.cpp) keeps the
// list of connections and the state they share; the acceptor (acceptor.h) reads the hello.
//
// Locking: every method whose name does not say otherwise needs `mu` held (the callers hold it:
// the publisher takes IpcPublisher::Impl::mu_, the subscriber list, before `mu` when it needs
// both). deliver_buffer(), deliver_event() and drain() take `mu` themselves. Waits release
// `mu` while they sleep, never IpcPublisher::Impl::mu_ (not held then). The segment exporter's
// lock is a leaf.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <span>
#include <unordered_set>
#include <vector>

#include "base/futex_mutex.h"
#include "ipc/fifo.h"
#include "ipc/hotpath_probe.h"
#include "ipc/segment_exporter.h"
#include "ipc/wire.h"
#include "parallax/ipc.h"
#include "parallax/pool.h"
#include "parallax/unique_fd.h"

namespace parallax::link::detail {

/// The publisher's counters (IpcPublisher::stats()); connections and the acceptor add to them.
struct PublisherCounters {
  std::atomic<std::uint64_t> buffers_sent{0}, zero_copy{0}, copies{0}, bytes_copied{0},
      events_sent{0}, connections{0}, disconnects{0}, refused{0}, protocol_errors{0};
  std::atomic<std::uint64_t> pools_replaced{0}, segments_retired{0}, stats_requests{0};
};

/// Adds to a counter only the producer thread writes (send() and friends run on one producer
/// thread at a time): a relaxed load and store, not a locked read-modify-write, which on x86
/// waits for every earlier store to drain and sits on the send path's latency. Readers on other
/// threads see a whole value, possibly one send late.
inline void bump_producer_counter(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// What every connection of one publisher reads: owned by IpcPublisher::Impl, which outlives
/// its connections.
struct ConnectionShared {
  const PublisherOptions& opts;
  SegmentExporter& exporter;  // segment fds (its own leaf lock)
  PublisherCounters& counters;
  const std::atomic<bool>& interrupted;  // IpcPublisher::interrupt()
  const UniqueFd& interrupt_fd;          // readable while interrupted
};

class Connection {
 public:
  /// How a drain() ended.
  enum class Drained : std::uint8_t { read_through, behind, cancelled };

  Connection(const ConnectionShared& shared, std::uint64_t id, UniqueFd sock, const ucred& cred);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // ---- identity (set at accept, constant after) -------------------------------------------
  base::FutexMutex mu;  // the ring, leases, counters and flags below; after Impl::mu_ when both
  const std::uint64_t id;
  const UniqueFd sock;  // the connection socket (hello, welcome, segment messages, hang-up)
  const ucred cred;
  const std::chrono::steady_clock::time_point accepted_at;

  // ---- life cycle (written under mu, or under Impl::mu_ during the handshake) ---------------
  bool active{false};  // handshake done: in the publisher's subscriber list
  // Gone (hang-up, protocol error, refused, closed): removed next turn. Atomic because it is
  // set under `mu` (a send that finds the subscriber gone) and read under Impl::mu_ alone
  // (remove_dead_locked(), the background thread); it only ever goes false -> true.
  std::atomic<bool> dead{false};
  bool refused{false};  // credentials not admitted: refused once its hello is read

  // ---- handshake ---------------------------------------------------------------------------
  /// Makes the ring and ack areas and the wake socket for `hello`, sends the welcome and the
  /// segments of `pool`, and activates the connection with lease quota `quota`.
  [[nodiscard]] Result<void> setup(const wire::Hello& hello, std::uint32_t quota,
                                   const memory::MemoryPool& pool);
  /// Writes one sticky event during the handshake (the ring is empty: it fits).
  void write_sticky(const std::vector<std::uint64_t>& rec);
  /// Wakes the subscriber if records were written since the last wake-up and it announced
  /// that it sleeps (Dekker with its sleeping flag), the way the flag says: a futex wake-up or a
  /// byte on the wake socket (wire version 3).
  void wake();
  /// Counts a control message sent on the socket (RingHeader::ctl_sent) and wakes the
  /// subscriber if it sleeps: it reads its socket then. Also on dropping the connection.
  void note_control_sent();
  [[nodiscard]] Policy policy() const noexcept { return policy_; }
  /// The lease quota granted (0 before the handshake). Read under Impl::mu_ too: it is set
  /// under both locks.
  [[nodiscard]] std::uint32_t quota() const noexcept { return quota_; }

  // ---- sending (take mu themselves) ---------------------------------------------------------
  /// Delivers one encoded buffer record (token patched per subscriber). False only when an
  /// interrupt() cancelled a wait for this subscriber (it does not get the buffer). `pool`:
  /// the publisher's current pool (producer thread). With `take`, the lease takes `b` itself
  /// (moved: the last subscriber of a send whose Buffer nobody else keeps, one reference count
  /// increment and decrement less) when the buffer is delivered; `b` is left as it was when not.
  bool deliver_buffer(std::uint64_t* words, std::size_t bytes, memory::Buffer& b, bool take,
                      const memory::MemoryPool& pool);
  /// Delivers (or queues) one event. False only when an interrupt() cancelled a wait for this
  /// subscriber: the event is then queued and still delivered in order once there is room.
  bool deliver_event(const std::vector<std::uint64_t>& rec);
  /// Waits until the subscriber read everything written (and queued), it is gone,
  /// interrupt(), or `deadline`. Never expels it.
  Drained drain(std::chrono::steady_clock::time_point deadline);

  // ---- upkeep (mu held) ---------------------------------------------------------------------
  /// Validates and applies the subscriber's read position and returned leases. False when the
  /// connection is dead or inactive (or just died: a protocol error).
  bool sync();
  /// Ends the connection (its leases go to the quarantine). Wakes a send() asleep on it.
  void kill(const char* why, bool protocol_error);
  /// The background thread's turn: sync, write queued events that fit now, wake it.
  void tick();
  /// The socket spoke after the handshake (`revents`): a hang-up ends the connection,
  /// anything else is a protocol error.
  void on_socket(short revents);
  /// Tells the subscriber about each of `ids` none of its leases names (segment_retired);
  /// adds to `still` those it must hear about later.
  void retire_segments(std::span<const std::uint64_t> ids, std::set<std::uint64_t>& still);
  /// Closing the publisher: a goodbye record if it fits (or can be made to), a wake-up, then
  /// dead, its leases dropped and the socket shut down.
  void say_goodbye();
  /// Our figures plus what the subscriber reports in its ack area.
  [[nodiscard]] SubscriberInfo info() const;

  // ---- quarantine (mu held) -------------------------------------------------------------------
  /// Slots the gone subscriber may still read (reused once its end of the wake socket closes).
  [[nodiscard]] std::size_t quarantined() const noexcept { return quarantine_.size(); }
  /// Our end of the wake socket (-1 once the quarantine was released).
  [[nodiscard]] int wake_fd() const noexcept { return wake_.get(); }
  /// The wake socket spoke while quarantined (`revents`): if the subscriber's end is closed,
  /// the quarantined slots go back and our end is closed. True then.
  bool release_quarantine(short revents);

 private:
  enum class Kind : std::uint8_t { pad, buffer, event };
  // How a wait for the subscriber ended.
  enum class Wait : std::uint8_t {
    progress,   // it consumed or returned something (or may have): check again
    gone,       // it is dead (hang-up, protocol error, block_timeout): skip it
    cancelled,  // IpcPublisher::interrupt()
  };
  enum class Compact : std::uint8_t { done, raced, nothing };
  struct Lease {
    memory::Buffer buffer;
    std::uint32_t gen{0};
    bool live{false};
  };
  struct InFlight {
    std::uint64_t end;    // ring position one past the record
    std::uint64_t token;  // lease token for buffers
    Kind kind;
  };

  Result<void> announce_segment(const memory::Segment& seg);
  bool release_token(std::uint64_t token);
  bool sync_due(const memory::MemoryPool& pool) const;
  std::uint64_t space_needed(std::size_t bytes) const;
  bool fits(std::size_t bytes) const;
  void write(const std::uint64_t* words, std::size_t bytes, Kind kind, std::uint64_t token);
  Compact compact();
  bool retract();
  Wait wait(std::unique_lock<base::FutexMutex>& lk, std::chrono::steady_clock::time_point deadline);
  // Sleeps (mu released by the caller) until one of `fds` speaks, interrupt() or `until`.
  void wait_slice(std::span<pollfd> fds, std::chrono::steady_clock::time_point until) const;
  void flush_pending();
  bool queue_event(const std::vector<std::uint64_t>& rec);
  std::chrono::steady_clock::time_point block_deadline() const;
  void drain_wait(std::unique_lock<base::FutexMutex>& lk, std::uint64_t until,
                  std::chrono::steady_clock::time_point deadline);

  const ConnectionShared& sh_;

  // What every deliver_buffer() reads and writes, together on three cache lines: after the
  // publisher slept between two buffers each line it touches is a miss, and these were spread
  // over ten.
  wire::RingHeader* rh_{nullptr};
  std::byte* rdata_{nullptr};
  wire::AckHeader* ah_{nullptr};
  std::uint64_t write_pos_{0};  // our copy; the ring's write_pos is only ever stored from it
  std::uint64_t read_pos_{0};   // last validated value of the ack's read_pos
  std::uint64_t last_segment_{UINT64_MAX};  // in segments_sent_: the last buffer's (no lookup)
  std::uint32_t cap_{0};
  std::uint32_t leases_out_{0};
  std::uint32_t quota_{0};
  Policy policy_{Policy::block};
  bool wake_needed_{false};
  std::uint64_t buffers_sent_{0};  // SubscriberInfo's, kept here (info() copies them)
  std::uint64_t bytes_sent_{0};
  Fifo<InFlight> inflight_;  // records written and not yet taken, in ring order
  std::vector<Lease> leases_;
  std::vector<std::uint32_t> free_leases_;
  std::deque<std::vector<std::uint64_t>> pending_;  // events waiting for ring space

  memory::Segment ring_region_, ack_region_;  // sealed memfds, shared with the subscriber
  std::atomic<std::uint64_t>* rets_{nullptr};
  std::uint32_t ret_cap_{0};
  // Our end of the wake socket (the subscriber holds the other): we wake it with a byte, it
  // wakes us; never blocking (MSG_DONTWAIT, our own open file description). Its hang-up says
  // the subscriber's connection object, and with it every mapping of our slots, is gone.
  UniqueFd wake_;
  std::uint64_t ret_read_{0};
  std::unordered_set<std::uint64_t> segments_sent_;
  // The slots of a subscriber that is gone (hang-up, close(), expelled) but may still read
  // them: they are not reused until its end of the wake socket closes (its connection object,
  // and with it every mapping, is destroyed, or its process exited).
  std::vector<memory::Buffer> quarantine_;
  // -Dhotpath-probes: how often the woken subscriber had taken the record before our wake-up
  // call returned (it preempted us on this CPU, or ran on the other one).
  PLX_PROBE_SHARE_MEMBER(probe_taken_in_wake_,
                         "subscriber took the record before the wake call returned");
  // The wake socket fired and was not read yet: it is drained before the next sleep rather
  // than right after the wake-up (a syscall off the hot path; the subscriber only writes it
  // after seeing pub_waiting, which is set after the drain).
  bool wake_pending_{false};
  SubscriberInfo info_;
};

}  // namespace parallax::link::detail
