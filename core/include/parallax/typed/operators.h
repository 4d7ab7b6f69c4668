// SPDX-License-Identifier: MIT OR Apache-2.0
// Operators (stage builders) of typed pipelines: map, filter, filter_map, inspect, take, skip,
// batch, queue, parallel. Each says which items it `accepts`, what it pushes (`output`), how to
// explain a mismatch (`diagnose`), and how to `bind` itself in front of the next node.
#pragma once

#include <parallax/result.h>
#include <parallax/typed/diagnostic.h>
#include <parallax/typed/nodes.h>
#include <parallax/typed/run_context.h>
#include <parallax/typed/thread_nodes.h>
#include <parallax/typed/traits.h>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

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

namespace detail {
/// take(n) and skip(n): a count, any item accepted and passed on as it came.
template <template <typename> class CountNode>
struct CountStage : stage_tag {
  std::size_t n;
  template <typename In>
  static constexpr bool accepts = true;
  template <typename In>
  using output = In;
  template <typename In>
  static void diagnose() {}
  template <typename In, typename Next>
  auto bind(Next&& next, RunContext& ctx) && {
    return CountNode<Next>(n, std::move(next), ctx);
  }
};
}  // namespace detail

struct Take : detail::CountStage<detail::TakeNode> {};
/// take(n): the first n items, then the source is told to stop (take(0) runs no source at all).
inline Take take(std::size_t n) {
  return {{{}, n}};
}

struct Skip : detail::CountStage<detail::SkipNode> {};
/// skip(n): drops the first n items.
inline Skip skip(std::size_t n) {
  return {{{}, n}};
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

}  // namespace parallax::typed
