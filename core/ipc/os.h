// SPDX-License-Identifier: MIT OR Apache-2.0
// OS plumbing for the IPC layer: SCM_RIGHTS send/receive over SOCK_SEQPACKET, the wake sockets
// of a connection, Unix socket addresses. The ring and ack areas are memory::Segments; eventfds
// and fd helpers come from the base layer (base/wait.h, base/fd.h).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/wait.h"
#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::link::os {

/// Sends one datagram with optional fds (SCM_RIGHTS). MSG_NOSIGNAL; EINTR retried.
[[nodiscard]] Result<void> send_msg(int sock, std::span<const std::byte> bytes,
                                    std::span<const int> fds = {});

/// Receives one datagram with MSG_CMSG_CLOEXEC. Returns the byte count (0 = peer closed);
/// `fds` gets every fd received. Truncated data or control (MSG_TRUNC / MSG_CTRUNC) closes all
/// received fds and returns data_loss. EAGAIN gives unavailable with an empty message.
struct Received {
  std::size_t size{0};
  bool closed{false};
  bool would_block{false};
  std::vector<UniqueFd> fds;
};
[[nodiscard]] Result<Received> recv_msg(int sock, std::span<std::byte> buf, bool nonblocking);

/// Builds a sockaddr_un for a filesystem path (invalid_argument if too long or empty).
[[nodiscard]] Result<sockaddr_un> make_addr(std::string_view path);

// The base layer's private eventfds (interrupts, the publisher's own thread), under the names
// the IPC code uses. Never hand one to a peer: peers get wake sockets (below) instead.
using base::drain_eventfd;
using base::make_eventfd;
using base::signal_eventfd;

/// The subscriber-to-publisher wake-up channel of one connection, and each side's hang-up
/// signal: an AF_UNIX SOCK_SEQPACKET socketpair (the publisher wakes a sleeping subscriber
/// with a shared futex wake-up on AckHeader::sub_sleeping when it sleeps there, since wire
/// version 3: half the latency of a socket byte here).
/// The publisher keeps `first` and hands `second` to the subscriber. Each side has its own
/// open file description (a peer cannot change our flags), every send/recv passes
/// MSG_DONTWAIT (so even a flag a peer could change would not matter), and closing one end
/// hangs up the other (POLLHUP): the publisher learns that the subscriber's last mapping of the
/// connection is gone, the subscriber that the publisher dropped the connection.
struct WakePair {
  UniqueFd first, second;
};
[[nodiscard]] Result<WakePair> make_wake_pair();
/// Whether `fd` is an AF_UNIX SOCK_SEQPACKET socket (what a welcome must carry as wake fd).
[[nodiscard]] bool is_wake_socket(int fd);
/// Sends one wake-up byte. Never blocks: a full queue (the peer does not read) already holds
/// a wake-up, and a closed peer is seen by its hang-up.
void send_wake(int fd) noexcept;
/// Reads the wake-ups queued (at most 64 per call: a peer flooding us cannot keep us here).
/// Never blocks. Returns false when the peer closed its end.
[[nodiscard]] bool drain_wake(int fd) noexcept;

using base::count_open_fds;

}  // namespace parallax::link::os
