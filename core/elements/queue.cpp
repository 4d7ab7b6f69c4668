// SPDX-License-Identifier: MIT OR Apache-2.0
// queue: a bounded thread boundary. Upstream's thread enqueues; the queue's own streaming
// thread dequeues in batches and pushes downstream. Full queue = backpressure (or leaky drop).
#include <condition_variable>
#include <mutex>

#include "common.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;

// A growable ring of items; steady state allocates nothing.
struct Item {
  Buffer buf;
  std::unique_ptr<Event> event;  // set for serialized events (rare: allocation is fine)
};

class Ring {
 public:
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  void push(Item&& it) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(it);
    ++size_;
  }
  Item pop() {
    Item it = std::move(slots_[head_]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return it;
  }
  Item& front() { return slots_[head_]; }
  [[nodiscard]] const Item& front() const { return slots_[head_]; }
  [[nodiscard]] const Item& back() const {
    return slots_[(head_ + size_ - 1) & (slots_.size() - 1)];
  }
  void clear() {
    while (size_ > 0)
      (void)pop();
  }
  void reserve(std::size_t n) {
    while (slots_.size() < n)
      grow();
  }

 private:
  void grow() {
    std::vector<Item> n(slots_.empty() ? 16 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i)
      n[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    slots_ = std::move(n);
    head_ = 0;
  }
  std::vector<Item> slots_;
  std::size_t head_{0};
  std::size_t size_{0};
};

enum class Leaky { none, upstream, downstream };

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
    const std::string leaky = prop<std::string>("leaky");
    leaky_ = leaky == "upstream"     ? Leaky::upstream
             : leaky == "downstream" ? Leaky::downstream
                                     : Leaky::none;
    std::lock_guard l(mu_);
    ring_.clear();
    ring_.reserve(max_buffers_ > 0 && max_buffers_ < 4096 ? max_buffers_ + 1 : 64);
    batch_.reserve(kBatch);
    bytes_ = 0;
    dropped_ = 0;
    flushing_ = false;
    shutdown_ = false;
    eos_ = false;
    src_result_ = FlowReturn::ok;
    return ok();
  }

  Result<void> stop() override {
    std::lock_guard l(mu_);
    ring_.clear();
    bytes_ = 0;
    if (dropped_ > 0) post_info("dropped " + std::to_string(dropped_) + " buffers (leaky)");
    return ok();
  }

  void unlock() override {
    {
      std::lock_guard l(mu_);
      shutdown_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  FlowReturn chain(Pad&, Buffer&& buf) override {
    std::unique_lock l(mu_);
    if (leaky_ == Leaky::none) {
      while (full() && !flushing_ && !shutdown_ && src_result_ == FlowReturn::ok) {
        producer_waiting_ = true;
        not_full_.wait(l);
        producer_waiting_ = false;
      }
    }
    if (shutdown_ || flushing_) return FlowReturn::flushing;
    if (src_result_ != FlowReturn::ok) return src_result_;
    if (eos_) return FlowReturn::eos;
    if (full()) {
      if (leaky_ == Leaky::upstream) {  // drop the new buffer
        ++dropped_;
        return FlowReturn::ok;
      }
      while (full() && !ring_.empty() && !ring_.front().event) {  // drop the oldest buffers
        bytes_ -= ring_.front().buf.size();
        (void)ring_.pop();
        ++dropped_;
      }
    }
    bytes_ += buf.size();
    ring_.push(Item{std::move(buf), nullptr});
    // Wake the consumer only when it sleeps: most pushes then cost no syscall at all.
    const bool wake = consumer_waiting_;
    l.unlock();
    if (wake) not_empty_.notify_one();
    return FlowReturn::ok;
  }

  bool handle_event(Pad&, const Event& ev) override {
    if (ev.type == EventType::flush_start) {
      {
        std::lock_guard l(mu_);
        flushing_ = true;
        ring_.clear();
        bytes_ = 0;
      }
      not_full_.notify_all();
      not_empty_.notify_all();
      return forward_event(ev);  // not serialized: overtakes the queued data
    }
    std::unique_lock l(mu_);
    if (ev.type == EventType::flush_stop) {
      flushing_ = false;
      eos_ = false;
      src_result_ = FlowReturn::ok;
      flush();
    }
    if (shutdown_) return false;
    if (ev.type == EventType::eos) eos_ = true;
    ring_.push(Item{Buffer{}, std::make_unique<Event>(ev)});
    const bool wake = consumer_waiting_;
    l.unlock();
    if (wake) not_empty_.notify_one();
    return true;
  }

  [[nodiscard]] bool has_task() const noexcept override { return true; }

  // Streaming thread: takes up to kBatch items per lock, pushes them downstream unlocked.
  void run_task() override {
    for (;;) {
      {
        std::unique_lock l(mu_);
        while (ring_.empty() && !shutdown_) {
          consumer_waiting_ = true;
          not_empty_.wait(l);
          consumer_waiting_ = false;
        }
        if (shutdown_) return;
        while (!ring_.empty() && batch_.size() < kBatch) {
          Item it = ring_.pop();
          if (!it.event) bytes_ -= it.buf.size();
          batch_.push_back(std::move(it));
        }
        const bool wake = producer_waiting_;
        l.unlock();
        if (wake) not_full_.notify_one();
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
          {
            std::lock_guard l(mu_);
            src_result_ = fr;
            ring_.clear();
            bytes_ = 0;
          }
          not_full_.notify_all();
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
    if (spec.name == "current-level-buffers") {
      std::lock_guard l(mu_);
      return static_cast<std::uint64_t>(ring_.size());
    }
    if (spec.name == "current-level-bytes") {
      std::lock_guard l(mu_);
      return static_cast<std::uint64_t>(bytes_);
    }
    return stored;
  }

 private:
  static constexpr std::size_t kBatch = 256;

  // Called with mu_ held.
  [[nodiscard]] bool full() const {
    if (max_buffers_ > 0 && ring_.size() >= max_buffers_) return true;
    if (max_bytes_ > 0 && bytes_ >= max_bytes_) return true;
    if (max_time_ > 0 && ring_.size() >= 2) return level_time() >= max_time_;
    return false;
  }
  // The span of timestamps queued (first to last buffer with a pts), as GStreamer estimates it.
  [[nodiscard]] std::uint64_t level_time() const {
    const Item& a = ring_.front();
    const Item& b = ring_.back();
    if (a.event || b.event || !a.buf.valid() || !b.buf.valid()) return 0;
    const auto& pa = a.buf.metadata().pts;
    const auto& pb = b.buf.metadata().pts;
    if (!pa || !pb || *pb < *pa) return 0;
    return *pb - *pa;
  }

  Pad* src_{nullptr};
  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  Ring ring_;
  std::vector<Item> batch_;  // owned by the streaming thread
  std::uint64_t bytes_{0};
  std::uint64_t dropped_{0};
  std::uint64_t max_buffers_{200};
  std::uint64_t max_bytes_{0};
  std::uint64_t max_time_{0};
  Leaky leaky_{Leaky::none};
  bool flushing_{false};
  bool shutdown_{false};
  bool eos_{false};
  bool producer_waiting_{false};
  bool consumer_waiting_{false};
  FlowReturn src_result_{FlowReturn::ok};
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
     PropertySpec::enumeration("leaky", "none",
                               {{0, "none", "block upstream when full (backpressure)"},
                                {1, "upstream", "drop new buffers when full"},
                                {2, "downstream", "drop the oldest buffers when full"}},
                               "What to do when the queue is full"),
     PropertySpec::uint64("current-level-buffers", 0, 0, UINT64_MAX, "Buffers queued now")
         .with_flags(kPropReadable),
     PropertySpec::uint64("current-level-bytes", 0, 0, UINT64_MAX, "Bytes queued now")
         .with_flags(kPropReadable),
     affinity_property()}}};

}  // namespace
}  // namespace parallax::elements
