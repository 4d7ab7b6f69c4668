// SPDX-License-Identifier: MIT OR Apache-2.0
// The bus: a sync handler plus a bounded message queue.
#include "parallax/bus.h"

namespace parallax::pipeline {

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::null:
      return "NULL";
    case State::ready:
      return "READY";
    case State::paused:
      return "PAUSED";
    case State::playing:
      return "PLAYING";
  }
  return "?";
}

std::string_view to_string(MessageType t) noexcept {
  switch (t) {
    case MessageType::error:
      return "error";
    case MessageType::warning:
      return "warning";
    case MessageType::info:
      return "info";
    case MessageType::eos:
      return "eos";
    case MessageType::state_changed:
      return "state-changed";
    case MessageType::event:
      return "event";
  }
  return "?";
}

std::string Message::to_string() const {
  switch (type) {
    case MessageType::error:
      return "ERROR from element " + source + ": " + text;
    case MessageType::warning:
      return "WARNING from element " + source + ": " + text;
    case MessageType::info:
      return "INFO from element " + source + ": " + text;
    case MessageType::eos:
      return "EOS from " + source;
    case MessageType::state_changed:
      return source + ": state changed from " + std::string(pipeline::to_string(old_state)) +
             " to " + std::string(pipeline::to_string(new_state));
    case MessageType::event:
      return "/pipeline/" + source + "." + pad + ": " + text;
  }
  return text;
}

void Bus::post(Message m) {
  {
    std::lock_guard hl(handler_mu_);
    if (handler_) handler_(m);
  }
  {
    std::lock_guard l(mu_);
    if (capacity_ == 0) {
      ++dropped_;
      return;
    }
    if (queue_.size() >= capacity_) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(std::move(m));
  }
  cv_.notify_one();
}

void Bus::set_sync_handler(Handler h) {
  std::lock_guard hl(handler_mu_);
  handler_ = std::move(h);
}

std::optional<Message> Bus::pop(std::chrono::nanoseconds timeout) {
  std::unique_lock l(mu_);
  if (!cv_.wait_for(l, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
  Message m = std::move(queue_.front());
  queue_.pop_front();
  return m;
}

std::size_t Bus::queued() const {
  std::lock_guard l(mu_);
  return queue_.size();
}

std::uint64_t Bus::dropped() const {
  std::lock_guard l(mu_);
  return dropped_;
}

void Bus::clear() {
  std::lock_guard l(mu_);
  queue_.clear();
}

}  // namespace parallax::pipeline
