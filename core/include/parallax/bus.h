// SPDX-License-Identifier: MIT OR Apache-2.0
// The pipeline bus: errors, warnings, infos, EOS, state changes and (when asked) event traces
// posted by elements and the executor, delivered to a sync handler and/or a bounded queue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "parallax/result.h"

namespace parallax::pipeline {

enum class State : std::uint8_t { null, ready, paused, playing };
[[nodiscard]] std::string_view to_string(State s) noexcept;

enum class MessageType : std::uint8_t {
  error,          ///< fatal: the executor stops the pipeline
  warning,        ///< something is off but streaming continues
  info,           ///< informational
  eos,            ///< EOS reached every sink (posted once, by the executor)
  state_changed,  ///< an element (or the pipeline, source "pipeline") changed state
  event,          ///< an event passed a pad (only with ExecutorOptions::trace_events)
};
[[nodiscard]] std::string_view to_string(MessageType t) noexcept;

struct Message {
  MessageType type{MessageType::info};
  std::string source;         ///< element name, or "pipeline"
  std::string pad;            ///< for event traces: the pad the event left
  Errc code{Errc::internal};  ///< for errors and warnings
  std::string text;
  State old_state{State::null};
  State new_state{State::null};

  /// One line for people: "ERROR from element filesrc0: could not open ...".
  [[nodiscard]] std::string to_string() const;
};

/// Thread-safe. Posting never blocks on readers: the queue keeps the newest `capacity`
/// messages and counts what it dropped, so a bus nobody reads cannot grow without bound.
class Bus {
 public:
  using Handler = std::function<void(const Message&)>;
  explicit Bus(std::size_t capacity = 1024) : capacity_(capacity) {}

  /// Delivers `m` to the sync handler (on the posting thread) and queues it.
  void post(Message m);
  /// Called synchronously from the posting thread (a streaming thread!) for every message;
  /// keep it short. Replaces any previous handler; nullptr removes it.
  void set_sync_handler(Handler h);
  /// The oldest queued message, waiting up to `timeout`.
  [[nodiscard]] std::optional<Message> pop(std::chrono::nanoseconds timeout = {});
  [[nodiscard]] std::size_t queued() const;
  [[nodiscard]] std::uint64_t dropped() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> queue_;
  std::size_t capacity_;
  std::uint64_t dropped_{0};
  std::mutex handler_mu_;  // lock order: handler_mu_ is never held while taking mu_
  Handler handler_;
};

}  // namespace parallax::pipeline
