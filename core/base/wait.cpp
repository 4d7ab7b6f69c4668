// SPDX-License-Identifier: MIT OR Apache-2.0
// Waits of the base layer (see wait.h).
#include "base/wait.h"

#include <poll.h>
#include <sys/epoll.h>
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
// The time left until `deadline` in `ts` (0 once past), as ppoll and epoll_pwait2 take it: in
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

// ---- WaitSet -------------------------------------------------------------------------------

namespace {
constexpr std::uint32_t kInterruptTag = WaitSet::kMaxFds;  // epoll_event::data.u32 of the interrupt

std::uint32_t to_epoll(short events) {
  std::uint32_t e = 0;
  if (events & POLLIN) e |= EPOLLIN;
  if (events & POLLOUT) e |= EPOLLOUT;
  return e;  // EPOLLERR and EPOLLHUP are always reported
}

short to_poll(std::uint32_t e) {
  short r = 0;
  if (e & EPOLLIN) r |= POLLIN;
  if (e & EPOLLOUT) r |= POLLOUT;
  if (e & EPOLLERR) r |= POLLERR;
  if (e & EPOLLHUP) r |= POLLHUP;
  return r;
}
}  // namespace

Result<WaitSet> WaitSet::make(std::span<const pollfd> fds, int interrupt_fd) {
  if (fds.size() > kMaxFds) return err(Errc::invalid_argument, "WaitSet: more than 8 fds");
  WaitSet s;
  s.ep_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!s.ep_) return Error::from_errno("epoll_create1");
  auto add = [&](int fd, std::uint32_t events, std::uint32_t tag) -> Result<void> {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = tag;
    if (::epoll_ctl(s.ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return Error::from_errno("epoll_ctl(ADD)");
    return {};
  };
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].fd < 0) return err(Errc::invalid_argument, "WaitSet: negative fd");
    PLX_TRY(add(fds[i].fd, to_epoll(fds[i].events), static_cast<std::uint32_t>(i)));
  }
  if (interrupt_fd >= 0) PLX_TRY(add(interrupt_fd, EPOLLIN, kInterruptTag));
  s.count_ = fds.size();
  return s;
}

Result<Wait> WaitSet::wait(std::span<short> revents, Deadline deadline) {
  std::fill(revents.begin(), revents.end(), short{0});
  if (!ep_) return err(Errc::failed_precondition, "empty WaitSet");
  if (revents.size() < count_) return err(Errc::invalid_argument, "WaitSet: revents too short");
  epoll_event evs[kMaxFds + 1];
  for (;;) {
    timespec ts;
    const int r = ::epoll_pwait2(ep_.get(), evs, static_cast<int>(count_ + 1),
                                 time_left(deadline, ts), nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("epoll_pwait2");
    }
    bool interrupted = false, ready = false;
    for (int i = 0; i < r; ++i) {
      const std::uint32_t tag = evs[i].data.u32;
      if (tag == kInterruptTag) {
        interrupted = true;
      } else if (tag < revents.size()) {
        revents[tag] = to_poll(evs[i].events);
        ready = true;
      }
    }
    if (interrupted) return Wait::interrupted;
    if (ready) return Wait::ready;
    if (r == 0) return Wait::timed_out;
  }
}

}  // namespace parallax::base
