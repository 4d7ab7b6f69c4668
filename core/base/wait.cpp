// SPDX-License-Identifier: MIT OR Apache-2.0
// Waits of the base layer (see wait.h).
#include "base/wait.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string>

namespace parallax::base {

Result<UniqueFd> make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return Error::from_errno("eventfd");
  return fd;
}

void signal_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(fd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

void drain_eventfd(int fd) noexcept {
  std::uint64_t v;
  ssize_t r;
  do {
    r = ::read(fd, &v, sizeof v);
  } while (r < 0 && errno == EINTR);
}

namespace {

// One ppoll until `deadline`, resumed after EINTR with the time left; the poll count or -errno.
// ppoll takes the time left in nanoseconds: no rounding to milliseconds, so no early wake-up
// spinning before the deadline and no sleep past it.
int poll_until(pollfd* p, nfds_t n, Deadline deadline) {
  for (;;) {
    timespec ts{};
    const timespec* tsp = nullptr;
    if (deadline != kNoDeadline) {
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
          deadline - std::chrono::steady_clock::now());
      const auto ns = left.count() > 0 ? left.count() : 0;
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    const int r = ::ppoll(p, n, tsp, nullptr);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

Result<Wait> wait_fd(int fd, short events, int interrupt_fd, Deadline deadline) {
  pollfd p[2] = {{fd, events, 0}, {interrupt_fd, POLLIN, 0}};
  const nfds_t n = interrupt_fd >= 0 ? 2 : 1;
  for (;;) {
    const int r = poll_until(p, n, deadline);
    if (r < 0) return Error::from_errno("poll", -r);
    if (n == 2 && p[1].revents != 0) return Wait::interrupted;
    if (p[0].revents != 0) return Wait::ready;
    if (r == 0) return Wait::timed_out;
  }
}

Result<Wait> wait_fds(std::span<pollfd> fds, int interrupt_fd, Deadline deadline) {
  if (fds.size() > kMaxWaitFds)
    return err(Errc::invalid_argument,
               "wait_fds: more than " + std::to_string(kMaxWaitFds) + " fds");
  pollfd p[kMaxWaitFds + 1];
  std::size_t n = 0;
  for (const pollfd& f : fds)
    p[n++] = {f.fd, f.events, 0};
  if (interrupt_fd >= 0) p[n++] = {interrupt_fd, POLLIN, 0};
  for (;;) {
    const int r = poll_until(p, static_cast<nfds_t>(n), deadline);
    if (r < 0) return Error::from_errno("poll", -r);
    bool ready = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      fds[i].revents = p[i].revents;
      ready = ready || p[i].revents != 0;
    }
    if (interrupt_fd >= 0 && p[n - 1].revents != 0) return Wait::interrupted;
    if (ready) return Wait::ready;
    if (r == 0) return Wait::timed_out;
  }
}

}  // namespace parallax::base
