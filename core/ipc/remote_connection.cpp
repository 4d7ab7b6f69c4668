// SPDX-License-Identifier: MIT OR Apache-2.0
// The subscriber's end of one connection: mappings, lease returns, remote Buffer cores (see
// remote_connection.h for the owner and the locking).
#include "ipc/remote_connection.h"

#include <sys/socket.h>

#include <utility>

#include "ipc/os.h"
#include "parallax/trace.h"

namespace parallax::link::detail {

/// A Buffer core over the publisher's memory: one lease of the connection.
struct RemoteCore : memory::detail::BufferCore {
  std::shared_ptr<RemoteConnection> conn;          // empty while recycled
  std::shared_ptr<const memory::Segment> mapping;  // keeps a retired segment mapped
  std::uint64_t token{0};
  RemoteCore* next{nullptr};  // in returned_ / spare_
};

void release_remote(memory::detail::BufferCore* c) noexcept {
  auto* rc = static_cast<RemoteCore*>(c);
  // The core goes back to its connection with no reference to it; `conn` keeps the connection
  // alive until we are done (if it is the last one, the destructor deletes the core with the
  // rest).
  const std::shared_ptr<RemoteConnection> conn = std::move(rc->conn);
  rc->mapping.reset();
  conn->return_lease(rc->token);
  conn->recycle(rc);
}

RemoteConnection::~RemoteConnection() {
  RemoteCore* lists[2] = {returned_.exchange(nullptr, std::memory_order_acquire), spare_};
  for (RemoteCore* c : lists) {
    while (c != nullptr)
      delete std::exchange(c, c->next);
  }
}

Result<void> RemoteConnection::attach(UniqueFd socket, const wire::Welcome& w,
                                      std::span<UniqueFd> fds) {
  if (fds.size() != wire::kWelcomeFds) return err(Errc::data_loss, "welcome without its three fds");
  welcome = w;
  PLX_ASSIGN(ring,
             memory::Segment::import(std::move(fds[0]), memory::Access::read_only, w.ring_map_size,
                                     "parallax-ipc-ring", {.read_only_fd = true}));
  PLX_ASSIGN(ack, memory::Segment::import(std::move(fds[1]), memory::Access::read_write,
                                          w.ack_map_size, "parallax-ipc-ack"));
  if (!os::is_wake_socket(fds[2].get()))
    return err(Errc::data_loss, "welcome: the wake-up fd is not a Unix seqpacket socket");
  wake = std::move(fds[2]);
  rh = reinterpret_cast<const wire::RingHeader*>(ring.data());
  PLX_TRY(wire::check_ring_header(*rh, w.ring_bytes));
  rdata = ring.data() + sizeof(wire::RingHeader);
  cap = w.ring_bytes;
  ah = reinterpret_cast<wire::AckHeader*>(ack.writable_data());
  PLX_TRY(wire::check_ack_header(*ah, w.return_capacity));
  rets_ =
      reinterpret_cast<std::atomic<std::uint64_t>*>(ack.writable_data() + sizeof(wire::AckHeader));
  ret_cap_ = w.return_capacity;
  ret_write_ = ah->ret_write.load(std::memory_order_acquire);
  sock = std::move(socket);
  return {};
}

void RemoteConnection::return_lease(std::uint64_t token) noexcept {
  leases_.fetch_sub(1, std::memory_order_relaxed);
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
void RemoteConnection::poke_publisher() noexcept {
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

void RemoteConnection::shut() {
  {
    std::lock_guard lk(ret_mu_);
    alive_ = false;
  }
  if (sock) ::shutdown(sock.get(), SHUT_RDWR);
}

RemoteCore* RemoteConnection::take_core() {
  if (spare_ == nullptr) spare_ = returned_.exchange(nullptr, std::memory_order_acquire);
  if (spare_ == nullptr) {
    auto* c = new RemoteCore;
    c->release = &release_remote;
    c->owner = this;
    return c;
  }
  return std::exchange(spare_, spare_->next);
}

void RemoteConnection::recycle(RemoteCore* c) noexcept {
  c->next = returned_.load(std::memory_order_relaxed);
  while (!returned_.compare_exchange_weak(c->next, c, std::memory_order_release,
                                          std::memory_order_relaxed)) {
  }
}

Result<memory::Buffer> make_remote_buffer(std::shared_ptr<RemoteConnection> conn,
                                          const std::shared_ptr<const memory::Segment>& mapping,
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
  core->token = d.token;
  c.leases_.fetch_add(1, std::memory_order_relaxed);
  core->conn = std::move(conn);
  return memory::Buffer::adopt(core, 0, d.length);
}

Result<memory::Buffer> copy_remote_buffer(RemoteConnection& conn, const memory::Segment& seg,
                                          wire::BufferDesc& d) {
  memory::Buffer b = memory::Buffer::copy_from(
      std::span<const std::byte>(seg.data() + d.offset, d.length), std::move(d.meta));
  conn.leases_.fetch_add(1, std::memory_order_relaxed);  // return_lease() takes it back
  conn.return_lease(d.token);
  return b;
}

}  // namespace parallax::link::detail
