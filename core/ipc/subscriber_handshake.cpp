// SPDX-License-Identifier: MIT OR Apache-2.0
// Connect and handshake of a subscriber (see subscriber_handshake.h).
#include "ipc/subscriber_handshake.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "base/futex.h"
#include "ipc/os.h"
#include "ipc/wire.h"

namespace parallax::link::detail {

namespace {
using Clock = std::chrono::steady_clock;

// Non-blocking connect: a Unix socket connects at once or fails at once (EAGAIN when the
// listener's backlog is full, a listener that never accepts included), so retrying every
// 10 ms until the deadline, watching the interrupt, bounds the whole thing.
Result<UniqueFd> connect_socket(const std::string& p, base::Deadline deadline,
                                const SubscriberInterrupt& in) {
  PLX_ASSIGN(sockaddr_un addr, os::make_addr(p));
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::from_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int e = errno;
    if (e == EINTR) continue;
    const bool retry = e == ENOENT || e == ECONNREFUSED || e == EAGAIN;
    if (!retry || Clock::now() >= deadline) {
      if (e == ENOENT) return err(Errc::not_found, "no publisher socket at " + p);
      if (e == ECONNREFUSED) return err(Errc::unavailable, "nobody is listening on " + p);
      if (e == EAGAIN)
        return err(Errc::timeout, "the publisher on " + p + " does not accept connections");
      return Error::from_errno("connect " + p, e);
    }
    if (!nap(in, deadline, std::chrono::milliseconds(10)))
      return err(Errc::cancelled, "subscriber interrupted");
  }
}

}  // namespace

void SubscriberInterrupt::raise() noexcept {
  raised.store(true, std::memory_order_seq_cst);
  os::signal_eventfd(fd.get());
  std::lock_guard lk(sleep_mu);
  if (sleep_word != nullptr) {
    // 0: a futex wait that has not started yet returns at once (the word is not 1 any more).
    sleep_word->store(0, std::memory_order_seq_cst);
    base::futex_wake_one(*sleep_word, base::FutexScope::shared);
  }
}

bool nap(const SubscriberInterrupt& in, base::Deadline deadline, std::chrono::milliseconds ms) {
  if (in.is_raised()) return false;
  const auto now = Clock::now();
  const base::Deadline until = deadline - now > ms ? now + ms : deadline;
  // The interrupt fd is the fd waited for: readable means interrupted. A failed poll (not
  // expected on our own eventfd) only shortens the nap; the flag decides.
  (void)base::wait_fd(in.fd.get(), POLLIN, -1, until);
  return !in.is_raised();
}

Result<std::shared_ptr<RemoteConnection>> handshake(const std::string& path,
                                                    const SubscriberOptions& opts,
                                                    base::Deadline deadline,
                                                    const SubscriberInterrupt& in) {
  PLX_ASSIGN(UniqueFd sock, connect_socket(path, deadline, in));
  const auto welcome_deadline = opts.connect_timeout.count() > 0
                                    ? deadline
                                    : std::max(deadline, Clock::now() + std::chrono::seconds(5));
  wire::Hello hello;
  if (opts.policy) hello.policy = static_cast<std::uint32_t>(*opts.policy);
  // A refused peer may find the connection already closed when it says hello: the refusal
  // waiting in the socket is the answer then.
  auto sent = os::send_msg(sock.get(), wire::encode_hello(hello));
  for (;;) {
    if (in.is_raised()) return err(Errc::cancelled, "subscriber interrupted");
    PLX_ASSIGN(const base::Wait w,
               base::wait_fd(sock.get(), POLLIN, in.fd.get(), welcome_deadline));
    if (w == base::Wait::ready) break;
    if (w == base::Wait::timed_out)
      return err(Errc::timeout, "no welcome from the publisher on " + path);
    // interrupted: the flag above says so (a resume() racing with us clears both).
  }
  std::byte buf[wire::kMaxMsgSize];
  PLX_ASSIGN(os::Received r, os::recv_msg(sock.get(), buf, true));
  if (r.closed || r.would_block) {
    if (!sent) return std::move(sent).error();
    return err(Errc::unavailable, "publisher closed the connection during the handshake");
  }
  PLX_ASSIGN(wire::PublisherMsg m,
             wire::decode_publisher_msg(std::span<const std::byte>(buf, r.size)));
  if (auto* rf = std::get_if<wire::Refuse>(&m))
    return err(rf->code, "publisher refused the connection: " + rf->text);
  auto* w = std::get_if<wire::Welcome>(&m);
  if (w == nullptr) return err(Errc::data_loss, "expected a welcome from the publisher");
  auto c = std::make_shared<RemoteConnection>();
  PLX_TRY(c->attach(std::move(sock), *w, r.fds));
  return c;
}

}  // namespace parallax::link::detail
