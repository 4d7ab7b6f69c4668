// SPDX-License-Identifier: MIT OR Apache-2.0
// libFuzzer target for the caps text a peer sends in a caps event: parallaxsrc turns it into
// GstCaps with parallax::gst::caps_from_format (bridge/convert.cpp), which must never crash,
// read out of bounds or leak. Caps it accepts are printed back and parsed again, as the
// element does when it compares caps.
// CRITICALs are not fatal here: GStreamer 1.22's caps parser logs some on its own for text it
// then refuses (gst_buffer_unmap on a (buffer) value that failed to deserialize, found by this
// target), which are its bugs and harmless without G_DEBUG=fatal-criticals (the caps are
// refused, parallaxsrc stops with an element error). The one CRITICAL our check prevents (a
// structure name that does not start with a letter) is pinned by the unit test
// Bridge.HostileCapsTextIsRefusedWithoutCriticals.
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#define PLX_FUZZ_CRITICALS_FATAL 0
#include "fuzz_gst.h"
#include "parallax-gst/convert.h"

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
