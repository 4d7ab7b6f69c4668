// SPDX-License-Identifier: MIT OR Apache-2.0
// Waits of the base layer (see wait.h).
#include "base/wait.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

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

Result<Wait> wait_fd(int fd, short events, int interrupt_fd, Deadline deadline) {
  pollfd p[2] = {{fd, events, 0}, {interrupt_fd, POLLIN, 0}};
  const nfds_t n = interrupt_fd >= 0 ? 2 : 1;
  for (;;) {
    // ppoll takes the time left in nanoseconds: no rounding to milliseconds, so no early wake-up
    // spinning before the deadline and no sleep past it.
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
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("poll");
    }
    if (n == 2 && p[1].revents != 0) return Wait::interrupted;
    if (p[0].revents != 0) return Wait::ready;
    if (r == 0) return Wait::timed_out;
  }
}

}  // namespace parallax::base
