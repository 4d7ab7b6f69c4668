// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsrc for the dynamic pipeline: receives a Parallax IPC stream (parallax::link) from a
// native or GStreamer parallaxsink, buffers mapped read-only from the publisher's memory.
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
#include "ipc_common.h"
#include "parallax/affinity.h"
#include "parallax/ipc.h"
#include "parallax/log.h"
#include "parallax/sched.h"
#include "parallax/segment.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;
using namespace ipc_detail;

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
    sched_slice_us_ = prop<std::uint64_t>("sched-slice");
    if (auto r = sched::check_slice(std::chrono::microseconds(sched_slice_us_)); !r)
      return err(Errc::invalid_argument,
                 "sched-slice=" + std::to_string(sched_slice_us_) + ": " + r.error().message);
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
    // Before the first wait: a short slice lets this thread preempt the task on its CPU when a
    // buffer wakes it (parallax/sched.h).
    FlowReturn fr = FlowReturn::ok;
    if (sched_slice_us_ != 0) {
      if (auto r = sched::set_current_thread_slice(std::chrono::microseconds(sched_slice_us_));
          !r) {
        post_error(r.error().code,
                   "sched-slice=" + std::to_string(sched_slice_us_) +
                       ": could not set the streaming thread's time slice: " + r.error().message);
        fr = FlowReturn::error;
      }
    }
    if (fr == FlowReturn::ok) fr = connect_publisher(false);
    while (fr == FlowReturn::ok) {
      if (fr = end_requested(); fr != FlowReturn::ok) break;
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
    if (fr == FlowReturn::eos && preroll() == FlowReturn::ok) src_->push_event(Event::eos());
    post_flow_end(fr, *src_);
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
      if (const FlowReturn e = end_requested(); e != FlowReturn::ok) return e;
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
        if (const FlowReturn e = end_requested(); e != FlowReturn::ok) return e;
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
  std::uint64_t sched_slice_us_{0};
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
     PropertySpec::uint64("sched-slice", 0, 0, static_cast<std::uint64_t>(sched::kMaxSlice.count()),
                          "EEVDF time slice in microseconds for the streaming thread (100-100000; "
                          "Linux 6.12 or later): a short one lets a buffer's wake-up preempt the "
                          "task running on this thread's CPU (0 = leave the thread alone)"),
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
