// SPDX-License-Identifier: MIT OR Apache-2.0
// Sinks of typed pipelines: collect<T>, for_each, fold, discard (what run() gives back: a
// vector, nothing, the accumulator, the item count).
#pragma once

#include <parallax/typed/diagnostic.h>
#include <parallax/typed/nodes.h>
#include <parallax/typed/run_context.h>
#include <parallax/typed/traits.h>

#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

namespace parallax::typed {

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

}  // namespace parallax::typed
