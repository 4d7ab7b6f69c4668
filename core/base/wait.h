// SPDX-License-Identifier: MIT OR Apache-2.0
// The base layer's waits (private to libparallax): private eventfds that interrupt a wait, and
// waits for one fd or several, bounded by a deadline and an interrupt fd. Every blocking wait of
// the core that a stop or unlock must end watches such an interrupt fd.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <span>

#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::base {

/// A private eventfd (EFD_CLOEXEC | EFD_NONBLOCK), for interrupts and a thread's own wake-ups.
/// Never hand one to a peer: a peer holding the same open file description can clear
/// O_NONBLOCK and fill the counter, and then write()/read() block in the kernel.
[[nodiscard]] Result<UniqueFd> make_eventfd();
/// Adds 1 (never blocks on a private eventfd: the counter cannot overflow in practice). The fd
/// stays readable until drained, so every later wait on it returns too.
void signal_eventfd(int fd) noexcept;
/// Resets the counter (non-blocking fd).
void drain_eventfd(int fd) noexcept;

/// How wait_fd() ended.
enum class Wait : std::uint8_t {
  ready,        // the fd has one of the events asked for, or an error or hang-up
  interrupted,  // the interrupt fd is readable (checked first: it wins over ready)
  timed_out,    // the deadline passed
};

using Deadline = std::chrono::steady_clock::time_point;
/// No deadline: wait until ready or interrupted.
inline constexpr Deadline kNoDeadline = Deadline::max();

/// Waits until `fd` reports one of `events` (POLLIN, POLLOUT; POLLERR and POLLHUP always
/// count), `interrupt_fd` is readable (ignored when negative), or `deadline` passes. A signal
/// (EINTR) resumes the wait with the time left. A deadline already past still polls once, so a
/// ready fd is reported rather than a timeout.
[[nodiscard]] Result<Wait> wait_fd(int fd, short events, int interrupt_fd,
                                   Deadline deadline = kNoDeadline);

/// wait_fd() for several fds: waits until one of `fds` reports one of its `events`,
/// `interrupt_fd` is readable (ignored when negative), or `deadline` passes, with the same
/// rules. Every entry's `revents` is filled in (also when the interrupt wins), so the caller
/// sees each fd that is ready; on an error they are all 0. A negative fd in `fds` is skipped
/// (poll's rule).
[[nodiscard]] Result<Wait> wait_fds(std::span<pollfd> fds, int interrupt_fd,
                                    Deadline deadline = kNoDeadline);

}  // namespace parallax::base
