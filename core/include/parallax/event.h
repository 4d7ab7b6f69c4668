// SPDX-License-Identifier: MIT OR Apache-2.0
// In-band events that travel downstream with the buffers: stream start, caps (format),
// segment, EOS, flush start/stop and custom events, in GStreamer's sense.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "parallax/caps.h"

namespace parallax::pipeline {

enum class EventType : std::uint8_t {
  stream_start,  ///< first event of a stream; carries a stream id
  caps,          ///< the format of the buffers that follow
  segment,       ///< the time range and rate of the buffers that follow
  eos,           ///< no more buffers on this pad
  flush_start,   ///< not serialized: drop queued data, refuse buffers until flush_stop
  flush_stop,    ///< serialized: accept buffers again (elements reset via Element::flush())
  custom,        ///< application event: a name and a text payload, forwarded unchanged
};

[[nodiscard]] std::string_view to_string(EventType t) noexcept;

/// GStreamer's GstSegment, time format only.
struct StreamSegment {
  std::uint64_t start{0};
  std::optional<std::uint64_t> stop;  ///< none = open-ended
  std::uint64_t time{0};
  double rate{1.0};
  bool operator==(const StreamSegment&) const = default;
};

struct Event {
  EventType type{EventType::custom};
  std::string stream_id;  ///< stream_start
  Caps caps;              ///< caps
  StreamSegment segment;  ///< segment
  std::string name;       ///< custom
  std::string data;       ///< custom

  [[nodiscard]] static Event stream_start(std::string id);
  [[nodiscard]] static Event make_caps(Caps c);
  [[nodiscard]] static Event make_segment(StreamSegment s = {});
  [[nodiscard]] static Event eos();
  [[nodiscard]] static Event flush_start();
  [[nodiscard]] static Event flush_stop();
  [[nodiscard]] static Event custom(std::string name, std::string data = {});

  /// Serialized events keep their place among the buffers (queues hold them in order);
  /// flush_start overtakes everything.
  [[nodiscard]] bool serialized() const noexcept { return type != EventType::flush_start; }
  /// "caps: video/x-raw, format=RGBA", "eos", ...
  [[nodiscard]] std::string to_string() const;
};

}  // namespace parallax::pipeline
