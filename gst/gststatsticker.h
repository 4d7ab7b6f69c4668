// SPDX-License-Identifier: MIT OR Apache-2.0
// The `stats-interval` of parallaxsink / parallaxsrc: a periodic entry on the system clock
// (its thread, not the streaming thread) that posts the element's stats as an element message
// (`parallaxsink-stats` / `parallaxsrc-stats`, what `gst-launch-1.0 -m` prints) and, on each
// tick, lets the element log what changed about its peers in its debug category.
#pragma once

#include <gst/gst.h>

#include <functional>

namespace parallax::gst {

class StatsTicker {
 public:
  /// make(): the stats structure (posted when `post`); watch(): peer logging. Both run on the
  /// clock's thread. interval_ns > 0.
  void start(GstElement* element, GstClockTime interval_ns, bool post, const char* message_name,
             std::function<GstStructure*()> make, std::function<void()> watch);
  /// Unschedules; a tick already running may still finish (and post once more).
  void stop();
  ~StatsTicker() { stop(); }

 private:
  GstClock* clock_{nullptr};
  GstClockID id_{nullptr};
};

/// The tick period: stats-interval when set, else 100 ms when `category` logs at INFO or more
/// (peer connects, disconnects, drops and copies are logged from the tick), else 0 (no tick).
[[nodiscard]] GstClockTime tick_period(GstClockTime stats_interval, GstDebugCategory* category);

}  // namespace parallax::gst
