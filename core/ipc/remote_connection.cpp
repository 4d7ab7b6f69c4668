// SPDX-License-Identifier: MIT OR Apache-2.0
// The subscriber's end of one connection: mappings, lease returns, remote Buffer cores (see
// remote_connection.h for the owner and the locking).
#include "ipc/remote_connection.h"

#include <sys/socket.h>

#include <utility>

#include "ipc/os.h"

namespace parallax::link::detail {

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

void RemoteConnection::shut() {
  {
    std::lock_guard lk(ret_mu_);
    alive_ = false;
  }
  if (sock) ::shutdown(sock.get(), SHUT_RDWR);
}

Result<memory::Buffer> copy_remote_buffer(RemoteConnection& conn, const memory::Segment& seg,
                                          wire::BufferDesc& d) {
  memory::Buffer b = memory::Buffer::copy_from(
      std::span<const std::byte>(seg.data() + d.offset, d.length), std::move(d.meta));
  conn.note_taken();  // return_lease() gives it back
  conn.return_lease(d.token);
  return b;
}

}  // namespace parallax::link::detail
