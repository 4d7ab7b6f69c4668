// SPDX-License-Identifier: MIT OR Apache-2.0
// Waits of the base layer (see wait.h).
#include "base/wait.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <vector>

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
// The time left until `deadline` in `ts` (0 once past), as ppoll takes it: in
// nanoseconds, so no rounding to milliseconds (no early wake-up spinning before the deadline,
// no sleep past it). nullptr for no deadline.
const timespec* time_left(Deadline deadline, timespec& ts) noexcept {
  if (deadline == kNoDeadline) return nullptr;
  const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
      deadline - std::chrono::steady_clock::now());
  const auto ns = left.count() > 0 ? left.count() : 0;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return &ts;
}
}  // namespace

Result<Wait> wait_fd(int fd, short events, int interrupt_fd, Deadline deadline) {
  pollfd p{fd, events, 0};
  return wait_fds(std::span<pollfd>(&p, 1), interrupt_fd, deadline);
}

Result<Wait> wait_fds(std::span<pollfd> fds, int interrupt_fd, Deadline deadline) {
  // The caller's fds and the interrupt in one array: on the stack for the usual few.
  constexpr std::size_t kOnStack = 8;
  pollfd stack[kOnStack];
  std::vector<pollfd> heap;
  pollfd* p = stack;
  if (fds.size() + 1 > kOnStack) {
    heap.resize(fds.size() + 1);
    p = heap.data();
  }
  std::copy(fds.begin(), fds.end(), p);
  const bool has_interrupt = interrupt_fd >= 0;
  p[fds.size()] = {interrupt_fd, POLLIN, 0};
  const auto n = static_cast<nfds_t>(fds.size() + (has_interrupt ? 1 : 0));
  for (;;) {
    timespec ts;
    const int r = ::ppoll(p, n, time_left(deadline, ts), nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      for (pollfd& f : fds)
        f.revents = 0;
      return Error::from_errno("poll");
    }
    bool ready = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      fds[i].revents = p[i].revents;
      ready |= p[i].revents != 0;
    }
    if (has_interrupt && p[fds.size()].revents != 0) return Wait::interrupted;
    if (ready) return Wait::ready;
    if (r == 0) return Wait::timed_out;
  }
}

}  // namespace parallax::base
