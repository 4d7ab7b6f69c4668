// SPDX-License-Identifier: MIT OR Apache-2.0
// The element model of the dynamic pipeline: elements with pads and typed properties, the
// source/sink/transform base classes, and the registry that creates elements by name.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "parallax/buffer.h"
#include "parallax/bus.h"
#include "parallax/caps.h"
#include "parallax/event.h"
#include "parallax/property.h"
#include "parallax/result.h"

namespace parallax::pipeline {

using memory::Buffer;

/// What a push returns upstream (GstFlowReturn).
enum class FlowReturn : std::int8_t {
  ok = 0,
  eos,         ///< downstream wants no more data
  flushing,    ///< the pipeline is stopping or flushing
  not_linked,  ///< the pad has no peer
  error,       ///< an element failed; it has posted the error on the bus
};
[[nodiscard]] std::string_view to_string(FlowReturn f) noexcept;

enum class PadDirection : std::uint8_t { src, sink };
enum class PadPresence : std::uint8_t { always, request };

/// Describes pads an element has (always) or can create on request ("src_%u").
struct PadTemplate {
  std::string name_template;
  PadDirection direction{PadDirection::src};
  PadPresence presence{PadPresence::always};
  std::string caps{"ANY"};
};

class Element;
class PipelineExecutor;

/// A connection point of an element. Links are src -> sink, one peer each. A src pad's
/// push() is a direct call into the peer element's chain(): no lock, no allocation.
class Pad {
 public:
  Pad(const Pad&) = delete;
  Pad& operator=(const Pad&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] PadDirection direction() const noexcept { return direction_; }
  [[nodiscard]] Element& element() const noexcept { return *element_; }
  [[nodiscard]] Pad* peer() const noexcept { return peer_; }
  [[nodiscard]] bool is_linked() const noexcept { return peer_ != nullptr; }
  [[nodiscard]] bool is_request() const noexcept { return request_; }
  /// "element.pad".
  [[nodiscard]] std::string full_name() const;

  /// Pushes a buffer to the peer (src pads only; called from the streaming thread).
  inline FlowReturn push(Buffer&& buf);
  /// Pushes an event to the peer; false when the peer refused it (e.g. incompatible caps).
  bool push_event(const Event& ev);

  /// The format last seen on this pad (sink pads: received; src pads: sent). ANY before.
  /// Only read it from the streaming thread.
  [[nodiscard]] const Caps& caps() const noexcept { return caps_; }

  /// Buffers and bytes that went through this pad. Written only by the streaming thread,
  /// readable from any thread.
  [[nodiscard]] std::uint64_t buffers() const noexcept {
    return buffers_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t bytes() const noexcept {
    return bytes_.load(std::memory_order_relaxed);
  }

 private:
  friend class Element;
  friend class Pipeline;
  friend class PipelineExecutor;
  Pad(Element* element, std::string name, PadDirection dir, bool request)
      : element_(element), name_(std::move(name)), direction_(dir), request_(request) {}
  // One writer per pad (its streaming thread), so a relaxed load+store is enough and cheaper
  // than an atomic read-modify-write.
  void count(std::size_t n) noexcept {
    buffers_.store(buffers_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    bytes_.store(bytes_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Element* element_;
  std::string name_;
  PadDirection direction_;
  bool request_;
  Pad* peer_{nullptr};
  Caps caps_;
  std::atomic<std::uint64_t> buffers_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

struct ElementInfo;

namespace detail {
/// What an element sees of the executor that runs it (implemented by PipelineExecutor).
class ElementHost {
 public:
  virtual ~ElementHost() = default;
  virtual void post(Message m) = 0;
  /// A sink element received EOS.
  virtual void sink_eos(Element& sink) = 0;
  /// Whether events should be traced on the bus (parallax-launch -v).
  [[nodiscard]] virtual bool trace_events() const noexcept = 0;
};
}  // namespace detail

/// Base class of every element. Subclasses declare pads and properties in their constructor,
/// read their properties in start(), and implement chain()/handle_event() (and run_task() when
/// they own a streaming thread, as sources and queues do).
///
/// Threading: start()/stop() run on the thread driving the executor, before the streaming
/// threads start and after they are joined; chain()/handle_event() run on the streaming
/// thread feeding the pad; unlock() and request_eos() may run on any thread.
class Element {
 public:
  virtual ~Element();
  Element(const Element&) = delete;
  Element& operator=(const Element&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// Renames the element; refused (failed_precondition) once it belongs to a pipeline.
  Result<void> set_name(std::string name);
  /// The registry entry this element was created from (nullptr for custom elements).
  [[nodiscard]] const ElementInfo* factory() const noexcept { return factory_; }
  /// The factory name, or "custom" when created directly.
  [[nodiscard]] std::string_view factory_name() const noexcept;

  // --- Pads ---
  [[nodiscard]] const std::vector<PadTemplate>& pad_templates() const noexcept {
    return templates_;
  }
  [[nodiscard]] std::vector<Pad*> pads() const;
  [[nodiscard]] std::vector<Pad*> src_pads() const;
  [[nodiscard]] std::vector<Pad*> sink_pads() const;
  [[nodiscard]] Pad* pad(std::string_view name) const noexcept;
  /// Creates a pad from a request template ("src_%u" -> "src_0", "src_1", ...). With an exact
  /// name ("src_3") that name is used. not_found when no request template matches.
  Result<Pad*> request_pad(std::string_view name_or_template);
  /// Removes an unlinked request pad.
  Result<void> release_pad(Pad* pad);
  /// Whether the element can produce pads in that direction (static or request).
  [[nodiscard]] bool has_pad_template(PadDirection dir) const noexcept;
  /// A source has no sink pad template; a sink has no src pad template.
  [[nodiscard]] bool is_source() const noexcept { return !has_pad_template(PadDirection::sink); }
  [[nodiscard]] bool is_sink() const noexcept { return !has_pad_template(PadDirection::src); }

  // --- Properties ---
  [[nodiscard]] const std::vector<PropertySpec>& properties() const noexcept { return specs_; }
  [[nodiscard]] const PropertySpec* find_property(std::string_view name) const noexcept;
  /// Sets a typed value (checked against the spec: type, range, enum values, flags).
  Result<void> set_property(std::string_view name, PropertyValue value);
  Result<void> set_property(std::string_view name, const char* text) {
    return set_property(name, PropertyValue{std::string(text)});
  }
  template <typename T>
  requires(std::is_integral_v<T> &&
           !std::is_same_v<T, bool>) Result<void> set_property(std::string_view name, T v) {
    if constexpr (std::is_signed_v<T>)
      return set_property(name, PropertyValue{std::int64_t{v}});
    else
      return set_property(name, PropertyValue{std::uint64_t{v}});
  }
  /// Sets a value from its text form, exactly as in a pipeline description.
  Result<void> set_property_from_string(std::string_view name, std::string_view text);
  /// The current value (not_found for unknown, permission_denied for write-only properties).
  [[nodiscard]] Result<PropertyValue> property(std::string_view name) const;
  /// "name (type), ..." of every property, for error messages.
  [[nodiscard]] std::string property_list() const;

  // --- Lifecycle (called by the executor) ---
  /// Opens resources (files, sockets) and reads properties. Called before streaming.
  virtual Result<void> start() { return ok(); }
  /// Releases resources. Called after the streaming threads are joined.
  virtual Result<void> stop() { return ok(); }
  /// Drops any stream state after a flush (flush_stop event).
  virtual void flush() {}
  /// Wakes any blocking call of this element (socket wait, full queue); the streaming thread
  /// then sees stopping() or eos_requested(). Must be thread-safe.
  virtual void unlock() {}
  /// Asks a source to finish its stream with EOS (Ctrl-C in parallax-launch). Thread-safe.
  /// Elements blocked waiting for input (a socket) override it to wake up as well.
  virtual void request_eos() { eos_requested_.store(true, std::memory_order_relaxed); }

  // --- Streaming ---
  /// A buffer arrived on `pad` (a sink pad). Called on the streaming thread.
  virtual FlowReturn chain(Pad& pad, Buffer&& buf);
  /// An event arrived on `pad`. The default forwards it to every src pad, and, in a sink,
  /// reports EOS to the executor. Returns false when the event was refused.
  virtual bool handle_event(Pad& pad, const Event& ev);
  /// Elements that own a streaming thread (sources, queue) return true and run it in run_task().
  [[nodiscard]] virtual bool has_task() const noexcept { return false; }
  virtual void run_task() {}
  /// Placement `auto` (docs/topology.md): the CPUs of the NUMA node holding the memory the
  /// streaming thread reads. Only an element that learns that node itself can apply it (the
  /// native parallaxsrc, from the publisher's segment announcements): it returns true and pins
  /// its own thread once it knows the node (a failure is its error, or a warning when
  /// `best_effort`). The default returns false: `auto` cannot be applied to this element.
  /// Called by pin_by_rules_hook on the streaming thread, before run_task().
  virtual bool defer_auto_affinity(bool best_effort) {
    (void)best_effort;  // unused by elements that cannot place themselves
    return false;
  }

  // --- Messages ---
  /// Posts an error on the bus (the executor then stops the pipeline).
  void post_error(Errc code, std::string text);
  /// How a source's streaming loop ended, reported as GStreamer's basesrc does: not_linked and
  /// error post an error naming `src` (the element that failed posted the real one first;
  /// this makes sure the executor hears of it); eos, flushing and ok post nothing (the caller
  /// sends its EOS event itself).
  void post_flow_end(FlowReturn fr, const Pad& src);
  void post_warning(std::string text);
  void post_info(std::string text);
  /// Whether the executor is shutting down (after stop() or an error).
  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }
  [[nodiscard]] State state() const noexcept { return state_.load(std::memory_order_relaxed); }

 protected:
  Element() = default;
  /// Declares a pad template; "always" templates create their pad at once.
  void add_pad_template(PadTemplate t);
  /// Declares a property with its default value.
  void install_property(PropertySpec spec);
  /// Reads a property: the stored value unless overridden (read-only counters override this).
  virtual PropertyValue read_property(const PropertySpec& spec, const PropertyValue& stored) const;
  /// Called after a property changed (before start, or while running for mutable ones).
  virtual void property_changed(const PropertySpec&, const PropertyValue&) {}
  /// Typed access to the stored value for subclasses (aborts on a type mismatch: a bug).
  template <typename T>
  [[nodiscard]] T prop(std::string_view name) const {
    PropertyValue v = stored_property(name);
    if (const T* p = std::get_if<T>(&v)) return *p;
    prop_type_panic(name);
  }
  /// The number of an enumeration property's stored nick (set_property accepts only listed
  /// nicks or numbers, so there is always one; aborts for a non-enumeration: a bug).
  [[nodiscard]] std::int64_t prop_enum(std::string_view name) const;
  /// Forwards an event to every src pad; false if any peer refused it.
  bool forward_event(const Event& ev);
  /// The executor driving this element, or nullptr when not running.
  [[nodiscard]] detail::ElementHost* host() const noexcept { return host_; }
  /// Whether request_eos() was called since the executor started.
  [[nodiscard]] bool eos_requested() const noexcept {
    return eos_requested_.load(std::memory_order_relaxed);
  }
  /// What a streaming loop should end with now: flushing when stopping(), eos when
  /// eos_requested(), ok to go on (stopping wins).
  [[nodiscard]] FlowReturn end_requested() const noexcept {
    if (stopping()) return FlowReturn::flushing;
    if (eos_requested()) return FlowReturn::eos;
    return FlowReturn::ok;
  }

 private:
  friend class Pipeline;
  friend class PipelineExecutor;
  friend class Pad;
  friend class ElementRegistry;
  [[nodiscard]] PropertyValue stored_property(std::string_view name) const;
  [[noreturn]] static void prop_type_panic(std::string_view name);
  Pad& make_pad(std::string name, PadDirection dir, bool request);

  std::string name_;
  const ElementInfo* factory_{nullptr};
  bool in_pipeline_{false};
  std::vector<PadTemplate> templates_;
  std::vector<std::unique_ptr<Pad>> pads_;
  std::map<std::string, unsigned, std::less<>> next_request_index_;
  std::vector<PropertySpec> specs_;
  mutable std::mutex props_mu_;  // guards values_ (set from the app, read by streaming threads)
  std::vector<PropertyValue> values_;
  detail::ElementHost* host_{nullptr};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> eos_requested_{false};
  std::atomic<State> state_{State::null};
};

inline FlowReturn Pad::push(Buffer&& buf) {
  Pad* p = peer_;
  if (p == nullptr) return FlowReturn::not_linked;
  const std::size_t n = buf.size();
  count(n);
  p->count(n);
  return p->element_->chain(*p, std::move(buf));
}

/// A source: one always "src" pad and a streaming thread that calls create() until it returns
/// something other than ok, pushing stream-start, caps (if source_caps() gives some), segment,
/// the buffers, and EOS.
class SourceElement : public Element {
 public:
  [[nodiscard]] bool has_task() const noexcept override { return true; }
  void run_task() final;

 protected:
  SourceElement();
  /// Produces the next buffer: ok with `out` set, eos at the end, error after post_error(),
  /// flushing when stopping() became true while waiting.
  virtual FlowReturn create(Buffer& out) = 0;
  /// The format to announce before the first buffer (none: no caps event).
  [[nodiscard]] virtual std::optional<Caps> source_caps() { return std::nullopt; }
  [[nodiscard]] Pad& src_pad() noexcept { return *src_; }

 private:
  Pad* src_{nullptr};
};

/// A sink: one always "sink" pad; render() consumes each buffer.
class SinkElement : public Element {
 public:
  FlowReturn chain(Pad& pad, Buffer&& buf) final;

 protected:
  SinkElement();
  virtual FlowReturn render(const Buffer& buf) = 0;
};

/// A one-in one-out transform: "sink" and "src" pads; transform() may modify or replace the
/// buffer, then it is pushed on.
class TransformElement : public Element {
 public:
  FlowReturn chain(Pad& pad, Buffer&& buf) final;

 protected:
  TransformElement();
  /// Returns ok to push `buf` on, a dropped-buffer marker via `drop = true`, or a flow error.
  virtual FlowReturn transform(Buffer& buf, bool& drop) = 0;
  [[nodiscard]] Pad& src_pad() noexcept { return *src_; }

 private:
  Pad* src_{nullptr};
};

/// Registry entry: everything needed to create and introspect an element by name.
struct ElementInfo {
  std::string name;         ///< factory name used in pipelines: "filesrc"
  std::string klass;        ///< "Source/File", "Sink", "Generic", "Transform"
  std::string description;  ///< one sentence
  std::function<std::unique_ptr<Element>()> factory;
  /// Properties installed on every instance (in addition to what the constructor installs).
  std::vector<PropertySpec> properties;
  std::string plugin{"builtin"};  ///< the plugin providing it
  std::string author{"Parallax"};
};

/// Element factories by name. Thread-safe. Other source files (plugins, the IPC elements)
/// register into the global registry with register_element(), typically through a static
/// ElementRegistrar (below).
class ElementRegistry {
 public:
  [[nodiscard]] static ElementRegistry& global();

  /// already_exists when the name is taken, invalid_argument for an empty name or factory.
  Result<void> register_element(ElementInfo info);
  [[nodiscard]] const ElementInfo* find(std::string_view name) const;
  /// All entries, sorted by name. Pointers stay valid for the registry's lifetime.
  [[nodiscard]] std::vector<const ElementInfo*> list() const;
  /// Distinct plugin names, sorted.
  [[nodiscard]] std::vector<std::string> plugins() const;
  /// Creates an element; not_found (with "did you mean") for an unknown factory. An empty
  /// `instance_name` leaves the name for the pipeline to assign ("queue0").
  [[nodiscard]] Result<std::unique_ptr<Element>> create(std::string_view factory,
                                                        std::string instance_name = {}) const;
  /// Known names closest to `name` (edit distance), best first; empty when none is close.
  [[nodiscard]] std::vector<std::string> suggest(std::string_view name) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<ElementInfo>, std::less<>> entries_;
};

/// Static registration helper: `static const ElementRegistrar reg{make_info()};`
struct ElementRegistrar {
  explicit ElementRegistrar(ElementInfo info);
};

}  // namespace parallax::pipeline
