// SPDX-License-Identifier: MIT OR Apache-2.0
// How a subscriber gets a connection (private to libparallax): the non-blocking connect to the
// publisher's socket, hello, and the welcome whose fds become a RemoteConnection; and the
// interrupt every one of the subscriber's waits watches.
//
// Owner: the IpcSubscriber's consumer thread (connect(), and reconnects inside recv*()). No
// lock is taken; every wait goes through base::wait_fd with the subscriber's interrupt fd and
// ends at its deadline, so interrupt() (any thread) ends a connect or handshake at once
// whatever the publisher does.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "base/futex_mutex.h"
#include "base/wait.h"
#include "ipc/remote_connection.h"
#include "parallax/ipc.h"
#include "parallax/result.h"
#include "parallax/unique_fd.h"

namespace parallax::link::detail {

/// The subscriber's interrupt: a flag (checked by the spin loops), a private eventfd (watched
/// by every poll), and the futex word the consumer thread sleeps on for ring data, if it does
/// (the connection's AckHeader::sub_sleeping), set by IpcSubscriber::interrupt() and cleared by
/// resume().
struct SubscriberInterrupt {
  UniqueFd fd;
  std::atomic<bool> raised{false};
  // The consumer thread sets the word under sleep_mu before its futex wait and clears it after
  // (so the mapping cannot go away while interrupt() wakes it); interrupt() stores 0 into it
  // and wakes it under sleep_mu, after raising the flag. A leaf lock; no peer I/O under it.
  base::FutexMutex sleep_mu;  // inline when free: taken twice per sleep, after the wake-up too
  std::atomic<std::uint32_t>* sleep_word{nullptr};  // sleep_mu

  [[nodiscard]] bool is_raised() const noexcept { return raised.load(std::memory_order_acquire); }
  /// Raises the flag and ends any sleep (the eventfd's polls and the futex wait).
  void raise() noexcept;
};

/// Sleeps up to `ms` (never past `deadline`) unless interrupted; false when interrupted.
[[nodiscard]] bool nap(const SubscriberInterrupt& in, base::Deadline deadline,
                       std::chrono::milliseconds ms);

/// Connects to the publisher's socket and handshakes: hello (with opts.policy), then waits for
/// the welcome (or a refusal) and maps what it carries. `deadline` bounds the connect attempts
/// and the wait for the welcome; with opts.connect_timeout 0 (one connect attempt) the welcome
/// is awaited for 5 s. Errors: not_found / unavailable / timeout when nobody accepts, the
/// publisher's code when it refuses, cancelled when interrupted, data_loss for a bad welcome.
[[nodiscard]] Result<std::shared_ptr<RemoteConnection>> handshake(const std::string& path,
                                                                  const SubscriberOptions& opts,
                                                                  base::Deadline deadline,
                                                                  const SubscriberInterrupt& in);

}  // namespace parallax::link::detail
