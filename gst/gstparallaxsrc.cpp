// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsrc: a GstPushSrc over parallax::link::IpcSubscriber. Every output buffer is one
// READONLY memory holding the received parallax Buffer (GstFdMemory of the publisher's memfd,
// from a GstParallaxFdAllocator): freeing the last GstBuffer that references it returns the
// lease to the publisher, whenever that happens.
#include "gstparallaxsrc.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "gstplacement.h"
#include "gststatsticker.h"
#include "parallax-gst/allocator.h"
#include "parallax-gst/convert.h"
#include "parallax/ipc.h"
#include "parallax/sched.h"

GST_DEBUG_CATEGORY_STATIC(gst_parallax_src_debug);
#define GST_CAT_DEFAULT gst_parallax_src_debug

namespace {

using namespace std::chrono_literals;
namespace link = parallax::link;
using Clock = std::chrono::steady_clock;

constexpr guint64 kDefaultTimeout = 5 * GST_SECOND;

enum {
  PROP_0,
  PROP_SOCKET_PATH,
  PROP_IS_LIVE,
  PROP_TIMEOUT,
  PROP_BUSY_POLL,
  PROP_COPY_THRESHOLD,
  PROP_POLICY,
  PROP_STATS,
  PROP_AFFINITY,
  PROP_PLACEMENT_BEST_EFFORT,
  PROP_STATS_INTERVAL,
  PROP_SCHED_SLICE,
};

// What this subscriber asks the publisher to do when it falls behind (as the native element).
// The other values are link::Policy's (connect_publisher casts).
constexpr gint kPolicyDefault = -1;
static_assert(static_cast<int>(link::Policy::block) == 0);
static_assert(static_cast<int>(link::Policy::drop_oldest) == 1);
static_assert(static_cast<int>(link::Policy::drop_newest) == 2);

GType src_policy_get_type() {
  static GType type = 0;
  static const GEnumValue values[] = {
      {kPolicyDefault, "The publisher's policy", "default"},
      {0, "The publisher waits for us (backpressure)", "block"},
      {1, "The publisher retracts what we did not read", "drop-oldest"},
      {2, "The publisher skips buffers for us", "drop-newest"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstParallaxSrcPolicy", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

constexpr gint kDefaultCopyThreshold = -1;  // half the publisher's quota

struct State {
  // One locking scheme: mu guards the settings, `unlocked`, the subscriber pointer swap, `caps`
  // and the stats snapshot. The streaming thread is the only one that replaces `sub` and
  // `caps` (always under mu) and the only one that calls into the subscriber besides
  // interrupt()/resume() (IpcSubscriber is a one-consumer-thread object: its stats() must not
  // race recv_item()), so it may read them without mu. Everybody else (get_caps, the stats
  // property, unlock) takes mu. The streaming thread never holds mu while blocked in recv
  // (unlock() takes it to interrupt the recv), nor while calling into GStreamer.
  std::mutex mu;
  std::condition_variable cv;
  std::string socket_path;
  bool is_live{false};
  guint64 timeout{kDefaultTimeout};
  bool busy_poll{false};
  gint copy_threshold{kDefaultCopyThreshold};
  gint policy{kPolicyDefault};
  bool unlocked{false};
  std::unique_ptr<link::IpcSubscriber> sub;
  GstAllocator* allocator{nullptr};  // GstParallaxFdAllocator, lives with the element
  GstCaps* caps{nullptr};            // current caps (written by the streaming thread under mu)
  // The subscriber's stats as of the streaming thread's last receive (or connect/drop): what
  // the stats property reports, so it never calls into the subscriber from another thread.
  link::SubscriberStats sub_stats;
  bool sub_connected{false};
  bool ever_connected{false};
  bool copy_logged{false};  // the first copy past copy-threshold is logged (streaming thread)
  // Counters for the stats property.
  std::atomic<std::uint64_t> buffers{0}, bytes{0}, events{0}, caps_changes{0}, reconnects{0};
  std::atomic<std::uint64_t> dropped_before{0};  // drops of previous connections
  // Placement (docs/topology.md): the streaming thread is pinned once, in create().
  std::string affinity;
  bool placement_best_effort{false};
  bool pinned{false};    // streaming thread
  guint sched_slice{0};  // us, 0 = leave the streaming thread's slice alone
  bool sliced{false};    // streaming thread: sched_slice applied
  std::atomic<std::uint64_t> copied_before{0}, bytes_copied_before{0};
  // stats-interval messages and peer logging (gststatsticker.h); the *_seen are the tick's.
  guint64 stats_interval{0};  // ns, 0 = off (mu)
  parallax::gst::StatsTicker ticker;
  pid_t publisher_seen{0};
  std::uint64_t dropped_seen{0}, copied_seen{0};
};

}  // namespace

struct _GstParallaxSrc {
  GstPushSrc parent;
  State* state;
};

G_DEFINE_TYPE(GstParallaxSrc, gst_parallax_src, GST_TYPE_PUSH_SRC)
GST_ELEMENT_REGISTER_DEFINE(parallaxsrc, "parallaxsrc", GST_RANK_NONE, GST_TYPE_PARALLAX_SRC)

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

namespace {

// Connects, retrying every 10 ms until `timeout` (0: forever) or unlock(). Returns
// GST_FLOW_OK with st.sub set, GST_FLOW_FLUSHING when unlocked, GST_FLOW_ERROR after posting.
GstFlowReturn connect_publisher(GstParallaxSrc* self, bool reconnect) {
  State& st = *self->state;
  std::string path;
  guint64 timeout;
  link::SubscriberOptions options;
  {
    std::lock_guard lock(st.mu);
    path = st.socket_path;
    timeout = st.timeout;
    options.busy_poll = st.busy_poll;
    if (st.policy != kPolicyDefault) options.policy = static_cast<link::Policy>(st.policy);
    options.copy_threshold = st.copy_threshold < 0 ? link::SubscriberOptions::kCopyThresholdAuto
                                                   : static_cast<std::uint32_t>(st.copy_threshold);
  }
  if (path.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No socket-path set"),
                      ("set socket-path to the Unix socket of a parallaxsink or IpcPublisher"));
    return GST_FLOW_ERROR;
  }
  const auto deadline = Clock::now() + std::chrono::nanoseconds(timeout);
  parallax::Error last{};
  for (;;) {
    auto r = link::IpcSubscriber::connect(path, options);
    std::unique_lock lock(st.mu);
    if (st.unlocked) return GST_FLOW_FLUSHING;
    if (r) {
      st.sub = std::make_unique<link::IpcSubscriber>(std::move(*r));
      st.sub_stats = st.sub->stats();
      st.sub_connected = st.sub->connected();
      st.ever_connected = true;
      GST_INFO_OBJECT(self, "%s %s: publisher pid %d",
                      reconnect ? "reconnected to" : "connected to", path.c_str(),
                      static_cast<int>(st.sub->stats().publisher_pid));
      return GST_FLOW_OK;
    }
    last = r.error();
    if (r.error().code == parallax::Errc::permission_denied) break;  // retrying will not help
    if (timeout != 0 && Clock::now() >= deadline) break;
    st.cv.wait_for(lock, 10ms, [&] { return st.unlocked; });
    if (st.unlocked) return GST_FLOW_FLUSHING;
  }
  if (reconnect) {
    GST_ELEMENT_ERROR(self, RESOURCE, READ, ("The publisher at %s went away", path.c_str()),
                      ("no publisher came back within %" GST_TIME_FORMAT ": %s",
                       GST_TIME_ARGS(timeout), last.message.c_str()));
  } else {
    GST_ELEMENT_ERROR(
        self, RESOURCE, OPEN_READ, ("Could not connect to a publisher at %s", path.c_str()),
        ("waited %" GST_TIME_FORMAT ": %s", GST_TIME_ARGS(timeout), last.message.c_str()));
  }
  return GST_FLOW_ERROR;
}

// Drops the subscriber (its received Buffers stay valid on their own).
// Streaming thread (or stop(), once it has stopped).
void drop_subscriber(State& st) {
  std::unique_ptr<link::IpcSubscriber> old;
  {
    std::lock_guard lock(st.mu);
    old = std::move(st.sub);
    if (old) {
      // In the same critical section as the swap: a stats reader sees either the old
      // connection's counters or their sum in *_before, never neither.
      const link::SubscriberStats ss = old->stats();
      st.dropped_before += ss.dropped;
      st.copied_before += ss.copies;
      st.bytes_copied_before += ss.bytes_copied;
      st.sub_stats = {};
      st.sub_connected = false;
    }
  }
  if (old) old->close();
}

// Streaming thread, after each receive: the snapshot the stats property reads.
void refresh_stats(State& st) {
  link::SubscriberStats ss = st.sub->stats();
  const bool connected = st.sub->connected();
  std::lock_guard lock(st.mu);
  st.sub_stats = ss;
  st.sub_connected = connected;
}

// Applies one received event. Returns GST_FLOW_OK to go on reading.
// A live or re-timestamping source keeps its own running time: it does not take the
// publisher's segments and sends its own instead.
bool keeps_own_time(GstBaseSrc* base) {
  return gst_base_src_is_live(base) || gst_base_src_get_do_timestamp(base);
}

GstFlowReturn handle_event(GstParallaxSrc* self, const link::Event& e) {
  State& st = *self->state;
  st.events.fetch_add(1, std::memory_order_relaxed);
  GstBaseSrc* base = GST_BASE_SRC(self);
  switch (e.type) {
    case link::EventType::caps: {
      const std::string text = e.caps.text();  // the publisher's string, unchanged
      GstCaps* caps = parallax::gst::caps_from_format(text);
      if (caps == nullptr) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("The publisher sent unparsable caps"),
                          ("format \"%s\"", text.c_str()));
        return GST_FLOW_ERROR;
      }
      if (st.caps != nullptr && gst_caps_is_equal(st.caps, caps)) {
        gst_caps_unref(caps);
        return GST_FLOW_OK;
      }
      GST_INFO_OBJECT(self, "caps %" GST_PTR_FORMAT, caps);
      if (st.caps != nullptr) st.caps_changes.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard lock(st.mu);
        gst_caps_replace(&st.caps, caps);
      }
      const gboolean ok = gst_base_src_set_caps(base, caps);
      gst_caps_unref(caps);
      if (!ok) {
        GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("Downstream refused the publisher's caps"),
                          ("caps %s", text.c_str()));
        return GST_FLOW_NOT_NEGOTIATED;
      }
      return GST_FLOW_OK;
    }
    case link::EventType::segment: {
      if (keeps_own_time(base)) return GST_FLOW_OK;
      if (e.segment.format != link::SegmentFormat::time) return GST_FLOW_OK;
      GstSegment seg;
      parallax::gst::segment_to_gst(e.segment, seg);
      // base and offset are the producer pipeline's running-time bookkeeping, not ours.
      seg.base = 0;
      seg.offset = 0;
      if (!gst_base_src_new_segment(base, &seg))
        GST_WARNING_OBJECT(self, "could not apply the publisher's segment");
      return GST_FLOW_OK;
    }
    case link::EventType::eos:
      return GST_FLOW_EOS;
    case link::EventType::flush_start:
      gst_pad_push_event(GST_BASE_SRC_PAD(base), gst_event_new_flush_start());
      return GST_FLOW_OK;
    case link::EventType::flush_stop: {
      gst_pad_push_event(GST_BASE_SRC_PAD(base), gst_event_new_flush_stop(e.reset_time));
      // flush-stop clears the pad's sticky segment. A non-live source gets the publisher's
      // next segment (above); a live or re-timestamping one, which keeps its own time, sends
      // its own again so no buffer goes downstream without a segment.
      if (keeps_own_time(base)) {
        GstSegment seg;
        GST_OBJECT_LOCK(base);
        gst_segment_copy_into(&base->segment, &seg);
        GST_OBJECT_UNLOCK(base);
        if (!gst_base_src_new_segment(base, &seg))
          GST_WARNING_OBJECT(self, "could not resend the segment after a flush");
      }
      return GST_FLOW_OK;
    }
    case link::EventType::custom:
      if (GstEvent* ev = parallax::gst::event_to_gst(e)) {
        gst_pad_push_event(GST_BASE_SRC_PAD(base), ev);
      } else {
        GST_DEBUG_OBJECT(self, "ignoring custom event %s", e.name.c_str());
      }
      return GST_FLOW_OK;
    case link::EventType::stream_start:
      // basesrc sends its own stream-start; the publisher's id is logged for correlation.
      GST_DEBUG_OBJECT(self, "publisher stream %s", e.stream_id.c_str());
      return GST_FLOW_OK;
  }
  return GST_FLOW_OK;
}

}  // namespace

// Pins the streaming thread once the first buffer is here: `auto` needs the node the publisher
// announced for its memory (the segment came before the buffer).
static bool pin_thread(GstParallaxSrc* self) {
  State& st = *self->state;
  st.pinned = true;
  std::string affinity;
  bool best_effort = false;
  std::optional<unsigned> node;
  {
    std::lock_guard lock(st.mu);
    affinity = st.affinity;
    best_effort = st.placement_best_effort;
  }
  if (const int n = st.sub->stats().memory_node; n >= 0) node = static_cast<unsigned>(n);
  return parallax::gst::pin_streaming_thread(GST_ELEMENT(self), affinity, node, best_effort);
}

static GstFlowReturn gst_parallax_src_create(GstPushSrc* src, GstBuffer** out) {
  auto* self = GST_PARALLAX_SRC(src);
  State& st = *self->state;
  if (!st.sliced) {  // before the first wait, so the first wake-up preempts too
    st.sliced = true;
    guint slice = 0;
    bool best_effort = false;
    {
      std::lock_guard lock(st.mu);
      slice = st.sched_slice;
      best_effort = st.placement_best_effort;
    }
    if (!parallax::gst::set_streaming_thread_slice(GST_ELEMENT(self), slice, best_effort))
      return GST_FLOW_ERROR;
  }
  for (;;) {
    if (!st.sub) {
      const bool reconnect = st.ever_connected;
      if (GstFlowReturn r = connect_publisher(self, reconnect); r != GST_FLOW_OK) return r;
      if (reconnect) st.reconnects.fetch_add(1, std::memory_order_relaxed);
    }
    auto item = st.sub->recv_item();
    refresh_stats(st);
    if (!item) {
      const parallax::Error& e = item.error();
      if (e.code == parallax::Errc::cancelled) return GST_FLOW_FLUSHING;
      if (e.code == parallax::Errc::unavailable) {
        GST_WARNING_OBJECT(self, "publisher vanished (%s): reconnecting", e.message.c_str());
        drop_subscriber(st);
        continue;
      }
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Could not read from the publisher"),
                        ("%s", e.message.c_str()));
      return GST_FLOW_ERROR;
    }
    if (!item->has_value()) return GST_FLOW_EOS;  // the publisher closed cleanly
    if (auto* ev = std::get_if<link::Event>(&**item)) {
      if (GstFlowReturn r = handle_event(self, *ev); r != GST_FLOW_OK) return r;
      continue;
    }
    auto& buffer = std::get<parallax::memory::Buffer>(**item);
    if (!st.pinned && !pin_thread(self)) return GST_FLOW_ERROR;
    if (st.caps == nullptr) {
      // A native publisher that never set a format: bytes are bytes.
      GstCaps* caps = gst_caps_new_empty_simple("application/octet-stream");
      {
        std::lock_guard lock(st.mu);
        gst_caps_replace(&st.caps, caps);
      }
      gst_base_src_set_caps(GST_BASE_SRC(self), caps);
      gst_caps_unref(caps);
    }
    const std::size_t size = buffer.size();
    if (buffer.segment() == nullptr && !st.copy_logged) {
      // The subscriber copied it (lease pressure): say so once, with the reason.
      st.copy_logged = true;
      const link::SubscriberStats ss = st.sub->stats();
      GST_INFO_OBJECT(self,
                      "downstream holds %u of the publisher's %u leases: copying payloads past "
                      "copy-threshold %u so the producer never stalls (stats: copied)",
                      ss.leases, ss.quota, ss.copy_threshold);
    }
    GstBuffer* buf = parallax::gst::to_gst(st.allocator, std::move(buffer));
    if (buf == nullptr) {
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Could not wrap a received buffer"), (nullptr));
      return GST_FLOW_ERROR;
    }
    st.buffers.fetch_add(1, std::memory_order_relaxed);
    st.bytes.fetch_add(size, std::memory_order_relaxed);
    *out = buf;
    return GST_FLOW_OK;
  }
}

static GstCaps* gst_parallax_src_get_caps(GstBaseSrc* src, GstCaps* filter) {
  auto* self = GST_PARALLAX_SRC(src);
  GstCaps* caps = nullptr;
  {
    std::lock_guard lock(self->state->mu);
    if (self->state->caps != nullptr) caps = gst_caps_ref(self->state->caps);
  }
  if (caps == nullptr) caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(src));
  if (filter != nullptr) {
    GstCaps* tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = tmp;
  }
  return caps;
}

static GstStructure* make_stats(GstParallaxSrc* self);

// Peer logging, from the stats tick: the publisher (pid) we connected to or lost, and the
// buffers dropped (drop-oldest) or copied (past copy-threshold) since the last tick.
static void watch_peer(GstParallaxSrc* self) {
  State& st = *self->state;
  link::SubscriberStats ss;
  {
    std::lock_guard lock(st.mu);
    if (st.sub) ss = st.sub->stats_snapshot();
  }
  if (ss.publisher_pid != st.publisher_seen) {
    if (st.publisher_seen != 0)
      GST_INFO_OBJECT(self, "disconnected from publisher pid %d",
                      static_cast<int>(st.publisher_seen));
    if (ss.publisher_pid != 0)
      GST_INFO_OBJECT(self, "connected to publisher pid %d (quota %u, copy-threshold %u)",
                      static_cast<int>(ss.publisher_pid), ss.quota, ss.copy_threshold);
    st.publisher_seen = ss.publisher_pid;
  }
  const std::uint64_t dropped = st.dropped_before.load() + ss.dropped;
  const std::uint64_t copied = st.copied_before.load() + ss.copies;
  if (dropped > st.dropped_seen)
    GST_DEBUG_OBJECT(self,
                     "publisher pid %d dropped %" G_GUINT64_FORMAT
                     " buffers for us (%" G_GUINT64_FORMAT " in all)",
                     static_cast<int>(ss.publisher_pid), dropped - st.dropped_seen, dropped);
  if (copied > st.copied_seen)
    GST_DEBUG_OBJECT(self,
                     "%" G_GUINT64_FORMAT
                     " buffers of publisher pid %d copied past "
                     "copy-threshold (%" G_GUINT64_FORMAT " in all)",
                     copied - st.copied_seen, static_cast<int>(ss.publisher_pid), copied);
  st.dropped_seen = dropped;
  st.copied_seen = copied;
}

static gboolean gst_parallax_src_start(GstBaseSrc* src) {
  auto* self = GST_PARALLAX_SRC(src);
  State& st = *self->state;
  std::lock_guard lock(st.mu);
  st.unlocked = false;
  st.ever_connected = false;
  st.pinned = false;
  st.sliced = false;
  st.copy_logged = false;
  gst_base_src_set_live(src, st.is_live);
  if (!parallax::gst::check_affinity(GST_ELEMENT(src), st.affinity, st.placement_best_effort))
    return FALSE;
  if (!parallax::gst::check_sched_slice(GST_ELEMENT(src), st.sched_slice)) return FALSE;
  st.publisher_seen = 0;
  st.dropped_seen = st.dropped_before.load();
  st.copied_seen = st.copied_before.load();
  if (const GstClockTime tick =
          parallax::gst::tick_period(st.stats_interval, gst_parallax_src_debug);
      tick != 0)
    st.ticker.start(
        GST_ELEMENT(src), tick, st.stats_interval != 0, "parallaxsrc-stats",
        [self] { return make_stats(self); }, [self] { watch_peer(self); });
  return TRUE;
}

static gboolean gst_parallax_src_stop(GstBaseSrc* src) {
  auto* self = GST_PARALLAX_SRC(src);
  State& st = *self->state;
  st.ticker.stop();
  drop_subscriber(st);
  std::lock_guard lock(st.mu);
  gst_caps_replace(&st.caps, nullptr);
  return TRUE;
}

static gboolean gst_parallax_src_unlock(GstBaseSrc* src) {
  State& st = *GST_PARALLAX_SRC(src)->state;
  std::lock_guard lock(st.mu);
  st.unlocked = true;
  if (st.sub) st.sub->interrupt();
  st.cv.notify_all();
  return TRUE;
}

static gboolean gst_parallax_src_unlock_stop(GstBaseSrc* src) {
  State& st = *GST_PARALLAX_SRC(src)->state;
  std::lock_guard lock(st.mu);
  st.unlocked = false;
  if (st.sub) st.sub->resume();
  return TRUE;
}

static GstStructure* make_stats(GstParallaxSrc* self) {
  State& st = *self->state;
  parallax::link::SubscriberStats ss;
  bool connected = false;
  std::uint64_t dropped_before = 0, copied_before = 0, bytes_copied_before = 0;
  {
    std::lock_guard lock(st.mu);
    ss = st.sub_stats;
    connected = st.sub_connected;
    dropped_before = st.dropped_before;
    copied_before = st.copied_before;
    bytes_copied_before = st.bytes_copied_before;
  }
  GstStructure* s = gst_structure_new(
      "application/x-parallax-src-stats",  //
      "buffers", G_TYPE_UINT64, st.buffers.load(), "bytes", G_TYPE_UINT64, st.bytes.load(),
      "events", G_TYPE_UINT64, st.events.load(), "dropped", G_TYPE_UINT64,
      dropped_before + ss.dropped, "caps-changes", G_TYPE_UINT64, st.caps_changes.load(),
      "reconnects", G_TYPE_UINT64, st.reconnects.load(), "leases", G_TYPE_UINT,
      static_cast<guint>(ss.leases), "connected", G_TYPE_BOOLEAN, connected, "publisher-pid",
      G_TYPE_INT, static_cast<gint>(ss.publisher_pid), "copied", G_TYPE_UINT64,
      copied_before + ss.copies, "bytes-copied", G_TYPE_UINT64,
      bytes_copied_before + ss.bytes_copied, "quota", G_TYPE_UINT, static_cast<guint>(ss.quota),
      "copy-threshold", G_TYPE_UINT, static_cast<guint>(ss.copy_threshold), "memory-node",
      G_TYPE_INT, ss.memory_node, nullptr);
  // Transit latency (publisher's ring write -> our receive, ns; log2 bucket upper bounds) of
  // the current connection; 0 before the first buffer. docs/observability.md.
  gst_structure_set(s, "latency-count", G_TYPE_UINT64, ss.latency_count, "latency-p50",
                    G_TYPE_UINT64, ss.latency_p50_ns, "latency-p99", G_TYPE_UINT64,
                    ss.latency_p99_ns, "latency-max", G_TYPE_UINT64, ss.latency_max_ns, nullptr);
  return s;
}

static void gst_parallax_src_set_property(GObject* object, guint id, const GValue* value,
                                          GParamSpec* pspec) {
  auto* self = GST_PARALLAX_SRC(object);
  State& st = *self->state;
  std::lock_guard lock(st.mu);
  switch (id) {
    case PROP_SOCKET_PATH: {
      const gchar* p = g_value_get_string(value);
      st.socket_path = p ? p : "";
      break;
    }
    case PROP_IS_LIVE:
      st.is_live = g_value_get_boolean(value);
      break;
    case PROP_BUSY_POLL:
      st.busy_poll = g_value_get_boolean(value);
      break;
    case PROP_TIMEOUT:
      st.timeout = g_value_get_uint64(value);
      break;
    case PROP_AFFINITY: {
      const gchar* a = g_value_get_string(value);
      st.affinity = a ? a : "";
      break;
    }
    case PROP_PLACEMENT_BEST_EFFORT:
      st.placement_best_effort = g_value_get_boolean(value);
      break;
    case PROP_COPY_THRESHOLD:
      st.copy_threshold = g_value_get_int(value);
      break;
    case PROP_POLICY:
      st.policy = g_value_get_enum(value);
      break;
    case PROP_STATS_INTERVAL:
      st.stats_interval = g_value_get_uint64(value);
      break;
    case PROP_SCHED_SLICE:
      st.sched_slice = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
}

static void gst_parallax_src_get_property(GObject* object, guint id, GValue* value,
                                          GParamSpec* pspec) {
  auto* self = GST_PARALLAX_SRC(object);
  if (id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(self));
    return;
  }
  State& st = *self->state;
  std::lock_guard lock(st.mu);
  switch (id) {
    case PROP_SOCKET_PATH:
      g_value_set_string(value, st.socket_path.empty() ? nullptr : st.socket_path.c_str());
      break;
    case PROP_IS_LIVE:
      g_value_set_boolean(value, st.is_live);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint64(value, st.timeout);
      break;
    case PROP_BUSY_POLL:
      g_value_set_boolean(value, st.busy_poll);
      break;
    case PROP_AFFINITY:
      g_value_set_string(value, st.affinity.empty() ? nullptr : st.affinity.c_str());
      break;
    case PROP_PLACEMENT_BEST_EFFORT:
      g_value_set_boolean(value, st.placement_best_effort);
      break;
    case PROP_COPY_THRESHOLD:
      g_value_set_int(value, st.copy_threshold);
      break;
    case PROP_POLICY:
      g_value_set_enum(value, st.policy);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint64(value, st.stats_interval);
      break;
    case PROP_SCHED_SLICE:
      g_value_set_uint(value, st.sched_slice);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
}

static void gst_parallax_src_finalize(GObject* object) {
  auto* self = GST_PARALLAX_SRC(object);
  State* st = std::exchange(self->state, nullptr);
  gst_caps_replace(&st->caps, nullptr);
  // Buffers still alive downstream hold their own reference on the allocator.
  if (st->allocator != nullptr) gst_object_unref(st->allocator);
  delete st;
  G_OBJECT_CLASS(gst_parallax_src_parent_class)->finalize(object);
}

static void gst_parallax_src_init(GstParallaxSrc* self) {
  self->state = new State;
  self->state->allocator = parallax::gst::allocator_new_readonly();
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_parallax_src_class_init(GstParallaxSrcClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);
  auto* basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto* pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  gobject_class->set_property = GST_DEBUG_FUNCPTR(gst_parallax_src_set_property);
  gobject_class->get_property = GST_DEBUG_FUNCPTR(gst_parallax_src_get_property);
  gobject_class->finalize = GST_DEBUG_FUNCPTR(gst_parallax_src_finalize);
  basesrc_class->start = GST_DEBUG_FUNCPTR(gst_parallax_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR(gst_parallax_src_stop);
  basesrc_class->get_caps = GST_DEBUG_FUNCPTR(gst_parallax_src_get_caps);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR(gst_parallax_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_parallax_src_unlock_stop);
  pushsrc_class->create = GST_DEBUG_FUNCPTR(gst_parallax_src_create);

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                           GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_SOCKET_PATH,
      g_param_spec_string("socket-path", "Socket path",
                          "Unix socket of the publisher (a parallaxsink or a native "
                          "IpcPublisher) to read from",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_IS_LIVE,
      g_param_spec_boolean("is-live", "Is live",
                           "Act as a live source (no preroll, downstream syncs to arrival; "
                           "combine with do-timestamp=true for late joins of live streams)",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_TIMEOUT,
      g_param_spec_uint64("timeout", "Timeout",
                          "How long (ns) to wait for a publisher to appear, or to come back "
                          "after it vanished, before posting an error (0 = wait forever)",
                          0, G_MAXUINT64, kDefaultTimeout, rw));
  g_object_class_install_property(
      gobject_class, PROP_BUSY_POLL,
      g_param_spec_boolean("busy-poll", "Busy poll",
                           "Spin on the shared ring while waiting for the next buffer instead of "
                           "sleeping: about 1 us instead of ~12 us from send to receive, and the "
                           "producer never pays for a wake-up, at the price of one busy core",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_AFFINITY,
      g_param_spec_string("affinity", "Affinity",
                          "CPUs for the streaming thread: '0-3,8', 'numa:1', 'core:2-3', 'l3:0', "
                          "'pu:4', or 'auto' (the CPUs of the NUMA node the publisher announced "
                          "for its memory). Not applicable = element error (docs/topology.md)",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_PLACEMENT_BEST_EFFORT,
      g_param_spec_boolean("placement-best-effort", "Placement best effort",
                           "An affinity or sched-slice that cannot be applied is a warning, not "
                           "an error",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_SCHED_SLICE,
      g_param_spec_uint("sched-slice", "Scheduler time slice",
                        "EEVDF time slice for the streaming thread, in microseconds (100-100000, "
                        "Linux 6.12 or later): a short one (100) lets a buffer's wake-up "
                        "preempt the task running on this thread's CPU instead of waiting for "
                        "its slice to end, for a lower latency when the consumer sleeps. "
                        "0 = leave the thread alone (docs/topology.md)",
                        0, static_cast<guint>(parallax::sched::kMaxSlice.count()), 0, rw));
  g_object_class_install_property(
      gobject_class, PROP_COPY_THRESHOLD,
      g_param_spec_int("copy-threshold", "Copy threshold",
                       "Leases held (buffers downstream keeps) past which received payloads are "
                       "copied into local memory and the lease returned at once, so a "
                       "downstream that keeps buffers (encoders, aggregators, queues) never "
                       "stalls the publisher (-1 = half the publisher's quota, 0 = never copy)",
                       -1, 4096, kDefaultCopyThreshold, rw));
  g_object_class_install_property(
      gobject_class, PROP_POLICY,
      g_param_spec_enum("policy", "Policy",
                        "What the publisher should do when we fall behind (default: the "
                        "publisher's own policy)",
                        src_policy_get_type(), kPolicyDefault, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS_INTERVAL,
      g_param_spec_uint64("stats-interval", "Stats interval",
                          "Post the stats as an element message named parallaxsrc-stats every "
                          "this many nanoseconds (like level's interval; 0 = off)",
                          0, G_MAXUINT64, 0,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "Counters: buffers, bytes, events, dropped (by the publisher's "
                         "drop-oldest policy), caps-changes, reconnects, leases held now, "
                         "connected, publisher-pid, copied and bytes-copied (past "
                         "copy-threshold), quota, copy-threshold (effective), memory-node "
                         "(announced by the publisher, -1 unknown)",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Parallax shared-memory source", "Source/Network",
      "Receives buffers from a Parallax publisher as read-only shared memory (no payload copy), "
      "with the publisher's caps (no caps filter needed) and stream events",
      "Parallax developers");
  gst_type_mark_as_plugin_api(src_policy_get_type(), static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_parallax_src_debug, "parallaxsrc", 0, "Parallax source");
}
