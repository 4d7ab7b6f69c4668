// SPDX-License-Identifier: MIT OR Apache-2.0
// The one event model: in-band events that travel downstream with the buffers (stream start,
// caps, segment, EOS, flush start/stop and custom events, in GStreamer's sense). The dynamic
// pipeline (parallax::pipeline) passes these between elements and the IPC transport
// (parallax::link) carries the same events between processes; its wire encoding
// (core/ipc/wire.cpp, docs/protocol.md) maps to and from this model. Both namespaces name the
// same types (pipeline::Event and link::Event are parallax::Event), so using both is fine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "parallax/caps.h"

namespace parallax {

enum class EventType : std::uint8_t {
  stream_start,  ///< first event of a stream: `stream_id`, `group_id`
  caps,          ///< the format of the buffers that follow: `caps`
  segment,       ///< the range and rate of the buffers that follow: `segment`
  eos,           ///< no more buffers
  flush_start,   ///< not serialized: drop queued data, refuse buffers until flush_stop
  flush_stop,    ///< serialized: accept buffers again: `reset_time`
  custom,        ///< application event: `name` and an opaque `data` payload, forwarded unchanged
};

/// "stream-start", "caps", "segment", "eos", "flush-start", "flush-stop", "custom".
[[nodiscard]] std::string_view to_string(EventType t) noexcept;

/// The unit of a segment's positions. Carried on the wire as its u32 value; a value not listed
/// (a format registered by an application) passes through unchanged. The numbers are
/// GStreamer's GstFormat values; the core never names GStreamer, the bridge (libparallax-gst,
/// convert.h) maps GstFormat to this and back and static_asserts the numbers.
enum class SegmentFormat : std::uint32_t {
  undefined = 0,
  default_units = 1,  ///< the stream's own unit (samples, frames)
  bytes = 2,
  time = 3,  ///< nanoseconds
  buffers = 4,
  percent = 5,
};

/// The essentials of a GstSegment. Positions in `format` units (nanoseconds for time); kNone
/// mirrors GST_CLOCK_TIME_NONE (stop: open-ended; duration: unknown).
struct StreamSegment {
  static constexpr std::uint64_t kNone = UINT64_MAX;
  SegmentFormat format{SegmentFormat::time};
  std::uint32_t flags{0};  ///< GstSegmentFlags bits, passed through
  double rate{1.0};
  double applied_rate{1.0};
  std::uint64_t base{0};
  std::uint64_t offset{0};
  std::uint64_t start{0};
  std::uint64_t stop{kNone};
  std::uint64_t time{0};
  std::uint64_t position{0};
  std::uint64_t duration{kNone};
  bool operator==(const StreamSegment&) const = default;
};

/// One event. Build it with the factories; only the fields of its type are meaningful.
struct Event {
  EventType type{EventType::custom};
  std::string stream_id;      ///< stream_start
  std::uint32_t group_id{0};  ///< stream_start (0: none)
  Caps caps;                  ///< caps (keeps its text: Caps::text())
  StreamSegment segment;      ///< segment
  bool reset_time{true};      ///< flush_stop
  std::string name;           ///< custom
  std::string data;           ///< custom: opaque bytes (may hold NULs)

  [[nodiscard]] static Event stream_start(std::string id, std::uint32_t group_id = 0);
  [[nodiscard]] static Event make_caps(Caps c);
  [[nodiscard]] static Event make_segment(const StreamSegment& s = {});
  [[nodiscard]] static Event eos();
  [[nodiscard]] static Event flush_start();
  [[nodiscard]] static Event flush_stop(bool reset_time = true);
  [[nodiscard]] static Event custom(std::string name, std::string data = {});

  /// Serialized events keep their place among the buffers (queues hold them in order);
  /// flush_start overtakes everything.
  [[nodiscard]] bool serialized() const noexcept { return type != EventType::flush_start; }
  /// "caps: video/x-raw, format=RGBA", "eos", ...
  [[nodiscard]] std::string to_string() const;

  /// The fields of the event's type are equal (caps: Caps::operator== and the same text).
  [[nodiscard]] bool operator==(const Event& o) const;
};

namespace pipeline {
using parallax::Event;
using parallax::EventType;
using parallax::SegmentFormat;
using parallax::StreamSegment;
using parallax::to_string;
}  // namespace pipeline

namespace link {
using parallax::Event;
using parallax::EventType;
using parallax::SegmentFormat;
using parallax::StreamSegment;
using parallax::to_string;
}  // namespace link

}  // namespace parallax
