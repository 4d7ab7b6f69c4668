// SPDX-License-Identifier: MIT OR Apache-2.0
// The "parallaxaffinity" GstTracer (thread pinning by rules); see gstparallaxaffinity.cpp.
#pragma once

#include <gst/gst.h>
#include <gst/gsttracer.h>

G_BEGIN_DECLS

#define GST_TYPE_PARALLAX_AFFINITY_TRACER (gst_parallax_affinity_tracer_get_type())
typedef struct _GstParallaxAffinityTracer GstParallaxAffinityTracer;
typedef struct {
  GstTracerClass parent_class;
} GstParallaxAffinityTracerClass;
GType gst_parallax_affinity_tracer_get_type(void);

G_END_DECLS
