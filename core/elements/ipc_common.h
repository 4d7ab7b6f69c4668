// SPDX-License-Identifier: MIT OR Apache-2.0
// What parallaxsink and parallaxsrc of the dynamic pipeline share (ipc_sink.cpp, ipc_src.cpp):
// defaults taken from the GStreamer elements of the same names, the enumeration properties'
// numbers and small helpers. Private to core/elements.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "parallax/ipc.h"

namespace parallax::elements::ipc_detail {

using pipeline::Element;
using pipeline::EnumValue;
using pipeline::kPropReadable;
using pipeline::PropertySpec;
namespace link = parallax::link;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kDefaultSlotCount = 16;  // as the GStreamer sink
constexpr std::size_t kFallbackSlotSize = 4096;  // EOS before any buffer: nothing to size
constexpr std::uint64_t kDefaultMaxMemory = std::uint64_t{512} << 20;  // as the GStreamer sink
constexpr std::uint64_t kDefaultTimeoutNs = 5'000'000'000;             // parallaxsrc, as GStreamer
constexpr auto kPoll = 50ms;  // longest a streaming thread waits before re-checking stop/EOS
constexpr std::uint64_t kDefaultLingerNs = 2'000'000'000;  // parallaxsink, as GStreamer

// --- Events --------------------------------------------------------------------------------
// The pipeline's events are the transport's (parallax/event.h): the sink publishes what it
// receives and the source pushes what it reads. A caps event carries its Caps' text(), so a
// format a parallaxsrc received (casts, values our parser cannot read) is republished byte for
// byte by a parallaxsink downstream, and caps a capsfilter changed go out in canonical form.

// The enumeration properties' numbers are the core enums' values (read with prop_enum()).
constexpr std::int64_t kMemoryMemfd = 0;
constexpr std::int64_t kMemoryHugepage = 1;
constexpr std::int64_t kPolicyDefault = -1;  // parallaxsrc: the publisher's policy
// socket-mode: the number of each value is the file mode itself (set_property refuses anything
// else, so start() needs no fallback). Nicks, not integers, because pipeline integers are
// decimal: "0600" as a number would be six hundred.
constexpr std::int64_t kSocketModeOwner = 0600;
constexpr std::int64_t kSocketModeGroup = 0660;
constexpr std::int64_t kSocketModeEveryone = 0666;
static_assert(static_cast<int>(link::Policy::block) == 0);
static_assert(static_cast<int>(link::Policy::drop_oldest) == 1);
static_assert(static_cast<int>(link::Policy::drop_newest) == 2);

inline std::vector<EnumValue> policy_values() {
  return {{0, "block", "wait for the subscriber (backpressure: the slowest one paces the stream)"},
          {1, "drop-oldest", "retract the oldest buffers the subscriber has not read yet"},
          {2, "drop-newest", "skip the new buffer for that subscriber"}};
}

inline std::string seconds_text(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ns) / 1e9);
  return buf;
}

template <typename T>
std::function<std::unique_ptr<Element>()> make() {
  return [] { return std::make_unique<T>(); };
}

inline PropertySpec counter(std::string name, std::string desc) {
  return PropertySpec::uint64(std::move(name), 0, 0, UINT64_MAX, std::move(desc))
      .with_flags(kPropReadable);
}

}  // namespace parallax::elements::ipc_detail
