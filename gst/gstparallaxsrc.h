// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsrc: receives a stream from a Parallax publisher (IpcSubscriber) as read-only
// GstMemory over the shared slots, with the publisher's caps and events.
#pragma once

#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS

#define GST_TYPE_PARALLAX_SRC (gst_parallax_src_get_type())
G_DECLARE_FINAL_TYPE(GstParallaxSrc, gst_parallax_src, GST, PARALLAX_SRC, GstPushSrc)

GST_ELEMENT_REGISTER_DECLARE(parallaxsrc);

G_END_DECLS
