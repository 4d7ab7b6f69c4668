// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsink and parallaxsrc for the dynamic pipeline: the same Parallax IPC protocol
// (parallax::link) as the GStreamer elements of the same names, with the same property names,
// so native and GStreamer pipelines feed each other through one Unix socket with no payload copy.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"
#include "parallax/log.h"
#include "parallax/segment.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;
namespace link = parallax::link;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kDefaultSlotCount = 16;  // as the GStreamer sink
constexpr std::size_t kFallbackSlotSize = 4096;  // EOS before any buffer: nothing to size
constexpr std::uint64_t kDefaultMaxMemory = std::uint64_t{512} << 20;  // as the GStreamer sink
constexpr std::uint64_t kDefaultTimeoutNs = 5'000'000'000;             // parallaxsrc, as GStreamer
constexpr auto kPoll = 50ms;  // longest a streaming thread waits before re-checking stop/EOS
constexpr std::uint64_t kDefaultLingerNs = 2'000'000'000;  // parallaxsink, as GStreamer

// --- Events --------------------------------------------------------------------------------
// The pipeline's events are the transport's (parallax/event.h): the sink publishes what it
// receives and the source pushes what it reads. A caps event carries its Caps' text(), so a
// format a parallaxsrc received (casts, values our parser cannot read) is republished byte for
// byte by a parallaxsink downstream, and caps a capsfilter changed go out in canonical form.

// The enumeration properties' numbers are the core enums' values (read with prop_enum()).
constexpr std::int64_t kMemoryMemfd = 0;
constexpr std::int64_t kMemoryHugepage = 1;
constexpr std::int64_t kPolicyDefault = -1;  // parallaxsrc: the publisher's policy
// socket-mode: the number of each value is the file mode itself (set_property refuses anything
// else, so start() needs no fallback). Nicks, not integers, because pipeline integers are
// decimal: "0600" as a number would be six hundred.
constexpr std::int64_t kSocketModeOwner = 0600;
constexpr std::int64_t kSocketModeGroup = 0660;
constexpr std::int64_t kSocketModeEveryone = 0666;
static_assert(static_cast<int>(link::Policy::block) == 0);
static_assert(static_cast<int>(link::Policy::drop_oldest) == 1);
static_assert(static_cast<int>(link::Policy::drop_newest) == 2);

std::vector<EnumValue> policy_values() {
  return {{0, "block", "wait for the subscriber (backpressure: the slowest one paces the stream)"},
          {1, "drop-oldest", "retract the oldest buffers the subscriber has not read yet"},
          {2, "drop-newest", "skip the new buffer for that subscriber"}};
}

std::string seconds_text(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(ns) / 1e9);
  return buf;
}

// --- parallaxsink ------------------------------------------------------------------------------
// Publishes every buffer it renders on a Unix socket. Threads: start()/stop() on the executor's
// thread; render()/handle_event() on the streaming thread; read_property() from anywhere.
// Lock order: mu_ (publisher handle, for readers of the counters) before nothing; io_mu_
// serializes calls into the publisher (its producer side takes one thread at a time and a
// flush-start may arrive from another thread). mu_ is never held while io_mu_ is.
class ParallaxSink final : public SinkElement {
 public:
  Result<void> start() override {
    path_ = prop<std::string>("socket-path");
    if (path_.empty())
      return err(Errc::invalid_argument,
                 "socket-path is not set: give the Unix socket to publish on, e.g. "
                 "socket-path=/tmp/stream.sock");
    slot_count_ = prop<std::uint64_t>("slot-count");
    if (slot_count_ == 0) slot_count_ = kDefaultSlotCount;
    slot_size_ = prop<std::uint64_t>("slot-size");
    hugepage_ = prop_enum("memory") == kMemoryHugepage;
    max_memory_ = prop<std::uint64_t>("max-memory");
    growths_before_.store(0);
    prefault_ = prop<bool>("prefault");
    wait_ = prop<bool>("wait-for-connection");
    policy_ = static_cast<link::Policy>(prop_enum("policy"));
    max_subscribers_ = prop<std::uint64_t>("max-subscribers");
    socket_mode_ = static_cast<std::uint32_t>(prop_enum("socket-mode"));
    numa_.reset();
    if (const std::string n = prop<std::string>("numa-node"); !n.empty()) {
      // Checked here so a node that does not exist fails the start (docs/topology.md).
      auto node = topology::parse_node(n);
      if (!node) return err(node.error().code, "numa-node: " + node.error().message);
      if (*node) {
        PLX_ASSIGN(const topology::Topology* machine, topology::Topology::process());
        if (auto c = machine->check_node(**node); !c)
          return err(c.error().code, "numa-node " + n + ": " + c.error().message);
      }
      numa_ = *node;
    }
    linger_ = std::chrono::milliseconds(prop<std::uint64_t>("linger") / 1'000'000);
    buffers_.store(0);
    bytes_.store(0);
    zero_copy_.store(0);
    copies_.store(0);
    bytes_copied_.store(0);
    connections_before_.store(0);
    pending_.clear();
    format_.clear();
    eos_sent_ = false;
    {
      std::lock_guard l(mu_);
      unlocked_ = false;
    }
    // With an explicit slot-size the socket exists as soon as the pipeline starts, so
    // subscribers can connect before data flows; otherwise it appears with the first buffer.
    if (slot_size_ != 0) return bind(slot_size_);
    return ok();
  }

  Result<void> stop() override {
    std::unique_ptr<link::IpcPublisher> pub;
    {
      std::lock_guard l(mu_);
      pub = std::move(pub_);
    }
    if (pub) {
      const link::PublisherStats ps = pub->stats();
      connections_before_.fetch_add(ps.connections);  // survives stop() for readers
      growths_before_.fetch_add(ps.pools_replaced);
      // Subscribers get end-of-stream after what was sent; the socket file is unlinked.
      pub->close();
      if (copies_.load() > 0)
        post_info("published " + std::to_string(buffers_.load()) + " buffers, " +
                  std::to_string(copies_.load()) + " copied into a slot, " +
                  std::to_string(zero_copy_.load()) + " zero-copy");
    }
    pending_.clear();
    return ok();
  }

  bool handle_event(Pad& pad, const Event& ev) override {
    if (ev.type == EventType::eos) {
      if (!eos_sent_) {
        eos_sent_ = true;
        // A stream without buffers still reaches a subscriber as EOS (and its sticky events).
        if (publisher() == nullptr) {
          if (auto r = bind(kFallbackSlotSize); !r) {
            post_error(r.error().code, r.error().message);
            return false;
          }
        }
        if (wait_for_subscriber() != FlowReturn::flushing && send_event(Event::eos())) drain();
      }
      return SinkElement::handle_event(pad, ev);
    }
    if (ev.type == EventType::caps) {
      // ANY and EMPTY are not formats; an unchanged text is not sent again.
      if (ev.caps.is_any() || ev.caps.is_empty()) return SinkElement::handle_event(pad, ev);
      std::string text = ev.caps.text();
      if (text == format_) return SinkElement::handle_event(pad, ev);
      format_ = std::move(text);
      if (!send_event(ev)) return false;  // the error is posted
    } else {
      send_event(ev);  // other events: a failure is a warning (posted)
    }
    if (ev.type == EventType::flush_stop) eos_sent_ = false;
    return SinkElement::handle_event(pad, ev);
  }

  // stop() / Ctrl-C: frees the streaming thread wherever it waits in the publisher (a send or
  // an event for a subscriber that stopped reading, a free slot, a subscriber to connect, the
  // drain at EOS). The publisher stays interrupted until the next start() binds a new one.
  void unlock() override {
    std::lock_guard l(mu_);
    unlocked_ = true;
    if (pub_) pub_->interrupt();
  }

 protected:
  FlowReturn render(const Buffer& buf) override {
    link::IpcPublisher* pub = publisher();
    if (pub == nullptr) {
      // slot-size 0: a variable-size pool sized from the first buffer.
      if (auto r = bind(buf.size()); !r) {
        post_error(r.error().code, r.error().message);
        return FlowReturn::error;
      }
      pub = publisher();
    }
    if (FlowReturn fr = wait_for_subscriber(); fr != FlowReturn::ok) return fr;
    // One publisher API: a slot of its pool crosses as a descriptor, anything else is copied
    // into a slot (a larger pool within max-memory first; waits for a free slot until unlock()).
    std::lock_guard io(io_mu_);
    if (buf.valid() && buf.segment() != nullptr && buf.pool_id() == pub->pool()->id()) {
      if (auto r = pub->send(buf); !r) {
        if (stopping() || r.error().code == Errc::cancelled) return FlowReturn::flushing;
        return send_failed(r.error());
      }
      zero_copy_.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (auto r = pub->send_copy(buf); !r) {
        if (stopping() || r.error().code == Errc::cancelled) return FlowReturn::flushing;
        return send_failed(r.error());
      }
      copies_.fetch_add(1, std::memory_order_relaxed);
      bytes_copied_.fetch_add(buf.size(), std::memory_order_relaxed);
    }
    buffers_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(buf.size(), std::memory_order_relaxed);
    return FlowReturn::ok;
  }

  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "buffers") return buffers_.load(std::memory_order_relaxed);
    if (spec.name == "bytes") return bytes_.load(std::memory_order_relaxed);
    if (spec.name == "zero-copy") return zero_copy_.load(std::memory_order_relaxed);
    if (spec.name == "pages-on-node") {
      std::lock_guard l(mu_);
      return pub_ ? pub_->stats().pages_on_node : std::uint64_t{0};
    }
    if (spec.name == "copied") return copies_.load(std::memory_order_relaxed);
    if (spec.name == "bytes-copied") return bytes_copied_.load(std::memory_order_relaxed);
    if (spec.name == "subscribers") {
      std::lock_guard l(mu_);
      return static_cast<std::uint64_t>(pub_ ? pub_->subscriber_count() : 0);
    }
    if (spec.name == "pool-bytes" || spec.name == "pool-bytes-high-water") {
      std::lock_guard l(mu_);
      if (!pub_) return std::uint64_t{0};
      const memory::PoolStats ps = pub_->pool()->stats();
      return static_cast<std::uint64_t>(spec.name == "pool-bytes" ? ps.bytes_capacity
                                                                  : ps.bytes_high_water);
    }
    if (spec.name == "pool-growths") {
      std::lock_guard l(mu_);
      return growths_before_.load() + (pub_ ? pub_->stats().pools_replaced : 0);
    }
    if (spec.name == "connections") {
      std::lock_guard l(mu_);
      return connections_before_.load() + (pub_ ? pub_->stats().connections : 0);
    }
    return stored;
  }

 private:
  // The publisher handle; only the streaming thread and start()/stop() replace it.
  link::IpcPublisher* publisher() {
    std::lock_guard l(mu_);
    return pub_.get();
  }

  // Translates the properties into the publisher's options (the transport policy itself, pool
  // sizing, backend, prefault, quotas and growth, lives in the publisher) and binds it, for
  // buffers of `size` bytes: slots of slot-size (or larger, for a larger buffer) when slot-size
  // is set, a variable-size pool otherwise.
  Result<void> bind(std::size_t size) {
    link::PublisherOptions opts;
    opts.pool_name = "parallaxsink:" + path_;
    opts.slot_size =
        slot_size_ != 0 ? std::max<std::size_t>(static_cast<std::size_t>(slot_size_), size) : 0;
    opts.arena_block = size;
    opts.slot_count = static_cast<std::size_t>(slot_count_);
    opts.memory = hugepage_ ? link::PoolMemory::hugepage : link::PoolMemory::memfd;
    opts.prefault = prefault_;
    opts.max_pool_bytes = max_memory_;
    opts.max_leases_per_subscriber = 0;  // 3/4 of the slots: the rest keeps the producer going
    opts.socket_mode = socket_mode_;
    opts.default_policy = policy_;
    opts.max_subscribers = max_subscribers_;
    // numa-node: the publisher binds, prefaults and verifies the pool (auto: the node of this
    // thread, the streaming thread when the socket appears with the first buffer).
    if (numa_)
      opts.numa_node = *numa_ ? static_cast<int>(**numa_) : link::PublisherOptions::kAutoNode;
    opts.linger = 0ms;  // we drain at EOS ourselves (interruptibly); stop() closes at once
    auto pub = link::IpcPublisher::bind(path_, std::move(opts));
    if (!pub)
      return err(pub.error().code, "could not publish on socket '" + path_ +
                                       "': " + pub.error().message + property_hint(pub.error()));
    {
      std::lock_guard l(mu_);
      pub_ = std::make_unique<link::IpcPublisher>(std::move(*pub));
      if (unlocked_) pub_->interrupt();  // an unlock() that came before the publisher
    }
    for (auto& e : std::exchange(pending_, {}))
      (void)send_event(std::move(e));
    return ok();
  }

  // Which property to change when the publisher runs out of its memory budget.
  static std::string property_hint(const Error& e) {
    return e.code == Errc::resource_exhausted ? " (property max-memory, or a lower slot-count)"
                                              : "";
  }

  // Sends (or keeps until the publisher exists) one event; false after posting an error.
  bool send_event(Event e) {
    link::IpcPublisher* pub = publisher();
    if (pub == nullptr) {
      pending_.push_back(std::move(e));
      return true;
    }
    Result<void> r = [&] {
      std::lock_guard io(io_mu_);
      return pub->send_event(e);
    }();
    if (r) return true;
    const std::string what = "could not send the " + std::string(parallax::to_string(e.type)) +
                             " event: " + r.error().message;
    if (e.type == EventType::caps) {
      post_error(r.error().code, what);
      return false;
    }
    post_warning(what);
    return true;
  }

  // wait-for-connection: holds the stream (each buffer, and EOS) while nobody is connected.
  // Returns ok to go on, flushing when stopping, eos when EOS was requested meanwhile.
  FlowReturn wait_for_subscriber() {
    if (!wait_) return FlowReturn::ok;
    link::IpcPublisher* pub = publisher();
    while (pub->subscriber_count() == 0) {
      if (stopping()) return FlowReturn::flushing;
      if (eos_requested()) return FlowReturn::eos;
      // Woken by a subscriber joining or by unlock() (the publisher's interrupt()).
      auto r = pub->wait_for_subscribers(1, 1s);
      if (!r && r.error().code == Errc::cancelled) return FlowReturn::flushing;
    }
    return FlowReturn::ok;
  }

  // Drain at EOS: keeps the stream until every subscriber has read through the EOS, or
  // `linger` passed, or unlock(). Runs on the streaming thread before the EOS reaches the
  // executor, so a process that exits at EOS exits after its consumers are through.
  void drain() {
    if (linger_.count() == 0) return;
    link::IpcPublisher* pub = publisher();
    if (pub == nullptr) return;
    Result<void> r = [&] {
      std::lock_guard io(io_mu_);
      return pub->drain(linger_);
    }();
    if (!r && r.error().code == Errc::timeout)
      post_warning("EOS: " + r.error().message + " within linger (" +
                   seconds_text(static_cast<std::uint64_t>(linger_.count()) * 1'000'000) +
                   "); closing anyway");
  }

  FlowReturn send_failed(const Error& e) {
    post_error(e.code,
               "could not send a buffer on '" + path_ + "': " + e.message + property_hint(e));
    return FlowReturn::error;
  }

  std::string path_;
  std::uint64_t slot_count_{kDefaultSlotCount};
  std::uint64_t slot_size_{0};
  bool hugepage_{false};
  std::optional<std::optional<unsigned>> numa_;  // numa-node (inner nullopt: auto)
  std::uint64_t max_memory_{kDefaultMaxMemory};
  bool prefault_{true};
  bool wait_{true};
  link::Policy policy_{link::Policy::block};
  std::uint64_t max_subscribers_{64};
  std::uint32_t socket_mode_{0600};

  mutable std::mutex mu_;
  std::unique_ptr<link::IpcPublisher> pub_;
  std::mutex io_mu_;
  std::vector<Event> pending_;  // events seen before the publisher was bound
  std::string format_;          // last published format
  bool eos_sent_{false};
  bool unlocked_{false};  // guarded by mu_; reset by start()
  std::chrono::milliseconds linger_{kDefaultLingerNs / 1'000'000};
  std::atomic<std::uint64_t> buffers_{0}, bytes_{0}, zero_copy_{0}, copies_{0}, bytes_copied_{0};
  std::atomic<std::uint64_t> growths_before_{
      0};  // pools replaced by publishers closed since start()
  std::atomic<std::uint64_t> connections_before_{0};  // of publishers closed since start()
};

// --- parallaxsrc -------------------------------------------------------------------------------
// Receives a stream from a publisher and pushes it downstream: buffers are the publisher's
// slots mapped read-only (no copy), released when the last reference drops. Derives from
// Element (not SourceElement) because the stream-start, caps and segment it announces come
// from the publisher, in GStreamer's order, which SourceElement's fixed prologue cannot do.
class ParallaxSrc final : public Element {
 public:
  ParallaxSrc() {
    add_pad_template({"src", PadDirection::src, PadPresence::always, "ANY"});
    src_ = pad("src");
  }

  [[nodiscard]] bool has_task() const noexcept override { return true; }

  Result<void> start() override {
    path_ = prop<std::string>("socket-path");
    if (path_.empty())
      return err(Errc::invalid_argument,
                 "socket-path is not set: give the Unix socket of a parallaxsink or "
                 "IpcPublisher, e.g. socket-path=/tmp/stream.sock");
    timeout_ns_ = prop<std::uint64_t>("timeout");
    const std::int64_t ct = prop<std::int64_t>("copy-threshold");
    busy_poll_ = prop<bool>("busy-poll");
    copy_threshold_ =
        ct < 0 ? link::SubscriberOptions::kCopyThresholdAuto : static_cast<std::uint32_t>(ct);
    copied_before_.store(0);
    bytes_copied_before_.store(0);
    policy_.reset();
    if (const std::int64_t p = prop_enum("policy"); p != kPolicyDefault)
      policy_ = static_cast<link::Policy>(p);
    {
      std::lock_guard l(mu_);
      woken_ = false;
    }
    buffers_.store(0);
    bytes_.store(0);
    events_.store(0);
    reconnects_.store(0);
    dropped_before_.store(0);
    warned_format_ = false;
    copy_logged_ = false;
    return ok();
  }

  Result<void> stop() override {
    drop_subscriber();
    return ok();
  }

  void unlock() override { wake(); }

  void request_eos() override {
    Element::request_eos();
    wake();
  }

  // affinity=auto: pinned on the first buffer to the CPUs of the node the publisher announced
  // for its memory (SubscriberStats::memory_node; docs/topology.md).
  bool defer_auto_affinity(bool best_effort) override {
    auto_pending_ = true;
    auto_best_effort_ = best_effort;
    return true;
  }

  void run_task() override {
    prerolled_ = false;
    stream_id_.clear();
    group_id_ = 0;
    caps_.reset();
    pending_caps_.reset();
    pending_segment_.reset();
    pending_custom_.clear();
    FlowReturn fr = connect_publisher(false);
    while (fr == FlowReturn::ok) {
      if (stopping()) {
        fr = FlowReturn::flushing;
        break;
      }
      if (eos_requested()) {
        fr = FlowReturn::eos;
        break;
      }
      auto item = sub_->recv_item_for(kPoll);
      if (!item) {
        const Error& e = item.error();
        if (e.code == Errc::timeout || e.code == Errc::cancelled) continue;
        if (e.code == Errc::unavailable) {
          // Vanished without a goodbye (crash, kill -9): wait `timeout` for it to come back.
          drop_subscriber();
          fr = connect_publisher(true);
          if (fr == FlowReturn::ok) reconnects_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        post_error(e.code, "could not read from the publisher at '" + path_ + "': " + e.message);
        fr = FlowReturn::error;
        break;
      }
      if (!item->has_value()) {  // the publisher closed cleanly
        fr = FlowReturn::eos;
        break;
      }
      if (auto* ev = std::get_if<Event>(&**item)) {
        events_.fetch_add(1, std::memory_order_relaxed);
        fr = on_event(*ev);
        continue;
      }
      fr = preroll();
      if (fr != FlowReturn::ok) break;
      if (auto_pending_) {
        auto_pending_ = false;
        if (auto r = pin_auto(); !r) {
          if (!auto_best_effort_) {
            post_error(r.error().code, "affinity auto: " + r.error().message);
            fr = FlowReturn::error;
            break;
          }
          post_warning("affinity auto not applied (best effort): " + r.error().message);
        }
      }
      auto& buf = std::get<memory::Buffer>(**item);
      const std::size_t n = buf.size();
      if (buf.segment() == nullptr && !copy_logged_) {
        // The subscriber copied it (lease pressure): say so once, with the reason.
        copy_logged_ = true;
        const link::SubscriberStats ss = sub_->stats();
        post_info("downstream holds " + std::to_string(ss.leases) + " of the publisher's " +
                  std::to_string(ss.quota) + " leases: copying payloads past copy-threshold " +
                  std::to_string(ss.copy_threshold) +
                  " so the producer never stalls (counter "
                  "'copied')");
      }
      fr = src_->push(std::move(buf));
      buffers_.fetch_add(1, std::memory_order_relaxed);
      bytes_.fetch_add(n, std::memory_order_relaxed);
    }
    switch (fr) {
      case FlowReturn::eos:
        if (preroll() == FlowReturn::ok) src_->push_event(Event::eos());
        break;
      case FlowReturn::not_linked:
        post_error(Errc::failed_precondition,
                   "streaming stopped: pad '" + src_->full_name() + "' is not linked");
        break;
      case FlowReturn::error:
        post_error(Errc::internal, "streaming stopped, reason error");
        break;
      default:
        break;
    }
  }

 protected:
  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "buffers") return buffers_.load(std::memory_order_relaxed);
    if (spec.name == "bytes") return bytes_.load(std::memory_order_relaxed);
    if (spec.name == "events") return events_.load(std::memory_order_relaxed);
    if (spec.name == "reconnects") return reconnects_.load(std::memory_order_relaxed);
    if (spec.name == "copied" || spec.name == "bytes-copied") {
      std::lock_guard l(mu_);
      const link::SubscriberStats ss = sub_ ? sub_->stats() : link::SubscriberStats{};
      if (spec.name == "copied") return copied_before_.load() + ss.copies;
      return bytes_copied_before_.load() + ss.bytes_copied;
    }
    if (spec.name.starts_with("latency-")) {  // transit latency, docs/observability.md
      std::lock_guard l(mu_);
      const link::SubscriberStats ss = sub_ ? sub_->stats_snapshot() : last_stats_;
      if (spec.name == "latency-count") return ss.latency_count;
      if (spec.name == "latency-p50") return ss.latency_p50_ns;
      if (spec.name == "latency-p99") return ss.latency_p99_ns;
      return ss.latency_max_ns;
    }
    if (spec.name == "dropped" || spec.name == "connected") {
      std::lock_guard l(mu_);
      if (spec.name == "connected") return sub_ != nullptr && sub_->connected();
      return dropped_before_.load() + (sub_ ? sub_->stats().dropped : 0);
    }
    return stored;
  }

 private:
  Result<void> pin_auto() {
    const int node = sub_->stats().memory_node;
    if (node < 0)
      return err(Errc::failed_precondition,
                 "the publisher announced no NUMA node for its memory (none bound, pages "
                 "untouched or on several nodes): set numa-node on the producing parallaxsink");
    PLX_ASSIGN(const topology::Topology* machine, topology::Topology::process());
    PLX_ASSIGN(topology::CpuSet cpus, machine->node_cpus(static_cast<unsigned>(node)));
    PLX_TRY(topology::pin_current_thread(cpus));
    PLX_LOG(info, "placement",
            "%s: affinity auto pinned to CPUs %s (NUMA node %d, the publisher's memory)",
            name().c_str(), cpus.to_string().c_str(), node);
    return {};
  }

  void wake() {
    {
      std::lock_guard l(mu_);
      woken_ = true;
      if (sub_) sub_->interrupt();
    }
    cv_.notify_all();
  }

  void drop_subscriber() {
    std::unique_ptr<link::IpcSubscriber> old;
    {
      std::lock_guard l(mu_);
      old = std::move(sub_);
    }
    if (old) {
      const link::SubscriberStats ss = old->stats();
      dropped_before_.fetch_add(ss.dropped);
      copied_before_.fetch_add(ss.copies);
      bytes_copied_before_.fetch_add(ss.bytes_copied);
      {
        std::lock_guard l(mu_);
        last_stats_ = ss;  // the latency of the last connection stays readable
      }
      old->close();  // Buffers already received stay valid on their own
    }
  }

  // Connects, retrying every 10 ms until `timeout` (0: forever), stop() or an EOS request.
  FlowReturn connect_publisher(bool reconnect) {
    const auto deadline = Clock::now() + std::chrono::nanoseconds(timeout_ns_);
    link::SubscriberOptions opts;
    opts.policy = policy_;
    opts.copy_threshold = copy_threshold_;
    opts.busy_poll = busy_poll_;
    Error last{};
    for (;;) {
      if (stopping()) return FlowReturn::flushing;
      if (eos_requested()) return FlowReturn::eos;
      auto r = link::IpcSubscriber::connect(path_, opts);
      if (r) {
        std::lock_guard l(mu_);
        sub_ = std::make_unique<link::IpcSubscriber>(std::move(*r));
        if (woken_) sub_->interrupt();  // unlock() raced with the connect: keep its effect
        return FlowReturn::ok;
      }
      last = r.error();
      if (last.code == Errc::permission_denied) break;  // retrying will not change credentials
      if (timeout_ns_ != 0 && Clock::now() >= deadline) break;
      std::unique_lock l(mu_);
      cv_.wait_for(l, 10ms, [&] { return woken_; });
      if (woken_) {
        l.unlock();
        if (stopping()) return FlowReturn::flushing;
        if (eos_requested()) return FlowReturn::eos;
      }
    }
    if (reconnect) {
      post_error(Errc::unavailable, "the publisher at '" + path_ +
                                        "' went away without ending its stream and did not come "
                                        "back within " +
                                        seconds_text(timeout_ns_) + ": " + last.message);
    } else {
      post_error(last.code, "could not connect to a publisher at '" + path_ + "' within " +
                                seconds_text(timeout_ns_) + ": " + last.message);
    }
    return FlowReturn::error;
  }

  // Applies one event from the publisher. Before the first buffer, stream-start, caps and
  // segment are only remembered (the latest of each wins) and go out in GStreamer's order
  // with the first buffer or EOS; afterwards every event is forwarded as it comes.
  FlowReturn on_event(const Event& e) {
    switch (e.type) {
      case EventType::stream_start:
        if (!prerolled_) {
          stream_id_ = e.stream_id;
          group_id_ = e.group_id;
        } else if (e.stream_id != stream_id_) {  // a new stream (e.g. a restarted publisher)
          stream_id_ = e.stream_id;
          group_id_ = e.group_id;
          src_->push_event(Event::stream_start(stream_id_, group_id_));
        }
        return FlowReturn::ok;
      case EventType::caps: {
        // The caps keep the publisher's text whatever the parser made of it (Caps::from_text):
        // a parallaxsink downstream republishes that text unchanged.
        if (!e.caps.complete() && !warned_format_) {
          warned_format_ = true;
          post_warning("format '" + e.caps.text() +
                       "' is not fully understood by the Parallax caps parser; announcing " +
                       (e.caps.is_any() ? std::string("no caps") : "'" + e.caps.to_string() + "'") +
                       " downstream (a parallaxsink downstream republishes the original)");
        }
        if (e.caps.is_any() || e.caps.is_empty()) return FlowReturn::ok;
        if (!prerolled_) {
          pending_caps_ = e.caps;
          return FlowReturn::ok;
        }
        if (caps_ && *caps_ == e.caps) return FlowReturn::ok;
        caps_ = e.caps;
        return src_->push_event(e) ? FlowReturn::ok : FlowReturn::error;
      }
      case EventType::segment:
        if (!prerolled_) {
          pending_segment_ = e.segment;
          return FlowReturn::ok;
        }
        src_->push_event(e);
        return FlowReturn::ok;
      case EventType::eos:
        return FlowReturn::eos;
      case EventType::flush_start:
      case EventType::flush_stop:
        src_->push_event(e);
        return FlowReturn::ok;
      case EventType::custom:
        if (!prerolled_) {
          pending_custom_.push_back(e);
          return FlowReturn::ok;
        }
        src_->push_event(e);
        return FlowReturn::ok;
    }
    return FlowReturn::ok;
  }

  // Sends what comes before the first buffer: stream-start, caps, segment, custom events.
  FlowReturn preroll() {
    if (prerolled_) return FlowReturn::ok;
    prerolled_ = true;
    if (stream_id_.empty()) stream_id_ = name();
    src_->push_event(Event::stream_start(stream_id_, group_id_));
    if (pending_caps_) {
      caps_ = std::exchange(pending_caps_, std::nullopt);
      if (!src_->push_event(Event::make_caps(*caps_))) return FlowReturn::error;
    }
    src_->push_event(Event::make_segment(pending_segment_.value_or(StreamSegment{})));
    for (const auto& ev : std::exchange(pending_custom_, {}))
      src_->push_event(ev);
    return FlowReturn::ok;
  }

  Pad* src_{nullptr};
  std::string path_;
  std::uint64_t timeout_ns_{kDefaultTimeoutNs};
  std::uint32_t copy_threshold_{link::SubscriberOptions::kCopyThresholdAuto};
  bool busy_poll_{false};
  std::optional<link::Policy> policy_;

  // mu_ guards sub_ (swapped by the streaming thread, read by read_property/unlock) and
  // woken_. The streaming thread never holds it while blocked in recv.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool woken_{false};
  std::unique_ptr<link::IpcSubscriber> sub_;

  // Streaming thread only.
  bool prerolled_{false};
  bool warned_format_{false};
  bool copy_logged_{false};
  bool auto_pending_{false};  // defer_auto_affinity(): pin on the first buffer
  bool auto_best_effort_{false};
  std::string stream_id_;
  std::uint32_t group_id_{0};
  std::optional<Caps> caps_;
  std::optional<Caps> pending_caps_;
  std::optional<StreamSegment> pending_segment_;
  std::vector<Event> pending_custom_;

  std::atomic<std::uint64_t> buffers_{0}, bytes_{0}, events_{0}, reconnects_{0}, dropped_before_{0};
  std::atomic<std::uint64_t> copied_before_{0}, bytes_copied_before_{0};
  link::SubscriberStats last_stats_;  // of the last connection (mu_)
};

template <typename T>
std::function<std::unique_ptr<Element>()> make() {
  return [] { return std::make_unique<T>(); };
}

PropertySpec counter(std::string name, std::string desc) {
  return PropertySpec::uint64(std::move(name), 0, 0, UINT64_MAX, std::move(desc))
      .with_flags(kPropReadable);
}

const ElementRegistrar reg_parallaxsink{ElementInfo{
    "parallaxsink",
    "Sink/Network",
    "Publishes buffers and stream events to other processes through Parallax shared memory "
    "(the protocol of GStreamer's parallaxsink)",
    make<ParallaxSink>(),
    {PropertySpec::string("socket-path", "",
                          "Unix socket to publish on (a stale socket file is replaced, a live one "
                          "is an error)"),
     PropertySpec::uint64("slot-count", 0, 0, 4096,
                          "Number of shared-memory slots (0 = 16); with slot-size 0, the first "
                          "segment of the variable-size pool holds this many first buffers"),
     PropertySpec::uint64("slot-size", 0, 0, UINT32_MAX,
                          "Bytes per slot (0 = a variable-size pool: blocks of each buffer's "
                          "size; the socket then appears with the first buffer). A larger "
                          "buffer gets larger slots (within max-memory)"),
     PropertySpec::uint64("max-memory", kDefaultMaxMemory, 4096, UINT64_MAX,
                          "Most bytes of shared memory one pool may take (slots, or the "
                          "variable-size pool); larger buffers fail with an error naming it"),
     PropertySpec::enumeration("memory", "memfd",
                               {{kMemoryMemfd, "memfd", "memfd shared memory"},
                                {kMemoryHugepage, "hugepage",
                                 "memfd with huge pages (falls back to transparent huge pages)"}},
                               "Shared memory backend of the slots"),
     PropertySpec::boolean("prefault", true,
                           "Commit every page of the slots when the pool is created: no page "
                           "fault in the streaming path, and memory that cannot be backed is an "
                           "error at start rather than a crash later"),
     PropertySpec::boolean("wait-for-connection", true,
                           "Hold the stream (each buffer and EOS) while no subscriber is "
                           "connected (false: buffers nobody reads are gone)"),
     PropertySpec::enumeration("policy", "block", policy_values(),
                               "What to do for a subscriber that falls behind, unless it asked "
                               "for a policy of its own"),
     PropertySpec::uint64("max-subscribers", 64, 1, 1024,
                          "Most subscribers connected at once (more are refused)"),
     PropertySpec::enumeration(
         "socket-mode", "0600",
         {{kSocketModeOwner, "0600", "owner only"},
          {kSocketModeGroup, "0660", "owner and group"},
          {kSocketModeEveryone, "0666", "everyone (peers are still checked by uid)"}},
         "File mode of the socket (peers are also checked by uid)"),
     PropertySpec::string("numa-node", "",
                          "Bind the pool's memory to this NUMA node (prefaulted, verified, "
                          "announced to subscribers), or 'auto' (the producing thread's node); "
                          "a node that does not exist is an error at start"),
     counter("pages-on-node", "Pages of the pool found on numa-node after placement"),
     PropertySpec::uint64("linger", kDefaultLingerNs, 0, UINT64_MAX,
                          "At EOS, nanoseconds to wait until every subscriber has read through "
                          "the stream before the EOS goes on (0 = do not wait; stop() cuts it "
                          "short)"),
     counter("buffers", "Buffers published"),
     counter("bytes", "Bytes published"),
     counter("zero-copy", "Buffers that were already slots of the publisher's pool"),
     counter("copied", "Buffers copied once into a slot"),
     counter("bytes-copied", "Bytes of the copied buffers"),
     counter("subscribers", "Subscribers connected now"),
     counter("connections", "Subscribers admitted since the pipeline started"),
     counter("pool-bytes", "Bytes of shared memory in the current pool"),
     counter("pool-bytes-high-water", "Most bytes of the current pool in use at once"),
     counter("pool-growths", "Pools replaced by larger ones (buffers that outgrew them)")}}};

const ElementRegistrar reg_parallaxsrc{ElementInfo{
    "parallaxsrc",
    "Source/Network",
    "Receives buffers and stream events from a Parallax publisher (parallaxsink, native or "
    "GStreamer) as read-only shared memory, with no payload copy",
    make<ParallaxSrc>(),
    {PropertySpec::string("socket-path", "", "Unix socket of the publisher"),
     PropertySpec::uint64("timeout", kDefaultTimeoutNs, 0, UINT64_MAX,
                          "Nanoseconds to wait for the publisher to appear, or to come back "
                          "after it vanished, before failing (0 = forever)"),
     PropertySpec::enumeration("policy", "default",
                               {{kPolicyDefault, "default", "the publisher's policy"},
                                {0, "block", "the publisher waits for us (backpressure)"},
                                {1, "drop-oldest", "the publisher retracts what we did not read"},
                                {2, "drop-newest", "the publisher skips buffers for us"}},
                               "What the publisher should do when we fall behind"),
     PropertySpec::int64("copy-threshold", -1, -1, 4096,
                         "Leases held (buffers downstream keeps) past which received payloads "
                         "are copied into local memory and the lease returned at once, so a "
                         "downstream that keeps buffers never stalls the publisher (-1 = half "
                         "the publisher's quota, 0 = never copy)"),
     PropertySpec::boolean("busy-poll", false,
                           "Spin on the shared ring while waiting for the next buffer instead of "
                           "sleeping (lowest latency, one busy core)"),
     counter("buffers", "Buffers received"), counter("bytes", "Bytes received"),
     counter("events", "Events received"),
     counter("copied", "Buffers copied because downstream held copy-threshold leases"),
     counter("bytes-copied", "Bytes of the copied buffers"),
     counter("dropped", "Buffers the publisher retracted before we read them (drop-oldest)"),
     counter("reconnects", "Times the publisher vanished and we reconnected"),
     counter("latency-count",
             "Buffers with a transit latency measured (current or last connection)"),
     counter("latency-p50", "Transit latency median, ns (log2 bucket upper bound)"),
     counter("latency-p99", "Transit latency 99th percentile, ns (log2 bucket upper bound)"),
     counter("latency-max", "Largest transit latency, ns"),
     PropertySpec::boolean("connected", false, "Whether a publisher is connected now")
         .with_flags(kPropReadable),
     affinity_property()}}};

}  // namespace
}  // namespace parallax::elements
