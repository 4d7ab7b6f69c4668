// SPDX-License-Identifier: MIT OR Apache-2.0
// A tiny leveled logger for the core (which must not depend on GLib). Level from the
// PARALLAX_LOG environment variable (error, warn, info, debug, trace; default warn) or set_level().
#pragma once

#include <cstdarg>
#include <functional>
#include <string_view>

namespace parallax::log {

enum class Level : int { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

/// Current threshold; messages above it are not formatted.
[[nodiscard]] Level level() noexcept;
void set_level(Level l) noexcept;
[[nodiscard]] inline bool enabled(Level l) noexcept {
  return static_cast<int>(l) <= static_cast<int>(level());
}

/// Replaces the sink (default: stderr "parallax[component] LEVEL: msg"). The GStreamer plugin
/// routes core logs into its debug category this way. Pass nullptr to restore the default.
using Sink = void (*)(Level, std::string_view component, std::string_view message);
void set_sink(Sink sink) noexcept;

/// printf-style logging.
void write(Level l, const char* component, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace parallax::log

#define PLX_LOG(lvl, comp, ...)                                               \
  do {                                                                        \
    if (::parallax::log::enabled(::parallax::log::Level::lvl))                \
      ::parallax::log::write(::parallax::log::Level::lvl, comp, __VA_ARGS__); \
  } while (0)
