// SPDX-License-Identifier: MIT OR Apache-2.0
// Test, demo and benchmark helper: runs a gst-launch style pipeline to EOS and prints, at the
// end, the `stats` property of the elements named with --stats, the elapsed time, and for
// elements named with --probe the buffers and bytes that entered their sink pad and the rate
// between the first and the last of them (startup excluded).
// With --expect N, a pipeline whose first probe saw N buffers but has no EOS 2 s later is
// stopped and reported as "eos-hung" (shmsink waits forever at EOS for its client). With
// --stall-s S, a run whose first probe saw no new buffer for S seconds (none at all included)
// is stopped and reported as "stalled" (shmsrc stops receiving small buffers after a few
// hundred, or gets none).
// With --wake-peer, every buffer at the first probe wakes a second process asleep on a shared
// futex, the way a publisher wakes a sleeping subscriber (wire version 3: a flag the sleeper
// sets, exchanged to 0 and FUTEX_WAKE), and the peer does nothing else: "alone" plus the
// cross-process wake-up per buffer that any transport with a sleeping consumer pays, the floor
// of bench_gst.sh's 1080p row.
//   plx_gst_app [--stats NAME]... [--probe NAME]... [--expect N] [--stall-s S] [--timeout-s N]
//               [--wake-peer] 'PIPELINE'
// Exit: 0 on EOS, 1 on error, 2 on timeout.
#include <gst/gst.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "futex_handover.h"

namespace {
// --wake-peer's shared page: the sleeper's flag (1: asleep on the futex) and the buffer count.
struct WakePeer {
  std::atomic<std::uint32_t> sleeping{0};
  std::atomic<std::uint64_t> seq{0};
};
constexpr std::uint64_t kWakePeerStop = ~std::uint64_t{0};

void wake_peer(WakePeer* w, std::uint64_t seq) {
  (void)parallax::test::futex_post(w->seq, seq, w->sleeping);  // whether it slept: not counted
}

// The peer: sleeps until the count moves (the subscriber's sleep, minus everything else), until
// told to stop.
[[noreturn]] void run_wake_peer(WakePeer* w) {
  std::uint64_t seen = 0;
  for (;;) {
    parallax::test::futex_sleep_while(w->sleeping, w->seq, seen);
    seen = w->seq.load(std::memory_order_acquire);
    if (seen == kWakePeerStop) ::_exit(0);
  }
}

struct Probe {
  std::string name;
  GstPad* pad{nullptr};
  guint64 buffers{0}, bytes{0};
  gint64 first{0}, last{0};
  WakePeer* wake{nullptr};  // --wake-peer (first probe only)
};

GstPadProbeReturn count_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* p = static_cast<Probe*>(data);
  const gint64 now = g_get_monotonic_time();
  if (p->buffers == 0) p->first = now;
  p->last = now;
  ++p->buffers;
  p->bytes += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  if (p->wake != nullptr) wake_peer(p->wake, p->buffers);
  return GST_PAD_PROBE_OK;
}
void print_probes(const std::vector<std::unique_ptr<Probe>>& probes) {
  for (const auto& p : probes) {
    const double span = static_cast<double>(p->last - p->first) / 1e6;
    const double rate = span > 0 ? static_cast<double>(p->buffers - 1) / span : 0.0;
    std::printf("probe %s: buffers %" G_GUINT64_FORMAT " bytes %" G_GUINT64_FORMAT
                " span %.3f s rate %.0f buffers/s %.1f MB/s\n",
                p->name.c_str(), p->buffers, p->bytes, span, rate,
                span > 0 ? static_cast<double>(p->bytes) / span / 1e6 : 0.0);
  }
}
}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  std::vector<std::string> stats;
  std::vector<std::unique_ptr<Probe>> probes;
  int timeout_s = 60;
  guint64 expect = 0;
  int stall_s = 0;
  bool wake = false;
  std::string desc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--stats") == 0 && i + 1 < argc)
      stats.emplace_back(argv[++i]);
    else if (std::strcmp(argv[i], "--probe") == 0 && i + 1 < argc) {
      probes.push_back(std::make_unique<Probe>());
      probes.back()->name = argv[++i];
    } else if (std::strcmp(argv[i], "--expect") == 0 && i + 1 < argc) {
      expect = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--stall-s") == 0 && i + 1 < argc) {
      stall_s = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--wake-peer") == 0) {
      wake = true;
    } else if (std::strcmp(argv[i], "--timeout-s") == 0 && i + 1 < argc)
      timeout_s = std::atoi(argv[++i]);
    else
      desc = argv[i];
  }
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &error);
  if (pipeline == nullptr) {
    std::fprintf(stderr, "parse: %s\n", error ? error->message : "?");
    return 1;
  }
  for (auto& p : probes) {
    GstElement* e = gst_bin_get_by_name(GST_BIN(pipeline), p->name.c_str());
    GstPad* pad = e ? gst_element_get_static_pad(e, "sink") : nullptr;
    if (pad == nullptr) {
      std::fprintf(stderr, "no element %s with a sink pad\n", p->name.c_str());
      return 1;
    }
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, count_buffer, p.get(), nullptr);
    p->pad = pad;  // released at the end
    gst_object_unref(e);
  }
  WakePeer* peer = nullptr;
  pid_t peer_pid = -1;
  if (wake) {
    if (probes.empty()) {
      std::fprintf(stderr, "--wake-peer needs a --probe\n");
      return 1;
    }
    void* m = ::mmap(nullptr, sizeof(WakePeer), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                     -1, 0);
    if (m == MAP_FAILED) {
      std::perror("mmap");
      return 1;
    }
    peer = new (m) WakePeer;
    peer_pid = ::fork();
    if (peer_pid < 0) {
      std::perror("fork");
      return 1;
    }
    if (peer_pid == 0) run_wake_peer(peer);
    probes[0]->wake = peer;
  }
  const auto t0 = std::chrono::steady_clock::now();
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = nullptr;
  gint64 complete_at = 0;
  guint64 seen = 0;
  gint64 seen_at = g_get_monotonic_time();
  for (int waited_ms = 0; msg == nullptr && waited_ms < timeout_s * 1000; waited_ms += 100) {
    msg = gst_bus_timed_pop_filtered(
        bus, 100 * GST_MSECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    if (msg != nullptr || probes.empty()) continue;
    if (stall_s > 0) {
      const gint64 now = g_get_monotonic_time();
      if (probes[0]->buffers != seen) {
        seen = probes[0]->buffers;
        seen_at = now;
      } else if (now - seen_at > stall_s * G_USEC_PER_SEC) {
        // Report and leave without tearing down: a stalled shmsrc can block the state change
        // to NULL for good.
        std::printf("stalled: no buffer for %d s after %" G_GUINT64_FORMAT "\n", stall_s, seen);
        print_probes(probes);
        std::fflush(stdout);
        std::_Exit(2);
      }
    }
    if (expect == 0) continue;
    if (probes[0]->buffers >= expect && complete_at == 0) complete_at = g_get_monotonic_time();
    if (complete_at != 0 && g_get_monotonic_time() - complete_at > 2 * G_USEC_PER_SEC) {
      std::printf("eos-hung: all %" G_GUINT64_FORMAT " buffers passed, no EOS\n", expect);
      break;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int rc = 2;
  if (msg != nullptr && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
    rc = 0;
  } else if (msg != nullptr) {
    GError* err = nullptr;
    gchar* dbg = nullptr;
    gst_message_parse_error(msg, &err, &dbg);
    std::fprintf(stderr, "error from %s: %s (%s)\n", GST_OBJECT_NAME(msg->src), err->message,
                 dbg ? dbg : "");
    g_error_free(err);
    g_free(dbg);
    rc = 1;
  } else {
    std::fprintf(stderr, "timeout after %d s\n", timeout_s);
  }
  if (msg) gst_message_unref(msg);
  // Stats are read before NULL: the elements' counters describe the run that just ended.
  for (const auto& name : stats) {
    GstElement* e = gst_bin_get_by_name(GST_BIN(pipeline), name.c_str());
    if (e == nullptr) continue;
    GstStructure* s = nullptr;
    g_object_get(e, "stats", &s, nullptr);
    gchar* str = s ? gst_structure_to_string(s) : g_strdup("none");
    std::printf("stats %s: %s\n", name.c_str(), str);
    g_free(str);
    if (s) gst_structure_free(s);
    gst_object_unref(e);
  }
  std::printf("elapsed %.3f s\n", secs);
  print_probes(probes);
  for (const auto& p : probes) {
    GstCaps* caps = gst_pad_get_current_caps(p->pad);
    gchar* str = caps ? gst_caps_to_string(caps) : g_strdup("none");
    std::printf("caps %s: %s\n", p->name.c_str(), str);
    g_free(str);
    if (caps) gst_caps_unref(caps);
    gst_object_unref(p->pad);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  if (peer != nullptr) {
    wake_peer(peer, kWakePeerStop);
    int status = 0;
    (void)::waitpid(peer_pid, &status, 0);  // it exits at once: nothing to report
  }
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return rc;
}
