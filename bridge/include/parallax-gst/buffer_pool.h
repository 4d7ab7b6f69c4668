// SPDX-License-Identifier: MIT OR Apache-2.0
// GstParallaxBufferPool: a GstBufferPool whose buffers are Parallax slots, offered upstream by
// parallaxsink so producers write straight into shared memory.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_PARALLAX_BUFFER_POOL (gst_parallax_buffer_pool_get_type())
G_DECLARE_FINAL_TYPE(GstParallaxBufferPool, gst_parallax_buffer_pool, GST, PARALLAX_BUFFER_POOL,
                     GstBufferPool)

/// A pool over `allocator` (a slot allocator from parallax::gst::allocator_new). Buffers are
/// GstBuffer shells recycled by GStreamer; their slot is renewed on acquire whenever the
/// previous one was sent (subscribers may still read it), so a slot is never written while
/// anyone else can see it. Supports GST_BUFFER_POOL_OPTION_VIDEO_META.
GstBufferPool* gst_parallax_buffer_pool_new(GstAllocator* allocator);

G_END_DECLS
