// SPDX-License-Identifier: MIT OR Apache-2.0
// queue: a bounded thread boundary. Upstream's thread enqueues; the queue's own streaming
// thread dequeues in batches and pushes downstream. Full queue = backpressure (or leaky drop).
#include <algorithm>
#include <atomic>
#include <mutex>

#include "common.h"
#include "parallax/spsc_ring.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;

struct Item {
  Buffer buf;
  std::unique_ptr<Event> event;  // set for serialized events (rare: allocation is fine)
};

// The `leaky` property's numbers (read with prop_enum(); set_property refuses other values).
enum class Leaky : std::int64_t { none = 0, upstream = 1, downstream = 2 };

// The hand-over is an SpscRing: upstream's streaming thread is its producer, the queue's own
// thread its consumer, and neither takes a lock while the stream runs. Levels: the count is
// tail - head; bytes are bytes_in_ (producer) - bytes_out_ (whoever removes items); the time
// span uses pts_, a per-slot copy of each buffer's pts that only the producer writes and reads.
// Removing items from outside the queue thread (flush, leaky=downstream drops by the producer)
// takes pop_mu_, which the queue thread also holds while it takes a batch: uncontended while
// the stream runs (one lock per batch of up to kBatch items, not per item).
class Queue final : public Element {
 public:
  Queue() {
    add_pad_template({"sink", PadDirection::sink, PadPresence::always, "ANY"});
    add_pad_template({"src", PadDirection::src, PadPresence::always, "ANY"});
    src_ = pad("src");
  }

  Result<void> start() override {
    max_buffers_ = prop<std::uint64_t>("max-size-buffers");
    max_bytes_ = prop<std::uint64_t>("max-size-bytes");
    max_time_ = prop<std::uint64_t>("max-size-time");
    leaky_ = static_cast<Leaky>(prop_enum("leaky"));
    // Room for max-size-buffers plus serialized events (which never count as buffers and are
    // never dropped); without a buffer limit the ring's capacity is the limit.
    const std::size_t cap = max_buffers_ > 0 && max_buffers_ <= kMaxRing - kEventRoom
                                ? max_buffers_ + kEventRoom
                                : kMaxRing;
    ring_ = std::make_unique<SpscRing<Item>>(cap);
    pts_.assign(ring_->capacity(), kNoPts);
    batch_.reserve(kBatch);
    bytes_in_.store(0, std::memory_order_relaxed);
    bytes_out_.store(0, std::memory_order_relaxed);
    bytes_out_seen_ = 0;
    dropped_.store(0, std::memory_order_relaxed);
    flushing_.store(false, std::memory_order_relaxed);
    shutdown_.store(false, std::memory_order_relaxed);
    eos_ = false;
    src_result_.store(FlowReturn::ok, std::memory_order_relaxed);
    return ok();
  }

  Result<void> stop() override {
    if (ring_) {
      std::lock_guard l(pop_mu_);
      clear_locked();
    }
    const std::uint64_t dropped = dropped_.load(std::memory_order_relaxed);
    if (dropped > 0) post_info("dropped " + std::to_string(dropped) + " buffers (leaky)");
    return ok();
  }

  void unlock() override {
    shutdown_.store(true, std::memory_order_seq_cst);
    if (ring_) ring_->wake_all();
  }

  FlowReturn chain(Pad&, Buffer&& buf) override {
    if (FlowReturn fr = refused(); fr != FlowReturn::ok) return fr;
    if (eos_) return FlowReturn::eos;
    if (full()) {
      if (leaky_ == Leaky::upstream) {  // drop the new buffer
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return FlowReturn::ok;
      }
      if (leaky_ == Leaky::downstream) {
        drop_oldest();
      } else {
        // Backpressure: sleep until the queue thread frees something (then look at the byte
        // and time levels again) or we are told to stop.
        do {
          if (!ring_->wait_consumed(
                  ring_->head_index_cached(), [&] { return refused() != FlowReturn::ok; }, kSpins))
            return refused_or_flushing();
        } while (full());
        if (FlowReturn fr = refused(); fr != FlowReturn::ok) return fr;
      }
    }
    if (!ring_->writable() && !wait_slot()) return refused_or_flushing();
    const std::size_t size = buf.size();
    const auto& pts = buf.metadata().pts;
    pts_[ring_->tail_index() & (ring_->capacity() - 1)] = pts ? *pts : kNoPts;
    ring_->slot().buf = std::move(buf);
    bytes_in_.store(bytes_in_.load(std::memory_order_relaxed) + size, std::memory_order_relaxed);
    ring_->publish();
    return FlowReturn::ok;
  }

  bool handle_event(Pad&, const Event& ev) override {
    if (ev.type == EventType::flush_start) {
      flushing_.store(true, std::memory_order_seq_cst);
      ring_->wake_all();
      {
        std::lock_guard l(pop_mu_);
        clear_locked();
      }
      return forward_event(ev);  // not serialized: overtakes the queued data
    }
    if (ev.type == EventType::flush_stop) {
      {
        std::lock_guard l(pop_mu_);
        clear_locked();  // what the producer published while flush_start was clearing
      }
      flushing_.store(false, std::memory_order_seq_cst);
      eos_ = false;
      src_result_.store(FlowReturn::ok, std::memory_order_seq_cst);
      flush();
    }
    if (shutdown_.load(std::memory_order_acquire)) return false;
    if (ev.type == EventType::eos) eos_ = true;
    // Events are never dropped: wait for a slot (the ring keeps kEventRoom beyond the limit).
    if (!ring_->writable() && !wait_slot()) return false;
    pts_[ring_->tail_index() & (ring_->capacity() - 1)] = kNoPts;
    ring_->slot().event = std::make_unique<Event>(ev);
    ring_->publish();
    return true;
  }

  [[nodiscard]] bool has_task() const noexcept override { return true; }

  // Streaming thread: takes every item available (up to kBatch) in one hand-over, pushes them
  // downstream, frees their slots in one store.
  void run_task() override {
    for (;;) {
      if (!ring_->wait_readable([&] { return shutdown_.load(std::memory_order_acquire); }, kSpins))
        return;  // shut down
      if (shutdown_.load(std::memory_order_acquire)) return;
      {
        std::lock_guard l(pop_mu_);
        const std::size_t n = std::min(ring_->available(), kBatch);
        std::uint64_t bytes = 0;
        for (std::size_t i = 0; i < n; ++i) {
          Item& it = ring_->at(i);
          if (!it.event) bytes += it.buf.size();
          batch_.push_back(std::move(it));
        }
        bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + bytes,
                         std::memory_order_release);
        ring_->consume(n);
      }
      for (auto& it : batch_) {
        if (it.event) {
          const Event ev = std::move(*it.event);
          src_->push_event(ev);
          if (ev.type == EventType::eos) {
            batch_.clear();
            return;  // the stream is over; this thread's work is done
          }
          continue;
        }
        FlowReturn fr = src_->push(std::move(it.buf));
        if (fr != FlowReturn::ok) {
          src_result_.store(fr, std::memory_order_seq_cst);
          {
            std::lock_guard l(pop_mu_);
            clear_locked();
          }
          ring_->wake_all();
          batch_.clear();
          if (fr == FlowReturn::not_linked)
            post_error(Errc::failed_precondition, "pad '" + src_->full_name() + "' is not linked");
          if (fr == FlowReturn::eos) {
            // Downstream is done: finish the stream as GStreamer's queue does.
            src_->push_event(Event::eos());
          }
          return;
        }
      }
      batch_.clear();
    }
  }

 protected:
  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "current-level-buffers")
      return static_cast<std::uint64_t>(ring_ ? ring_->size() : 0);
    if (spec.name == "current-level-bytes") return level_bytes();
    return stored;
  }

 private:
  static constexpr std::size_t kBatch = 256;
  // cpu_relax() rounds before a side sleeps on an empty / full queue (a few microseconds):
  // a side that sleeps costs the other a futex wake-up on its next hand-over.
  static constexpr int kSpins = 64;
  static constexpr std::size_t kEventRoom = 16;
  static constexpr std::size_t kMaxRing = std::size_t{1} << 16;
  static constexpr std::uint64_t kNoPts = UINT64_MAX;

  [[nodiscard]] FlowReturn refused() const {
    if (shutdown_.load(std::memory_order_acquire) || flushing_.load(std::memory_order_acquire))
      return FlowReturn::flushing;
    return src_result_.load(std::memory_order_acquire);
  }
  [[nodiscard]] FlowReturn refused_or_flushing() const {
    const FlowReturn fr = refused();
    return fr == FlowReturn::ok ? FlowReturn::flushing : fr;
  }
  // Producer: waits for a free slot (the queue thread is draining); false when told to stop.
  bool wait_slot() {
    while (!ring_->writable()) {
      if (!ring_->wait_consumed(
              ring_->head_index_cached(), [&] { return refused() != FlowReturn::ok; }, kSpins))
        return false;
    }
    return true;
  }

  [[nodiscard]] std::uint64_t level_bytes() const {
    const std::uint64_t out = bytes_out_.load(std::memory_order_acquire);
    const std::uint64_t in = bytes_in_.load(std::memory_order_relaxed);
    return in >= out ? in - out : 0;
  }

  // Producer side (upstream's streaming thread). Judged first on the producer's cached view
  // of the consumer (head index, bytes taken out): both only grow, so the cached view can only
  // over-estimate the level, and the shared cache lines the consumer writes are read only when
  // that view says full.
  [[nodiscard]] bool full() {
    if (!full_by(ring_->tail_index() - ring_->head_index_cached())) return false;
    const std::size_t n = ring_->producer_size();  // refreshes the head, then the bytes
    bytes_out_seen_ = bytes_out_.load(std::memory_order_acquire);
    return full_by(n);
  }
  [[nodiscard]] bool full_by(std::size_t n) const {
    if (n >= ring_->capacity() - kEventRoom) return true;
    if (max_buffers_ > 0 && n >= max_buffers_) return true;
    if (max_bytes_ > 0) {
      const std::uint64_t in = bytes_in_.load(std::memory_order_relaxed);
      if (in - std::min(in, bytes_out_seen_) >= max_bytes_) return true;
    }
    if (max_time_ > 0 && n >= 2) return level_time() >= max_time_;
    return false;
  }
  // The span of timestamps queued (oldest to newest item with a pts), as GStreamer estimates
  // it. pts_ is written only by the producer, which is also the only reader.
  [[nodiscard]] std::uint64_t level_time() const {
    const std::size_t mask = ring_->capacity() - 1;
    const std::uint64_t a = pts_[ring_->head_index_cached() & mask];
    const std::uint64_t b = pts_[(ring_->tail_index() - 1) & mask];
    if (a == kNoPts || b == kNoPts || b < a) return 0;
    return b - a;
  }
  // leaky=downstream: the producer drops the oldest buffers (stopping at an event) until the
  // queue is no longer full, taking the consumer's role under pop_mu_.
  void drop_oldest() {
    std::lock_guard l(pop_mu_);
    while (full()) {
      const std::size_t n = ring_->available();
      if (n == 0 || ring_->at(0).event) break;
      Item it = std::move(ring_->at(0));
      bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + it.buf.size(),
                       std::memory_order_release);
      ring_->consume(1);
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Removes every queued item (flush, stop, downstream error). Called with pop_mu_ held.
  void clear_locked() {
    const std::size_t n = ring_->available();
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < n; ++i) {
      Item it = std::move(ring_->at(i));
      if (!it.event) bytes += it.buf.size();
    }
    bytes_out_.store(bytes_out_.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
    ring_->consume(n);
  }

  Pad* src_{nullptr};
  std::unique_ptr<SpscRing<Item>> ring_;
  std::vector<std::uint64_t> pts_;   // producer only
  std::uint64_t bytes_out_seen_{0};  // producer only: its last look at bytes_out_
  std::vector<Item> batch_;          // owned by the streaming thread
  std::mutex pop_mu_;                // serializes the consumer role (see the class comment)
  alignas(64) std::atomic<std::uint64_t> bytes_in_{0};   // written by the producer only
  alignas(64) std::atomic<std::uint64_t> bytes_out_{0};  // written under pop_mu_ only
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<bool> flushing_{false};
  std::atomic<bool> shutdown_{false};
  std::atomic<FlowReturn> src_result_{FlowReturn::ok};
  bool eos_{false};  // producer only
  std::uint64_t max_buffers_{200};
  std::uint64_t max_bytes_{0};
  std::uint64_t max_time_{0};
  Leaky leaky_{Leaky::none};
};

const ElementRegistrar reg_queue{ElementInfo{
    "queue",
    "Generic",
    "Bounded buffer queue and thread boundary: downstream runs in the queue's own thread",
    [] { return std::make_unique<Queue>(); },
    {PropertySpec::uint64("max-size-buffers", 200, 0, UINT32_MAX,
                          "Max buffers queued (0 = no limit)"),
     PropertySpec::uint64("max-size-bytes", 10u << 20, 0, UINT64_MAX,
                          "Max bytes queued (0 = no limit)"),
     PropertySpec::uint64("max-size-time", 1'000'000'000, 0, UINT64_MAX,
                          "Max span of timestamps queued in ns (0 = no limit)"),
     PropertySpec::enumeration(
         "leaky", "none",
         {{static_cast<std::int64_t>(Leaky::none), "none",
           "block upstream when full (backpressure)"},
          {static_cast<std::int64_t>(Leaky::upstream), "upstream", "drop new buffers when full"},
          {static_cast<std::int64_t>(Leaky::downstream), "downstream",
           "drop the oldest buffers when full"}},
         "What to do when the queue is full"),
     PropertySpec::uint64("current-level-buffers", 0, 0, UINT64_MAX, "Buffers queued now")
         .with_flags(kPropReadable),
     PropertySpec::uint64("current-level-bytes", 0, 0, UINT64_MAX, "Bytes queued now")
         .with_flags(kPropReadable),
     affinity_property()}}};

}  // namespace
}  // namespace parallax::elements
