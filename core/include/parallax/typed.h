// SPDX-License-Identifier: MIT OR Apache-2.0
// parallax::typed: pipelines of sources, operators and sinks whose types are checked at compile
// time and whose stages are composed into one inlinable push chain (no std::function, no virtual).
//
//   auto r = pipeline(from_iter(std::vector{1, 2, 3, 4}))
//                .then(filter([](const int& x) { return x % 2 == 0; }))
//                .then(map([](int x) { return x * 10; }))
//                .sink(collect<int>())
//                .run();                       // Result<std::vector<int>>: {20, 40}
//
// How it works (why it is fast): every builder object (map(f), filter(p), ...) is a small value.
// run() turns the list of builders into a chain of *nodes*, built from the sink backwards, each
// node holding the next one by value. The source then pushes items into the first node in a
// plain loop; every push is a direct, inlinable template call. Items travel as references (the
// "reference type" of a stage, like std::ranges' range_reference_t): a borrowed source pushes
// `const T&`, an owned one `T&&`, a map pushes its result as a temporary. Nothing is copied that
// a stage does not copy itself.
//
// Node protocol (internal): `bool push(U&&)` returns false when downstream wants no more items
// (take reached its count, an error happened, a sink stopped); `bool open()` says whether any item
// is wanted at all (take(0)); `void finish()` is called exactly once at the end, whatever the
// reason; `sink_node()` reaches the sink to fetch the result.
#pragma once

#include <parallax/result.h>
#include <parallax/spsc_ring.h>
#include <parallax/typed/bounded_queue.h>
#include <parallax/typed/spsc_queue.h>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

// =================================================================================================
// Traits and tags
// =================================================================================================

/// Base of every source builder (from_iter, range, once, repeat_with, merge, zip).
struct source_tag {};
/// Base of every operator builder (map, filter, ..., batch, parallel, queue).
struct stage_tag {};
/// Base of every sink builder (collect, for_each, fold, discard).
struct sink_tag {};

namespace detail {

template <typename...>
inline constexpr bool always_false = false;

template <typename T>
struct is_result : std::false_type {};
template <typename T>
struct is_result<Result<T>> : std::true_type {
  using value_type = T;
};
template <typename T>
inline constexpr bool is_result_v = is_result<std::remove_cvref_t<T>>::value;

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {
  using value_type = T;
};
template <typename T>
inline constexpr bool is_optional_v = is_optional<std::remove_cvref_t<T>>::value;

/// A pushed expression's type as a reference type: a prvalue T travels as T&&.
template <typename R>
using as_ref_t = std::conditional_t<std::is_reference_v<R>, R, R&&>;

/// Result<U> -> U, anything else unchanged.
template <typename R, bool = is_result_v<R>>
struct unwrap_result {
  using type = R;
};
template <typename R>
struct unwrap_result<R, true> {
  using type = typename is_result<std::remove_cvref_t<R>>::value_type;
};
template <typename R>
using unwrap_result_t = typename unwrap_result<R>::type;

/// Marker shown in diagnostics when a callable's parameter type cannot be named (generic lambda,
/// overloaded call operator).
struct generic_or_overloaded_callable {};

template <typename M>
struct member_fn_param {
  using type = generic_or_overloaded_callable;
};
#define PLX_TYPED_MEMBER_PARAM_(QUALS)                        \
  template <typename R, typename C, typename A>               \
  struct member_fn_param<R (C::*)(A) QUALS> {                 \
    using type = A;                                           \
  };                                                          \
  template <typename R, typename C, typename Acc, typename A> \
  struct member_fn_param<R (C::*)(Acc, A) QUALS> {            \
    using type = A;                                           \
  };
PLX_TYPED_MEMBER_PARAM_()
PLX_TYPED_MEMBER_PARAM_(const)
PLX_TYPED_MEMBER_PARAM_(noexcept)
PLX_TYPED_MEMBER_PARAM_(const noexcept)
#undef PLX_TYPED_MEMBER_PARAM_

template <typename F, typename = void>
struct callable_param {
  using type = generic_or_overloaded_callable;
};
template <typename F>
struct callable_param<F, std::void_t<decltype(&F::operator())>>
    : member_fn_param<decltype(&F::operator())> {};
template <typename R, typename A>
struct callable_param<R (*)(A), void> {
  using type = A;
};
/// The (last) parameter type of a non-generic callable, for error messages only.
template <typename F>
using callable_param_t = typename callable_param<std::remove_cvref_t<F>>::type;

/// Calls f with an item, turning an escaping exception into an Error so that nothing throws
/// across a worker thread (where it would terminate the process).
template <typename R, typename F, typename... A>
Result<R> call_caught(F& f, A&&... a) noexcept {
  try {
    if constexpr (is_result_v<std::invoke_result_t<F&, A...>>) {
      return std::invoke(f, std::forward<A>(a)...);
    } else {
      return R(std::invoke(f, std::forward<A>(a)...));
    }
  } catch (...) {
    return Error{Errc::internal, "parallax::typed: a parallel stage's callable threw"};
  }
}

}  // namespace detail

/// Is S a source builder (from_iter, range, once, repeat_with, merge, zip)?
template <typename S>
concept Source = std::derived_from<std::remove_cvref_t<S>, source_tag>;
/// Is S an operator builder (map, filter, filter_map, take, skip, inspect, batch, parallel,
/// queue)?
template <typename S>
concept Stage = std::derived_from<std::remove_cvref_t<S>, stage_tag>;
/// Is K a sink builder (collect, for_each, fold, discard)?
template <typename K>
concept Sink = std::derived_from<std::remove_cvref_t<K>, sink_tag>;

/// Can stage S take items of type In (a value type, or the reference type a stage pushes)?
/// This is what `.then()` checks; use it in your own static_asserts and tests too.
template <typename S, typename In>
concept StageAccepts = Stage<S> && std::remove_cvref_t<S>::template accepts<In>;
/// Can sink K take items of type In?
template <typename K, typename In>
concept SinkAccepts = Sink<K> && std::remove_cvref_t<K>::template accepts<In>;

/// The reference type a stage pushes downstream when it receives In (only for accepted In).
template <typename S, typename In>
using stage_output_t = typename std::remove_cvref_t<S>::template output<In>;

// =================================================================================================
// Diagnostics. Each struct below exists only to be named in a compiler error: g++ and clang print
// "in instantiation of 'struct parallax::typed::diagnostic::<what>' <Type1, Type2>", so the two
// types that do not fit appear right next to a sentence saying what went wrong.
// =================================================================================================
namespace diagnostic {

template <typename Item, typename CallableParameter>
struct map_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::map: the callable cannot be called with the items of the "
                "previous stage. See 'Item' (what flows in) and 'CallableParameter' (what the "
                "callable takes) in the instantiation above.");
};
template <typename Item>
struct map_callable_returns_void {
  static_assert(detail::always_false<Item>,
                "parallax::typed::map: the callable returns void; a map must produce a value "
                "(use inspect() for side effects)");
};
template <typename Item, typename PredicateParameter>
struct filter_predicate_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter: the predicate cannot be called with `const Item&` of "
                "the previous stage's items. See 'Item' and 'PredicateParameter' above.");
};
template <typename Item, typename PredicateReturns>
struct filter_predicate_must_return_bool {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter: the predicate must return bool (or Result<bool>). "
                "See 'PredicateReturns' above.");
};
template <typename Item, typename CallableParameter>
struct filter_map_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter_map: the callable cannot be called with the items of "
                "the previous stage. See 'Item' and 'CallableParameter' above.");
};
template <typename Item, typename CallableReturns>
struct filter_map_callable_must_return_optional {
  static_assert(detail::always_false<Item>,
                "parallax::typed::filter_map: the callable must return std::optional<U> (or "
                "Result<std::optional<U>>). See 'CallableReturns' above.");
};
template <typename Item, typename CallableParameter>
struct inspect_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::inspect: the callable cannot be called with `const Item&`. "
                "See 'Item' and 'CallableParameter' above.");
};
template <typename Item>
struct item_cannot_be_copied_into_a_stage_buffer {
  static_assert(detail::always_false<Item>,
                "parallax::typed: batch/parallel/queue store items by value, and this item "
                "cannot be constructed from what flows in (a borrowed move-only item?). Use "
                "from_iter(std::move(container)) so items are moved.");
};
template <typename Item, typename CallableParameter>
struct parallel_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::parallel: the callable cannot be called with an rvalue of the "
                "previous stage's item type, or returns void. See 'Item' and "
                "'CallableParameter' above.");
};
template <typename Item, typename CollectElement>
struct collect_element_type_mismatch {
  static_assert(detail::always_false<Item>,
                "parallax::typed::collect<T>: T must be the item type of the last stage "
                "(and constructible from it). See 'Item' (what flows in) and 'CollectElement' "
                "(the T you asked for) above.");
};
template <typename Item, typename CallableParameter>
struct for_each_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::for_each: the callable cannot be called with the items of the "
                "last stage. See 'Item' and 'CallableParameter' above.");
};
template <typename Item, typename Accumulator>
struct fold_callable_cannot_take_item {
  static_assert(detail::always_false<Item>,
                "parallax::typed::fold: the callable must be callable as f(Accumulator, Item) and "
                "return Accumulator (or Result<Accumulator>). See 'Item' and 'Accumulator' above.");
};
template <typename LastItem>
struct pipeline_has_no_sink {
  static_assert(detail::always_false<LastItem>,
                "parallax::typed: this pipeline has no sink. End it with .sink(collect<T>()), "
                ".sink(for_each(f)), .sink(fold(init, f)) or .sink(discard()) before .run().");
};
template <typename Argument>
struct then_needs_a_stage {
  static_assert(detail::always_false<Argument>,
                "parallax::typed: .then() takes an operator (map(f), filter(p), filter_map(f), "
                "take(n), skip(n), inspect(f), batch(n), parallel(n, f), queue(n)); wrap bare "
                "callables, and pass sinks to .sink().");
};
template <typename Argument>
struct sink_needs_a_sink {
  static_assert(detail::always_false<Argument>,
                "parallax::typed: .sink() takes collect<T>(), for_each(f), fold(init, f) or "
                "discard().");
};
template <typename Argument>
struct pipeline_needs_a_source {
  static_assert(detail::always_false<Argument>,
                "parallax::typed::pipeline(): the argument must be a source: from_iter(range), "
                "range(a, b), once(v), repeat_with(f), merge(a, b) or zip(a, b).");
};
template <typename LeftItem, typename RightItem>
struct merge_item_types_differ {
  static_assert(detail::always_false<LeftItem>,
                "parallax::typed::merge: both sources must yield the same item type. See "
                "'LeftItem' and 'RightItem' above.");
};
template <typename Pipeline>
struct pipelines_are_consumed_by_moving {
  static_assert(detail::always_false<Pipeline>,
                "parallax::typed: building or running a pipeline consumes it. Chain the calls in "
                "one expression, or write std::move(p).then(...) / std::move(p).run().");
};

}  // namespace diagnostic

// =================================================================================================
// Run context: where the first error of a run is kept. One per thread segment of a pipeline (the
// caller's thread, and one more behind each queue() stage), so it needs no lock.
// =================================================================================================
class RunContext {
 public:
  /// Records e unless an error is already recorded (the first error wins).
  void fail(Error e) {
    if (!error_) error_ = std::move(e);
  }
  /// Upstream failed: nothing more will come, and partial work (a batch) must not be flushed.
  void abort() noexcept { aborted_ = true; }
  [[nodiscard]] bool failed() const noexcept { return error_.has_value() || aborted_; }
  [[nodiscard]] std::optional<Error> take_error() { return std::exchange(error_, std::nullopt); }

 private:
  std::optional<Error> error_;
  bool aborted_ = false;
};

// =================================================================================================
// Nodes (internal): the run-time chain built by run().
// =================================================================================================
namespace detail {

/// Common parts of every non-sink node: open/finish/sink_node forward to the next node.
template <typename Next>
class NodeBase {
 public:
  explicit NodeBase(Next&& next, RunContext& ctx) : next_(std::move(next)), ctx_(&ctx) {}
  [[nodiscard]] bool open() const { return next_.open(); }
  void finish() { next_.finish(); }
  auto& sink_node() { return next_.sink_node(); }

 protected:
  Next next_;
  RunContext* ctx_;
};

template <typename F, typename Next>
class MapNode : public NodeBase<Next> {
 public:
  MapNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (!r.ok()) {
        this->ctx_->fail(std::move(r).error());
        return false;
      }
      return this->next_.push(std::move(r).value());
    } else {
      return this->next_.push(std::invoke(f_, std::forward<U>(x)));
    }
  }

 private:
  F f_;
};

template <typename P, typename Next>
class FilterNode : public NodeBase<Next> {
 public:
  FilterNode(P&& p, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), p_(std::move(p)) {}
  template <typename U>
  bool push(U&& x) {
    const std::remove_cvref_t<U>& view = x;
    if constexpr (is_result_v<std::invoke_result_t<P&, decltype(view)>>) {
      auto r = std::invoke(p_, view);
      if (!r.ok()) {
        this->ctx_->fail(std::move(r).error());
        return false;
      }
      if (!r.value()) return true;
    } else {
      if (!std::invoke(p_, view)) return true;
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  P p_;
};

template <typename F, typename Next>
class FilterMapNode : public NodeBase<Next> {
 public:
  FilterMapNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (!r.ok()) {
        this->ctx_->fail(std::move(r).error());
        return false;
      }
      auto& o = r.value();
      if (!o) return true;
      return this->next_.push(std::move(*o));
    } else {
      auto o = std::invoke(f_, std::forward<U>(x));
      if (!o) return true;
      return this->next_.push(std::move(*o));
    }
  }

 private:
  F f_;
};

template <typename F, typename Next>
class InspectNode : public NodeBase<Next> {
 public:
  InspectNode(F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), f_(std::move(f)) {}
  template <typename U>
  bool push(U&& x) {
    const std::remove_cvref_t<U>& view = x;
    if constexpr (is_result_v<std::invoke_result_t<F&, decltype(view)>>) {
      auto r = std::invoke(f_, view);
      if (!r.ok()) {
        this->ctx_->fail(std::move(r).error());
        return false;
      }
    } else {
      std::invoke(f_, view);
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  F f_;
};

template <typename Next>
class TakeNode : public NodeBase<Next> {
 public:
  TakeNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), left_(n) {}
  template <typename U>
  bool push(U&& x) {
    if (left_ == 0) return false;
    --left_;
    // Say "stop" right after the n-th item, so the source does not produce an n+1-th.
    return this->next_.push(std::forward<U>(x)) && left_ > 0;
  }
  [[nodiscard]] bool open() const { return left_ > 0 && this->next_.open(); }

 private:
  std::size_t left_;
};

template <typename Next>
class SkipNode : public NodeBase<Next> {
 public:
  SkipNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), left_(n) {}
  template <typename U>
  bool push(U&& x) {
    if (left_ > 0) {
      --left_;
      return true;
    }
    return this->next_.push(std::forward<U>(x));
  }

 private:
  std::size_t left_;
};

template <typename V, typename Next>
class BatchNode : public NodeBase<Next> {
 public:
  BatchNode(std::size_t n, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), n_(n) {
    buf_.reserve(n_);
  }
  template <typename U>
  bool push(U&& x) {
    buf_.emplace_back(std::forward<U>(x));
    if (buf_.size() < n_) return true;
    std::vector<V> full = std::exchange(buf_, {});
    buf_.reserve(n_);
    if (!this->next_.push(std::move(full))) {
      downstream_done_ = true;
      return false;
    }
    return true;
  }
  void finish() {
    // The last, partial batch goes out only when the stream really ended: not after an error,
    // not when downstream already said it wants nothing more.
    if (!buf_.empty() && !downstream_done_ && !this->ctx_->failed()) {
      (void)this->next_.push(std::move(buf_));
    }
    this->next_.finish();
  }

 private:
  std::size_t n_;
  std::vector<V> buf_;
  bool downstream_done_ = false;
};

/// Moves everything downstream of it to one consumer thread, through a bounded queue: an
/// SpscRing (one producer, the thread running the stages before it; one consumer), handed
/// over without locks while the stream runs. Either side may close it: the
/// producer at the end of the stream (the consumer drains what is queued), the consumer when
/// downstream wants nothing more (the producer's next push() returns false).
template <typename V, typename Next>
class QueueNode {
  struct State {
    State(std::size_t cap, Next&& n) : limit(cap == 0 ? 1 : cap), ring(limit), next(std::move(n)) {}
    std::size_t limit;  // items queued at most (the ring's capacity is the power of two above)
    SpscRing<std::optional<V>> ring;
    std::atomic<bool> closed{false};
    Next next;       // touched only by the consumer thread until it is joined
    RunContext ctx;  // the consumer side's context, same rule
    std::atomic<bool> upstream_failed{false};
    std::atomic<bool> stopped{false};
    std::jthread consumer;  // last: joined first on destruction

    void close() {
      closed.store(true, std::memory_order_seq_cst);
      ring.wake_all();
    }
    [[nodiscard]] bool is_closed() const { return closed.load(std::memory_order_acquire); }
    // Consumer thread: every item queued, until closed and drained. It sees all published
    // items at once (one look at the producer's index per batch) but frees each slot as its
    // item leaves, so at most `limit` items are queued plus the one downstream is handling.
    void consume() {
      for (;;) {
        std::size_t n = ring.available();
        if (n == 0) {
          if (!ring.wait_readable([&] { return is_closed(); })) {
            n = ring.available();  // closed: drain what was published before
            if (n == 0) return;
          } else {
            n = ring.available();
          }
        }
        for (std::size_t i = 0; i < n; ++i) {
          V v = std::move(*ring.at(0));
          ring.at(0).reset();
          ring.consume(1);
          if (!next.push(std::move(v))) {
            stopped.store(true, std::memory_order_relaxed);
            close();  // unblocks a producer waiting for room; it sees push() == false
            return;
          }
        }
      }
    }
  };

 public:
  QueueNode(std::size_t cap, Next&& next, RunContext& ctx)
      : state_(std::make_unique<State>(cap, std::move(next))), ctx_(&ctx) {
    State* s = state_.get();
    s->consumer = std::jthread([s] {
      s->consume();
      if (s->upstream_failed.load()) s->ctx.abort();
      s->next.finish();
    });
  }
  QueueNode(QueueNode&&) noexcept = default;
  ~QueueNode() {
    if (state_) state_->close();  // the jthread member then joins
  }

  template <typename U>
  bool push(U&& x) {
    State& s = *state_;
    while (!s.ring.writable(s.limit)) {
      if (s.is_closed()) return false;
      if (!s.ring.wait_consumed(s.ring.head_index_cached(), [&] { return s.is_closed(); }))
        return false;
    }
    if (s.is_closed()) return false;
    s.ring.slot().emplace(std::forward<U>(x));
    s.ring.publish();
    return true;
  }
  [[nodiscard]] bool open() const { return !state_->stopped.load(std::memory_order_relaxed); }
  void finish() {
    state_->upstream_failed.store(ctx_->failed());
    state_->close();
    state_->consumer.join();
    // Every item the consumer saw entered the queue before anything upstream failed, so an
    // error downstream of the queue is earlier in stream order and wins.
    if (auto e = state_->ctx.take_error()) {
      (void)ctx_->take_error();
      ctx_->fail(std::move(*e));
    }
  }
  auto& sink_node() { return state_->next.sink_node(); }

 private:
  std::unique_ptr<State> state_;
  RunContext* ctx_;
};

/// Runs f on n worker threads. Item i goes to worker i % n and results are taken back in the
/// same round-robin order, which keeps the stream order with no reordering buffer. At most
/// n * depth items are in flight, which is exactly depth per worker, so neither a worker's input
/// nor its output queue (each of capacity depth) can ever block the other side for good.
template <typename V, typename Out, typename F, typename Next>
class ParallelNode : public NodeBase<Next> {
  struct Worker {
    Worker(std::size_t depth, const F& fn) : in(depth), out(depth), f(fn) {}
    ~Worker() {
      in.close();
      out.close();
    }
    SpscQueue<V> in;             // this thread -> the worker (one producer, one consumer)
    SpscQueue<Result<Out>> out;  // the worker -> this thread
    F f;  // each worker owns a copy, so a stateful callable is never shared between threads
    std::jthread thread;  // last: joined before the queues go
  };

 public:
  ParallelNode(std::size_t n, std::size_t depth, F&& f, Next&& next, RunContext& ctx)
      : NodeBase<Next>(std::move(next), ctx), limit_(n * depth) {
    workers_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto w = std::make_unique<Worker>(depth, f);
      Worker* wp = w.get();
      wp->thread = std::jthread([wp] {
        while (auto item = wp->in.pop()) {
          if (!wp->out.push(call_caught<Out>(wp->f, std::move(*item)))) break;
        }
      });
      workers_.push_back(std::move(w));
    }
  }

  template <typename U>
  bool push(U&& x) {
    if (in_flight_ == limit_ && !drain_one()) return false;
    (void)workers_[sent_ % workers_.size()]->in.push(V(std::forward<U>(x)));
    ++sent_;
    ++in_flight_;
    return true;
  }

  void finish() {
    // Items sent before an upstream error were accepted, so they are still delivered (as in a
    // single-threaded run); an error they cause downstream is earlier in stream order and wins.
    std::optional<Error> upstream = this->ctx_->take_error();
    while (!stopped_ && in_flight_ > 0 && drain_one()) {
    }
    if (upstream && !this->ctx_->failed()) {
      this->ctx_->fail(std::move(*upstream));
    }
    workers_.clear();  // closes the queues and joins the threads
    this->next_.finish();
  }

 private:
  bool drain_one() {
    Worker& w = *workers_[received_ % workers_.size()];
    std::optional<Result<Out>> r = w.out.pop();  // present: this worker holds that item
    ++received_;
    --in_flight_;
    if (!r || !r->ok()) {
      this->ctx_->fail(r ? std::move(*r).error()
                         : Error{Errc::internal, "parallax::typed::parallel: worker lost an item"});
      stopped_ = true;
      return false;
    }
    if (!this->next_.push(std::move(*r).value())) {
      stopped_ = true;
      return false;
    }
    return true;
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  std::size_t limit_;
  std::size_t sent_ = 0;
  std::size_t received_ = 0;
  std::size_t in_flight_ = 0;
  bool stopped_ = false;
};

// ----- sink nodes -----

/// Shared by sink nodes: the end of the chain.
template <typename Self>
class SinkNodeBase {
 public:
  [[nodiscard]] bool open() const { return true; }
  void finish() {}
  Self& sink_node() { return static_cast<Self&>(*this); }
};

template <typename T>
class CollectNode : public SinkNodeBase<CollectNode<T>> {
 public:
  template <typename U>
  bool push(U&& x) {
    out_.emplace_back(std::forward<U>(x));
    return true;
  }
  std::vector<T> take() { return std::move(out_); }

 private:
  std::vector<T> out_;
};

template <typename F>
class ForEachNode : public SinkNodeBase<ForEachNode<F>> {
 public:
  ForEachNode(F&& f, RunContext& ctx) : f_(std::move(f)), ctx_(&ctx) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, U&&>>) {
      auto r = std::invoke(f_, std::forward<U>(x));
      if (!r.ok()) {
        ctx_->fail(std::move(r).error());
        return false;
      }
    } else {
      std::invoke(f_, std::forward<U>(x));
    }
    return true;
  }
  void take() {}

 private:
  F f_;
  RunContext* ctx_;
};

template <typename Acc, typename F>
class FoldNode : public SinkNodeBase<FoldNode<Acc, F>> {
 public:
  FoldNode(Acc&& init, F&& f, RunContext& ctx)
      : acc_(std::move(init)), f_(std::move(f)), ctx_(&ctx) {}
  template <typename U>
  bool push(U&& x) {
    if constexpr (is_result_v<std::invoke_result_t<F&, Acc&&, U&&>>) {
      auto r = std::invoke(f_, std::move(acc_), std::forward<U>(x));
      if (!r.ok()) {
        ctx_->fail(std::move(r).error());
        return false;
      }
      acc_ = std::move(r).value();
    } else {
      acc_ = std::invoke(f_, std::move(acc_), std::forward<U>(x));
    }
    return true;
  }
  Acc take() { return std::move(acc_); }

 private:
  Acc acc_;
  F f_;
  RunContext* ctx_;
};

class DiscardNode : public SinkNodeBase<DiscardNode> {
 public:
  template <typename U>
  bool push(U&& /*x*/) {
    ++count_;
    return true;
  }
  std::size_t take() const { return count_; }

 private:
  std::size_t count_ = 0;
};

}  // namespace detail

// =================================================================================================
// Sources
// =================================================================================================

/// Owns a range (from_iter(std::move(v)), from_iter(std::vector{...})): items are moved out.
template <std::ranges::input_range R>
class FromIterOwned : public source_tag {
 public:
  using reference = detail::as_ref_t<std::ranges::range_rvalue_reference_t<R>>;
  using value_type = std::remove_cvref_t<reference>;

  explicit FromIterOwned(R&& r) : r_(std::move(r)) {}

  template <typename Node>
  void run(Node& node) {
    for (auto it = std::ranges::begin(r_); it != std::ranges::end(r_); ++it) {
      if (!node.push(std::ranges::iter_move(it))) return;
    }
  }

  /// Holds an iterator into its own range, so it is neither copied nor moved: it is only ever
  /// created in place (returned as a prvalue, guaranteed elision).
  class Cursor {
   public:
    explicit Cursor(R&& r) : r_(std::move(r)), it_(std::ranges::begin(r_)) {}
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
    std::optional<value_type> next() {
      if (it_ == std::ranges::end(r_)) return std::nullopt;
      std::optional<value_type> v(std::ranges::iter_move(it_));
      ++it_;
      return v;
    }

   private:
    R r_;
    std::ranges::iterator_t<R> it_;
  };
  Cursor cursor() && { return Cursor(std::move(r_)); }

 private:
  R r_;
};

/// Borrows a range (from_iter(v) with an lvalue v): items are pushed as const references, so
/// nothing is copied unless a stage copies. The range must outlive run().
template <std::ranges::input_range R>
class FromIterBorrowed : public source_tag {
  using Viewed = std::conditional_t<std::ranges::input_range<const R>, const R, R>;

 public:
  using reference = detail::as_ref_t<std::ranges::range_reference_t<Viewed>>;
  using value_type = std::remove_cvref_t<reference>;

  explicit FromIterBorrowed(Viewed& r) : r_(&r) {}

  template <typename Node>
  void run(Node& node) {
    for (auto&& x : *r_) {
      if (!node.push(std::forward<decltype(x)>(x))) return;
    }
  }

  class Cursor {
   public:
    explicit Cursor(Viewed* r) : r_(r), it_(std::ranges::begin(*r)) {}
    std::optional<value_type> next() {
      if (it_ == std::ranges::end(*r_)) return std::nullopt;
      std::optional<value_type> v(*it_);
      ++it_;
      return v;
    }

   private:
    Viewed* r_;
    std::ranges::iterator_t<Viewed> it_;
  };
  Cursor cursor() && { return Cursor(r_); }

 private:
  Viewed* r_;
};

/// from_iter(range): a source over any input range. An lvalue range is borrowed (it must outlive
/// run(); items flow as `const T&`), an rvalue range is moved in and its items moved out.
template <typename R>
auto from_iter(R&& r) {
  if constexpr (!std::ranges::input_range<std::remove_reference_t<R>>) {
    static_assert(detail::always_false<R>,
                  "parallax::typed::from_iter: the argument is not a range");
  } else if constexpr (std::is_lvalue_reference_v<R>) {
    return FromIterBorrowed<std::remove_const_t<std::remove_reference_t<R>>>(r);
  } else {
    return FromIterOwned<std::remove_cvref_t<R>>(std::move(r));
  }
}
/// from_iter({1, 2, 3}): the list is copied into an owned vector.
template <typename T>
auto from_iter(std::initializer_list<T> il) {
  return FromIterOwned<std::vector<T>>(std::vector<T>(il));
}

/// range(first, last): the integers first, first+1, ..., last-1 (empty when last <= first).
template <std::integral T>
class Range : public source_tag {
 public:
  using reference = T&&;
  using value_type = T;
  Range(T first, T last) : first_(first), last_(last) {}

  template <typename Node>
  void run(Node& node) {
    for (T i = first_; i < last_; ++i) {
      if (!node.push(T(i))) return;
    }
  }
  class Cursor {
   public:
    Cursor(T first, T last) : i_(first), last_(last) {}
    std::optional<T> next() {
      if (!(i_ < last_)) return std::nullopt;
      return i_++;
    }

   private:
    T i_, last_;
  };
  Cursor cursor() && { return Cursor(first_, last_); }

 private:
  T first_, last_;
};
template <std::integral A, std::integral B>
auto range(A first, B last) {
  using T = std::common_type_t<A, B>;
  return Range<T>(static_cast<T>(first), static_cast<T>(last));
}

/// once(v): exactly one item.
template <typename T>
class Once : public source_tag {
 public:
  using reference = T&&;
  using value_type = T;
  explicit Once(T v) : v_(std::move(v)) {}
  template <typename Node>
  void run(Node& node) {
    (void)node.push(std::move(v_));
  }
  class Cursor {
   public:
    explicit Cursor(T&& v) : v_(std::move(v)) {}
    std::optional<T> next() { return std::exchange(v_, std::nullopt); }

   private:
    std::optional<T> v_;
  };
  Cursor cursor() && { return Cursor(std::move(v_)); }

 private:
  T v_;
};
template <typename T>
Once<std::decay_t<T>> once(T&& v) {
  return Once<std::decay_t<T>>(std::forward<T>(v));
}

/// repeat_with(f): f(), f(), f(), ... without end. Bound it with take(n) (or a sink that stops).
template <typename F>
class RepeatWith : public source_tag {
 public:
  using reference = detail::as_ref_t<std::invoke_result_t<F&>>;
  using value_type = std::remove_cvref_t<reference>;
  explicit RepeatWith(F f) : f_(std::move(f)) {}
  template <typename Node>
  void run(Node& node) {
    while (node.push(std::invoke(f_))) {
    }
  }
  class Cursor {
   public:
    explicit Cursor(F&& f) : f_(std::move(f)) {}
    std::optional<value_type> next() { return std::optional<value_type>(std::invoke(f_)); }

   private:
    F f_;
  };
  Cursor cursor() && { return Cursor(std::move(f_)); }

 private:
  F f_;
};
template <typename F>
requires std::invocable < std::decay_t<F>
& > RepeatWith<std::decay_t<F>> repeat_with(F&& f) {
  return RepeatWith<std::decay_t<F>>(std::forward<F>(f));
}

/// merge(a, b): items of two sources of the same item type, interleaved one from each while both
/// have items, then the rest of the longer one. Items are taken as values (pulled one by one).
template <Source A, Source B>
class Merge : public source_tag {
 public:
  using value_type = typename A::value_type;
  using reference = value_type&&;
  Merge(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}

  class Cursor {
   public:
    Cursor(A&& a, B&& b) : ca_(std::move(a).cursor()), cb_(std::move(b).cursor()) {}
    std::optional<value_type> next() {
      for (int tries = 0; tries < 2; ++tries) {
        bool from_a = take_a_;
        if (from_a ? a_done_ : b_done_) {
          take_a_ = !take_a_;
          continue;
        }
        auto v = from_a ? ca_.next() : cb_.next();
        take_a_ = !take_a_;
        if (v) return v;
        (from_a ? a_done_ : b_done_) = true;
      }
      return std::nullopt;
    }

   private:
    decltype(std::declval<A>().cursor()) ca_;
    decltype(std::declval<B>().cursor()) cb_;
    bool take_a_ = true, a_done_ = false, b_done_ = false;
  };
  Cursor cursor() && { return Cursor(std::move(a_), std::move(b_)); }

  template <typename Node>
  void run(Node& node) {
    Cursor c(std::move(a_), std::move(b_));
    while (auto v = c.next()) {
      if (!node.push(std::move(*v))) return;
    }
  }

 private:
  A a_;
  B b_;
};
template <typename A, typename B>
auto merge(A a, B b) {
  if constexpr (!Source<A> || !Source<B>) {
    static_assert(detail::always_false<A, B>,
                  "parallax::typed::merge: both arguments must be sources");
  } else if constexpr (!std::same_as<typename A::value_type, typename B::value_type>) {
    (void)sizeof(
        diagnostic::merge_item_types_differ<typename A::value_type, typename B::value_type>);
  } else {
    return Merge<A, B>(std::move(a), std::move(b));
  }
}

/// zip(a, b): pairs (a0, b0), (a1, b1), ... until either source ends.
template <Source A, Source B>
class Zip : public source_tag {
 public:
  using value_type = std::pair<typename A::value_type, typename B::value_type>;
  using reference = value_type&&;
  Zip(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}

  class Cursor {
   public:
    Cursor(A&& a, B&& b) : ca_(std::move(a).cursor()), cb_(std::move(b).cursor()) {}
    std::optional<value_type> next() {
      auto x = ca_.next();
      if (!x) return std::nullopt;
      auto y = cb_.next();
      if (!y) return std::nullopt;
      return value_type(std::move(*x), std::move(*y));
    }

   private:
    decltype(std::declval<A>().cursor()) ca_;
    decltype(std::declval<B>().cursor()) cb_;
  };
  Cursor cursor() && { return Cursor(std::move(a_), std::move(b_)); }

  template <typename Node>
  void run(Node& node) {
    Cursor c(std::move(a_), std::move(b_));
    while (auto v = c.next()) {
      if (!node.push(std::move(*v))) return;
    }
  }

 private:
  A a_;
  B b_;
};
template <typename A, typename B>
auto zip(A a, B b) {
  if constexpr (!Source<A> || !Source<B>) {
    static_assert(detail::always_false<A, B>,
                  "parallax::typed::zip: both arguments must be sources");
  } else {
    return Zip<A, B>(std::move(a), std::move(b));
  }
}

// =================================================================================================
// Operators (stage builders). Each says which items it `accepts`, what it pushes (`output`), how
// to explain a mismatch (`diagnose`), and how to `bind` itself in front of the next node.
// =================================================================================================

template <typename F>
struct Map : stage_tag {
  F f;
  template <typename In>
  static constexpr bool accepts = [] {
    if constexpr (std::invocable<F&, In>) {
      return !std::is_void_v<std::invoke_result_t<F&, In>> &&
             !std::is_same_v<std::invoke_result_t<F&, In>, Result<void>>;
    } else {
      return false;
    }
  }();
  template <typename In>
  using output = detail::as_ref_t<detail::unwrap_result_t<std::invoke_result_t<F&, In>>>;
  template <typename In>
  static void diagnose() {
    if constexpr (std::invocable<F&, In>) {
      (void)sizeof(diagnostic::map_callable_returns_void<In>);
    } else {
      (void)sizeof(diagnostic::map_callable_cannot_take_item<In, detail::callable_param_t<F>>);
    }
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::MapNode<F, Next>(std::move(f), std::move(next), ctx);
  }
};
/// map(f): pushes f(item). f may return Result<U>: an error stops the pipeline.
template <typename F>
Map<std::decay_t<F>> map(F&& f) {
  return {{}, std::forward<F>(f)};
}

template <typename P>
struct Filter : stage_tag {
  P p;
  template <typename In>
  static constexpr bool callable = std::invocable<P&, const std::remove_cvref_t<In>&>;
  template <typename In>
  static constexpr bool returns_bool = [] {
    if constexpr (callable<In>) {
      using R = std::invoke_result_t<P&, const std::remove_cvref_t<In>&>;
      return std::same_as<std::remove_cvref_t<R>, bool> ||
             std::same_as<std::remove_cvref_t<R>, Result<bool>>;
    } else {
      return false;
    }
  }();
  template <typename In>
  static constexpr bool accepts = callable<In>&& returns_bool<In>;
  template <typename In>
  using output = In;
  template <typename In>
  static void diagnose() {
    if constexpr (!callable<In>) {
      (void)sizeof(diagnostic::filter_predicate_cannot_take_item<In, detail::callable_param_t<P>>);
    } else {
      (void)sizeof(diagnostic::filter_predicate_must_return_bool<
                   In, std::invoke_result_t<P&, const std::remove_cvref_t<In>&>>);
    }
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::FilterNode<P, Next>(std::move(p), std::move(next), ctx);
  }
};
/// filter(p): keeps the items for which p(const item&) is true. p must return bool (or
/// Result<bool>: an error stops the pipeline).
template <typename P>
Filter<std::decay_t<P>> filter(P&& p) {
  return {{}, std::forward<P>(p)};
}

template <typename F>
struct FilterMap : stage_tag {
  F f;
  template <typename R>
  using optional_of = std::remove_cvref_t<detail::unwrap_result_t<R>>;
  template <typename In>
  static constexpr bool accepts = [] {
    if constexpr (std::invocable<F&, In>) {
      return detail::is_optional_v<optional_of<std::invoke_result_t<F&, In>>>;
    } else {
      return false;
    }
  }();
  template <typename In>
  using output =
      typename detail::is_optional<optional_of<std::invoke_result_t<F&, In>>>::value_type&&;
  template <typename In>
  static void diagnose() {
    if constexpr (!std::invocable<F&, In>) {
      (void)sizeof(
          diagnostic::filter_map_callable_cannot_take_item<In, detail::callable_param_t<F>>);
    } else {
      (void)sizeof(
          diagnostic::filter_map_callable_must_return_optional<In, std::invoke_result_t<F&, In>>);
    }
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::FilterMapNode<F, Next>(std::move(f), std::move(next), ctx);
  }
};
/// filter_map(f): f returns std::optional<U>; pushes the values, drops the nullopts.
template <typename F>
FilterMap<std::decay_t<F>> filter_map(F&& f) {
  return {{}, std::forward<F>(f)};
}

template <typename F>
struct Inspect : stage_tag {
  F f;
  template <typename In>
  static constexpr bool accepts = std::invocable<F&, const std::remove_cvref_t<In>&>;
  template <typename In>
  using output = In;
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::inspect_callable_cannot_take_item<In, detail::callable_param_t<F>>);
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::InspectNode<F, Next>(std::move(f), std::move(next), ctx);
  }
};
/// inspect(f): calls f(const item&) and passes the item on unchanged. f may return Result<void>.
template <typename F>
Inspect<std::decay_t<F>> inspect(F&& f) {
  return {{}, std::forward<F>(f)};
}

struct Take : stage_tag {
  std::size_t n;
  template <typename In>
  static constexpr bool accepts = true;
  template <typename In>
  using output = In;
  template <typename In>
  static void diagnose() {}
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::TakeNode<Next>(n, std::move(next), ctx);
  }
};
/// take(n): the first n items, then the source is told to stop (take(0) runs no source at all).
inline Take take(std::size_t n) {
  return {{}, n};
}

struct Skip : stage_tag {
  std::size_t n;
  template <typename In>
  static constexpr bool accepts = true;
  template <typename In>
  using output = In;
  template <typename In>
  static void diagnose() {}
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::SkipNode<Next>(n, std::move(next), ctx);
  }
};
/// skip(n): drops the first n items.
inline Skip skip(std::size_t n) {
  return {{}, n};
}

struct Batch : stage_tag {
  std::size_t n;
  template <typename In>
  static constexpr bool accepts = std::constructible_from<std::remove_cvref_t<In>, In>;
  template <typename In>
  using output = std::vector<std::remove_cvref_t<In>>&&;
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::item_cannot_be_copied_into_a_stage_buffer<In>);
  }
  [[nodiscard]] Result<void> validate() const {
    if (n == 0) return err(Errc::invalid_argument, "parallax::typed::batch: n must be >= 1");
    return {};
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::BatchNode<std::remove_cvref_t<In>, Next>(n, std::move(next), ctx);
  }
};
/// batch(n): groups items into std::vector<T> of n; the last batch may be shorter (not emitted
/// after an error). batch(0) makes run() return invalid_argument.
inline Batch batch(std::size_t n) {
  return {{}, n};
}

struct Queue : stage_tag {
  std::size_t capacity;
  template <typename In>
  static constexpr bool accepts = std::constructible_from<std::remove_cvref_t<In>, In>;
  template <typename In>
  using output = std::remove_cvref_t<In>&&;
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::item_cannot_be_copied_into_a_stage_buffer<In>);
  }
  [[nodiscard]] Result<void> validate() const {
    if (capacity == 0)
      return err(Errc::invalid_argument, "parallax::typed::queue: capacity must be >= 1");
    return {};
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::QueueNode<std::remove_cvref_t<In>, Next>(capacity, std::move(next), ctx);
  }
};
/// queue(capacity): a thread boundary. Everything after it runs on one new thread, fed through a
/// bounded queue of `capacity` items (the producer blocks when it is full). Order is kept.
inline Queue queue(std::size_t capacity) {
  return {{}, capacity};
}

template <typename F>
struct Parallel : stage_tag {
  std::size_t n;
  std::size_t depth;
  F f;
  template <typename In>
  static constexpr bool accepts = [] {
    using V = std::remove_cvref_t<In>;
    if constexpr (std::constructible_from<V, In> && std::invocable<F&, V&&>) {
      using R = std::invoke_result_t<F&, V&&>;
      return !std::is_void_v<R> && !std::is_same_v<std::remove_cvref_t<R>, Result<void>> &&
             std::is_copy_constructible_v<F>;
    } else {
      return false;
    }
  }();
  template <typename In>
  using value_out = std::remove_cvref_t<
      detail::unwrap_result_t<std::invoke_result_t<F&, std::remove_cvref_t<In>&&>>>;
  template <typename In>
  using output = value_out<In>&&;
  template <typename In>
  static void diagnose() {
    using V = std::remove_cvref_t<In>;
    if constexpr (!std::constructible_from<V, In>) {
      (void)sizeof(diagnostic::item_cannot_be_copied_into_a_stage_buffer<In>);
    } else {
      (void)sizeof(diagnostic::parallel_callable_cannot_take_item<In, detail::callable_param_t<F>>);
    }
  }
  [[nodiscard]] Result<void> validate() const {
    if (n == 0 || depth == 0) {
      return err(Errc::invalid_argument,
                 "parallax::typed::parallel: threads and depth must be >= 1");
    }
    return {};
  }
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return detail::ParallelNode<std::remove_cvref_t<In>, value_out<In>, F, Next>(
        n, depth, std::move(f), std::move(next), ctx);
  }
};
/// parallel(n, f, depth = 16): a map whose calls run on n worker threads (each with its own copy
/// of f), with at most n * depth items in flight; output order is input order. f may return
/// Result<U>. Items are moved to the workers as values. Downstream stages stay on the caller's
/// thread.
template <typename F>
Parallel<std::decay_t<F>> parallel(std::size_t n, F&& f, std::size_t depth = 16) {
  return {{}, n, depth, std::forward<F>(f)};
}

// =================================================================================================
// Sinks
// =================================================================================================

template <typename T>
struct Collect : sink_tag {
  using result_type = std::vector<T>;
  template <typename In>
  static constexpr bool accepts =
      std::same_as<std::remove_cvref_t<In>, T>&& std::constructible_from<T, In>;
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::collect_element_type_mismatch<In, T>);
  }
  template <typename In>
  auto bind(RunContext& /*ctx*/) && {
    return detail::CollectNode<T>();
  }
};
/// collect<T>(): the items in a std::vector<T>. T must be exactly the last stage's item type.
template <typename T>
Collect<T> collect() {
  return {};
}

template <typename F>
struct ForEach : sink_tag {
  using result_type = void;
  F f;
  template <typename In>
  static constexpr bool accepts = std::invocable<F&, In>;
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::for_each_callable_cannot_take_item<In, detail::callable_param_t<F>>);
  }
  template <typename In>
  auto bind(RunContext& ctx) && {
    return detail::ForEachNode<F>(std::move(f), ctx);
  }
};
/// for_each(f): calls f(item) for every item; run() gives Result<void>. f may return
/// Result<void>: an error stops the pipeline.
template <typename F>
ForEach<std::decay_t<F>> for_each(F&& f) {
  return {{}, std::forward<F>(f)};
}

template <typename Acc, typename F>
struct Fold : sink_tag {
  using result_type = Acc;
  Acc init;
  F f;
  template <typename In>
  static constexpr bool accepts = [] {
    if constexpr (std::invocable<F&, Acc&&, In>) {
      using R = detail::unwrap_result_t<std::invoke_result_t<F&, Acc&&, In>>;
      return std::is_assignable_v<Acc&, R>;
    } else {
      return false;
    }
  }();
  template <typename In>
  static void diagnose() {
    (void)sizeof(diagnostic::fold_callable_cannot_take_item<In, Acc>);
  }
  template <typename In>
  auto bind(RunContext& ctx) && {
    return detail::FoldNode<Acc, F>(std::move(init), std::move(f), ctx);
  }
};
/// fold(init, f): acc = f(std::move(acc), item) for every item; run() gives the final acc.
/// f may return Result<Acc>.
template <typename Acc, typename F>
Fold<std::decay_t<Acc>, std::decay_t<F>> fold(Acc&& init, F&& f) {
  return {{}, std::forward<Acc>(init), std::forward<F>(f)};
}

struct Discard : sink_tag {
  using result_type = std::size_t;
  template <typename In>
  static constexpr bool accepts = true;
  template <typename In>
  static void diagnose() {}
  template <typename In>
  auto bind(RunContext& /*ctx*/) && {
    return detail::DiscardNode();
  }
};
/// discard(): drops every item; run() gives how many there were.
inline Discard discard() {
  return {};
}

// =================================================================================================
// Pipelines
// =================================================================================================

template <typename Src, typename Ref, typename... Stages>
class Pipeline;
template <typename Src, typename K, typename... Stages>
class CompletePipeline;

namespace detail {

/// What a wrong .then()/.sink() returns after its diagnostic, so that one mistake gives one error
/// rather than a cascade.
struct Poisoned {
  template <typename... A>
  Poisoned then(A&&...) && {
    return {};
  }
  template <typename... A>
  Poisoned sink(A&&...) && {
    return {};
  }
  template <typename... A>
  Poisoned parallel(A&&...) && {
    return {};
  }
  Poisoned run() && { return {}; }
  Poisoned into_inner() && { return {}; }
  Poisoned value() { return {}; }
  bool ok() const { return false; }
  explicit operator bool() const { return false; }
  template <typename A>
  friend Poisoned operator|(Poisoned, A&&) {
    return {};
  }
};

template <typename T>
struct is_pipeline : std::false_type {};
template <typename Src, typename Ref, typename... Stages>
struct is_pipeline<Pipeline<Src, Ref, Stages...>> : std::true_type {};

/// Builds the node chain for stages I.. and the sink, back to front; In is what stage I receives.
template <std::size_t I, typename In, typename Tuple, typename K>
auto build_chain(Tuple& stages, K& sink, RunContext& ctx) {
  if constexpr (I == std::tuple_size_v<Tuple>) {
    return std::move(sink).template bind<In>(ctx);
  } else {
    using S = std::tuple_element_t<I, Tuple>;
    using Out = stage_output_t<S, In>;
    auto next = build_chain<I + 1, Out>(stages, sink, ctx);
    return std::move(std::get<I>(stages)).template bind<In>(std::move(next), ctx);
  }
}

template <typename S>
Result<void> validate_stage(const S& s) {
  if constexpr (requires { s.validate(); }) {
    return s.validate();
  } else {
    return {};
  }
}

}  // namespace detail

/// A source followed by zero or more operators; Ref is the item (reference) type at its end.
/// Give it a sink to make it runnable.
template <typename Src, typename Ref, typename... Stages>
class Pipeline {
 public:
  using reference = Ref;
  using value_type = std::remove_cvref_t<Ref>;

  Pipeline(Src src, std::tuple<Stages...> stages)
      : src_(std::move(src)), stages_(std::move(stages)) {}

  /// Appends an operator. Fails to compile, naming both types, when the operator cannot take
  /// this pipeline's items.
  template <typename S>
  auto then(S stage) && {
    if constexpr (!Stage<S>) {
      (void)sizeof(diagnostic::then_needs_a_stage<S>);
      return detail::Poisoned{};
    } else if constexpr (!StageAccepts<S, Ref>) {
      S::template diagnose<Ref>();
      return detail::Poisoned{};
    } else {
      return Pipeline<Src, stage_output_t<S, Ref>, Stages..., S>(
          std::move(src_), std::tuple_cat(std::move(stages_), std::tuple<S>(std::move(stage))));
    }
  }
  template <typename S>
  auto then(S /*stage*/) & {
    (void)sizeof(
        diagnostic::pipelines_are_consumed_by_moving<std::conditional_t<true, Pipeline, S>>);
    return detail::Poisoned{};
  }

  /// Shorthand for .then(parallel(n, f, depth)).
  template <typename F>
  auto parallel(std::size_t n, F&& f, std::size_t depth = 16) && {
    return std::move(*this).then(typed::parallel(n, std::forward<F>(f), depth));
  }

  /// Ends the pipeline with a sink; the result can run().
  template <typename K>
  auto sink(K k) && {
    if constexpr (!Sink<K>) {
      (void)sizeof(diagnostic::sink_needs_a_sink<K>);
      return detail::Poisoned{};
    } else if constexpr (!SinkAccepts<K, Ref>) {
      K::template diagnose<Ref>();
      return detail::Poisoned{};
    } else {
      return CompletePipeline<Src, K, Stages...>(std::move(src_), std::move(stages_), std::move(k));
    }
  }
  template <typename K>
  auto sink(K /*k*/) & {
    (void)sizeof(
        diagnostic::pipelines_are_consumed_by_moving<std::conditional_t<true, Pipeline, K>>);
    return detail::Poisoned{};
  }

  /// Always a compile error: a pipeline without a sink cannot run.
  template <typename D = void>
  void run() {
    (void)sizeof(diagnostic::pipeline_has_no_sink<std::conditional_t<true, Ref, D>>);
  }

 private:
  Src src_;
  std::tuple<Stages...> stages_;
};

/// A pipeline with its sink. run() consumes it and gives Result<R>, R being the sink's result:
/// std::vector<T> (collect), void (for_each), Acc (fold), std::size_t (discard).
template <typename Src, typename K, typename... Stages>
class CompletePipeline {
 public:
  using result_type = typename K::result_type;

  CompletePipeline(Src src, std::tuple<Stages...> stages, K k)
      : src_(std::move(src)), stages_(std::move(stages)), sink_(std::move(k)) {}

  /// Runs the source to its end (or until a stage stops it, or the first error) on the calling
  /// thread (queue/parallel stages use threads of their own, joined before run() returns).
  Result<result_type> run() && {
    Result<void> valid = std::apply(
        [](const auto&... s) {
          Result<void> r;
          ((r.ok() ? (void)(r = detail::validate_stage(s)) : (void)0), ...);
          return r;
        },
        stages_);
    if (!valid.ok()) return std::move(valid).error();

    RunContext ctx;
    auto chain = detail::build_chain<0, typename Src::reference>(stages_, sink_, ctx);
    if (chain.open()) src_.run(chain);
    chain.finish();
    if (auto e = ctx.take_error()) return std::move(*e);
    if constexpr (std::is_void_v<result_type>) {
      return {};
    } else {
      return chain.sink_node().take();
    }
  }
  template <typename D = void>
  void run() & {
    (void)sizeof(diagnostic::pipelines_are_consumed_by_moving<
                 std::conditional_t<true, CompletePipeline, D>>);
  }

 private:
  Src src_;
  std::tuple<Stages...> stages_;
  K sink_;
};

/// pipeline(source): starts a pipeline.
template <typename Src>
auto pipeline(Src src) {
  if constexpr (!Source<Src>) {
    (void)sizeof(diagnostic::pipeline_needs_a_source<Src>);
    return detail::Poisoned{};
  } else {
    return Pipeline<Src, typename Src::reference>(std::move(src), std::tuple<>());
  }
}

/// `p | stage` is `std::move(p).then(stage)`, `p | sink` is `std::move(p).sink(sink)`; p may also
/// be a bare source: `range(0, 10) | map(f) | collect<int>()`.
template <typename P>
concept PipeLeft = detail::is_pipeline<std::remove_cvref_t<P>>::value || Source<P>;
template <typename S>
concept PipeRight = Stage<S> || Sink<S>;

template <PipeLeft P, PipeRight S>
auto operator|(P&& p, S s) {
  if constexpr (Source<P>) {
    return pipeline(std::remove_cvref_t<P>(std::forward<P>(p))) | std::move(s);
  } else if constexpr (std::is_lvalue_reference_v<P>) {
    (void)sizeof(diagnostic::pipelines_are_consumed_by_moving<std::remove_cvref_t<P>>);
    return detail::Poisoned{};
  } else if constexpr (Stage<S>) {
    return std::remove_cvref_t<P>(std::forward<P>(p)).then(std::move(s));
  } else {
    return std::remove_cvref_t<P>(std::forward<P>(p)).sink(std::move(s));
  }
}

}  // namespace parallax::typed
