// SPDX-License-Identifier: MIT OR Apache-2.0
// OS plumbing for the IPC layer: sealed memfd regions for the ring and ack areas, SCM_RIGHTS
// send/receive over SOCK_SEQPACKET, eventfd wake-ups, Unix socket addresses.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::link::os {

/// A mapped memfd created here (sealed against shrink/grow) or imported from a peer.
class ShmRegion {
 public:
  ShmRegion() noexcept = default;
  ShmRegion(ShmRegion&& o) noexcept;
  ShmRegion& operator=(ShmRegion&& o) noexcept;
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;
  ~ShmRegion();

  /// A new zero-filled read-write region.
  [[nodiscard]] static Result<ShmRegion> create(const char* name, std::size_t size);
  /// Maps a peer's fd after checking it is a memfd sealed against shrink and grow, of exactly
  /// `size` bytes, and (for read-only maps) opened read-only.
  [[nodiscard]] static Result<ShmRegion> import(UniqueFd fd, std::size_t size, bool writable);

  /// A new fd on the same memory: O_RDONLY (reopened via /proc) or a dup.
  [[nodiscard]] Result<UniqueFd> export_fd(bool writable) const;

  [[nodiscard]] std::byte* data() const noexcept { return base_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  std::byte* base_{nullptr};
  std::size_t size_{0};
  UniqueFd fd_;
};

/// Checks that a received segment fd is a read-only, sealed memfd of `size` bytes
/// (Segment::import checks seals and size; the access mode is ours to refuse).
[[nodiscard]] Result<void> check_readonly_fd(int fd);

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

/// A private eventfd (interrupts, the publisher's own thread). Never hand one to a peer: a
/// peer holding the same open file description can clear O_NONBLOCK and fill the counter,
/// and then write()/read() block in the kernel. Peers get wake sockets (below) instead.
[[nodiscard]] Result<UniqueFd> make_eventfd();
/// Adds 1 (never blocks on a private eventfd: the counter cannot overflow in practice).
void signal_eventfd(int fd) noexcept;
/// Resets the counter (non-blocking fd).
void drain_eventfd(int fd) noexcept;

/// The cross-process wake-up channel of one connection: an AF_UNIX SOCK_SEQPACKET socketpair.
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

/// Number of open fds of this process (/proc/self/fd), for tests and stats.
[[nodiscard]] std::size_t count_open_fds();

}  // namespace parallax::link::os
