// SPDX-License-Identifier: MIT OR Apache-2.0
// Benchmark helper: a producer that writes into the pool the downstream sink proposes, the way
// a zero-copy producer (camera, decoder) does. The application asks the sink for its
// GstBufferPool with an allocation query, acquires every buffer from it and pushes it into the
// sink from its own thread (GstHarness: no queue or thread hop in between, like a source's
// streaming thread; payload untouched unless --touch). Prints the sink's `stats` and, like
// plx_gst_app, the buffers and rate entering the sink's pad (first to last buffer).
//   plx_gst_pool_src --size BYTES --buffers N [--touch] 'SINK ELEMENT DESCRIPTION'
// The caps are GRAY8 video of BYTES (width 64..4096, height = BYTES / width).
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Probe {
  guint64 buffers{0}, bytes{0};
  gint64 first{0}, last{0};
};

GstPadProbeReturn count_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* p = static_cast<Probe*>(data);
  const gint64 now = g_get_monotonic_time();
  if (p->buffers == 0) p->first = now;
  p->last = now;
  ++p->buffers;
  p->bytes += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  return GST_PAD_PROBE_OK;
}

int fail(const char* what) {
  std::fprintf(stderr, "plx_gst_pool_src: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  std::size_t size = 4096;
  guint64 n = 10000;
  bool touch = false;
  std::string sink_desc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--size") == 0 && i + 1 < argc)
      size = std::strtoull(argv[++i], nullptr, 10);
    else if (std::strcmp(argv[i], "--buffers") == 0 && i + 1 < argc)
      n = std::strtoull(argv[++i], nullptr, 10);
    else if (std::strcmp(argv[i], "--touch") == 0)
      touch = true;
    else
      sink_desc = argv[i];
  }
  guint width = 64;
  while (width < 4096 && size / width > width)
    width *= 2;
  if (size % width != 0) return fail("--size must be a multiple of a power of two >= 64");
  const guint height = static_cast<guint>(size / width);
  gchar* caps_str =
      g_strdup_printf("video/x-raw,format=GRAY8,width=%u,height=%u,framerate=0/1", width, height);
  GstCaps* caps = gst_caps_from_string(caps_str);
  g_free(caps_str);

  GError* error = nullptr;
  GstElement* sink = gst_parse_launch(sink_desc.c_str(), &error);
  if (sink == nullptr) return fail(error ? error->message : "parse");
  GstHarness* h = gst_harness_new_with_element(sink, "sink", nullptr);
  Probe probe;
  GstPad* sinkpad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_buffer, &probe, nullptr);
  gst_harness_play(h);
  gst_harness_set_src_caps(h, gst_caps_ref(caps));

  // What a pool-aware producer does: ask downstream for its pool.
  GstQuery* query = gst_query_new_allocation(caps, TRUE);
  GstPad* srcpad = h->srcpad;
  GstBufferPool* pool = nullptr;
  guint pool_size = 0, min = 0, max = 0;
  if (!gst_pad_peer_query(srcpad, query) || gst_query_get_n_allocation_pools(query) == 0)
    return fail("the sink proposed no pool");
  gst_query_parse_nth_allocation_pool(query, 0, &pool, &pool_size, &min, &max);
  GstStructure* config = gst_buffer_pool_get_config(pool);
  gst_buffer_pool_config_set_params(config, caps, pool_size, min, max);
  gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config(pool, config) || !gst_buffer_pool_set_active(pool, TRUE))
    return fail("could not activate the proposed pool");
  std::printf("pool %s, buffers of %u bytes\n", G_OBJECT_TYPE_NAME(pool), pool_size);

  const gint64 t0 = g_get_monotonic_time();
  for (guint64 i = 0; i < n; ++i) {
    GstBuffer* buf = nullptr;
    if (gst_buffer_pool_acquire_buffer(pool, &buf, nullptr) != GST_FLOW_OK)
      return fail("acquire_buffer");
    if (touch) {
      GstMapInfo map;
      if (gst_buffer_map(buf, &map, GST_MAP_WRITE)) {
        std::memset(map.data, static_cast<int>(i & 0xff), map.size);
        gst_buffer_unmap(buf, &map);
      }
    }
    GST_BUFFER_PTS(buf) = i * GST_MSECOND;
    GST_BUFFER_DURATION(buf) = GST_MSECOND;
    if (gst_harness_push(h, buf) != GST_FLOW_OK) return fail("push");
  }
  const int rc = gst_harness_push_event(h, gst_event_new_eos()) ? 0 : 1;
  const double elapsed = static_cast<double>(g_get_monotonic_time() - t0) / 1e6;

  GstStructure* stats = nullptr;
  g_object_get(sink, "stats", &stats, nullptr);
  gchar* s = stats ? gst_structure_to_string(stats) : g_strdup("none");
  std::printf("stats s: %s\n", s);
  g_free(s);
  if (stats) gst_structure_free(stats);
  const double span = static_cast<double>(probe.last - probe.first) / 1e6;
  std::printf("elapsed %.3f s\n", elapsed);
  std::printf("probe s: buffers %" G_GUINT64_FORMAT " bytes %" G_GUINT64_FORMAT
              " span %.3f s rate %.0f buffers/s %.1f MB/s\n",
              probe.buffers, probe.bytes, span,
              span > 0 ? static_cast<double>(probe.buffers - 1) / span : 0.0,
              span > 0 ? static_cast<double>(probe.bytes) / span / 1e6 : 0.0);

  gst_buffer_pool_set_active(pool, FALSE);
  gst_object_unref(pool);
  gst_query_unref(query);
  gst_object_unref(sinkpad);
  gst_harness_teardown(h);  // unrefs the sink
  gst_caps_unref(caps);
  return rc;
}
