// SPDX-License-Identifier: MIT OR Apache-2.0
// The one event model: constructors, equality and the text form (used by parallax-launch -v).
#include "parallax/event.h"

namespace parallax {

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

Event Event::stream_start(std::string id, std::uint32_t group_id) {
  Event e;
  e.type = EventType::stream_start;
  e.stream_id = std::move(id);
  e.group_id = group_id;
  return e;
}
Event Event::make_caps(Caps c) {
  Event e;
  e.type = EventType::caps;
  e.caps = std::move(c);
  return e;
}
Event Event::make_segment(const StreamSegment& s) {
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
Event Event::custom(std::string name, std::string data) {
  Event e;
  e.type = EventType::custom;
  e.name = std::move(name);
  e.data = std::move(data);
  return e;
}

bool Event::operator==(const Event& o) const {
  return type == o.type && stream_id == o.stream_id && group_id == o.group_id && caps == o.caps &&
         caps.text() == o.caps.text() && segment == o.segment && reset_time == o.reset_time &&
         name == o.name && data == o.data;
}

std::string Event::to_string() const {
  std::string s(parallax::to_string(type));
  switch (type) {
    case EventType::stream_start:
      return s + ": " + stream_id;
    case EventType::caps:
      return s + ": " + caps.to_string();
    case EventType::segment: {
      auto pos = [](std::uint64_t v) {
        return v == StreamSegment::kNone ? std::string("none") : std::to_string(v);
      };
      std::string out = s;
      if (segment.format != SegmentFormat::time)
        out += ": format=" + std::to_string(static_cast<std::uint32_t>(segment.format)) + " start=";
      else
        out += ": start=";
      return out + pos(segment.start) + " stop=" + pos(segment.stop) +
             " time=" + pos(segment.time) + " rate=" + std::to_string(segment.rate);
    }
    case EventType::flush_stop:
      return reset_time ? s : s + ": no reset-time";
    case EventType::custom:
      return s + ": " + name + (data.empty() ? "" : " " + data);
    default:
      return s;
  }
}

}  // namespace parallax
