// SPDX-License-Identifier: MIT OR Apache-2.0
// The simple built-in elements: nullsource, nullsink, passthrough, identity, tee, capsfilter.
#include <chrono>
#include <cstring>
#include <thread>

#include "common.h"

namespace parallax::elements {
namespace {

using namespace parallax::pipeline;

// --- nullsource: empty (or patterned) buffers from a pool, as fast as downstream takes them.
class NullSource final : public SourceElement {
 public:
  Result<void> start() override {
    num_buffers_ = prop<std::int64_t>("num-buffers");
    size_ = prop<std::uint64_t>("size");
    const std::string pattern = prop<std::string>("pattern");
    pattern_ = pattern == "zero" ? 1 : pattern == "counter" ? 2 : 0;
    produced_ = 0;
    // Enough slots to keep a default queue busy; capped so huge sizes stay reasonable.
    std::size_t slots =
        std::clamp<std::size_t>((64u << 20) / std::max<std::uint64_t>(size_, 1), 8, 1024);
    PLX_ASSIGN(pool_, make_heap_pool(size_, slots));
    pool_metrics_ = pool_metrics(*this, pool_);
    return ok();
  }
  Result<void> stop() override {
    pool_metrics_.reset();
    pool_.reset();
    return ok();
  }

 protected:
  FlowReturn create(Buffer& out) override {
    if (num_buffers_ >= 0 && produced_ >= static_cast<std::uint64_t>(num_buffers_))
      return FlowReturn::eos;
    memory::Loan loan;
    if (FlowReturn fr = loan_slot(*this, *pool_, loan); fr != FlowReturn::ok) return fr;
    (void)loan.set_size(size_);  // within capacity: the slot was sized for it
    auto bytes = loan.data();
    if (pattern_ == 1) {
      std::memset(bytes.data(), 0, bytes.size());
    } else if (pattern_ == 2) {
      for (std::size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<std::byte>((produced_ + i) & 0xff);
    }
    Metadata& m = loan.metadata();
    m.offset = produced_;
    m.offset_end = produced_ + 1;
    m.sequence = produced_;
    ++produced_;
    out = std::move(loan).freeze();
    return FlowReturn::ok;
  }

 private:
  std::int64_t num_buffers_{-1};
  std::uint64_t size_{0};
  int pattern_{0};
  std::uint64_t produced_{0};
  std::shared_ptr<memory::MemoryPool> pool_;
  observe::MetricsRegistry::Registration pool_metrics_;  // pool_ in the metrics
};

// --- nullsink: drops everything.
class NullSink final : public SinkElement {
 protected:
  FlowReturn render(const Buffer&) override { return FlowReturn::ok; }
};

// --- passthrough: forwards buffers unchanged.
class PassThrough final : public TransformElement {
 protected:
  FlowReturn transform(Buffer&, bool&) override { return FlowReturn::ok; }
};

// --- identity: counts, optionally sleeps (a slow element) or fails after N buffers.
class Identity final : public TransformElement {
 public:
  Result<void> start() override {
    error_after_ = prop<std::int64_t>("error-after");
    sleep_us_ = prop<std::uint64_t>("sleep-time");
    silent_ = prop<bool>("silent");
    buffers_.store(0);
    bytes_.store(0);
    return ok();
  }

 protected:
  FlowReturn transform(Buffer& buf, bool&) override {
    const std::uint64_t n = buffers_.load(std::memory_order_relaxed) + 1;
    buffers_.store(n, std::memory_order_relaxed);
    bytes_.store(bytes_.load(std::memory_order_relaxed) + buf.size(), std::memory_order_relaxed);
    if (error_after_ >= 0 && n > static_cast<std::uint64_t>(error_after_)) {
      post_error(Errc::internal, "error-after reached: failing on buffer " + std::to_string(n));
      return FlowReturn::error;
    }
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    if (!silent_)
      post_info("chain: buffer #" + std::to_string(n - 1) + ", " + std::to_string(buf.size()) +
                " bytes");
    return FlowReturn::ok;
  }
  PropertyValue read_property(const PropertySpec& spec,
                              const PropertyValue& stored) const override {
    if (spec.name == "buffers") return buffers_.load(std::memory_order_relaxed);
    if (spec.name == "bytes") return bytes_.load(std::memory_order_relaxed);
    return stored;
  }

 private:
  std::int64_t error_after_{-1};
  std::uint64_t sleep_us_{0};
  bool silent_{true};
  std::atomic<std::uint64_t> buffers_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

// --- tee: one input, any number of request outputs; each gets a clone (no byte copied).
class Tee final : public Element {
 public:
  Tee() {
    add_pad_template({"sink", PadDirection::sink, PadPresence::always, "ANY"});
    add_pad_template({"src_%u", PadDirection::src, PadPresence::request, "ANY"});
  }
  Result<void> start() override {
    srcs_ = src_pads();  // the graph is frozen while running; no allocation per buffer
    return ok();
  }
  FlowReturn chain(Pad&, Buffer&& buf) override {
    bool any_ok = false, all_eos = true;
    for (std::size_t i = 0; i < srcs_.size(); ++i) {
      FlowReturn fr =
          i + 1 == srcs_.size() ? srcs_[i]->push(std::move(buf)) : srcs_[i]->push(buf.clone());
      switch (fr) {
        case FlowReturn::ok:
          any_ok = true;
          all_eos = false;
          break;
        case FlowReturn::eos:
          break;  // that branch is done; keep feeding the others
        case FlowReturn::not_linked:
          all_eos = false;
          break;
        default:
          return fr;  // error or flushing: stop the stream
      }
    }
    if (any_ok) return FlowReturn::ok;
    return all_eos ? FlowReturn::eos : FlowReturn::not_linked;
  }

 private:
  std::vector<Pad*> srcs_;
};

// --- capsfilter: restricts (and announces) the format.
class CapsFilter final : public TransformElement {
 public:
  Result<void> start() override {
    auto c = Caps::parse(prop<std::string>("caps"));
    if (!c) return std::move(c).error();
    filter_ = std::move(*c);
    sent_caps_ = false;
    failed_ = false;
    return ok();
  }
  bool handle_event(Pad& pad, const Event& ev) override {
    if (ev.type == EventType::segment && !sent_caps_) {
      // Upstream announced no format: this filter's caps become the stream's format, sent
      // before the segment as GStreamer orders them.
      sent_caps_ = true;
      if (!forward_event(Event::make_caps(filter_))) return false;
    }
    if (ev.type != EventType::caps) return TransformElement::handle_event(pad, ev);
    Caps result = ev.caps.intersect(filter_);
    if (result.is_empty()) {
      failed_ = true;
      post_error(Errc::invalid_argument, "not negotiated: format '" + ev.caps.to_string() +
                                             "' from upstream does not match the caps filter '" +
                                             filter_.to_string() + "'");
      return false;
    }
    sent_caps_ = true;
    return forward_event(Event::make_caps(std::move(result)));
  }

 protected:
  FlowReturn transform(Buffer&, bool&) override {
    if (failed_) return FlowReturn::error;
    if (!sent_caps_) {
      // Upstream announced no format: this filter's caps become the stream's format.
      sent_caps_ = true;
      if (!src_pad().push_event(Event::make_caps(filter_))) return FlowReturn::error;
    }
    return FlowReturn::ok;
  }

 private:
  Caps filter_;
  bool sent_caps_{false};
  bool failed_{false};
};

template <typename T>
std::function<std::unique_ptr<Element>()> make() {
  return [] { return std::make_unique<T>(); };
}

const ElementRegistrar reg_nullsource{ElementInfo{
    "nullsource",
    "Source",
    "Produces buffers of a fixed size from a pool (contents per 'pattern')",
    make<NullSource>(),
    {PropertySpec::int64("num-buffers", -1, -1, INT64_MAX,
                         "Buffers to produce before EOS (-1 = unlimited)"),
     PropertySpec::uint64("size", 4096, 0, 256u << 20, "Size of each buffer in bytes"),
     PropertySpec::enumeration("pattern", "none",
                               {{0, "none", "leave the slot's bytes as they are (fastest)"},
                                {1, "zero", "fill with zeros"},
                                {2, "counter", "byte i of buffer n is (n + i) mod 256"}},
                               "Contents of each buffer"),
     affinity_property()}}};

const ElementRegistrar reg_nullsink{
    ElementInfo{"nullsink", "Sink", "Discards every buffer", make<NullSink>(), {}}};

const ElementRegistrar reg_passthrough{ElementInfo{
    "passthrough", "Transform", "Passes buffers on unchanged", make<PassThrough>(), {}}};

const ElementRegistrar reg_identity{ElementInfo{
    "identity",
    "Transform",
    "Passes buffers on, counting them; can sleep or fail for testing",
    make<Identity>(),
    {PropertySpec::boolean("silent", true, "Do not post an info message per buffer"),
     PropertySpec::int64("error-after", -1, -1, INT64_MAX,
                         "Fail after this many buffers (-1 = never)"),
     PropertySpec::uint64("sleep-time", 0, 0, 10'000'000, "Microseconds to sleep per buffer"),
     PropertySpec::uint64("buffers", 0, 0, UINT64_MAX, "Buffers seen so far")
         .with_flags(kPropReadable),
     PropertySpec::uint64("bytes", 0, 0, UINT64_MAX, "Bytes seen so far")
         .with_flags(kPropReadable)}}};

const ElementRegistrar reg_tee{ElementInfo{
    "tee", "Generic", "Sends each buffer to every src_%u pad (clones, no copy)", make<Tee>(), {}}};

const ElementRegistrar reg_capsfilter{ElementInfo{
    "capsfilter",
    "Generic",
    "Restricts the stream's format to the given caps",
    make<CapsFilter>(),
    {PropertySpec::caps("caps", "ANY", "Allowed format, e.g. video/x-raw,format=RGBA")}}};

}  // namespace
}  // namespace parallax::elements
