// SPDX-License-Identifier: MIT OR Apache-2.0
// Event factories and the names of policies and event types.
#include <string>

#include "parallax/ipc.h"

namespace parallax::link {

std::string_view to_string(Policy p) noexcept {
  switch (p) {
    case Policy::block:
      return "block";
    case Policy::drop_oldest:
      return "drop-oldest";
    case Policy::drop_newest:
      return "drop-newest";
  }
  return "unknown";
}

Result<Policy> policy_from_string(std::string_view s) {
  std::string n(s);
  for (char& c : n)
    if (c == '_') c = '-';
  if (n == "block") return Policy::block;
  if (n == "drop-oldest") return Policy::drop_oldest;
  if (n == "drop-newest") return Policy::drop_newest;
  return err(Errc::invalid_argument,
             "unknown policy '" + std::string(s) + "' (block, drop-oldest, drop-newest)");
}

std::string_view to_string(EventType t) noexcept {
  switch (t) {
    case EventType::format:
      return "format";
    case EventType::stream_start:
      return "stream-start";
    case EventType::segment:
      return "segment";
    case EventType::eos:
      return "eos";
    case EventType::flush_start:
      return "flush-start";
    case EventType::flush_stop:
      return "flush-stop";
    case EventType::custom:
      return "custom";
  }
  return "unknown";
}

Event Event::format(std::string caps) {
  Event e;
  e.type = EventType::format;
  e.caps = std::move(caps);
  return e;
}

Event Event::stream_start(std::string stream_id, std::uint32_t group_id) {
  Event e;
  e.type = EventType::stream_start;
  e.name = std::move(stream_id);
  e.group_id = group_id;
  return e;
}

Event Event::make_segment(const SegmentInfo& s) {
  Event e;
  e.type = EventType::segment;
  e.segment = s;
  return e;
}

Event Event::eos() {
  Event e;
  e.type = EventType::eos;
  return e;
}

Event Event::flush_start() {
  Event e;
  e.type = EventType::flush_start;
  return e;
}

Event Event::flush_stop(bool reset_time) {
  Event e;
  e.type = EventType::flush_stop;
  e.reset_time = reset_time;
  return e;
}

Event Event::custom(std::string name, std::vector<std::byte> data) {
  Event e;
  e.type = EventType::custom;
  e.name = std::move(name);
  e.data = std::move(data);
  return e;
}

}  // namespace parallax::link
