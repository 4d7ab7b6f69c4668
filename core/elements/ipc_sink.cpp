// SPDX-License-Identifier: MIT OR Apache-2.0
// parallaxsink for the dynamic pipeline: publishes with the Parallax IPC protocol
// (parallax::link), as GStreamer's parallaxsink does, with the same property names, so native
// and GStreamer pipelines feed each other through one Unix socket with no payload copy.
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
#include "parallax/segment.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;
using namespace ipc_detail;

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
      if (const FlowReturn e = end_requested(); e != FlowReturn::ok) return e;
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

}  // namespace
}  // namespace parallax::elements
