// SPDX-License-Identifier: MIT OR Apache-2.0
// The dynamic pipeline: a graph of named elements built from a gst-launch style description
// or programmatically (add_node/link), validated, exported as DOT, and run by PipelineExecutor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parallax/bus.h"
#include "parallax/element.h"
#include "parallax/result.h"

namespace parallax::pipeline {

/// Index of an element in its pipeline.
struct NodeId {
  std::uint32_t index{UINT32_MAX};
  bool operator==(const NodeId&) const = default;
};

/// Where a description could not be parsed (1-based line and column) and why.
struct ParseError {
  std::size_t line{0};
  std::size_t column{0};
  std::string what;     ///< "unknown element 'pasthrough'; did you mean 'passthrough'?"
  std::string excerpt;  ///< the offending line and a caret under the column
  /// "line 1, column 14: <what>\n  <line>\n  <caret>" (what Pipeline::parse's error says).
  [[nodiscard]] std::string to_string() const;
};

/// A graph of elements. Move-only; owns its elements. Not thread-safe: build it, then hand it
/// to one executor, and do not change its graph while it runs.
class Pipeline {
 public:
  Pipeline();
  ~Pipeline();
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;

  /// A new pipeline from a description.
  [[nodiscard]] static Result<Pipeline> from_string(std::string_view description);

  /// Adds the elements and links of a gst-launch style description:
  ///   `filesrc location="in.bin" ! queue max-size-buffers=10 ! tee name=t
  ///    t. ! queue ! filesink location=a.bin  t. ! queue ! nullsink`
  /// All or nothing: on error the pipeline is unchanged and the error (invalid_argument or
  /// not_found) carries ParseError::to_string() as its message.
  Result<void> parse(std::string_view description);
  /// As parse(), with the structured error.
  Result<void> parse(std::string_view description, ParseError* error);

  /// Adds an element under `name` (unique; empty: "<factory><n>" as in GStreamer).
  Result<NodeId> add_node(std::string name, std::unique_ptr<Element> element);
  /// Creates an element from the registry and adds it.
  Result<NodeId> add_element(std::string_view factory, std::string name = {});
  /// Links a free src pad of `a` (requesting one if needed) to a free sink pad of `b`.
  Result<void> link(NodeId a, NodeId b);
  /// Links named pads; a pad name matching a request template ("src_%u" or "src_2") requests it.
  Result<void> link_pads(NodeId a, std::string_view src_pad, NodeId b, std::string_view sink_pad);
  /// Links a to b, b to c, ...
  Result<void> link_many(std::initializer_list<NodeId> nodes);

  /// Checks the graph can run: not empty, every pad linked, no cycle, at least one source.
  [[nodiscard]] Result<void> validate() const;
  /// Graphviz DOT of the graph (elements with their factory and non-default properties).
  [[nodiscard]] std::string to_dot() const;

  [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }
  [[nodiscard]] Element* element(NodeId id) const noexcept;
  [[nodiscard]] Element* find(std::string_view name) const noexcept;
  [[nodiscard]] std::optional<NodeId> node(std::string_view name) const noexcept;
  [[nodiscard]] std::vector<Element*> elements() const;
  /// Elements sorted so that every element comes after all its upstream peers.
  [[nodiscard]] std::vector<Element*> topological_order() const;

  [[nodiscard]] Bus& bus() noexcept { return *bus_; }

 private:
  friend class Parser;
  friend class PipelineExecutor;
  std::string unique_name(std::string_view factory);
  static Result<void> connect(Pad* src, Pad* sink);
  static void disconnect(Pad* src);
  std::vector<std::unique_ptr<Element>> nodes_;
  std::unique_ptr<Bus> bus_;
  std::map<std::string, unsigned, std::less<>> name_counters_;
  bool running_{false};
};

/// Per-element counters (for --stats): buffers and bytes that entered the element (sources:
/// that left it).
struct ElementStats {
  std::string name;
  std::string factory;
  std::uint64_t buffers{0};
  std::uint64_t bytes{0};
};

struct ExecutorOptions {
  /// Called at the start of every streaming thread with its element and the element's
  /// "affinity" property ("" when it has none). This is the hook for pinning threads (hwloc,
  /// taskset-style strings); the executor itself does not pin. An error is the element's
  /// error (the thread does not run). pipeline::pin_by_rules_hook (parallax/placement.h) is a
  /// ready one.
  std::function<Result<void>(Element& element, std::string_view affinity)> thread_hook;
  /// Post a MessageType::event message for every event leaving a pad (parallax-launch -v).
  bool trace_events{false};
};

/// Runs a pipeline, GStreamer style: one streaming thread per source and per queue; buffers
/// are pushed synchronously through the elements in between.
class PipelineExecutor {
 public:
  explicit PipelineExecutor(ExecutorOptions options = {});
  ~PipelineExecutor();  ///< stops a pipeline still running
  PipelineExecutor(const PipelineExecutor&) = delete;
  PipelineExecutor& operator=(const PipelineExecutor&) = delete;

  /// start() + wait(): returns when EOS reached every sink, or with the first error
  /// ("element 'filesrc0': ...", the element's error code).
  Result<void> run(Pipeline& pipeline);
  /// Validates, starts every element (sinks first) and launches the streaming threads. The
  /// pipeline must outlive the run (until wait() or stop() returned).
  Result<void> start(Pipeline& pipeline);
  /// Blocks until the run ends, joins the threads, stops the elements; returns the outcome.
  /// After stop(), returns cancelled.
  Result<void> wait();
  /// As wait(), but gives up after `timeout` (nullopt: still running).
  std::optional<Result<void>> wait_for(std::chrono::nanoseconds timeout);
  /// Asks every source to end its stream: EOS flows down and wait() returns normally.
  void send_eos();
  /// Aborts: wakes and joins every streaming thread, drops queued data, stops the elements.
  void stop();
  [[nodiscard]] bool running() const noexcept;
  /// Counters of every element (cheap; any thread).
  [[nodiscard]] std::vector<ElementStats> stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parallax::pipeline
