// SPDX-License-Identifier: MIT OR Apache-2.0
// The "parallax" GStreamer plugin: registers parallaxsink, parallaxsrc and the parallaxaffinity
// tracer, and routes the core's log into the "parallax" debug category.
#include <gst/gst.h>

#include <string>

#include "gstparallaxaffinity.h"
#include "gstparallaxsink.h"
#include "gstparallaxsrc.h"
#include "parallax/log.h"

GST_DEBUG_CATEGORY_STATIC(parallax_core_debug);

namespace {

void log_to_gst(parallax::log::Level level, std::string_view component, std::string_view message) {
  GstDebugLevel gl = GST_LEVEL_DEBUG;
  switch (level) {
    case parallax::log::Level::error:
      gl = GST_LEVEL_ERROR;
      break;
    case parallax::log::Level::warn:
      gl = GST_LEVEL_WARNING;
      break;
    case parallax::log::Level::info:
      gl = GST_LEVEL_INFO;
      break;
    case parallax::log::Level::debug:
      gl = GST_LEVEL_DEBUG;
      break;
    case parallax::log::Level::trace:
      gl = GST_LEVEL_TRACE;
      break;
  }
  if (gl > gst_debug_category_get_threshold(parallax_core_debug)) return;
  gst_debug_log(parallax_core_debug, gl, "core", std::string(component).c_str(), 0, nullptr, "%.*s",
                static_cast<int>(message.size()), message.data());
}

// The core formats only messages at or below its own level: open it up to what the GStreamer
// category will print (never lower it below PARALLAX_LOG).
void sync_core_level() {
  using parallax::log::Level;
  const GstDebugLevel gl = gst_debug_category_get_threshold(parallax_core_debug);
  Level l = Level::error;
  if (gl >= GST_LEVEL_TRACE)
    l = Level::trace;
  else if (gl >= GST_LEVEL_DEBUG)
    l = Level::debug;
  else if (gl >= GST_LEVEL_INFO)
    l = Level::info;
  else if (gl >= GST_LEVEL_WARNING)
    l = Level::warn;
  if (static_cast<int>(l) > static_cast<int>(parallax::log::level())) parallax::log::set_level(l);
}

}  // namespace

static gboolean plugin_init(GstPlugin* plugin) {
  GST_DEBUG_CATEGORY_INIT(parallax_core_debug, "parallax", 0, "Parallax core (transport, memory)");
  parallax::log::set_sink(&log_to_gst);
  sync_core_level();
  gboolean ok = GST_ELEMENT_REGISTER(parallaxsink, plugin);
  ok &= GST_ELEMENT_REGISTER(parallaxsrc, plugin);
  ok &= gst_tracer_register(plugin, "parallaxaffinity", GST_TYPE_PARALLAX_AFFINITY_TRACER);
  return ok;
}

// Metadata. The sources are "MIT OR Apache-2.0" (SPDX headers); GStreamer accepts only its own
// list of license names (gst_plugin_desc's valid_licenses), where the MIT half of the choice is
// "MIT/X11" (Apache-2.0 is not on the list, and an unlisted name blacklists the plugin).
// PACKAGE is the project (meson project() name), origin where it comes from.
#define PACKAGE "parallax"
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, parallax,
                  "Zero-copy shared-memory transport between processes (Parallax)", plugin_init,
                  PARALLAX_VERSION, "MIT/X11", "Parallax", PARALLAX_ORIGIN)
