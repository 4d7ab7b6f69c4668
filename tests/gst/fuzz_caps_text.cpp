// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target for the caps text a peer sends in a caps event: parallaxsrc turns it into
// GstCaps with parallax::gst::caps_from_format (bridge/convert.cpp), which must refuse what
// gst_caps_from_string() would assert on (a CRITICAL is fatal here) and never crash. Caps it
// accepts are printed back and parsed again, as the element does when it compares caps.
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_glib_lsan.h"
#include "parallax-gst/convert.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("GST_REGISTRY_DISABLE", "yes", 1);
  gst_init(nullptr, nullptr);
  g_log_set_always_fatal(static_cast<GLogLevelFlags>(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  GstCaps* caps = parallax::gst::caps_from_format(text);
  if (caps == nullptr) return 0;
  const std::string again = parallax::gst::caps_to_format(caps);
  GstCaps* caps2 = parallax::gst::caps_from_format(again);
  if (caps2 != nullptr) gst_caps_unref(caps2);
  gst_caps_unref(caps);
  return 0;
}
