// SPDX-License-Identifier: MIT OR Apache-2.0
// The publisher's acceptor (see acceptor.h): listen socket, lock file, credentials, hello.
#include "ipc/acceptor.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ipc/os.h"
#include "parallax/log.h"

namespace parallax::link::detail {

namespace {
constexpr const char* kLog = "ipc";
}  // namespace

// ---- listen socket and lock file --------------------------------------------------------------

Result<void> Acceptor::listen(std::string_view p) {
  PLX_ASSIGN(sockaddr_un addr, os::make_addr(p));
  path_ = std::string(p);
  PLX_TRY(take_lock());
  auto r = bind_and_listen(addr);
  if (!r) drop_lock();
  return r;
}

// Takes PATH.lock (created 0600, never through a symlink) with flock(LOCK_EX | LOCK_NB) for the
// publisher's lifetime, so that of two publishers starting together on a stale socket only one
// probes, unlinks and binds (the way Wayland compositors guard their sockets). A lock file
// that was unlinked and replaced while we waited for it is not the lock: retry on the new one.
Result<void> Acceptor::take_lock() {
  lock_path_ = path_ + ".lock";
  for (int attempt = 0; attempt < 8; ++attempt) {
    UniqueFd fd(::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
      if (errno == ELOOP)
        return err(Errc::already_exists, lock_path_ + " is a symlink; not touching it");
      return Error::from_errno("open lock file " + lock_path_);
    }
    struct stat fst {};
    if (::fstat(fd.get(), &fst) != 0) return Error::from_errno("fstat " + lock_path_);
    if (!S_ISREG(fst.st_mode))
      return err(Errc::already_exists, lock_path_ + " is not a regular file; not touching it");
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        return err(Errc::already_exists, "another publisher holds " + lock_path_);
      return Error::from_errno("flock " + lock_path_);
    }
    struct stat pst {};
    if (::lstat(lock_path_.c_str(), &pst) == 0 && pst.st_ino == fst.st_ino &&
        pst.st_dev == fst.st_dev) {
      lock_fd_ = std::move(fd);
      return {};
    }
    // Its owner removed it at close between our open and flock: take the new one.
  }
  return err(Errc::unavailable, "could not take " + lock_path_ + " (replaced repeatedly)");
}

// Removes the lock file while we still hold the lock (a publisher that opened it meanwhile
// sees it unlinked after its flock and retries), then releases it.
void Acceptor::drop_lock() {
  if (!lock_fd_) return;
  struct stat fst {};
  struct stat pst {};
  if (::fstat(lock_fd_.get(), &fst) == 0 && ::lstat(lock_path_.c_str(), &pst) == 0 &&
      fst.st_ino == pst.st_ino && fst.st_dev == pst.st_dev)
    ::unlink(lock_path_.c_str());
  lock_fd_.reset();
}

// With the lock file held.
Result<void> Acceptor::bind_and_listen(sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return err(Errc::already_exists, path_ + " exists and is not a socket; not touching it");
    // A socket file: is someone still accepting on it? Never steal a live one. Non-blocking:
    // a listener that never accepts (full backlog) answers EAGAIN at once instead of
    // blocking bind() forever; it is alive, so the path is taken.
    UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) return Error::from_errno("socket");
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ||
        errno == EAGAIN)
      return err(Errc::already_exists, "a publisher is already listening on " + path_);
    if (errno != ECONNREFUSED) return Error::from_errno("probing the existing socket " + path_);
    PLX_LOG(info, kLog, "removing stale socket %s", path_.c_str());
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
      return Error::from_errno("unlink stale socket " + path_);
  }
  fd_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd_) return Error::from_errno("socket");
  // The socket inode's mode is what bind() gives the file (minus umask): start restrictive so
  // there is no window with a wider mode, then set the exact mode asked for.
  (void)::fchmod(fd_.get(), opts_.socket_mode & 0777);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EADDRINUSE) return err(Errc::already_exists, path_ + " was taken meanwhile");
    return Error::from_errno("bind " + path_);
  }
  // The exact mode (bind() applied the umask). AT_SYMLINK_NOFOLLOW: if someone swapped a
  // symlink in at the path meanwhile, fail rather than change the mode of its target.
  if (::fchmodat(AT_FDCWD, path_.c_str(), opts_.socket_mode & 0777, AT_SYMLINK_NOFOLLOW) != 0) {
    auto e = Error::from_errno("chmod " + path_);
    ::unlink(path_.c_str());
    return e;
  }
  if (::stat(path_.c_str(), &st) == 0) {
    sock_ino_ = st.st_ino;
    sock_dev_ = st.st_dev;
  }
  if (::listen(fd_.get(), 64) != 0) {
    auto e = Error::from_errno("listen");
    ::unlink(path_.c_str());
    return e;
  }
  return {};
}

void Acceptor::close() {
  if (fd_) {
    // Unlink only the file we created: a successor may already have replaced it.
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino == sock_ino_ && st.st_dev == sock_dev_)
      ::unlink(path_.c_str());
    fd_.reset();
  }
  drop_lock();
}

// ---- connections ------------------------------------------------------------------------------

void Acceptor::accept_all(const std::function<void(UniqueFd, const ucred&)>& on_accept) {
  for (;;) {
    UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        PLX_LOG(warn, kLog, "accept on %s: %s", path_.c_str(), std::strerror(errno));
      return;
    }
    ucred c{};
    socklen_t len = sizeof c;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &c, &len) != 0) {
      PLX_LOG(warn, kLog, "SO_PEERCRED: %s", std::strerror(errno));
      continue;
    }
    on_accept(std::move(fd), c);
  }
}

bool Acceptor::admitted(const ucred& c) const {
  if (c.uid == ::geteuid()) return true;
  if (std::find(opts_.allowed_uids.begin(), opts_.allowed_uids.end(), c.uid) !=
      opts_.allowed_uids.end())
    return true;
  return std::find(opts_.allowed_gids.begin(), opts_.allowed_gids.end(), c.gid) !=
         opts_.allowed_gids.end();
}

void Acceptor::refuse(int fd, Errc code, const std::string& why) {
  auto msg = wire::encode_refuse({code, why});
  // Best effort: a peer whose socket is full or closed does not learn the reason; it sees the
  // connection end either way.
  (void)os::send_msg(fd, msg);
  counters_.refused.fetch_add(1, std::memory_order_relaxed);
}

Acceptor::FirstMessage Acceptor::read_hello(Connection& c) {
  std::byte buf[wire::kMaxMsgSize];
  auto r = os::recv_msg(c.sock.get(), buf, true);
  if (!r) {
    counters_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    PLX_LOG(warn, kLog, "closing connection %llu: %s", static_cast<unsigned long long>(c.id),
            r.error().message.c_str());
    c.dead = true;
    return {};
  }
  if (r->would_block) return {};
  if (r->closed) {
    c.dead = true;
    return {};
  }
  auto fail = [&](const std::string& why) -> FirstMessage {
    counters_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
    PLX_LOG(warn, kLog, "closing connection %llu (pid %d): %s",
            static_cast<unsigned long long>(c.id), static_cast<int>(c.cred.pid), why.c_str());
    refuse(c.sock.get(), Errc::data_loss, why);
    // Counted as a protocol error instead.
    counters_.refused.fetch_sub(1, std::memory_order_relaxed);
    c.dead = true;
    return {};
  };
  if (c.refused) {
    PLX_LOG(warn, kLog, "refusing pid %d: uid %u gid %u not permitted on %s",
            static_cast<int>(c.cred.pid), c.cred.uid, c.cred.gid, path_.c_str());
    refuse(c.sock.get(), Errc::permission_denied, "credentials not permitted");
    c.dead = true;
    return {};
  }
  if (!r->fds.empty()) return fail("unexpected fds in hello");
  auto first = wire::decode_peer_msg(std::span<const std::byte>(buf, r->size));
  if (!first) return fail(first.error().message);
  if (std::holds_alternative<wire::StatsRequest>(*first)) return wire::StatsRequest{};
  const wire::Hello hello = std::get<wire::Hello>(*first);
  if (hello.policy != wire::kPolicyDefault && !opts_.allowed_policies.empty() &&
      std::find(opts_.allowed_policies.begin(), opts_.allowed_policies.end(),
                static_cast<Policy>(hello.policy)) == opts_.allowed_policies.end()) {
    const std::string why =
        "policy " + std::string(to_string(static_cast<Policy>(hello.policy))) + " not allowed";
    PLX_LOG(warn, kLog, "refusing pid %d: %s", static_cast<int>(c.cred.pid), why.c_str());
    refuse(c.sock.get(), Errc::permission_denied, why);
    c.dead = true;
    return {};
  }
  return hello;
}

bool Acceptor::expire(Connection& c, std::chrono::steady_clock::time_point now) {
  if (c.dead || now - c.accepted_at < opts_.handshake_timeout) return false;
  counters_.protocol_errors.fetch_add(1, std::memory_order_relaxed);
  PLX_LOG(warn, kLog, "closing connection %llu (pid %d): no hello within %lld ms",
          static_cast<unsigned long long>(c.id), static_cast<int>(c.cred.pid),
          static_cast<long long>(opts_.handshake_timeout.count()));
  refuse(c.sock.get(), Errc::timeout, "no hello within the handshake timeout");
  counters_.refused.fetch_sub(1, std::memory_order_relaxed);  // counted as a protocol error
  c.dead = true;
  return true;
}

}  // namespace parallax::link::detail
