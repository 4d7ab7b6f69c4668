// SPDX-License-Identifier: MIT OR Apache-2.0
// GstParallaxBufferPool: GstBuffer shells recycled by GstBufferPool, each holding one
// GstParallaxMemory that is re-armed with a fresh slot on acquire once its slot was shared.
#include "parallax-gst/buffer_pool.h"

#include <gst/video/video.h>

#include <atomic>
#include <utility>

#include "parallax-gst/allocator.h"

GST_DEBUG_CATEGORY_STATIC(gst_parallax_buffer_pool_debug);
#define GST_CAT_DEFAULT gst_parallax_buffer_pool_debug

namespace {
struct PoolState {
  GstAllocator* allocator{nullptr};
  gsize size{0};
  bool video{false};
  bool add_video_meta{false};
  GstVideoInfo info{};
  std::atomic<bool> flushing{false};
};
}  // namespace

struct _GstParallaxBufferPool {
  GstBufferPool parent;
  PoolState* state;
};

G_DEFINE_TYPE(GstParallaxBufferPool, gst_parallax_buffer_pool, GST_TYPE_BUFFER_POOL)

static const gchar** gst_parallax_buffer_pool_get_options(GstBufferPool*) {
  static const gchar* options[] = {GST_BUFFER_POOL_OPTION_VIDEO_META, nullptr};
  return options;
}

static gboolean gst_parallax_buffer_pool_set_config(GstBufferPool* pool, GstStructure* config) {
  PoolState* st = GST_PARALLAX_BUFFER_POOL(pool)->state;
  GstCaps* caps = nullptr;
  guint size = 0, min = 0, max = 0;
  if (!gst_buffer_pool_config_get_params(config, &caps, &size, &min, &max)) return FALSE;
  const auto* slots = parallax::gst::allocator_pool(st->allocator);
  if (slots == nullptr) return FALSE;
  const gsize slot_size = (*slots)->slot_size();
  st->video = false;
  if (caps != nullptr && gst_video_info_from_caps(&st->info, caps)) {
    st->video = true;
    size = std::max<guint>(size, GST_VIDEO_INFO_SIZE(&st->info));
  }
  if (size == 0 || size > slot_size) {
    GST_WARNING_OBJECT(pool, "buffers of %u bytes do not fit slots of %" G_GSIZE_FORMAT " bytes",
                       size, slot_size);
    return FALSE;
  }
  st->size = size;
  st->add_video_meta =
      st->video && gst_buffer_pool_config_has_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  // Slots, not GstBuffers, are the real limit: any number of shells may wait for a slot.
  gst_buffer_pool_config_set_params(config, caps, size, min, 0);
  gst_buffer_pool_config_set_allocator(config, st->allocator, nullptr);
  return GST_BUFFER_POOL_CLASS(gst_parallax_buffer_pool_parent_class)->set_config(pool, config);
}

static GstFlowReturn gst_parallax_buffer_pool_alloc_buffer(GstBufferPool* pool, GstBuffer** out,
                                                           GstBufferPoolAcquireParams*) {
  PoolState* st = GST_PARALLAX_BUFFER_POOL(pool)->state;
  const auto* slots = parallax::gst::allocator_pool(st->allocator);
  if (slots == nullptr) return GST_FLOW_ERROR;
  // The memory starts without a slot (preallocating min buffers must not wait for slots);
  // acquire_buffer arms it.
  GstMemory* mem = parallax::gst::memory_new_unarmed(st->allocator, st->size);
  if (mem == nullptr) return GST_FLOW_ERROR;
  GstBuffer* buf = gst_buffer_new();
  gst_buffer_append_memory(buf, mem);
  if (st->add_video_meta) {
    gst_buffer_add_video_meta_full(
        buf, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(&st->info),
        GST_VIDEO_INFO_WIDTH(&st->info), GST_VIDEO_INFO_HEIGHT(&st->info),
        GST_VIDEO_INFO_N_PLANES(&st->info), st->info.offset, st->info.stride);
  }
  *out = buf;
  return GST_FLOW_OK;
}

static bool pool_cancelled(void* data) {
  return static_cast<PoolState*>(data)->flushing.load(std::memory_order_acquire);
}

static GstFlowReturn gst_parallax_buffer_pool_acquire_buffer(GstBufferPool* pool, GstBuffer** out,
                                                             GstBufferPoolAcquireParams* params) {
  PoolState* st = GST_PARALLAX_BUFFER_POOL(pool)->state;
  GstFlowReturn ret = GST_BUFFER_POOL_CLASS(gst_parallax_buffer_pool_parent_class)
                          ->acquire_buffer(pool, out, params);
  if (ret != GST_FLOW_OK) return ret;
  GstMemory* mem = gst_buffer_peek_memory(*out, 0);
  // A slot that was sent may still be read by subscribers: take a fresh one (waiting for one
  // is the backpressure of the transport). Flushing the pool wakes us up.
  if (!parallax::gst::memory_arm(mem, pool_cancelled, st)) {
    // Not handed out yet (the public acquire sets buffer->pool only on success): give the
    // shell back to the queue directly.
    GST_BUFFER_POOL_CLASS(gst_parallax_buffer_pool_parent_class)->release_buffer(pool, *out);
    *out = nullptr;
    return GST_FLOW_FLUSHING;
  }
  return GST_FLOW_OK;
}

static void gst_parallax_buffer_pool_flush_start(GstBufferPool* pool) {
  GST_PARALLAX_BUFFER_POOL(pool)->state->flushing.store(true, std::memory_order_release);
}

static void gst_parallax_buffer_pool_flush_stop(GstBufferPool* pool) {
  GST_PARALLAX_BUFFER_POOL(pool)->state->flushing.store(false, std::memory_order_release);
}

static void gst_parallax_buffer_pool_finalize(GObject* object) {
  auto* self = GST_PARALLAX_BUFFER_POOL(object);
  if (self->state->allocator != nullptr) gst_object_unref(self->state->allocator);
  delete std::exchange(self->state, nullptr);
  G_OBJECT_CLASS(gst_parallax_buffer_pool_parent_class)->finalize(object);
}

static void gst_parallax_buffer_pool_class_init(GstParallaxBufferPoolClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* pool_class = GST_BUFFER_POOL_CLASS(klass);
  gobject_class->finalize = gst_parallax_buffer_pool_finalize;
  pool_class->get_options = gst_parallax_buffer_pool_get_options;
  pool_class->set_config = gst_parallax_buffer_pool_set_config;
  pool_class->alloc_buffer = gst_parallax_buffer_pool_alloc_buffer;
  pool_class->acquire_buffer = gst_parallax_buffer_pool_acquire_buffer;
  pool_class->flush_start = gst_parallax_buffer_pool_flush_start;
  pool_class->flush_stop = gst_parallax_buffer_pool_flush_stop;
  GST_DEBUG_CATEGORY_INIT(gst_parallax_buffer_pool_debug, "parallaxpool", 0,
                          "Parallax buffer pool");
}

static void gst_parallax_buffer_pool_init(GstParallaxBufferPool* self) {
  self->state = new PoolState;
}

GstBufferPool* gst_parallax_buffer_pool_new(GstAllocator* allocator) {
  auto* pool =
      static_cast<GstParallaxBufferPool*>(g_object_new(GST_TYPE_PARALLAX_BUFFER_POOL, nullptr));
  gst_object_ref_sink(pool);
  pool->state->allocator = GST_ALLOCATOR_CAST(gst_object_ref(allocator));
  return GST_BUFFER_POOL_CAST(pool);
}
