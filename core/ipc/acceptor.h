// SPDX-License-Identifier: MIT OR Apache-2.0
// The publisher's acceptor (private to libparallax): the listen socket at PATH and its lock
// file PATH.lock, accepting connections with their peer credentials (SO_PEERCRED), the
// credential check (PublisherOptions::allowed_uids / allowed_gids), reading and checking a
// connection's first message (hello or stats request; the policy asked for), refusals with a
// reason, and the handshake timeout. The lease quota a newcomer gets and the welcome are the
// publisher's (they read the subscriber list and the pool: publisher.cpp, connection.h).
//
// Not thread-safe: the publisher calls it from bind(), its background thread and close(), one
// at a time. It holds no lock and never blocks: every socket is non-blocking.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

#include "ipc/connection.h"
#include "ipc/wire.h"
#include "parallax/ipc.h"
#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::link::detail {

class Acceptor {
 public:
  /// What read_hello() found. monostate: nothing yet, or the connection is done (`dead` set).
  using FirstMessage = std::variant<std::monostate, wire::Hello, wire::StatsRequest>;

  Acceptor(const PublisherOptions& opts, PublisherCounters& counters) noexcept
      : opts_(opts), counters_(counters) {}
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;
  ~Acceptor() { close(); }

  /// Takes PATH.lock for the publisher's lifetime, removes a stale socket at PATH (never a
  /// live one, nor anything that is not a socket), binds and listens with mode
  /// opts.socket_mode (set before bind: no window with a wider mode).
  [[nodiscard]] Result<void> listen(std::string_view path);
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// The listen socket (readable when connections wait), -1 when not listening.
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  /// Accepts every pending connection; `on_accept` gets each with its peer credentials.
  void accept_all(const std::function<void(UniqueFd, const ucred&)>& on_accept);
  /// Whether a peer with these credentials may subscribe: our own uid, or one of
  /// opts.allowed_uids / allowed_gids.
  [[nodiscard]] bool admitted(const ucred& c) const;
  /// Sends a refusal with its reason (non-blocking: a peer that does not read loses it) and
  /// counts it.
  void refuse(int fd, Errc code, const std::string& why);
  /// Reads a handshaking connection's first message (Impl::mu_ held, `c.mu` not needed: it is
  /// not active yet). Refuses it (and sets `c.dead`) when its credentials were not admitted,
  /// the message is malformed or carries fds, or the policy it asks for is not allowed.
  [[nodiscard]] FirstMessage read_hello(Connection& c);
  /// Refuses a connection that sent no hello within opts.handshake_timeout (sets `c.dead`).
  /// True when it did.
  bool expire(Connection& c, std::chrono::steady_clock::time_point now);

  /// Removes the socket file if it is still ours (a successor may have replaced it), closes
  /// the listen socket and releases the lock file. Idempotent.
  void close();

 private:
  Result<void> take_lock();
  void drop_lock();
  Result<void> bind_and_listen(sockaddr_un& addr);

  const PublisherOptions& opts_;
  PublisherCounters& counters_;
  std::string path_;
  UniqueFd fd_;
  ino_t sock_ino_{0};
  dev_t sock_dev_{0};
  std::string lock_path_;  // PATH.lock, flock()ed while we own PATH (take_lock)
  UniqueFd lock_fd_;
};

}  // namespace parallax::link::detail
