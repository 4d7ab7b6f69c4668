// SPDX-License-Identifier: MIT OR Apache-2.0
// The bridge between typed and dynamic pipelines: into_element() turns a typed source (or a
// typed pipeline without its sink) into a dynamic source element whose buffers are archives of
// its items; element_sink<T>() turns a typed sink (collect, for_each, fold, discard) into a
// dynamic sink element that validates each buffer as an archive of T and feeds the sink, whose
// result is read after the run. Byte-like T (std::vector<std::byte>, std::string) cross as raw
// buffers instead.
//
//   namespace dyn = parallax::pipeline;
//   dyn::Pipeline p;
//   auto src = p.add_node("numbers", typed::into_element(typed::range(0, 100))).value();
//   p.parse("queue name=q ! passthrough name=pt");
//   auto [element, result] = typed::element_sink<int>(typed::collect<int>());
//   auto snk = p.add_node("out", std::move(element)).value();
//   p.link(src, *p.node("q"));  p.link(*p.node("pt"), snk);
//   dyn::PipelineExecutor().run(p);
//   std::vector<int> v = result.take().value();
//
// See docs/typed.md ("Bridge to dynamic pipelines").
#pragma once

#include <parallax/archive.h>
#include <parallax/element.h>
#include <parallax/pool.h>
#include <parallax/segment.h>
#include <parallax/typed.h>
#include <parallax/typed_ipc.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

using link::Typed;

/// Item types that cross a dynamic pipeline as raw bytes, unchanged (no archive, no header, no
/// validation): they interoperate with byte-stream elements such as filesrc or tcpsink.
template <typename T>
concept RawBytes = std::same_as<T, std::vector<std::byte>> || std::same_as<T, std::string>;

/// Item types the bridge can carry: archivable ones (as archives) and raw byte types.
template <typename T>
concept Bridgeable = RawBytes<T> || archive::Archivable<T>;

struct ElementSourceOptions {
  /// Archives are written into slots of this pool (for example a memfd pool shared with an
  /// IPC publisher downstream). When null, the element makes a heap pool of `slots` x
  /// `slot_size` in start(). An item whose archive does not fit a slot is serialized on the
  /// heap instead (one allocation).
  std::shared_ptr<memory::MemoryPool> pool{};
  std::size_t slot_size{64 * 1024};
  std::size_t slots{16};
};

struct ElementSinkOptions {
  /// How much each buffer is checked before it is read as Archived<T>. Buffers come from
  /// elements of this process, but possibly from a parallaxsrc (another process): `full` by
  /// default.
  archive::Validation validation{archive::Validation::full};
  std::uint32_t max_depth{64};
};

namespace detail {
namespace dyn = ::parallax::pipeline;

/// What a source element announces: the archive format, or nothing for raw bytes (raw
/// buffers have no format of their own, as with filesrc).
template <typename T>
std::string element_caps() {
  if constexpr (RawBytes<T>) {
    return "ANY";
  } else {
    return link::archive_format<T>();
  }
}

/// Loans a slot, waiting while the pool is empty (backpressure) but giving up with flushing
/// as soon as the element is stopping.
inline dyn::FlowReturn loan_slot(dyn::Element& e, memory::MemoryPool& pool, memory::Loan& out) {
  auto r = pool.try_loan();
  while (!r.ok()) {
    if (e.stopping()) return dyn::FlowReturn::flushing;
    if (r.error().code != Errc::resource_exhausted && r.error().code != Errc::timeout) {
      e.post_error(r.error().code, "cannot get a buffer: " + r.error().message);
      return dyn::FlowReturn::error;
    }
    r = pool.loan_for(std::chrono::milliseconds(50));
  }
  out = std::move(*r);
  return dyn::FlowReturn::ok;
}

/// The source element: runs the typed pipeline on its streaming thread; a private sink at the
/// end of it encodes each item into a buffer and pushes it on the src pad.
template <typename P>
class TypedSourceElement final : public dyn::Element {
 public:
  using value_type = typename P::value_type;

  TypedSourceElement(P p, ElementSourceOptions opts) : p_(std::move(p)), opts_(std::move(opts)) {
    add_pad_template(
        {"src", dyn::PadDirection::src, dyn::PadPresence::always, element_caps<value_type>()});
    src_ = pad("src");
  }

  [[nodiscard]] bool has_task() const noexcept override { return true; }

  Result<void> start() override {
    if (!p_) return err(Errc::failed_precondition, "a typed source element runs only once");
    if (opts_.slot_size == 0 || opts_.slots == 0)
      return err(Errc::invalid_argument, "slot_size and slots must be positive");
    if (!opts_.pool) {
      const std::size_t stride = (opts_.slot_size + 63) & ~std::size_t{63};
      PLX_ASSIGN(auto seg, memory::HeapSegment::create(stride * opts_.slots));
      PLX_ASSIGN(opts_.pool, memory::MemoryPool::create(std::move(seg), opts_.slot_size));
    }
    return ok();
  }

  void run_task() override {
    src_->push_event(dyn::Event::stream_start(name()));
    if constexpr (!RawBytes<value_type>) {
      auto caps = dyn::Caps::parse(link::archive_format<value_type>());
      if (!caps.ok() || !src_->push_event(dyn::Event::make_caps(std::move(*caps)))) {
        post_error(Errc::invalid_argument, "not negotiated: downstream refused '" +
                                               link::archive_format<value_type>() + "'");
        return;
      }
    }
    src_->push_event(dyn::Event::make_segment());
    if (!p_) {
      post_error(Errc::failed_precondition, "a typed source element runs only once");
      return;
    }
    P p = std::move(*p_);
    p_.reset();
    Result<void> r;
    if constexpr (Source<P>) {
      r = typed::pipeline(std::move(p)).sink(PushSink{{}, this}).run();
    } else {
      r = std::move(p).sink(PushSink{{}, this}).run();
    }
    if (!r.ok()) {
      // An error of the typed side (a map returning an error...): it stops the dynamic
      // pipeline with that error.
      post_error(r.error().code, r.error().message);
      return;
    }
    switch (flow_) {
      case dyn::FlowReturn::ok:  // the typed source ended
      case dyn::FlowReturn::eos:
        src_->push_event(dyn::Event::eos());
        break;
      case dyn::FlowReturn::not_linked:
        post_error(Errc::failed_precondition,
                   "streaming stopped: pad '" + src_->full_name() + "' is not linked");
        break;
      case dyn::FlowReturn::error:
        post_error(Errc::internal, "streaming stopped, reason error");
        break;
      default:
        break;
    }
  }

  /// Items whose archive did not fit a slot and were serialized on the heap.
  [[nodiscard]] std::uint64_t heap_fallbacks() const noexcept { return heap_fallbacks_; }

 private:
  // The typed sink ending the typed pipeline inside this element.
  struct PushSink : sink_tag {
    using result_type = void;
    TypedSourceElement* self;
    template <typename In>
    static constexpr bool accepts = true;
    template <typename In>
    static void diagnose() {}
    template <typename In>
    auto bind(RunContext& /*ctx*/) && {
      return Node{self};
    }
  };
  struct Node {
    TypedSourceElement* self;
    [[nodiscard]] bool open() const { return true; }
    void finish() {}
    Node& sink_node() { return *this; }
    void take() {}
    template <typename U>
    bool push(U&& x) {
      return self->push_item(std::forward<U>(x));
    }
  };

  template <typename U>
  bool push_item(U&& x) {
    if (stopping()) return stop_with(dyn::FlowReturn::flushing);
    if (eos_requested()) return stop_with(dyn::FlowReturn::eos);
    memory::Buffer b;
    if (auto fr = encode(std::forward<U>(x), b); fr != dyn::FlowReturn::ok) return stop_with(fr);
    const auto fr = src_->push(std::move(b));
    if (fr != dyn::FlowReturn::ok) return stop_with(fr);
    return true;
  }
  bool stop_with(dyn::FlowReturn fr) {
    flow_ = fr;
    return false;
  }

  template <typename U>
  dyn::FlowReturn encode(U&& x, memory::Buffer& out) {
    const value_type& v = x;
    Metadata meta;
    meta.sequence = sequence_++;
    if constexpr (std::is_same_v<value_type, std::vector<std::byte>> &&
                  !std::is_lvalue_reference_v<U> && !std::is_const_v<std::remove_reference_t<U>>) {
      // An owned byte vector becomes the buffer itself: no copy at all.
      out = memory::Buffer::from_vector(std::move(x), std::move(meta));
      return dyn::FlowReturn::ok;
    } else if constexpr (RawBytes<value_type>) {
      const auto bytes = std::as_bytes(std::span(v.data(), v.size()));
      if (bytes.size() > opts_.pool->slot_size()) {
        ++heap_fallbacks_;
        out = memory::Buffer::copy_from(bytes, std::move(meta));
        return dyn::FlowReturn::ok;
      }
      memory::Loan loan;
      if (auto fr = loan_slot(*this, *opts_.pool, loan); fr != dyn::FlowReturn::ok) return fr;
      (void)loan.set_size(bytes.size());
      if (!bytes.empty()) std::memcpy(loan.data().data(), bytes.data(), bytes.size());
      loan.metadata() = std::move(meta);
      out = std::move(loan).freeze();
      return dyn::FlowReturn::ok;
    } else {
      // The archive is written straight into the slot (born in the pool's memory).
      memory::Loan loan;
      if (auto fr = loan_slot(*this, *opts_.pool, loan); fr != dyn::FlowReturn::ok) return fr;
      auto r = link::serialize_archive_into(v, loan);
      if (r.ok()) {
        loan.metadata() = std::move(meta);
        out = std::move(loan).freeze();
        return dyn::FlowReturn::ok;
      }
      if (r.error().code != Errc::resource_exhausted) {
        post_error(r.error().code, r.error().message);
        return dyn::FlowReturn::error;
      }
      loan = memory::Loan{};  // give the slot back before allocating
      auto bytes = archive::serialize(v, archive::WriteOptions{.header = true});
      if (!bytes.ok()) {
        post_error(bytes.error().code, bytes.error().message);
        return dyn::FlowReturn::error;
      }
      ++heap_fallbacks_;
      out = memory::Buffer::from_vector(std::move(*bytes), std::move(meta));
      return dyn::FlowReturn::ok;
    }
  }

  std::optional<P> p_;
  ElementSourceOptions opts_;
  dyn::Pad* src_{nullptr};
  dyn::FlowReturn flow_{dyn::FlowReturn::ok};
  std::uint64_t sequence_{0};
  std::uint64_t heap_fallbacks_{0};
};

template <typename R>
struct SinkState {
  std::mutex mu;
  std::optional<Result<R>> result;
  bool taken{false};
};

}  // namespace detail

/// The result of a typed sink element, filled when end-of-stream reaches it (or when the run
/// ends without it). Shared with the element: keep it, add the element to a pipeline, run,
/// then take().
template <typename R>
class SinkResult {
 public:
  explicit SinkResult(std::shared_ptr<detail::SinkState<R>> s) : s_(std::move(s)) {}
  /// Whether the run has produced the result (or an error) yet.
  [[nodiscard]] bool ready() const {
    std::lock_guard lk(s_->mu);
    return s_->result.has_value();
  }
  /// The sink's result (collect: the vector, fold: the accumulator, discard: the count). Errors:
  /// data_loss when a buffer was not a valid archive of T, failed_precondition for a format of
  /// another type, the sink's own error (a for_each callable's), cancelled when the pipeline
  /// stopped before end-of-stream reached the sink, failed_precondition before the run ended
  /// or on a second take().
  [[nodiscard]] Result<R> take() {
    std::lock_guard lk(s_->mu);
    if (s_->taken) return err(Errc::failed_precondition, "the typed sink's result was taken");
    if (!s_->result)
      return err(Errc::failed_precondition, "the typed sink has not finished (no EOS yet)");
    s_->taken = true;
    Result<R> r = std::move(*s_->result);
    s_->result.reset();
    return r;
  }

 private:
  std::shared_ptr<detail::SinkState<R>> s_;
};

/// What element_sink() returns: the element for Pipeline::add_node, and its result handle.
template <typename R>
struct ElementSink {
  std::unique_ptr<::parallax::pipeline::Element> element;
  SinkResult<R> result;
};

namespace detail {

enum class SinkMode { owned, view };

/// The sink element: decodes each buffer, pushes it into the typed sink's node.
template <typename T, typename K, SinkMode Mode>
class TypedSinkElement final : public dyn::SinkElement {
 public:
  using In = std::conditional_t<Mode == SinkMode::view, Typed<T>&&, T&&>;
  using R = typename K::result_type;
  using NodeT = decltype(std::declval<K>().template bind<In>(std::declval<RunContext&>()));

  TypedSinkElement(K k, ElementSinkOptions opts, std::shared_ptr<SinkState<R>> state)
      : k_(std::move(k)), opts_(opts), state_(std::move(state)) {}

  Result<void> start() override {
    if (!k_) return err(Errc::failed_precondition, "a typed sink element runs only once");
    node_.emplace(std::move(*k_).template bind<In>(ctx_));
    k_.reset();
    return ok();
  }

  Result<void> stop() override {
    // A run that ended without EOS here (stopped, or an error elsewhere) still gives the
    // result handle an answer.
    finish_with(Error{Errc::cancelled,
                      "typed sink '" + name() + "': the pipeline stopped before end-of-stream"});
    return ok();
  }

  bool handle_event(dyn::Pad& pad, const dyn::Event& ev) override {
    if constexpr (!RawBytes<T>) {
      // Raw byte items take any stream; archives must be announced as archives of T (or not
      // announced at all: the per-buffer header still checks the schema).
      if (ev.type == dyn::EventType::caps && !ev.caps.is_any()) {
        if (auto c = link::check_archive_format<T>(ev.caps.to_string(), "element '" + name() + "'");
            !c.ok()) {
          fail(std::move(c).error());
          return false;
        }
      }
    }
    if (ev.type == dyn::EventType::eos && node_) {
      node_->finish();
      if (auto e = ctx_.take_error()) {
        finish_with(std::move(*e));
      } else if constexpr (std::is_void_v<R>) {
        finish_with(Result<void>{});
      } else {
        finish_with(Result<R>(node_->sink_node().take()));
      }
    }
    return dyn::SinkElement::handle_event(pad, ev);
  }

  /// Buffers that were not 8-byte aligned (sliced by an upstream element) and were copied.
  [[nodiscard]] std::uint64_t aligned_copies() const noexcept { return aligned_copies_; }

 protected:
  dyn::FlowReturn render(const memory::Buffer& buf) override {
    if (failed_ || !node_) return dyn::FlowReturn::error;
    bool more = true;
    if constexpr (RawBytes<T>) {
      const auto d = buf.data();
      T v(reinterpret_cast<const typename T::value_type*>(d.data()),
          reinterpret_cast<const typename T::value_type*>(d.data()) + d.size());
      more = node_->push(std::move(v));
    } else {
      memory::Buffer b = buf;  // a clone: one atomic increment
      if (reinterpret_cast<std::uintptr_t>(b.data().data()) % archive::kBufferAlignment != 0) {
        // Archives are read in place and need 8-byte alignment; a buffer sliced at an odd
        // offset is copied once into aligned heap memory.
        ++aligned_copies_;
        b = memory::Buffer::copy_from(buf.data(), buf.metadata());
      }
      archive::AccessOptions ao;
      ao.level = opts_.validation;
      ao.max_depth = opts_.max_depth;
      ao.header = true;
      auto t = Typed<T>::from_buffer(std::move(b), ao);
      if (!t.ok()) {
        fail(Error{Errc::data_loss, "element '" + name() + "': buffer #" +
                                        std::to_string(received_) + " is not a valid archive of " +
                                        std::string(link::archive_type_name<T>()) + ": " +
                                        t.error().message});
        return dyn::FlowReturn::error;
      }
      if constexpr (Mode == SinkMode::view) {
        more = node_->push(std::move(*t));
      } else {
        more = node_->push(t->deserialize());
      }
    }
    ++received_;
    if (!more) {
      if (auto e = ctx_.take_error()) {
        fail(std::move(*e));
        return dyn::FlowReturn::error;
      }
      return dyn::FlowReturn::eos;
    }
    return dyn::FlowReturn::ok;
  }

 private:
  void fail(Error e) {
    failed_ = true;
    post_error(e.code, e.message);
    finish_with(std::move(e));
  }
  void finish_with(Result<R> r) {
    std::lock_guard lk(state_->mu);
    if (!state_->result && !state_->taken) state_->result = std::move(r);
  }

  std::optional<K> k_;
  ElementSinkOptions opts_;
  std::shared_ptr<SinkState<R>> state_;
  RunContext ctx_;
  std::optional<NodeT> node_;
  bool failed_{false};
  std::uint64_t received_{0};
  std::uint64_t aligned_copies_{0};
};

template <typename T, SinkMode Mode, typename K>
auto make_element_sink(K k, ElementSinkOptions opts) {
  using R = typename K::result_type;
  auto state = std::make_shared<SinkState<R>>();
  return ElementSink<R>{std::make_unique<TypedSinkElement<T, K, Mode>>(std::move(k), opts, state),
                        SinkResult<R>(state)};
}

}  // namespace detail

/// A dynamic source element from a typed source (`range(0, 10)`, `from_iter(v)`...) or a typed
/// pipeline without its sink (`pipeline(src).then(map(f))`). Its streaming thread runs the typed
/// pipeline and pushes every item as a buffer: an archive of the item (with the archive header)
/// written straight into a pool slot, announced by the caps archive_format<T>(); raw bytes for
/// std::vector<std::byte> / std::string items (no caps). An error of the typed pipeline stops
/// the dynamic pipeline with that error; the end of the typed source is EOS. Runs once.
template <typename P>
[[nodiscard]] std::unique_ptr<::parallax::pipeline::Element> into_element(
    P p, ElementSourceOptions opts = {}) {
  static_assert(Source<P> || detail::is_pipeline<P>::value,
                "parallax::typed::into_element: takes a typed source (range, from_iter, ...) or a "
                "typed pipeline without its sink (pipeline(src).then(...))");
  static_assert(Bridgeable<typename P::value_type>,
                "parallax::typed::into_element: items must be archivable (PLX_ARCHIVE) or raw "
                "bytes (std::vector<std::byte>, std::string)");
  return std::make_unique<detail::TypedSourceElement<P>>(std::move(p), std::move(opts));
}

/// A dynamic sink element that reads every buffer as an archive of T (validated, see
/// ElementSinkOptions) and pushes an owned T into the typed sink `k` (collect<T>(),
/// for_each(f), fold(init, f), discard()). Raw byte T (std::vector<std::byte>, std::string)
/// takes the bytes unchanged. A buffer that is not a valid archive of T stops the pipeline with
/// data_loss; caps announcing another type are refused (failed_precondition). The sink's result
/// is in `.result` after the run. Runs once.
template <typename T, typename K>
[[nodiscard]] auto element_sink(K k, ElementSinkOptions opts = {}) {
  static_assert(Bridgeable<T>,
                "parallax::typed::element_sink<T>: T must be archivable (PLX_ARCHIVE) or raw "
                "bytes (std::vector<std::byte>, std::string)");
  static_assert(Sink<K>,
                "parallax::typed::element_sink: takes a typed sink (collect<T>(), "
                "for_each(f), fold(init, f), discard())");
  static_assert(SinkAccepts<K, T&&>,
                "parallax::typed::element_sink<T>: the sink cannot take items of type T");
  return detail::make_element_sink<T, detail::SinkMode::owned>(std::move(k), opts);
}

/// As element_sink(), but items are Typed<T> views of the buffers (no deserialization: read
/// fields in place through `->`); each view holds its buffer, so collect<Typed<T>>() keeps them.
template <typename T, typename K>
[[nodiscard]] auto element_view_sink(K k, ElementSinkOptions opts = {}) {
  static_assert(archive::Archivable<T> && !RawBytes<T>,
                "parallax::typed::element_view_sink<T>: T must be archivable (PLX_ARCHIVE)");
  static_assert(Sink<K>, "parallax::typed::element_view_sink: takes a typed sink");
  static_assert(SinkAccepts<K, Typed<T>&&>,
                "parallax::typed::element_view_sink<T>: the sink cannot take Typed<T> items");
  return detail::make_element_sink<T, detail::SinkMode::view>(std::move(k), opts);
}

}  // namespace parallax::typed
