// SPDX-License-Identifier: MIT OR Apache-2.0
// Implementation of the core logger: level from PARALLAX_LOG, pluggable sink.
#include "parallax/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace parallax::log {
namespace {

Level initial_level() {
  const char* env = std::getenv("PARALLAX_LOG");
  if (env == nullptr) return Level::warn;
  std::string_view v(env);
  if (v == "error") return Level::error;
  if (v == "info") return Level::info;
  if (v == "debug") return Level::debug;
  if (v == "trace") return Level::trace;
  return Level::warn;
}

std::atomic<int>& level_ref() {
  static std::atomic<int> l{static_cast<int>(initial_level())};
  return l;
}
std::atomic<Sink> g_sink{nullptr};

const char* name(Level l) {
  switch (l) {
    case Level::error:
      return "ERROR";
    case Level::warn:
      return "WARN";
    case Level::info:
      return "INFO";
    case Level::debug:
      return "DEBUG";
    case Level::trace:
      return "TRACE";
  }
  return "?";
}

}  // namespace

Level level() noexcept {
  return static_cast<Level>(level_ref().load(std::memory_order_relaxed));
}
void set_level(Level l) noexcept {
  level_ref().store(static_cast<int>(l), std::memory_order_relaxed);
}
void set_sink(Sink s) noexcept {
  g_sink.store(s);
}

void write(Level l, const char* component, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (Sink s = g_sink.load()) {
    s(l, component, buf);
    return;
  }
  std::fprintf(stderr, "parallax[%s] %s: %s\n", component, name(l), buf);
}

}  // namespace parallax::log
