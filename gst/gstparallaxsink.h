// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsink: publishes a GStreamer stream on a Parallax socket (IpcPublisher), zero-copy when
// upstream writes into the slots it proposes.
#pragma once

#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_PARALLAX_SINK (gst_parallax_sink_get_type())
G_DECLARE_FINAL_TYPE(GstParallaxSink, gst_parallax_sink, GST, PARALLAX_SINK, GstBaseSink)

/// Which Parallax segment backend holds the slots.
typedef enum {
  GST_PARALLAX_MEMORY_MEMFD = 0,
  GST_PARALLAX_MEMORY_HUGEPAGE = 1,
} GstParallaxMemoryBackend;

/// What the publisher does for a subscriber that falls behind (parallax::link::Policy values).
typedef enum {
  GST_PARALLAX_POLICY_BLOCK = 0,
  GST_PARALLAX_POLICY_DROP_OLDEST = 1,
  GST_PARALLAX_POLICY_DROP_NEWEST = 2,
} GstParallaxPolicy;

GType gst_parallax_memory_backend_get_type(void);
GType gst_parallax_policy_get_type(void);

GST_ELEMENT_REGISTER_DECLARE(parallaxsink);

G_END_DECLS
