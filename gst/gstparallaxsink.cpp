// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsink: a GstBaseSink over parallax::link::IpcPublisher. The publisher's pool is offered
// upstream (GstParallaxBufferPool) so producers fill slots directly; anything else is copied
// once into a slot. Stream events travel in order with the buffers.
#include "gstparallaxsink.h"

#include <gst/video/video.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gstplacement.h"
#include "gststatsticker.h"
#include "parallax-gst/allocator.h"
#include "parallax-gst/buffer_pool.h"
#include "parallax-gst/convert.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"
#include "parallax/segment.h"

GST_DEBUG_CATEGORY_STATIC(gst_parallax_sink_debug);
#define GST_CAT_DEFAULT gst_parallax_sink_debug

namespace {

using namespace std::chrono_literals;
namespace link = parallax::link;
namespace pmem = parallax::memory;

constexpr guint64 kDefaultMaxMemory = guint64{512} << 20;
constexpr guint kDefaultMaxSubscribers = 64;
constexpr guint kDefaultSocketMode = 0600;

enum {
  PROP_0,
  PROP_SOCKET_PATH,
  PROP_SLOT_COUNT,
  PROP_SLOT_SIZE,
  PROP_MEMORY,
  PROP_WAIT_FOR_CONNECTION,
  PROP_POLICY,
  PROP_MAX_SUBSCRIBERS,
  PROP_SOCKET_MODE,
  PROP_PREFAULT,
  PROP_LINGER,
  PROP_STATS,
  PROP_AFFINITY,
  PROP_NUMA_NODE,
  PROP_PLACEMENT_BEST_EFFORT,
  PROP_MAX_MEMORY,
  PROP_STATS_INTERVAL,
};

constexpr guint64 kDefaultLinger = 2 * GST_SECOND;

struct Settings {
  std::string socket_path;
  guint slot_count{0};
  guint64 slot_size{0};
  GstParallaxMemoryBackend memory{GST_PARALLAX_MEMORY_MEMFD};
  bool wait_for_connection{true};  // like shmsink
  GstParallaxPolicy policy{GST_PARALLAX_POLICY_BLOCK};
  guint max_subscribers{kDefaultMaxSubscribers};
  guint socket_mode{kDefaultSocketMode};
  bool prefault{true};
  // Placement (docs/topology.md).
  std::string affinity;   // the thread that renders into the sink
  std::string numa_node;  // "" none, "auto", or a node
  bool placement_best_effort{false};
  guint64 linger{kDefaultLinger};
  guint64 max_memory{kDefaultMaxMemory};
  guint64 stats_interval{0};  // ns; 0 = no stats messages
};

// Everything the element owns. Lock order: mu (settings, publisher creation, pending events)
// before pub_mu (the interruptible publisher). Neither is held while blocking on the
// transport: unlock() must get through while the streaming thread waits in send().
struct State {
  std::mutex mu;
  Settings settings;
  std::optional<link::IpcPublisher> publisher;  // set once bound; only closed in stop()
  std::mutex pub_mu;                            // guards `live` (a leaf lock)
  link::IpcPublisher* live{nullptr};            // what unlock() interrupts
  GstAllocator* allocator{nullptr};             // slot allocator over the publisher's pool
  std::vector<link::Event> pending;             // events seen before the publisher was bound
  std::string format;                           // current caps string
  std::atomic<bool> unlocked{false};
  std::uint64_t sequence{0};
  // Counters (read by the stats property from any thread).
  std::atomic<std::uint64_t> buffers{0}, bytes{0}, zero_copy{0}, copied{0}, bytes_copied{0};
  std::atomic<std::uint64_t> pool_growths{0};  // pools replaced by larger ones (caps growth)
  bool copy_logged{false};
  std::optional<std::optional<unsigned>> numa;  // numa_node checked at start (inner nullopt: auto)
  bool pinned{false};                           // the rendering thread
  // stats-interval messages and peer logging (gststatsticker.h); `seen` is the tick's own.
  parallax::gst::StatsTicker ticker;
  struct Seen {
    pid_t pid;
    std::uint64_t dropped;
  };
  std::map<std::uint64_t, Seen> seen;  // by connection id
  std::uint64_t copied_seen{0};
};

}  // namespace

struct _GstParallaxSink {
  GstBaseSink parent;
  State* state;
};

G_DEFINE_TYPE(GstParallaxSink, gst_parallax_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE(parallaxsink, "parallaxsink", GST_RANK_NONE, GST_TYPE_PARALLAX_SINK)

// The policy enum's values are the core's (set_property casts one to the other).
static_assert(GST_PARALLAX_POLICY_BLOCK == static_cast<int>(parallax::link::Policy::block));
static_assert(GST_PARALLAX_POLICY_DROP_OLDEST ==
              static_cast<int>(parallax::link::Policy::drop_oldest));
static_assert(GST_PARALLAX_POLICY_DROP_NEWEST ==
              static_cast<int>(parallax::link::Policy::drop_newest));

GType gst_parallax_memory_backend_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PARALLAX_MEMORY_MEMFD, "memfd shared memory", "memfd"},
      {GST_PARALLAX_MEMORY_HUGEPAGE, "memfd with huge pages (falls back to transparent huge pages)",
       "hugepage"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstParallaxMemoryBackend", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

GType gst_parallax_policy_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PARALLAX_POLICY_BLOCK, "Wait for the subscriber (backpressure)", "block"},
      {GST_PARALLAX_POLICY_DROP_OLDEST, "Drop the oldest unread buffers", "drop-oldest"},
      {GST_PARALLAX_POLICY_DROP_NEWEST, "Skip the new buffer", "drop-newest"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstParallaxPolicy", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

namespace {

// The publisher's pool cannot hold buffers of `needed` bytes (caps grew, or a buffer larger
// than any before): the publisher replaces it with one that can (IpcPublisher::fit, within
// max-memory), and upstream gets an allocator over the new pool. The old pool is retired by the
// publisher: buffers over it stay valid until released. Called with mu held, on the streaming
// thread.
bool grow_pool(GstParallaxSink* self, std::size_t needed) {
  State& st = *self->state;
  const std::size_t have = st.publisher->pool()->slot_size();
  auto replaced = st.publisher->fit(needed);
  if (!replaced) {
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("Buffers too large for max-memory"),
                      ("buffers of %zu bytes: %s (property max-memory, or a lower slot-count)",
                       needed, replaced.error().message.c_str()));
    return false;
  }
  if (!*replaced) return true;
  if (st.allocator != nullptr) gst_object_unref(st.allocator);  // memories upstream keep theirs
  st.allocator = parallax::gst::allocator_new(st.publisher->pool());
  st.pool_growths.fetch_add(1, std::memory_order_relaxed);
  GST_INFO_OBJECT(self,
                  "buffers of %zu bytes do not fit the %zu-byte slots: new pool, the old one "
                  "is retired once its buffers are released",
                  needed, have);
  return true;
}

// Binds the publisher for buffers of `needed` bytes (0: unknown), or makes sure its pool holds
// them. Called with mu held.
bool ensure_publisher(GstParallaxSink* self, std::size_t needed) {
  State& st = *self->state;
  if (st.publisher) {
    if (needed > st.publisher->pool()->slot_size()) return grow_pool(self, needed);
    return true;
  }
  const Settings& s = st.settings;
  if (s.socket_path.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("No socket-path set"),
                      ("set the socket-path property to the Unix socket to publish on"));
    return false;
  }
  // Properties -> publisher options: the publisher makes the pool (sizing, backend, prefault),
  // grants quotas and grows the pool for more subscribers within max-memory.
  link::PublisherOptions opts;
  opts.pool_name = "parallaxsink:" + s.socket_path;
  // 0 and 0: unknown frame size, a variable-size pool (blocks of each buffer's size).
  opts.slot_size = std::max<std::size_t>(static_cast<std::size_t>(s.slot_size), needed);
  opts.slot_count = s.slot_count;  // 0: automatic
  opts.memory = s.memory == GST_PARALLAX_MEMORY_HUGEPAGE ? link::PoolMemory::hugepage
                                                         : link::PoolMemory::memfd;
  opts.prefault = s.prefault;
  opts.max_pool_bytes = s.max_memory;
  opts.max_leases_per_subscriber = 0;  // 3/4 of the slots: the rest keeps the producer going
  opts.socket_mode = s.socket_mode;
  opts.default_policy = static_cast<link::Policy>(s.policy);
  opts.max_subscribers = s.max_subscribers;
  if (st.numa) {
    opts.numa_best_effort = s.placement_best_effort;
    opts.numa_node = link::PublisherOptions::kAutoNode;  // the node of this (streaming) thread
    if (*st.numa) {
      opts.numa_node = static_cast<int>(**st.numa);
    } else if (!s.affinity.empty() && s.affinity != "auto" && s.affinity != "none") {
      // auto with an affinity: the node of the CPUs the rendering thread will be pinned to.
      auto machine = parallax::topology::Topology::process();
      if (machine) {
        if (auto cpus = (*machine)->resolve(s.affinity))
          if (auto node = (*machine)->node_of(*cpus)) opts.numa_node = static_cast<int>(*node);
      }
    }
  }
  opts.linger = 0ms;  // drained at EOS by the streaming thread (interruptible); stop() is prompt
  auto pub = link::IpcPublisher::bind(s.socket_path, std::move(opts));
  if (!pub) {
    if (pub.error().code == parallax::Errc::resource_exhausted)
      GST_ELEMENT_ERROR(
          self, RESOURCE, NO_SPACE_LEFT, ("Buffers too large for max-memory"),
          ("%s (property max-memory, or a lower slot-count)", pub.error().message.c_str()));
    else
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE,
                        ("Could not publish on socket %s", s.socket_path.c_str()),
                        ("%s", pub.error().message.c_str()));
    return false;
  }
  st.publisher.emplace(std::move(*pub));
  {
    // An unlock() that came before the publisher existed still applies to it.
    std::lock_guard pl(st.pub_mu);
    st.live = &*st.publisher;
    if (st.unlocked.load(std::memory_order_acquire)) st.live->interrupt();
  }
  st.allocator = parallax::gst::allocator_new(st.publisher->pool());
  {
    const auto pool = st.publisher->pool();
    GST_INFO_OBJECT(self, "%s pool: %zu %s of %zu bytes, max-memory %" G_GUINT64_FORMAT,
                    pool->variable_size() ? "variable-size" : "slot",
                    pool->variable_size() ? pool->segment(0).size() : pool->capacity(),
                    pool->variable_size() ? "bytes in the first segment, blocks up to" : "slots",
                    pool->slot_size(), s.max_memory);
  }
  if (st.numa) {
    const link::PublisherStats ps = st.publisher->stats();
    GST_INFO_OBJECT(self,
                    "pool on NUMA node %d: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                    " pages there (move_pages)",
                    ps.numa_node, ps.pages_on_node, ps.pages);
  }
  GST_INFO_OBJECT(self, "publishing on %s", s.socket_path.c_str());
  for (const auto& e : std::exchange(st.pending, {})) {
    // No subscriber yet (the socket just appeared): these cannot block.
    if (auto r = st.publisher->send_event(e); !r)
      GST_WARNING_OBJECT(self, "event lost: %s", r.error().message.c_str());
  }
  return true;
}

// Sends one stream event, or queues it until the publisher exists. Takes mu only to find the
// publisher: a send_event() that waits for a slow `block` subscriber must not hold it (unlock()
// and the stats property would wait behind it). The publisher lives until stop().
void send_event(GstParallaxSink* self, link::Event e) {
  State& st = *self->state;
  link::IpcPublisher* pub = nullptr;
  {
    std::lock_guard lock(st.mu);
    if (!st.publisher) {
      st.pending.push_back(std::move(e));
      return;
    }
    pub = &*st.publisher;
  }
  if (auto r = pub->send_event(e); !r) {
    if (r.error().code == parallax::Errc::cancelled)
      GST_DEBUG_OBJECT(self, "%s event queued while flushing: %s",
                       std::string(link::to_string(e.type)).c_str(), r.error().message.c_str());
    else
      GST_WARNING_OBJECT(self, "could not send %s event: %s",
                         std::string(link::to_string(e.type)).c_str(), r.error().message.c_str());
  }
}

// Drain at EOS: holds the EOS (basesink posts it, and gst-launch exits, after us) until every
// subscriber has read through the stream, or `linger` passed, or unlock() interrupted it.
void drain(GstParallaxSink* self) {
  State& st = *self->state;
  link::IpcPublisher* pub = nullptr;
  guint64 linger = 0;
  {
    std::lock_guard lock(st.mu);
    if (!st.publisher) return;
    pub = &*st.publisher;  // lives until stop(), which runs after the streaming thread left
    linger = st.settings.linger;
  }
  if (linger == 0) return;
  auto r = pub->drain(std::chrono::milliseconds(linger / GST_MSECOND));
  if (r) return;
  if (r.error().code == parallax::Errc::timeout)
    GST_ELEMENT_WARNING(self, RESOURCE, WRITE, ("Subscribers had not read the whole stream"),
                        ("%s within linger (%" GST_TIME_FORMAT "); ending anyway",
                         r.error().message.c_str(), GST_TIME_ARGS(linger)));
  else
    GST_DEBUG_OBJECT(self, "drain at EOS: %s", r.error().message.c_str());
}

unsigned long long segment_inode(const pmem::Segment* seg) {
  struct stat sb {};
  if (seg == nullptr || ::fstat(seg->fd(), &sb) != 0) return 0;
  return static_cast<unsigned long long>(sb.st_ino);
}

// Waits while the element is unlocked-for-flush (basesink's contract: wait_preroll).
// Returns GST_FLOW_OK to go on trying.
GstFlowReturn wait_if_unlocked(GstParallaxSink* self) {
  if (!self->state->unlocked.load(std::memory_order_acquire)) return GST_FLOW_OK;
  return gst_base_sink_wait_preroll(GST_BASE_SINK(self));
}

// unlock() interrupted a send() that waited for a slow subscriber: the buffer did not reach
// that subscriber (it is being flushed). Hands control back to basesink the usual way.
GstFlowReturn cancelled(GstParallaxSink* self) {
  GST_DEBUG_OBJECT(self, "send interrupted by unlock()");
  return wait_if_unlocked(self);
}

}  // namespace

static void gst_parallax_sink_set_property(GObject* object, guint id, const GValue* value,
                                           GParamSpec* pspec) {
  auto* self = GST_PARALLAX_SINK(object);
  std::lock_guard lock(self->state->mu);
  Settings& s = self->state->settings;
  switch (id) {
    case PROP_SOCKET_PATH: {
      const gchar* p = g_value_get_string(value);
      s.socket_path = p ? p : "";
      break;
    }
    case PROP_SLOT_COUNT:
      s.slot_count = g_value_get_uint(value);
      break;
    case PROP_SLOT_SIZE:
      s.slot_size = g_value_get_uint64(value);
      break;
    case PROP_MEMORY:
      s.memory = static_cast<GstParallaxMemoryBackend>(g_value_get_enum(value));
      break;
    case PROP_WAIT_FOR_CONNECTION:
      s.wait_for_connection = g_value_get_boolean(value);
      break;
    case PROP_POLICY:
      s.policy = static_cast<GstParallaxPolicy>(g_value_get_enum(value));
      break;
    case PROP_MAX_SUBSCRIBERS:
      s.max_subscribers = g_value_get_uint(value);
      break;
    case PROP_PREFAULT:
      s.prefault = g_value_get_boolean(value);
      break;
    case PROP_LINGER:
      s.linger = g_value_get_uint64(value);
      break;
    case PROP_SOCKET_MODE:
      s.socket_mode = g_value_get_uint(value);
      break;
    case PROP_AFFINITY: {
      const gchar* a = g_value_get_string(value);
      s.affinity = a ? a : "";
      break;
    }
    case PROP_NUMA_NODE: {
      const gchar* n = g_value_get_string(value);
      s.numa_node = n ? n : "";
      break;
    }
    case PROP_PLACEMENT_BEST_EFFORT:
      s.placement_best_effort = g_value_get_boolean(value);
      break;
    case PROP_STATS_INTERVAL:
      s.stats_interval = g_value_get_uint64(value);
      break;
    case PROP_MAX_MEMORY:
      s.max_memory = g_value_get_uint64(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
}

static GstStructure* make_stats(GstParallaxSink* self) {
  State& st = *self->state;
  guint subscribers = 0;
  guint64 drops = 0, connections = 0, events = 0, leases = 0;
  gint numa_node = -1;
  guint64 pages = 0, pages_on_node = 0;
  guint64 pool_bytes = 0, pool_in_use = 0, pool_high_water = 0, retired = 0;
  gboolean variable = FALSE;
  {
    std::lock_guard lock(st.mu);
    if (st.publisher) {
      const link::PublisherStats ps = st.publisher->stats();
      pool_bytes = ps.pool.bytes_capacity;
      pool_in_use = ps.pool.bytes_in_use;
      pool_high_water = ps.pool.bytes_high_water;
      variable = ps.pool.variable_size;
      retired = ps.segments_retired;
      subscribers = static_cast<guint>(ps.subscribers.size());
      for (const auto& sub : ps.subscribers) {
        drops += sub.dropped_oldest + sub.dropped_newest;
        leases += sub.leases;
      }
      connections = ps.connections;
      events = ps.events_sent;
      numa_node = ps.numa_node;
      pages = ps.pages;
      pages_on_node = ps.pages_on_node;
    }
  }
  return gst_structure_new(
      "application/x-parallax-sink-stats",  //
      "buffers", G_TYPE_UINT64, st.buffers.load(), "bytes", G_TYPE_UINT64, st.bytes.load(),
      "zero-copy", G_TYPE_UINT64, st.zero_copy.load(), "copied", G_TYPE_UINT64, st.copied.load(),
      "bytes-copied", G_TYPE_UINT64, st.bytes_copied.load(), "drops", G_TYPE_UINT64, drops,
      "subscribers", G_TYPE_UINT, subscribers, "connections", G_TYPE_UINT64, connections, "events",
      G_TYPE_UINT64, events, "leases", G_TYPE_UINT64, leases, "numa-node", G_TYPE_INT, numa_node,
      "pages", G_TYPE_UINT64, pages, "pages-on-node", G_TYPE_UINT64, pages_on_node, "pool-bytes",
      G_TYPE_UINT64, pool_bytes, "pool-bytes-in-use", G_TYPE_UINT64, pool_in_use,
      "pool-bytes-high-water", G_TYPE_UINT64, pool_high_water, "variable-size", G_TYPE_BOOLEAN,
      variable, "pool-growths", G_TYPE_UINT64, st.pool_growths.load(), "segments-retired",
      G_TYPE_UINT64, retired, nullptr);
}

static void gst_parallax_sink_get_property(GObject* object, guint id, GValue* value,
                                           GParamSpec* pspec) {
  auto* self = GST_PARALLAX_SINK(object);
  if (id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(self));
    return;
  }
  std::lock_guard lock(self->state->mu);
  const Settings& s = self->state->settings;
  switch (id) {
    case PROP_SOCKET_PATH:
      g_value_set_string(value, s.socket_path.empty() ? nullptr : s.socket_path.c_str());
      break;
    case PROP_SLOT_COUNT:
      g_value_set_uint(value, s.slot_count);
      break;
    case PROP_SLOT_SIZE:
      g_value_set_uint64(value, s.slot_size);
      break;
    case PROP_MEMORY:
      g_value_set_enum(value, s.memory);
      break;
    case PROP_WAIT_FOR_CONNECTION:
      g_value_set_boolean(value, s.wait_for_connection);
      break;
    case PROP_POLICY:
      g_value_set_enum(value, s.policy);
      break;
    case PROP_MAX_SUBSCRIBERS:
      g_value_set_uint(value, s.max_subscribers);
      break;
    case PROP_PREFAULT:
      g_value_set_boolean(value, s.prefault);
      break;
    case PROP_LINGER:
      g_value_set_uint64(value, s.linger);
      break;
    case PROP_SOCKET_MODE:
      g_value_set_uint(value, s.socket_mode);
      break;
    case PROP_AFFINITY:
      g_value_set_string(value, s.affinity.empty() ? nullptr : s.affinity.c_str());
      break;
    case PROP_NUMA_NODE:
      g_value_set_string(value, s.numa_node.empty() ? nullptr : s.numa_node.c_str());
      break;
    case PROP_PLACEMENT_BEST_EFFORT:
      g_value_set_boolean(value, s.placement_best_effort);
      break;
    case PROP_STATS_INTERVAL:
      g_value_set_uint64(value, s.stats_interval);
      break;
    case PROP_MAX_MEMORY:
      g_value_set_uint64(value, s.max_memory);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      break;
  }
}

// Peer logging, from the stats tick: subscribers that joined or left (with their pid), their
// drops, and the buffers we had to copy into the pool since the last tick.
static void watch_peers(GstParallaxSink* self) {
  State& st = *self->state;
  link::PublisherStats ps;
  {
    std::lock_guard lock(st.mu);
    if (!st.publisher) return;
    ps = st.publisher->stats();
  }
  std::map<std::uint64_t, State::Seen> now;
  for (const auto& sub : ps.subscribers) {
    const std::uint64_t dropped = sub.dropped_oldest + sub.dropped_newest;
    auto it = st.seen.find(sub.id);
    if (it == st.seen.end()) {
      GST_INFO_OBJECT(self, "subscriber %" G_GUINT64_FORMAT " connected: pid %d uid %u policy %s",
                      sub.id, static_cast<int>(sub.pid), static_cast<unsigned>(sub.uid),
                      std::string(link::to_string(sub.policy)).c_str());
    } else if (dropped > it->second.dropped) {
      GST_DEBUG_OBJECT(self,
                       "subscriber %" G_GUINT64_FORMAT " (pid %d): %" G_GUINT64_FORMAT
                       " buffers dropped (%" G_GUINT64_FORMAT " in all)",
                       sub.id, static_cast<int>(sub.pid), dropped - it->second.dropped, dropped);
    }
    now[sub.id] = State::Seen{sub.pid, dropped};
  }
  for (const auto& [id, seen] : st.seen)
    if (!now.count(id))
      GST_INFO_OBJECT(self, "subscriber %" G_GUINT64_FORMAT " (pid %d) disconnected", id,
                      static_cast<int>(seen.pid));
  st.seen = std::move(now);
  const std::uint64_t copied = st.copied.load();
  if (copied > st.copied_seen)
    GST_DEBUG_OBJECT(
        self, "%" G_GUINT64_FORMAT " buffers copied into the pool (%" G_GUINT64_FORMAT " in all)",
        copied - st.copied_seen, copied);
  st.copied_seen = copied;
}

static gboolean gst_parallax_sink_start(GstBaseSink* sink) {
  auto* self = GST_PARALLAX_SINK(sink);
  State& st = *self->state;
  std::lock_guard lock(st.mu);
  st.sequence = 0;
  st.copy_logged = false;
  st.pending.clear();
  st.format.clear();
  st.pinned = false;
  st.seen.clear();
  st.copied_seen = st.copied.load();
  if (!parallax::gst::check_affinity(GST_ELEMENT(sink), st.settings.affinity,
                                     st.settings.placement_best_effort) ||
      !parallax::gst::check_numa_node(GST_ELEMENT(sink), st.settings.numa_node,
                                      st.settings.placement_best_effort, st.numa))
    return FALSE;
  // With an explicit slot-size the socket appears at once (subscribers may connect before the
  // caps are known); otherwise it appears with the first caps, sized from them.
  if ((st.settings.slot_size != 0 || st.settings.socket_path.empty()) && !ensure_publisher(self, 0))
    return FALSE;
  if (const GstClockTime tick =
          parallax::gst::tick_period(st.settings.stats_interval, gst_parallax_sink_debug);
      tick != 0)
    st.ticker.start(
        GST_ELEMENT(sink), tick, st.settings.stats_interval != 0, "parallaxsink-stats",
        [self] { return make_stats(self); }, [self] { watch_peers(self); });
  return TRUE;
}

static gboolean gst_parallax_sink_stop(GstBaseSink* sink) {
  auto* self = GST_PARALLAX_SINK(sink);
  State& st = *self->state;
  std::optional<link::IpcPublisher> pub;
  GstAllocator* allocator = nullptr;
  st.ticker.stop();
  {
    std::lock_guard lock(st.mu);
    {
      std::lock_guard pl(st.pub_mu);
      st.live = nullptr;
    }
    pub = std::exchange(st.publisher, std::nullopt);
    allocator = std::exchange(st.allocator, nullptr);
    st.pending.clear();
  }
  if (pub) {
    const auto ps = pub->stats();
    GST_INFO_OBJECT(self,
                    "closing: %" G_GUINT64_FORMAT " buffers sent, %" G_GUINT64_FORMAT
                    " zero-copy, %" G_GUINT64_FORMAT " copied",
                    ps.buffers_sent, st.zero_copy.load(), st.copied.load());
    pub->close();  // subscribers get end-of-stream after what was sent; socket file unlinked
  }
  // Memories still held upstream keep the allocator (and the pool) alive on their own.
  if (allocator != nullptr) gst_object_unref(allocator);
  return TRUE;
}

static gboolean gst_parallax_sink_set_caps(GstBaseSink* sink, GstCaps* caps) {
  auto* self = GST_PARALLAX_SINK(sink);
  State& st = *self->state;
  const std::size_t needed = parallax::gst::buffer_size_for_caps(caps).value_or(0);
  std::string format = parallax::gst::caps_to_format(caps);
  link::IpcPublisher* pub = nullptr;
  {
    std::lock_guard lock(st.mu);
    if (!ensure_publisher(self, needed)) return FALSE;
    if (format == st.format) return TRUE;
    GST_DEBUG_OBJECT(self, "format %s", format.c_str());
    st.format = format;
    pub = &*st.publisher;  // lives until stop(); the send may wait for a subscriber: unlocked
  }
  if (auto r = pub->set_format(std::move(format)); !r) {
    // Flushing: the format stays queued (and sticky) in the transport; not an error.
    if (r.error().code == parallax::Errc::cancelled) return TRUE;
    GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Could not publish the caps"),
                      ("%s", r.error().message.c_str()));
    return FALSE;
  }
  return TRUE;
}

static gboolean gst_parallax_sink_propose_allocation(GstBaseSink* sink, GstQuery* query) {
  auto* self = GST_PARALLAX_SINK(sink);
  State& st = *self->state;
  GstCaps* caps = nullptr;
  gboolean need_pool = FALSE;
  gst_query_parse_allocation(query, &caps, &need_pool);
  if (caps == nullptr) return FALSE;
  std::optional<std::size_t> size = parallax::gst::buffer_size_for_caps(caps);
  GstAllocator* allocator = nullptr;
  std::size_t slot_size = 0;
  bool variable = false;
  {
    std::lock_guard lock(st.mu);
    if (!ensure_publisher(self, size.value_or(0))) return FALSE;
    allocator = GST_ALLOCATOR_CAST(gst_object_ref(st.allocator));
    const auto pool = st.publisher->pool();
    slot_size = pool->slot_size();
    variable = pool->variable_size();
  }
  // Without a frame size from the caps (encoded, audio with variable buffers) upstream asks
  // for what it needs up to a slot; video gets exactly the frame.
  GstVideoInfo info;
  const bool video = gst_video_info_from_caps(&info, caps);
  const guint buf_size = static_cast<guint>(video ? GST_VIDEO_INFO_SIZE(&info) : slot_size);
  // A variable-size pool without a frame size: no buffer pool (its buffers would each take the
  // largest block); upstream allocates each buffer's size from the allocator below.
  if (need_pool && (video || !variable)) {
    GstBufferPool* pool = gst_parallax_buffer_pool_new(allocator);
    GstStructure* config = gst_buffer_pool_get_config(pool);
    gst_buffer_pool_config_set_params(config, caps, buf_size, 2, 0);
    if (video) gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
    if (!gst_buffer_pool_set_config(pool, config)) {
      GST_WARNING_OBJECT(self, "could not configure the slot pool for %" GST_PTR_FORMAT, caps);
      gst_object_unref(pool);
    } else {
      gst_query_add_allocation_pool(query, pool, buf_size, 2, 0);
      gst_object_unref(pool);
    }
  }
  GstAllocationParams params;
  gst_allocation_params_init(&params);
  gst_query_add_allocation_param(query, allocator, &params);
  gst_object_unref(allocator);
  gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
  return TRUE;
}

static gboolean gst_parallax_sink_event(GstBaseSink* sink, GstEvent* event) {
  auto* self = GST_PARALLAX_SINK(sink);
  // Caps reach the publisher through set_caps(); every other event that has a Parallax form
  // (parallax::gst::event_from_gst) is published in order with the buffers.
  if (GST_EVENT_TYPE(event) != GST_EVENT_CAPS) {
    if (auto out = parallax::gst::event_from_gst(event)) send_event(self, std::move(*out));
  }
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) drain(self);
  return GST_BASE_SINK_CLASS(gst_parallax_sink_parent_class)->event(sink, event);
}

// Pins the thread that renders into the sink, once (streaming thread, mu not held: an element
// error goes to the bus). `auto`: the CPUs of the node the pool was placed on.
static bool pin_rendering_thread(GstParallaxSink* self, link::IpcPublisher& pub) {
  State& st = *self->state;
  st.pinned = true;
  std::string affinity;
  bool best_effort = false;
  {
    std::lock_guard lock(st.mu);
    affinity = st.settings.affinity;
    best_effort = st.settings.placement_best_effort;
  }
  const int node = pub.stats().numa_node;
  return parallax::gst::pin_streaming_thread(
      GST_ELEMENT(self), affinity,
      node >= 0 ? std::optional<unsigned>(static_cast<unsigned>(node)) : std::nullopt, best_effort);
}

static GstFlowReturn gst_parallax_sink_render(GstBaseSink* sink, GstBuffer* buf) {
  auto* self = GST_PARALLAX_SINK(sink);
  State& st = *self->state;
  link::IpcPublisher* pub = nullptr;
  GstAllocator* allocator = nullptr;
  bool wait_for_connection = false;
  {
    std::lock_guard lock(st.mu);
    // No caps came first (nothing sized the pool): a variable-size pool unless slot-size is set.
    if (!st.publisher && !ensure_publisher(self, 0)) return GST_FLOW_ERROR;
    // The publisher lives until stop(), which basesink runs after the streaming thread left
    // render(): using it unlocked here is safe.
    pub = &*st.publisher;
    allocator = st.allocator;
    wait_for_connection = st.settings.wait_for_connection;
  }
  if (!st.pinned && !pin_rendering_thread(self, *pub)) return GST_FLOW_ERROR;

  // Woken by a subscriber joining or by unlock() (the publisher's interrupt()).
  while (wait_for_connection && pub->subscriber_count() == 0) {
    if (auto r = pub->wait_for_subscribers(1, 1s); r) break;
    if (GstFlowReturn ret = wait_if_unlocked(self); ret != GST_FLOW_OK) return ret;
  }

  const gsize size = gst_buffer_get_size(buf);
  parallax::Metadata meta;
  parallax::gst::metadata_from_gst(buf, st.sequence++, meta);

  if (auto b = parallax::gst::to_parallax_zero_copy(buf, allocator, meta)) {
    if (auto r = pub->send(*b); !r) {
      if (r.error().code == parallax::Errc::cancelled) return cancelled(self);
      GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not send a buffer"),
                        ("%s", r.error().message.c_str()));
      return GST_FLOW_ERROR;
    }
    // Large frames: send() took back the leases consumers returned since the last frame
    // (PublisherOptions::eager_return_bytes), so the next acquire reuses the slot written two
    // frames ago (still in the cache) instead of cycling through the whole pool.
    // Where the bytes are, for zero-copy checks (fstat only runs when LOG is enabled).
    GST_LOG_OBJECT(self, "buffer #%" G_GUINT64_FORMAT " zero-copy: segment inode %llu offset %zu",
                   meta.sequence, segment_inode(b->segment()), b->segment_offset());
    st.zero_copy.fetch_add(1, std::memory_order_relaxed);
  } else {
    if (size > pub->pool()->slot_size()) {
      // Larger than anything the pool can hold: a larger pool (within max-memory) or an error.
      std::lock_guard lock(st.mu);
      if (!ensure_publisher(self, size)) return GST_FLOW_ERROR;
    }
    if (!st.copy_logged) {
      st.copy_logged = true;
      GST_INFO_OBJECT(self,
                      "upstream buffers are not from the proposed pool: copying each "
                      "once into a slot (%" G_GSIZE_FORMAT " bytes)",
                      size);
    }
    // The publisher loans a slot (waiting while subscribers hold them all), we copy into it, it
    // sends. unlock() interrupts the wait; basesink's flush contract (wait_preroll) decides
    // whether to wait again (after a pause) or give up (flushing).
    GstFlowReturn ret = GST_FLOW_OK;
    auto r = pub->send_copy(
        size,
        [buf](std::span<std::byte> dst) { gst_buffer_extract(buf, 0, dst.data(), dst.size()); },
        meta,
        [&] {
          ret = wait_if_unlocked(self);
          return ret == GST_FLOW_OK;
        });
    if (!r) {
      if (ret != GST_FLOW_OK) return ret;
      if (r.error().code == parallax::Errc::cancelled) return cancelled(self);
      GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not send a buffer"),
                        ("buffer of %" G_GSIZE_FORMAT " bytes: %s (property max-memory)", size,
                         r.error().message.c_str()));
      return GST_FLOW_ERROR;
    }
    st.copied.fetch_add(1, std::memory_order_relaxed);
    st.bytes_copied.fetch_add(size, std::memory_order_relaxed);
  }
  st.buffers.fetch_add(1, std::memory_order_relaxed);
  st.bytes.fetch_add(size, std::memory_order_relaxed);
  return GST_FLOW_OK;
}

// Frees the streaming thread wherever it waits: the slot loop and wait-for-connection poll
// `unlocked`; a send() or send_event() blocked on a subscriber that stopped reading returns
// `cancelled` through the publisher's interrupt().
static gboolean gst_parallax_sink_unlock(GstBaseSink* sink) {
  State& st = *GST_PARALLAX_SINK(sink)->state;
  st.unlocked.store(true, std::memory_order_release);
  std::lock_guard pl(st.pub_mu);
  if (st.live != nullptr) st.live->interrupt();
  return TRUE;
}

static gboolean gst_parallax_sink_unlock_stop(GstBaseSink* sink) {
  State& st = *GST_PARALLAX_SINK(sink)->state;
  st.unlocked.store(false, std::memory_order_release);
  std::lock_guard pl(st.pub_mu);
  if (st.live != nullptr) st.live->resume();
  return TRUE;
}

static void gst_parallax_sink_finalize(GObject* object) {
  auto* self = GST_PARALLAX_SINK(object);
  if (self->state->allocator != nullptr) gst_object_unref(self->state->allocator);
  delete std::exchange(self->state, nullptr);
  G_OBJECT_CLASS(gst_parallax_sink_parent_class)->finalize(object);
}

static void gst_parallax_sink_init(GstParallaxSink* self) {
  self->state = new State;
  // A shared-memory hop is not a presentation device: no clock sync by default (like shmsink).
  gst_base_sink_set_sync(GST_BASE_SINK(self), FALSE);
}

static void gst_parallax_sink_class_init(GstParallaxSinkClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);
  auto* sink_class = GST_BASE_SINK_CLASS(klass);

  gobject_class->set_property = GST_DEBUG_FUNCPTR(gst_parallax_sink_set_property);
  gobject_class->get_property = GST_DEBUG_FUNCPTR(gst_parallax_sink_get_property);
  gobject_class->finalize = GST_DEBUG_FUNCPTR(gst_parallax_sink_finalize);

  sink_class->start = GST_DEBUG_FUNCPTR(gst_parallax_sink_start);
  sink_class->stop = GST_DEBUG_FUNCPTR(gst_parallax_sink_stop);
  sink_class->set_caps = GST_DEBUG_FUNCPTR(gst_parallax_sink_set_caps);
  sink_class->propose_allocation = GST_DEBUG_FUNCPTR(gst_parallax_sink_propose_allocation);
  sink_class->event = GST_DEBUG_FUNCPTR(gst_parallax_sink_event);
  sink_class->render = GST_DEBUG_FUNCPTR(gst_parallax_sink_render);
  sink_class->unlock = GST_DEBUG_FUNCPTR(gst_parallax_sink_unlock);
  sink_class->unlock_stop = GST_DEBUG_FUNCPTR(gst_parallax_sink_unlock_stop);

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                           GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_SOCKET_PATH,
      g_param_spec_string("socket-path", "Socket path",
                          "Unix socket to publish on (created when the element starts; a stale "
                          "socket file is replaced, a live one is an error)",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_SLOT_COUNT,
      g_param_spec_uint("slot-count", "Slot count",
                        "Number of shared-memory slots (0 = automatic: as many as fit in "
                        "16 MiB, at least 6, at most 256)",
                        0, 4096, 0, rw));
  g_object_class_install_property(
      gobject_class, PROP_SLOT_SIZE,
      g_param_spec_uint64("slot-size", "Slot size",
                          "Bytes per slot (0 = automatic: the frame size of raw video, 200 ms "
                          "of raw audio, a variable-size pool otherwise; the socket then "
                          "appears with the first caps). Caps or buffers that need more get a "
                          "larger pool (within max-memory)",
                          0, G_MAXUINT32, 0, rw));
  g_object_class_install_property(
      gobject_class, PROP_MEMORY,
      g_param_spec_enum("memory", "Memory", "Shared memory backend of the slots",
                        gst_parallax_memory_backend_get_type(), GST_PARALLAX_MEMORY_MEMFD, rw));
  g_object_class_install_property(
      gobject_class, PROP_WAIT_FOR_CONNECTION,
      g_param_spec_boolean("wait-for-connection", "Wait for connection",
                           "Hold the stream (each buffer, and EOS) until at least one subscriber "
                           "is connected, like shmsink (false: buffers nobody reads are gone)",
                           TRUE, rw));
  g_object_class_install_property(
      gobject_class, PROP_LINGER,
      g_param_spec_uint64("linger", "Linger",
                          "At EOS, how long (ns) to wait until every subscriber has read "
                          "through the stream before the EOS goes on (0 = do not wait; "
                          "flushing or stopping cuts it short)",
                          0, G_MAXUINT64, kDefaultLinger, rw));
  g_object_class_install_property(
      gobject_class, PROP_POLICY,
      g_param_spec_enum("policy", "Policy",
                        "What to do for a subscriber that falls behind, unless it asked for a "
                        "policy of its own (applies to new subscribers)",
                        gst_parallax_policy_get_type(), GST_PARALLAX_POLICY_BLOCK, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_SUBSCRIBERS,
      g_param_spec_uint("max-subscribers", "Max subscribers",
                        "Most subscribers connected at once (more are refused)", 1, 1024,
                        kDefaultMaxSubscribers, rw));
  g_object_class_install_property(
      gobject_class, PROP_SOCKET_MODE,
      g_param_spec_uint("socket-mode", "Socket mode",
                        "File mode of the socket (octal 0600 = owner only; peers are also "
                        "checked by uid)",
                        0, 0777, kDefaultSocketMode, rw));
  g_object_class_install_property(
      gobject_class, PROP_PREFAULT,
      g_param_spec_boolean("prefault", "Prefault",
                           "Commit every page of the slots when the pool is created, so no page "
                           "fault lands in the streaming path and memory that cannot be backed "
                           "is an error at start, not a crash later",
                           TRUE, rw));
  g_object_class_install_property(
      gobject_class, PROP_AFFINITY,
      g_param_spec_string("affinity", "Affinity",
                          "CPUs for the streaming thread that renders into the sink: '0-3,8', "
                          "'numa:1', 'core:2-3', 'l3:0', 'pu:4', or 'auto' (the CPUs of "
                          "numa-node). Not applicable = element error (docs/topology.md)",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_NUMA_NODE,
      g_param_spec_string("numa-node", "NUMA node",
                          "Bind the pool's memory to this NUMA node (then prefault and verify; "
                          "see stats), or 'auto': the node of the producing thread's CPUs. "
                          "Announced to subscribers (their affinity=auto follows it)",
                          nullptr, rw));
  g_object_class_install_property(
      gobject_class, PROP_PLACEMENT_BEST_EFFORT,
      g_param_spec_boolean("placement-best-effort", "Placement best effort",
                           "An affinity or numa-node that cannot be applied is a warning, not "
                           "an error",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_MAX_MEMORY,
      g_param_spec_uint64(
          "max-memory", "Max memory",
          "Most bytes of shared memory one pool may take: slots (slot-count x slot-size) for "
          "raw caps, the variable-size pool of encoded/byte streams. Caps or buffers that need "
          "more fail with an error naming this property",
          4096, G_MAXUINT64, kDefaultMaxMemory, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS_INTERVAL,
      g_param_spec_uint64("stats-interval", "Stats interval",
                          "Post the stats as an element message named parallaxsink-stats every "
                          "this many nanoseconds (like level's interval; 0 = off)",
                          0, G_MAXUINT64, 0, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "Counters: buffers, bytes, zero-copy and copied buffers, bytes-copied, "
                         "drops, subscribers, connections, events, leases; numa-node (-1 "
                         "none), pages and pages-on-node (where the pool's pages were after "
                         "placement); pool-bytes, pool-bytes-in-use, pool-bytes-high-water, "
                         "variable-size, pool-growths, segments-retired",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(
      element_class, "Parallax shared-memory sink", "Sink/Network",
      "Publishes buffers to other processes through Parallax shared memory with no payload copy "
      "(upstream writes into the offered pool) and forwards caps and stream events",
      "Parallax developers");
  gst_type_mark_as_plugin_api(gst_parallax_memory_backend_get_type(),
                              static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(gst_parallax_policy_get_type(), static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_parallax_sink_debug, "parallaxsink", 0, "Parallax sink");
}
