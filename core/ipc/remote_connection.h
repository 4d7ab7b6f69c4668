// SPDX-License-Identifier: MIT OR Apache-2.0
// The subscriber's end of one connection, the part its Buffers point into (private to
// libparallax): the publisher's memory mapped here (descriptor ring read-only, ack area shared,
// pool segments read-only), the lease-return slots in the ack area, the wake socket, and the
// Buffer cores over the publisher's memory (RemoteCore), recycled per connection.
//
// Owner: made by the handshake (subscriber_handshake.h) and held by the IpcSubscriber through
// a shared_ptr; every Buffer received over it holds one too, so the mappings those Buffers point
// into stay valid after the subscriber dropped the connection or was destroyed, and the wake
// socket stays open until the last of them is gone (the publisher keeps our leases quarantined
// until it sees that socket hang up).
//
// Threads and locking:
// - The fields under "fixed at the handshake" are written once before the connection is
//   shared, then only read (the socket is also shut down by shut(), any thread).
// - The consumer thread (the one calling IpcSubscriber::recv*()) alone reads the socket and the
//   ring, changes the segment table and takes cores (make_remote_buffer).
// - Any thread releases a Buffer: return_lease() writes the return slot under ret_mu_, a leaf
//   lock held for three stores (never across I/O: the wake-up is sent after it is released),
//   and the core goes back by a lock-free push (see RemoteConnection::recycle).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "base/futex_mutex.h"
#include "ipc/os.h"
#include "ipc/wire.h"
#include "parallax/buffer.h"
#include "parallax/segment.h"
#include "parallax/trace.h"
#include "parallax/unique_fd.h"

namespace parallax::link::detail {

struct RemoteCore;

class RemoteConnection {
 public:
  RemoteConnection() = default;
  RemoteConnection(const RemoteConnection&) = delete;
  RemoteConnection& operator=(const RemoteConnection&) = delete;
  ~RemoteConnection();

  // ---- fixed at the handshake ----------------------------------------------------------------
  UniqueFd sock;
  memory::Segment ring, ack;  // the publisher's sealed memfds: ring read-only, ack shared
  const wire::RingHeader* rh{nullptr};
  const std::byte* rdata{nullptr};
  std::uint32_t cap{0};
  wire::AckHeader* ah{nullptr};
  // Our end of the connection's wake socket: we wake the publisher through it (it wakes us with
  // a futex on ah->sub_sleeping), and each side's hang-up tells the other it is gone.
  UniqueFd wake;
  wire::Welcome welcome;

  /// Maps the welcome's ring and ack areas (fds[0], fds[1]: sealed memfds, checked by
  /// Segment::import and the wire header checks) and takes its wake socket (fds[2]). data_loss
  /// for anything a well-behaved publisher does not send.
  [[nodiscard]] Result<void> attach(UniqueFd socket, const wire::Welcome& w,
                                    std::span<UniqueFd> fds);

  // RingHeader::ctl_sent when the consumer thread last read the socket because of it.
  std::uint32_t ctl_seen{0};

  // ---- the segment table (consumer thread) ---------------------------------------------------
  // An entry is erased when the publisher retires the segment; Buffer cores over it hold a
  // reference, so the mapping goes with the last of them.
  std::map<std::uint64_t, std::shared_ptr<const memory::Segment>> segments;
  std::uint64_t mapped_bytes{0};  // sum of the sizes of the segments mapped (not retired)

  // ---- leases (any thread) -------------------------------------------------------------------
  /// Leases held: Buffers over the publisher's memory alive (relaxed; a statistic and the copy
  /// threshold's input, exact on the consumer thread between its own changes).
  [[nodiscard]] std::uint32_t leases() const noexcept {
    const std::uint32_t back = returned_leases_.load(std::memory_order_relaxed);
    const std::uint32_t taken = taken_leases_.load(std::memory_order_relaxed);
    return taken - back < (1u << 31) ? taken - back : 0;  // another thread may see `back` first
  }
  /// Hands a lease back: its token into the next return slot, then wakes the publisher if it
  /// sleeps waiting for returns. Any thread; after shut() the token is dropped (the publisher
  /// reclaims the connection's leases itself when it drops it).
  void return_lease(std::uint64_t token) noexcept;
  /// Wakes the publisher if it sleeps waiting for us and asked to be woken by now (it says so
  /// in the ack area). After a claim (read_pos) or a return.
  void poke_publisher() noexcept;
  /// Ends the connection: no more returns are written, the socket is shut down (the publisher
  /// sees the hang-up). Buffers stay valid.
  void shut();

 private:
  friend Result<memory::Buffer> make_remote_buffer(std::shared_ptr<RemoteConnection>&& conn,
                                                   const std::shared_ptr<const memory::Segment>&,
                                                   wire::BufferDesc& d);
  friend Result<memory::Buffer> copy_remote_buffer(RemoteConnection& conn,
                                                   const memory::Segment& seg, wire::BufferDesc& d);
  friend void release_remote(memory::detail::BufferCore* c) noexcept;

  RemoteCore* take_core();
  void note_taken() noexcept {  // consumer thread
    taken_leases_.store(taken_leases_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  }
  void recycle(RemoteCore* c) noexcept;

  std::atomic<std::uint64_t>* rets_{nullptr};  // the return slots (fixed at the handshake)
  std::uint32_t ret_cap_{0};

  base::FutexMutex ret_mu_;  // leaf: guards ret_write_ and alive_ (inline when free)
  std::uint64_t ret_write_{0};
  bool alive_{true};
  // Leases held = taken - returned (both wrap). Two counters so that the receive path, on the
  // consumer thread alone, adds with a plain load and store instead of a locked RMW (on the
  // latency path); returns come from any thread and add with fetch_add.
  std::atomic<std::uint32_t> taken_leases_{0};     // consumer thread writes
  std::atomic<std::uint32_t> returned_leases_{0};  // any thread

  // Buffer cores of this connection, recycled instead of a new/delete per received buffer.
  // A dropped Buffer pushes its core onto `returned_` (any thread: a lock-free stack, push
  // only); the consumer thread takes the whole stack at once into `spare_` when that is empty,
  // so no pop ever races a push (no ABA). Bounded by the most Buffers alive at once. Cores
  // here hold no reference to the connection (that would be a cycle): the destructor deletes
  // them.
  std::atomic<RemoteCore*> returned_{nullptr};
  RemoteCore* spare_{nullptr};  // consumer thread only
};

/// A Buffer over `mapping` (a segment of `conn`) for descriptor `d`, holding d's lease: the
/// lease goes back (return_lease) when the last reference to the Buffer drops, on any thread.
/// `d.meta` gets the storage of a recycled core's metadata back (reused for the next record).
/// The caller checked [d.offset, +d.length) against the segment. Consumer thread.
[[nodiscard]] Result<memory::Buffer> make_remote_buffer(
    std::shared_ptr<RemoteConnection>&& conn, const std::shared_ptr<const memory::Segment>& mapping,
    wire::BufferDesc& d);

/// Lease pressure: a heap Buffer with a copy of d's payload (and d.meta), the lease returned at
/// once. Consumer thread.
[[nodiscard]] Result<memory::Buffer> copy_remote_buffer(RemoteConnection& conn,
                                                        const memory::Segment& seg,
                                                        wire::BufferDesc& d);

// ---- the hot paths, inline: one call per buffer received and per Buffer released -------------
// return_lease() and make_remote_buffer() are always_inline: as out-of-line calls (what g++ -O2
// chose for plain `inline`) they cost ~14 instructions more per buffer than the single Impl had;
// inlined, the receive path is ~38 fewer (callgrind, one-thread send/recv loop, 4 KiB buffers).

/// A Buffer core over the publisher's memory: one lease of the connection.
struct RemoteCore : memory::detail::BufferCore {
  std::shared_ptr<RemoteConnection> conn;          // empty while recycled
  std::shared_ptr<const memory::Segment> mapping;  // keeps a retired segment mapped
  std::uint64_t token{0};
  RemoteCore* next{nullptr};  // in returned_ / spare_
};

/// The release function of every RemoteCore (any thread).
void release_remote(memory::detail::BufferCore* c) noexcept;

[[gnu::always_inline]] inline void RemoteConnection::return_lease(std::uint64_t token) noexcept {
  returned_leases_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(ret_mu_);
    if (!alive_) return;
    rets_[ret_write_ & (ret_cap_ - 1)].store(token, std::memory_order_relaxed);
    ++ret_write_;
    ah->ret_write.store(ret_write_, std::memory_order_seq_cst);
  }
  poke_publisher();
}

// The publisher sleeps only when it waits for us; it says so in the ack area.
inline void RemoteConnection::poke_publisher() noexcept {
  // Our read_pos CAS / ret_write store are seq_cst, so is this load: the publisher either
  // sees our update before sleeping or we see its flag.
  if (ah->pub_waiting.load(std::memory_order_seq_cst) == 0) return;
  const bool enough =
      ah->ret_write.load(std::memory_order_relaxed) >=
          ah->wake_ret.load(std::memory_order_relaxed) ||
      ah->read_pos.load(std::memory_order_relaxed) >= ah->wake_read.load(std::memory_order_relaxed);
  if (enough && ah->pub_waiting.exchange(0, std::memory_order_seq_cst) != 0) {
    PLX_TRACE_SPAN("ipc.wake");
    os::send_wake(wake.get());
  }
}

inline RemoteCore* RemoteConnection::take_core() {
  if (spare_ == nullptr) spare_ = returned_.exchange(nullptr, std::memory_order_acquire);
  if (spare_ == nullptr) {
    auto* c = new RemoteCore;
    c->release = &release_remote;
    c->owner = this;
    return c;
  }
  return std::exchange(spare_, spare_->next);
}

inline void RemoteConnection::recycle(RemoteCore* c) noexcept {
  c->next = returned_.load(std::memory_order_relaxed);
  while (!returned_.compare_exchange_weak(c->next, c, std::memory_order_release,
                                          std::memory_order_relaxed)) {
  }
}

[[gnu::always_inline]] inline Result<memory::Buffer> make_remote_buffer(
    std::shared_ptr<RemoteConnection>&& conn, const std::shared_ptr<const memory::Segment>& mapping,
    wire::BufferDesc& d) {
  RemoteConnection& c = *conn;
  const memory::Segment& seg = *mapping;
  RemoteCore* core = c.take_core();
  core->refs.store(1, std::memory_order_relaxed);
  // The mapping is PROT_READ: Buffer only ever exposes const bytes of it.
  core->data = const_cast<std::byte*>(seg.data()) + d.offset;
  core->capacity = d.length;
  core->segment = &seg;
  core->mapping = mapping;
  core->segment_offset = d.offset;
  std::swap(core->meta, d.meta);  // d.meta gets the old entries' storage back for the next
  core->conn = std::move(conn);
  core->token = d.token;
  c.note_taken();
  return memory::Buffer::adopt(core, 0, d.length);
}

}  // namespace parallax::link::detail
