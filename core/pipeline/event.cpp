// SPDX-License-Identifier: MIT OR Apache-2.0
// Event constructors and their text form (used by parallax-launch -v).
#include "parallax/event.h"

namespace parallax::pipeline {

std::string_view to_string(EventType t) noexcept {
  switch (t) {
    case EventType::stream_start:
      return "stream-start";
    case EventType::caps:
      return "caps";
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

Event Event::stream_start(std::string id) {
  Event e;
  e.type = EventType::stream_start;
  e.stream_id = std::move(id);
  return e;
}
Event Event::make_caps(Caps c) {
  Event e;
  e.type = EventType::caps;
  e.caps = std::move(c);
  return e;
}
Event Event::make_segment(StreamSegment s) {
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
Event Event::flush_stop() {
  Event e;
  e.type = EventType::flush_stop;
  return e;
}
Event Event::custom(std::string name, std::string data) {
  Event e;
  e.type = EventType::custom;
  e.name = std::move(name);
  e.data = std::move(data);
  return e;
}

std::string Event::to_string() const {
  std::string s(pipeline::to_string(type));
  switch (type) {
    case EventType::stream_start:
      return s + ": " + stream_id;
    case EventType::caps:
      return s + ": " + caps.to_string();
    case EventType::segment:
      return s + ": start=" + std::to_string(segment.start) +
             " stop=" + (segment.stop ? std::to_string(*segment.stop) : std::string("none")) +
             " time=" + std::to_string(segment.time) + " rate=" + std::to_string(segment.rate);
    case EventType::custom:
      return s + ": " + name + (data.empty() ? "" : " " + data);
    default:
      return s;
  }
}

}  // namespace parallax::pipeline
